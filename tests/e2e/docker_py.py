"""docker-py 7.1 against the daemon at $DOCKER_HOST, one section per run:

    python3 docker_py.py BUSYBOX_TAR SECTION

Sections: basics (run with output, detached run with streamed logs, wait and remove, exec_run,
images.load), config (what create keeps and the container runs with), streams (output is
never lost to a client slow to read the upgrade head), detach (detach keys), commit,
load_and_stats, networks ($E2E_SUBNET, a free /24, and $E2E_PORT, a free host port). Prints one line per check; exits non-zero on the first failure.

$SKIFF_STATE is the daemon's state dir (unset against a reference dockerd: the checks that
look at skiff's own runtime state are skipped then)."""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import docker

REFERENCE = bool(os.environ.get("SKIFF_E2E_REFERENCE"))
BUSYBOX = "busybox:latest"


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def eventually(what, f, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > deadline:
            check(False, f"{what} within {timeout}s")
        time.sleep(0.05)


def load_busybox(client):
    with open(sys.argv[1], "rb") as f:
        loaded = client.images.load(f.read())
    check(any(BUSYBOX in img.tags for img in loaded), f"images.load tags {[i.tags for i in loaded]}")


@contextlib.contextmanager
def slow_to_read_heads(delay=0.3):
    """Every response head is read `delay` seconds late, as on a loaded machine: output a
    server sends right after a 101 head then arrives in the same read as the head."""
    begin = http.client.HTTPResponse.begin

    def late_begin(self):
        time.sleep(delay)
        return begin(self)

    http.client.HTTPResponse.begin = late_begin
    try:
        yield
    finally:
        http.client.HTTPResponse.begin = begin


def recv_until(sock, needle, timeout=30):
    sock.settimeout(timeout)
    seen = b""
    while needle not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            check(False, f"stream still open while waiting for {needle!r} (got {seen!r})")
        seen += chunk
    return seen


def recv_to_end(sock, timeout=30):
    """Reads until the server closes the stream; fails if it does not within `timeout`."""
    sock.settimeout(timeout)
    rest = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return rest
            rest += chunk
    except socket.timeout:
        check(False, f"stream closed by the server within {timeout}s (got {rest!r})")


def basics(client):
    check(client.ping(), "ping")
    version = client.version()
    check(version["ApiVersion"] == "1.50" or REFERENCE, "api version")
    load_busybox(client)

    out = client.containers.run(BUSYBOX, ["echo", "hello from py"], remove=True)
    check(out == b"hello from py\n", f"containers.run output {out!r}")

    try:
        client.containers.run(BUSYBOX, ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
        check(False, "non-zero exit raises ContainerError")
    except docker.errors.ContainerError as e:
        check(e.exit_status == 3, f"ContainerError exit status {e.exit_status}")

    c = client.containers.run(
        BUSYBOX,
        ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"],
        detach=True,
        name="pyrun",
    )
    lines = b"".join(c.logs(stream=True, follow=True))
    check(lines == b"line 1\nline 2\nline 3\n", f"logs stream {lines!r}")
    result = c.wait(timeout=60)
    check(result["StatusCode"] == 0, f"wait {result}")
    c.reload()
    check(c.attrs["HostConfig"]["LogConfig"]["Type"] != "", "LogConfig.Type in inspect")
    c.remove()
    check(all(x.name != "pyrun" for x in client.containers.list(all=True)), "removed")

    c = client.containers.run(BUSYBOX, ["sleep", "300"], detach=True)
    # Output ready at once must not be lost to http.client's buffered read of the 101 head.
    for _ in range(3):
        code, out = c.exec_run(["sh", "-c", "echo exec-out; exit 4"])
        check(code == 4 and out == b"exec-out\n", f"exec_run {code} {out!r}")
    code, out = c.exec_run(["busybox", "tty"], tty=True)
    check(out.startswith(b"/dev/pts/"), f"exec_run tty {out!r}")
    c.remove(force=True)

    try:
        client.containers.get("nosuchcontainer")
        check(False, "NotFound raised")
    except docker.errors.NotFound:
        check(True, "NotFound raised")


def config(client):
    load_busybox(client)
    # A variable name without "=" is kept in the config; the process gets no such variable
    # (Docker's runtime environment drops it, and it unsets a default of that name).
    c = client.containers.create(
        BUSYBOX,
        ["sh", "-c", "env; echo groups=$(id -G)"],
        environment=["Foo", "A=1", "HOSTNAME"],
        group_add=["nobody", "1234"],
        log_config={"type": "json-file", "config": {"max-file": "3"}},
    )
    c.reload()
    env = c.attrs["Config"]["Env"]
    check(env[:3] == ["Foo", "A=1", "HOSTNAME"], f"Config.Env keeps bare names {env}")
    check(
        c.attrs["HostConfig"]["LogConfig"]["Config"] == {"max-file": "3"},
        f"max-file without max-size accepted {c.attrs['HostConfig']['LogConfig']}",
    )
    check(c.attrs["HostConfig"]["GroupAdd"] == ["nobody", "1234"], "GroupAdd recorded")
    c.start()
    check(c.wait(timeout=60)["StatusCode"] == 0, "env container exit")
    out = c.logs().decode()
    lines = out.splitlines()
    check("A=1" in lines, f"A=1 in the process env: {out!r}")
    check(not any(l == "Foo" or l.startswith("Foo=") for l in lines), f"no Foo in env: {out!r}")
    check(not any(l.startswith("HOSTNAME=") for l in lines), f"bare HOSTNAME unsets it: {out!r}")
    groups = next(l for l in lines if l.startswith("groups=")).split("=")[1].split()
    check("65534" in groups and "1234" in groups, f"id -G has the added groups: {groups}")
    c.remove()

    # An unknown group name is refused when the container starts, with Docker's message.
    c = client.containers.create(BUSYBOX, ["true"], group_add=["nosuchgroup"])
    try:
        c.start()
        check(False, "unknown --group-add refused")
    except docker.errors.APIError as e:
        check("Unable to find group nosuchgroup" in str(e), f"unknown group: {e}")
    c.remove(force=True)

    # Exec as another user also gets the added groups.
    c = client.containers.run(BUSYBOX, ["sleep", "300"], detach=True, group_add=["1234"])
    code, out = c.exec_run(["id", "-G"], user="nobody")
    check(code == 0 and b"1234" in out.split(), f"exec as nobody has group 1234: {out!r}")

    # Docker reports the cgroup namespace mode it runs with (host on cgroup v1 and hybrid
    # hosts, private on v2) and an unset swappiness as null.
    c.reload()
    hc = c.attrs["HostConfig"]
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    want_ns = "private" if unified else "host"
    check(hc["CgroupnsMode"] == want_ns, f"CgroupnsMode {hc.get('CgroupnsMode')!r}")
    check("MemorySwappiness" in hc and hc["MemorySwappiness"] is None, "MemorySwappiness null")
    code, out = c.exec_run(["cat", "/proc/self/cgroup"])
    in_host_ns = c.id.encode() in out
    check(in_host_ns == (want_ns == "host"), f"cgroup namespace as reported: {out!r}")
    c.remove(force=True)

    # The runtime asked for is the one that runs the container.
    c = client.containers.run(BUSYBOX, ["sleep", "300"], detach=True, runtime="runc")
    c.reload()
    check(c.attrs["HostConfig"]["Runtime"] == "runc", f"Runtime {c.attrs['HostConfig']['Runtime']}")
    state_dir = os.environ.get("SKIFF_STATE")
    if state_dir:
        state = subprocess.run(
            ["runc", "--root", os.path.join(state_dir, "runtime", "runc"), "state", c.id],
            capture_output=True,
        )
        check(state.returncode == 0, f"runc knows the container: {state.stderr!r}")
        check(json.loads(state.stdout)["status"] == "running", f"runc state {state.stdout!r}")
    c.remove(force=True)


def streams(client):
    load_busybox(client)
    done = client.containers.run(BUSYBOX, ["sh", "-c", "echo out-line; echo err-line >&2"], detach=True)
    done.wait(timeout=60)
    logs = done.attach(stream=False, logs=True)
    check(logs == b"out-line\nerr-line\n", f"attach logs of an exited container {logs!r}")
    c = client.containers.run(BUSYBOX, ["sleep", "300"], detach=True)
    with slow_to_read_heads():
        logs = done.attach(stream=False, logs=True)
        check(logs == b"out-line\nerr-line\n", f"attach logs, head read late {logs!r}")
        code, out = c.exec_run(["echo", "hello out"], tty=True)
        check(out == b"hello out\r\n", f"exec tty output, head read late {out!r}")
        code, out = c.exec_run(["sh", "-c", "echo hello out; exit 2"])
        check((code, out) == (2, b"hello out\n"), f"exec output, head read late {code} {out!r}")
    c.remove(force=True)
    done.remove()


def detach(client):
    load_busybox(client)
    c = client.containers.run(BUSYBOX, ["sh"], detach=True, tty=True, stdin_open=True)

    # ctrl-p ctrl-q by default: the session ends, the container runs on.
    sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    sock.sendall(b"echo mark-$((6*7))\n")
    recv_until(sock, b"mark-42")
    sock.sendall(b"\x10\x11")
    recv_to_end(sock)
    c.reload()
    check(c.status == "running", f"running after detach: {c.status}")

    # A sequence of the client's own; the default one is then ordinary input (ctrl-u clears
    # whatever the shell's line editor made of it).
    sock = client.api.attach_socket(
        c.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,x"}
    )._sock
    sock.sendall(b"\x10\x11\x15echo again-$((1+1))\n")
    recv_until(sock, b"again-2")
    sock.sendall(b"\x18x")
    recv_to_end(sock)
    c.reload()
    check(c.status == "running", f"running after a custom detach: {c.status}")

    try:
        client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "bogus"})
        check(False, "invalid detach keys refused")
    except docker.errors.APIError as e:
        check("Invalid detach keys (bogus) provided" in str(e), f"invalid keys: {e}")

    # An exec session detaches the same way; the exec runs on.
    exec_id = client.api.exec_create(c.id, ["sh"], stdin=True, tty=True, detach_keys="ctrl-a")["Id"]
    sock = client.api.exec_start(exec_id, socket=True, tty=True)._sock
    sock.sendall(b"echo in-exec-$((2+2))\n")
    recv_until(sock, b"in-exec-4")
    sock.sendall(b"\x01")
    recv_to_end(sock)
    check(client.api.exec_inspect(exec_id)["Running"], "exec running after detach")

    # The client config's detachKeys (docker-py sends them with every exec and attach).
    config_dir = os.environ["DOCKER_CONFIG"]
    with open(os.path.join(config_dir, "config.json"), "w") as f:
        json.dump({"detachKeys": "ctrl-y"}, f)
    configured = docker.from_env(timeout=120)
    exec_id = configured.api.exec_create(c.id, ["sh"], stdin=True, tty=True)["Id"]
    check(configured.api.exec_inspect(exec_id)["DetachKeys"] in ("ctrl-y", "GQ=="), "exec keys from config")
    sock = configured.api.exec_start(exec_id, socket=True, tty=True)._sock
    sock.sendall(b"echo cfg-$((3+3))\n")
    recv_until(sock, b"cfg-6")
    sock.sendall(b"\x19")
    recv_to_end(sock)
    check(configured.api.exec_inspect(exec_id)["Running"], "exec running after config detach")
    sock = configured.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})._sock
    sock.sendall(b"echo cfg-attach\n")
    recv_until(sock, b"cfg-attach\r\n")
    sock.sendall(b"\x19")
    recv_to_end(sock)
    c.reload()
    check(c.status == "running", f"running after config detach: {c.status}")
    c.remove(force=True)


