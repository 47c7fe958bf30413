"""docker-py 7.1 against the daemon at $DOCKER_HOST: run with output, detached run with
streamed logs, wait and remove, images.load. Prints one line per check; exits non-zero on the
first failure."""

import os
import sys

import docker


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def main():
    client = docker.from_env(timeout=120)
    check(client.ping(), "ping")
    version = client.version()
    check(version["ApiVersion"] == "1.50" or os.environ.get("SKIFF_E2E_REFERENCE"), "api version")

    with open(sys.argv[1], "rb") as f:
        loaded = client.images.load(f.read())
    check(any("busybox:latest" in img.tags for img in loaded), f"images.load tags {[i.tags for i in loaded]}")

    out = client.containers.run("busybox:latest", ["echo", "hello from py"], remove=True)
    check(out == b"hello from py\n", f"containers.run output {out!r}")

    try:
        client.containers.run("busybox:latest", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
        check(False, "non-zero exit raises ContainerError")
    except docker.errors.ContainerError as e:
        check(e.exit_status == 3, f"ContainerError exit status {e.exit_status}")

    c = client.containers.run(
        "busybox:latest",
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

    c = client.containers.run("busybox:latest", ["sleep", "300"], detach=True)
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


if __name__ == "__main__":
    main()
