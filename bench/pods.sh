#!/usr/bin/env bash
# Pods benchmark (issue 12, "Speed and footprint"): one `skiff server` with its local node on a temp
# data dir; 100 pods bound to the node created at once (image present) through the Python kubernetes
# client; create -> Running and -> Ready latency p50/p99, the time until all are Running, the time to
# delete them all, and the RSS of the server process idle (node Ready, no pods) and with the pods
# running (the per-container shims are separate processes; their RSS is printed apart).
#
#   sudo bench/pods.sh             # N=100
#   N=20 SKIFF_BIN=/path/to/skiff sudo bench/pods.sh
#
# Needs: root, busybox-static, kubectl, pyenv's python3 with the kubernetes client. The server, its
# skiff-prefixed host objects and their cleanup come from bench/lib/cluster.sh.
N=${N:-100}
bench=pods
. "$(dirname "$0")/lib/cluster.sh"

start_server --bind 127.0.0.1 --node-ip 127.0.0.1 --kubelet-address 127.0.0.1 --cluster-cidr 10.250.0.0/16
wait_ready "$node"
load_image "$work/run/skiff.sock"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sleep 2 # let the idle server settle before reading its memory
idle=$(rss "$server_pid")

echo "skiff pods bench: N=$N, $(nproc) CPUs, $("$skiff" --version 2>/dev/null || echo skiff)"
coproc BENCH { python3 "$here/bench/pods.py" "$KUBECONFIG" "$node" bench/busybox:1 "$N" --hold; }
while read -r line <&"${BENCH[0]}"; do
  [ "$line" = holding ] && break
  echo "$line"
done
loaded=$(rss "$server_pid")
shims=0
for p in $(grep -l "$work/run" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
  if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q ' shim '; then
    shims=$(( shims + $(rss "$p" 2>/dev/null || echo 0) ))
  fi
done
echo >&"${BENCH[1]}"
cat <&"${BENCH[0]}"
echo "server RSS idle (local node Ready, no pods): $(( idle / 1024 )) MiB"
echo "server RSS with $N pods running: $(( loaded / 1024 )) MiB (shims, separate processes: $(( shims / 1024 )) MiB in all)"