def commit(client):
    load_busybox(client)
    c = client.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo committed-data > /hello; rm /etc/group; mkdir -p /srv/app; sleep 300"],
        detach=True,
    )
    eventually("the container's changes", lambda: c.exec_run(["sh", "-c", "[ -d /srv/app ]"])[0] == 0)
    image = c.commit(
        repository="pycommit",
        tag="v1",
        message="made by docker-py",
        author="py <py@example.com>",
        changes=['CMD ["cat", "/hello"]', "ENV FROM_COMMIT=yes"],
    )
    check("pycommit:v1" in image.tags, f"commit tags {image.tags}")
    c.reload()
    check(c.status == "running", f"unpaused after commit: {c.status}")
    check(image.attrs["Author"] == "py <py@example.com>", f"Author {image.attrs['Author']}")
    check(image.attrs["Config"]["Cmd"] == ["cat", "/hello"], f"Cmd {image.attrs['Config']['Cmd']}")
    check("FROM_COMMIT=yes" in image.attrs["Config"]["Env"], f"Env {image.attrs['Config']['Env']}")
    parent = client.images.get(BUSYBOX)
    layers = image.attrs["RootFS"]["Layers"]
    check(
        layers[:-1] == parent.attrs["RootFS"]["Layers"] and len(layers) == len(parent.attrs["RootFS"]["Layers"]) + 1,
        f"one layer more than the parent: {layers}",
    )
    history = image.history()
    top = history[0]
    check(top["Comment"] == "made by docker-py", f"history comment {top}")
    check(top["CreatedBy"].startswith("sh -c echo committed-data"), f"history created_by {top}")
    check(top["Size"] > 0 and top["Tags"] == ["pycommit:v1"], f"history top {top}")
    check(len(history) == len(parent.history()) + 1, f"history length {len(history)}")

    out = client.containers.run("pycommit:v1", remove=True)
    check(out == b"committed-data\n", f"the committed image runs: {out!r}")
    out = client.containers.run("pycommit:v1", ["ls", "/etc"], remove=True).split()
    check(b"group" not in out and b"passwd" in out, f"deletions are kept: {out!r}")
    c.remove(force=True)

    # Nothing changed: an empty layer, as Docker records it.
    c = client.containers.run(BUSYBOX, ["true"], detach=True)
    c.wait(timeout=60)
    image = c.commit()
    check(image.tags == [], f"untagged commit {image.tags}")
    check(image.attrs["RootFS"]["Layers"] == parent.attrs["RootFS"]["Layers"], "no layer added")
    check(image.history()[0]["Size"] == 0, f"empty history entry {image.history()[0]}")
    c.remove()


