#!/usr/bin/env python3
"""Creates N pods bound to NODE at once (one thread per pod, so the creates overlap) and watches
them: prints, per pod, the seconds from sending its create to the first time it was seen Running
and Ready, then p50/p99 and the time until all were Running; then deletes them all at once and
prints the time until none is left. Used by bench/pods.sh.

    python3 pods.py KUBECONFIG NODE IMAGE N
"""
import sys
import threading
import time

from kubernetes import client, config, watch

kubeconfig, node, image, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config.load_kube_config(kubeconfig)
api = client.CoreV1Api()
ns = "default"
names = [f"bench-{i:03d}" for i in range(n)]
sent, running, ready = {}, {}, {}
done = threading.Event()


def watcher(rv):
    w = watch.Watch()
    for ev in w.stream(api.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=120):
        pod = ev["object"]
        name = pod.metadata.name
        now = time.monotonic()
        if pod.status and pod.status.phase == "Running" and name not in running:
            running[name] = now
        conds = (pod.status.conditions or []) if pod.status else []
        if any(c.type == "Ready" and c.status == "True" for c in conds) and name not in ready:
            ready[name] = now
        if len(ready) == n and len(running) == n:
            done.set()
            w.stop()


rv = api.list_namespaced_pod(ns).metadata.resource_version
t = threading.Thread(target=watcher, args=(rv,), daemon=True)
t.start()


def create(name):
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "main",
                "image": image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            }],
        },
    }
    sent[name] = time.monotonic()
    api.create_namespaced_pod(ns, body)


start = time.monotonic()
threads = [threading.Thread(target=create, args=(name,)) for name in names]
for th in threads:
    th.start()
for th in threads:
    th.join()
created = time.monotonic() - start
done.wait(timeout=120)


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


to_running = [running[k] - sent[k] for k in names if k in running]
to_ready = [ready[k] - sent[k] for k in names if k in ready]
print(f"pods: {n}, creates sent in {created:.3f} s")
print(f"running: {len(to_running)}/{n}, ready: {len(to_ready)}/{n}")
print(f"create->Running p50 {pct(to_running, 50) * 1000:.0f} ms, p99 {pct(to_running, 99) * 1000:.0f} ms")
print(f"create->Ready   p50 {pct(to_ready, 50) * 1000:.0f} ms, p99 {pct(to_ready, 99) * 1000:.0f} ms")
if running:
    print(f"all Running {max(running.values()) - start:.3f} s after the first create")
sys.stdout.flush()

if len(sys.argv) > 5 and sys.argv[5] == "--hold":
    # bench/pods.sh measures the server's memory now; it writes a newline when done.
    print("holding", flush=True)
    sys.stdin.readline()

start = time.monotonic()
api.delete_collection_namespaced_pod(ns, label_selector="app=bench")
deadline = start + 180
while time.monotonic() < deadline:
    left = api.list_namespaced_pod(ns, label_selector="app=bench").items
    if not left:
        break
    time.sleep(0.05)
print(f"delete all: {time.monotonic() - start:.3f} s until no pod was left ({len(left)} left)")
