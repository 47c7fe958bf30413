#!/usr/bin/env python3
"""An instant Docker Engine API on a unix socket, just enough for `docker run --rm IMG CMD`: answers
ping, create, attach (101), wait?condition=removed and start at once, and ends the attach and the
wait as soon as start arrives. bench/engine.sh times the docker CLI against it: the CLI's own cost
of the run flow, with no daemon work at all.

    python3 bench/instant-docker-api.py SOCKET
"""
import os
import socketserver
import sys
import threading

CID = "b" * 64
started = threading.Event()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            method, target, _ = line.decode().split(" ", 2)
            path = target.split("?")[0]
            length = 0
            while True:
                header = self.rfile.readline()
                if header in (b"\r\n", b""):
                    break
                name, value = header.decode().split(":", 1)
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                self.rfile.read(length)
            w = self.wfile
            if path.endswith("/_ping"):
                body = b"" if method == "HEAD" else b"OK"
                w.write(b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nOstype: linux\r\n"
                        b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n" + body)
            elif path.endswith("/containers/create"):
                started.clear()
                body = ('{"Id":"%s","Warnings":[]}' % CID).encode()
                w.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
            elif path.endswith("/attach"):
                w.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                w.flush()
                started.wait()
                return
            elif path.endswith("/wait"):
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
                w.flush()
                started.wait()
                body = b'{"StatusCode":0,"Error":null}\n'
                w.write(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
            elif path.endswith("/start"):
                w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                w.flush()
                started.set()
            else:
                w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            w.flush()


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    socket_path = sys.argv[1]
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    Server(socket_path, Handler).serve_forever()