def build(client):
    import io
    import tempfile

    load_busybox(client)
    with tempfile.TemporaryDirectory(prefix="skiff-e2e-pybuild") as ctx:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(
                "FROM busybox\nARG WHO=world\nCOPY msg.txt /msg.txt\n"
                "RUN echo \"hello $WHO\" >> /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n"
            )
        with open(os.path.join(ctx, "msg.txt"), "w") as f:
            f.write("from the context\n")
        image, logs = client.images.build(path=ctx, tag="pybuild:1", buildargs={"WHO": "py"}, labels={"by": "docker-py"})
        streamed = "".join(l.get("stream", "") for l in logs)
        check("Step 4/6 : RUN echo" in streamed, f"build output {streamed!r}")
        check("pybuild:1" in image.tags, f"tags {image.tags}")
        check(image.labels.get("by") == "docker-py", f"labels {image.labels}")
        out = client.containers.run("pybuild:1", remove=True)
        check(out == b"from the context\nhello py\n", f"the built image runs: {out!r}")

        # The same build again comes from the cache: the same image.
        again, logs = client.images.build(path=ctx, tag="pybuild:1", buildargs={"WHO": "py"}, labels={"by": "docker-py"})
        streamed = "".join(l.get("stream", "") for l in logs)
        check(streamed.count("Using cache") == 5, f"cached build output {streamed!r}")
        check(again.id == image.id, f"same image {again.id} {image.id}")

        # A Dockerfile sent as a file object (docker-py tars it as the whole context).
        image, _ = client.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV A=1\n"), tag="pybuild:fileobj")
        check("A=1" in image.attrs["Config"]["Env"], f"fileobj build {image.attrs['Config']['Env']}")

        # A failing step raises BuildError with Docker's message; no container is left.
        try:
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"), tag="pybuild:bad")
            check(False, "a failing RUN raises BuildError")
        except docker.errors.BuildError as e:
            check("returned a non-zero code: 7" in str(e), f"BuildError {e}")
        check(client.containers.list(all=True) == [], "no build container is left")
        try:
            client.images.get("pybuild:bad")
            check(False, "a failed build tags nothing")
        except docker.errors.ImageNotFound:
            pass


