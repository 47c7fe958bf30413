"""docker-py 7.1 against the daemon at $DOCKER_HOST (busybox:latest loaded) and a registry
with htpasswd auth:

    python3 docker_py_registry.py REGISTRY_ADDR USER PASSWORD

login (bad credentials are a 401 APIError, good ones are remembered by the client),
images.push and images.pull with auth_config, a pull error, and containers.run of an image
the daemon does not have. Prints one line per check; exits non-zero on the first failure."""

import sys

import docker


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def main():
    addr, user, password = sys.argv[1:4]
    client = docker.from_env(timeout=120)
    repo = f"{addr}/py/busybox"
    auth = {"username": user, "password": password}

    try:
        client.login(username=user, password="wrong", registry=addr)
        check(False, "a bad login raises")
    except docker.errors.APIError as e:
        check(e.status_code == 401, f"a bad login is a 401: {e.status_code}")
        check("401 Unauthorized" in str(e), f"Docker's login message: {e}")

    client.images.get("busybox:latest").tag(repo, "1")
    lines = list(client.images.push(repo, tag="1", stream=True, decode=True))
    errors = [line["error"] for line in lines if "error" in line]
    check(errors and "authentication required" in errors[0], f"push without credentials fails: {lines}")

    lines = list(client.images.push(repo, tag="1", auth_config=auth, stream=True, decode=True))
    check(not any("error" in line for line in lines), f"push with auth_config: {lines}")
    check(any(line.get("status") == "Pushed" for line in lines), "a layer was pushed")
    aux = [line["aux"] for line in lines if "aux" in line]
    check(len(aux) == 1 and aux[0]["Tag"] == "1", f"push result {aux}")
    digest = aux[0]["Digest"]

    client.images.remove(f"{repo}:1")
    pulled = client.images.pull(repo, tag="1", auth_config=auth)
    check(f"{repo}:1" in pulled.tags, f"pulled tags {pulled.tags}")
    check(pulled.attrs["RepoDigests"] == [f"{repo}@{digest}"], f"RepoDigests {pulled.attrs['RepoDigests']}")

    try:
        client.images.pull(f"{addr}/py/missing", tag="1", auth_config=auth)
        check(False, "pulling a missing tag raises")
    except docker.errors.NotFound as e:
        check("manifest unknown" in str(e), f"missing tag: {e}")

    # A login is remembered by the client: containers.run pulls the missing image with it.
    res = client.login(username=user, password=password, registry=addr)
    check(res["Status"] == "Login Succeeded", f"login {res}")
    client.images.remove(f"{repo}:1")
    client.images.remove("busybox:latest")
    out = client.containers.run(f"{repo}:1", ["echo", "pulled by run"], remove=True)
    check(out == b"pulled by run\n", f"containers.run of a missing image {out!r}")


if __name__ == "__main__":
    main()
