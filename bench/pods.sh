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
# Needs: root, busybox-static, kubectl, pyenv's python3 with the kubernetes client. Everything it
# creates lives under one temp dir and skiff-prefixed names (bridge, nftables table, cgroup); the
# server is stopped by PID and what it leaves is removed.
set -euo pipefail
N=${N:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/skiff-bench-pods.XXXXXX)
prefix="skiffb$(printf '%02x' $(( $$ % 256 )))"
table="skiff-bench-pods-$$"
cgroup="skiff-bench-pods-$$"
node="bench-node"
server_pid=""
export PATH=/root/.pyenv/shims:$PATH

cleanup() {
  set +e
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  # Shims and containers of this run (their command lines name the temp dir).
  for p in $(grep -l "$work" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$p" != "$$" ] && kill -KILL "$p" 2>/dev/null
  done
  for d in /sys/fs/cgroup/*/"$cgroup"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} \; 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$prefix"); do
    ip link del "$l" 2>/dev/null
  done
  nft delete table inet "$table" 2>/dev/null
  nft delete table inet "$table-engine" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --manifest-path "$here/Cargo.toml" --bin skiff >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$skiff" server --data-dir "$work/data" --bind 127.0.0.1 --port "$port" --run-dir "$work/run" \
  --node-name "$node" --node-ip 127.0.0.1 --cgroup-parent "$cgroup" --pod-bridge "${prefix}0" \
  --pod-nftables-table "$table" --pod-interface-prefix "$prefix" --cluster-cidr 10.250.0.0/16 \
  --kubelet-address 127.0.0.1 --kubelet-port $((40000 + RANDOM % 20000)) \
  --engine-bridge none --engine-network-prefix "skiffe$(printf '%02x' $(( $$ % 256 )))" --engine-nftables-table "$table-engine" \
  >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
disown "$server_pid"
export KUBECONFIG="$work/data/kubeconfig.yaml"
for _ in $(seq 1 600); do
  [ "$(kubectl get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
  sleep 0.1
done

# The image: busybox-static as a one-layer image, imported into the node's engine.
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
DOCKER_HOST="unix://$work/run/skiff.sock" docker import "$work/rootfs.tar" bench/busybox:1 >/dev/null

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
