#!/usr/bin/env python3
"""Deployment timings against a running skiff cluster, for bench/deployment.sh and
bench/failover.sh. Figures are wall-clock seconds measured here (time.monotonic), from the
moment the command that starts the change is sent to the first time the watched state holds.

    python3 deployment.py rollout KUBECONFIG IMAGE1 IMAGE2 N
        kubectl apply of an N-replica Deployment -> all N Ready (and available);
        kubectl set image IMAGE2 -> rollout complete (all updated, ready, available, old gone);
        then the Deployment is deleted.
    python3 deployment.py failover KUBECONFIG IMAGE N DEAD_NODE AGENT_PID
        an N-replica Deployment spread over the nodes -> Running; SIGKILL of AGENT_PID (the
        agent of DEAD_NODE) -> its Node not Ready -> every replica Running on another node.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from kubernetes import client, config

mode, kubeconfig = sys.argv[1], sys.argv[2]
config.load_kube_config(kubeconfig)
apps = client.AppsV1Api()
core = client.CoreV1Api()
ns = "default"
name = "bench"


def kubectl(*args):
    subprocess.run(["kubectl", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "KUBECONFIG": kubeconfig})


def manifest(image, n):
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {n}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: {image}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"""


def apply(image, n):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(manifest(image, n))
    try:
        kubectl("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


def until(check, timeout, what):
    """Polls check() every 50 ms; returns the seconds until it held."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except client.exceptions.ApiException as e:
            if e.status != 404:
                raise
        time.sleep(0.05)
    sys.exit(f"timed out after {timeout} s waiting for {what}")


def complete(n, image):
    d = apps.read_namespaced_deployment(name, ns)
    s = d.status
    if s is None:
        return False
    if (s.observed_generation or 0) < d.metadata.generation:
        return False
    if d.spec.template.spec.containers[0].image != image:
        return False
    return (s.updated_replicas or 0) == n and (s.ready_replicas or 0) == n \
        and (s.available_replicas or 0) == n and (s.replicas or 0) == n


def pods():
    return core.list_namespaced_pod(ns, label_selector=f"app={name}").items


def running_elsewhere(n, dead):
    live = [p for p in pods() if p.metadata.deletion_timestamp is None
            and p.spec.node_name != dead and p.status.phase == "Running"]
    return len(live) == n


if mode == "rollout":
    image1, image2, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
    start = time.monotonic()
    apply(image1, n)
    sent = time.monotonic() - start
    t = until(lambda: complete(n, image1), 600, f"{n} ready replicas")
    print(f"apply of a {n}-replica Deployment -> all {n} Ready and available: {t + sent:.2f} s"
          f" (kubectl apply itself {sent:.2f} s)", flush=True)
    start = time.monotonic()
    kubectl("set", "image", f"deployment/{name}", f"main={image2}")
    sent = time.monotonic() - start
    t = until(lambda: complete(n, image2)
              and all(p.spec.containers[0].image == image2 for p in pods()), 600,
              "the rolling update")
    print(f"rolling update (set image, maxSurge/maxUnavailable 25%) -> complete, old pods gone: "
          f"{t + sent:.2f} s", flush=True)
    start = time.monotonic()
    kubectl("delete", "deployment", name, "--wait=false")
    t = until(lambda: not pods(), 600, "the pods to go")
    print(f"delete of the Deployment -> no pod left: {time.monotonic() - start:.2f} s", flush=True)
elif mode == "failover":
    image, n, dead, pid = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    apply(image, n)
    until(lambda: complete(n, image), 300, f"{n} ready replicas")
    on_dead = sum(1 for p in pods() if p.spec.node_name == dead)
    nodes = sorted({p.spec.node_name for p in pods()})
    print(f"{n} replicas Running on {len(nodes)} nodes, {on_dead} on {dead}", flush=True)
    if on_dead == 0:
        sys.exit("nothing ran on the node to kill")

    def not_ready():
        node = core.read_node(dead)
        return any(c.type == "Ready" and c.status != "True" for c in node.status.conditions or [])

    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    t_unready = until(not_ready, 300, f"{dead} to turn NotReady")
    t_all = until(lambda: running_elsewhere(n, dead), 300, "replacements") + t_unready
    print(f"SIGKILL of the agent -> Node {dead} not Ready: {t_unready:.2f} s", flush=True)
    print(f"SIGKILL of the agent -> all {n} replicas Running on the other nodes "
          f"({on_dead} replaced): {t_all:.2f} s", flush=True)
else:
    sys.exit(f"unknown mode {mode}")
