# Shared by bench/pods.sh, bench/deployment.sh and bench/failover.sh (sourced): a `skiff server` with its local
# node on a temp dir and skiff-prefixed host objects, the busybox-static test image, and a
# cleanup that stops what it started by PID and removes what the cluster left.
#
# Before sourcing, the caller sets `bench` (a short name). Afterwards: $work, $skiff, $prefix,
# $table, $cgroup, $node; start_server ARGS…, wait_ready NODE, load_image SOCKET, bench_pids.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$here/bench/lib/cgroups.sh"
work=$(mktemp -d "/tmp/skiff-bench-$bench.XXXXXX")
hex=$(printf '%02x' $(( $$ % 256 )))
prefix="skiffb$hex"
table="skiff-bench-$bench-$$"
cgroup="skiff-bench-$bench-$$"
node="bench-node"
bench_pids=()
netns=()
export PATH=/root/.pyenv/shims:$PATH

cleanup() {
  set +e
  for p in "${bench_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # Shims and containers of this run (their command lines name the temp dir).
  for p in $(grep -l "$work" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$p" != "$$" ] && kill -KILL "$p" 2>/dev/null
  done
  remove_cgroups "$cgroup*"
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for n in "${netns[@]}"; do ip netns del "$n" 2>/dev/null; done
  for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^skiff[befgh]$hex"); do
    ip link del "$l" 2>/dev/null
  done
  for t in $(nft list tables 2>/dev/null | awk '{print $3}' | grep "^$table"); do
    nft delete table inet "$t" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --manifest-path "$here/Cargo.toml" --bin skiff >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
# The local node's kubelet API gets a port of its own: a kubelet (or a skiff server started with
# its defaults) may hold 10250 on every address of this host.
kubelet_port=$(free_port)
export KUBECONFIG="$work/data/kubeconfig.yaml"

# start_server ARGS…: `skiff server` with its local node "$node", extra ARGS, in the background.
# RUN_TMPFS=1 puts its run dir on a tmpfs of its own, as /run is on most hosts (the temp dir's
# file system otherwise: inode allocation there is part of what is measured).
start_server() {
  if [ -n "${RUN_TMPFS:-}" ]; then
    mkdir -p "$work/run"
    mount -t tmpfs -o mode=0755 skiff-bench-run "$work/run"
  fi
  "$skiff" server --data-dir "$work/data" --port "$port" --run-dir "$work/run" \
    --node-name "$node" --cgroup-parent "$cgroup" --pod-bridge "${prefix}0" \
    --pod-nftables-table "$table" --pod-interface-prefix "$prefix" --kubelet-port "$kubelet_port" \
    --engine-bridge none --engine-network-prefix "skiffe$hex" --engine-nftables-table "$table-engine" \
    "$@" >"$work/server.out" 2>"$work/server.log" &
  server_pid=$!
  bench_pids+=("$server_pid")
  disown "$server_pid"
}

# wait_ready NODE: until the Node is Ready (60 s at most).
wait_ready() {
  for _ in $(seq 1 600); do
    [ "$(kubectl get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && return 0
    sleep 0.1
  done
  echo "node $1 never became Ready; server log:" >&2
  tail -20 "$work/server.log" >&2
  return 1
}

# load_image SOCKET: busybox-static as bench/busybox:1 and :2 in the engine at SOCKET.
load_image() {
  if [ ! -f "$work/rootfs.tar" ]; then
    mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/etc"
    cp /bin/busybox "$work/rootfs/bin/"
    for a in sh sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
    tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  fi
  DOCKER_HOST="unix://$1" docker import "$work/rootfs.tar" bench/busybox:1 >/dev/null
  DOCKER_HOST="unix://$1" docker tag bench/busybox:1 bench/busybox:2
}