def load_and_stats(client):
    load_busybox(client)
    try:
        client.images.load(b"this is not an image archive")
        check(False, "a corrupt archive raises ImageLoadError")
    except docker.errors.ImageLoadError as e:
        check(str(e) != "", f"ImageLoadError: {e}")

    c = client.containers.run(BUSYBOX, ["sleep", "300"], detach=True, network_mode="none")
    stats = c.stats(stream=False)
    check("networks" not in stats, f"no networks member with loopback only: {sorted(stats)}")
    if not REFERENCE:
        # Give its network namespace an interface (removed with the namespace).
        c.reload()
        pid = str(c.attrs["State"]["Pid"])
        for cmd in (
            ["ip", "link", "add", "skiffv0", "type", "veth", "peer", "name", "skiffv1"],
            ["ip", "link", "set", "skiffv0", "up"],
            ["ip", "link", "set", "skiffv1", "up"],
        ):
            subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *cmd], check=True)
        nets = c.stats(stream=False).get("networks")
        check(nets is not None and set(nets) == {"skiffv0", "skiffv1"}, f"networks by interface {nets}")
        keys = {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
        check(keys <= set(nets["skiffv0"]), f"Docker's counters {nets['skiffv0']}")
    c.remove(force=True)


def networks(client):
    """A user network with a static subnet: published ports, DNS by name and alias, connect
    with a fixed address, and the server-side errors docker-py leaves to the daemon."""
    import urllib.request

    load_busybox(client)
    subnet = os.environ["E2E_SUBNET"]
    port = int(os.environ["E2E_PORT"])
    fixed = subnet.rsplit(".", 1)[0] + ".10"
    pool = docker.types.IPAMPool(subnet=subnet)
    net = client.networks.create(
        "pynet", driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool]), labels={"team": "py"}
    )
    check(net.attrs["IPAM"]["Config"][0]["Subnet"] == subnet, f"subnet {net.attrs['IPAM']}")
    check(client.networks.list(names=["pynet"])[0].id == net.id, "networks.list by name")
    check([n.name for n in client.networks.list(filters={"label": "team=py"})] == ["pynet"], "label filter")
    web = client.containers.run(
        BUSYBOX, ["httpd", "-f", "-p", "80", "-h", "/etc"], detach=True, name="pyweb", network="pynet",
        ports={"80/tcp": port},
    )
    web.reload()
    web_ip = web.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
    check(web_ip.startswith(subnet.rsplit(".", 1)[0] + "."), f"address {web_ip} in {subnet}")
    v4 = {"HostIp": "0.0.0.0", "HostPort": str(port)}
    if REFERENCE:  # dockerd also publishes on IPv6 (skiff: IPv4 only)
        check(v4 in web.ports["80/tcp"], f"ports {web.ports}")
    else:
        check(web.ports == {"80/tcp": [v4]}, f"ports {web.ports}")
    body = eventually(
        "the published port",
        lambda: _fetch(urllib.request, f"http://127.0.0.1:{port}/hostname"),
    )
    check(body.strip() == web.id[:12], f"published port answers {body!r}")

    other = client.containers.create(BUSYBOX, ["sleep", "300"], name="pyclient")
    net.connect(other, ipv4_address=fixed, aliases=["pyalias"])
    other.start()
    other.reload()
    check(other.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"] == fixed, "connect with a fixed address")
    for name in ("pyweb", "pyalias"):
        code, out = other.exec_run(["nslookup", name])
        want = web_ip if name == "pyweb" else fixed
        check(code == 0 and f"Address: {want}".encode() in out, f"{name} resolves: {out!r}")
    net.reload()
    check({c.name for c in net.containers} == {"pyweb", "pyclient"}, f"members {net.containers}")
    net.disconnect(other)
    other.reload()
    check("pynet" not in other.attrs["NetworkSettings"]["Networks"], "disconnected")

    def api_error(f, status, text):
        try:
            f()
        except docker.errors.APIError as e:
            msg = e.explanation or ""
            check(e.status_code == status and text in msg, f"{status} {text!r}: got {e.status_code} {msg!r}")
            return
        check(False, f"expected {status} {text!r}")

    api_error(lambda: client.containers.run(BUSYBOX, "true", ports={"abc/tcp": 80}), 400, 'invalid port specification: "abc"')
    if not REFERENCE:  # dockerd 20.10 (Debian's reference) allows duplicate names; 28 refuses
        api_error(lambda: client.networks.create("pynet"), 409, "network with name pynet already exists")
    api_error(
        lambda: client.networks.create("ov", ipam=docker.types.IPAMConfig(pool_configs=[pool])),
        403,
        "Pool overlaps with other one on this address space",
    )
    api_error(net.remove, 403, "has active endpoints")
    api_error(lambda: client.networks.get("nosuch"), 404, "network nosuch not found")
    outside = "192.0.2.9"
    if REFERENCE:  # dockerd 20.10 checks static addresses at start only; 28 at create
        return
    api_error(
        lambda: client.api.create_container(
            BUSYBOX,
            "true",
            networking_config=client.api.create_networking_config(
                {"pynet": client.api.create_endpoint_config(ipv4_address=outside)}
            ),
            host_config=client.api.create_host_config(network_mode="pynet"),
        ),
        400,
        f"no configured subnet or ip-range contain the IP address {outside}",
    )
    check(not [n for n in client.networks.list() if n.name == "ov"], "the refused network was not created")
    web.remove(force=True)
    other.remove(force=True)
    pruned = client.networks.prune()
    check(pruned.get("NetworksDeleted") == ["pynet"], f"prune {pruned}")


def _fetch(urllib_request, url):
    try:
        with urllib_request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


SECTIONS = {
    "basics": basics,
    "config": config,
    "streams": streams,
    "detach": detach,
    "commit": commit,
    "load_and_stats": load_and_stats,
    "networks": networks,
    "build": build,
}


def main():
    client = docker.from_env(timeout=120)
    SECTIONS[sys.argv[2]](client)


if __name__ == "__main__":
    main()
