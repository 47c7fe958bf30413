#!/usr/bin/env bash
# A/B of two skiff binaries on `run --rm IMG /bin/true`: starts one daemon per binary (own root, state, socket
# and cgroup parent), then alternates blocks of five runs between them so the machine's drift hits both alike.
# Prints each binary's median. Used to measure one change at a time (docs/benchmarks.md).
#
#   sudo bench/engine-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]    # ROUNDS blocks of 5 per binary, default 10
#   NETWORK=none sudo bench/engine-ab.sh …                      # run --rm --network none
#   CLIENT=docker sudo bench/engine-ab.sh …                     # the docker CLI runs, not skiff's
#
# Needs: root, busybox-static. Everything lives under a temp dir and the skiff-ab-a / skiff-ab-b cgroup
# parents, and is removed on exit.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,7p "$0" >&2; exit 2; }
bins=("$1" "$2")
rounds=${3:-10}
work=$(mktemp -d /tmp/skiff-ab.XXXXXX)
# Each daemon's --state on a tmpfs, as /run is on a standard install (see bench/engine.sh; RUN_ON_DISK=1: on disk).
mkdir -p "$work/run"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for d in /sys/fs/cgroup/*/skiff-ab-a /sys/fs/cgroup/*/skiff-ab-b; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  # The daemons' networks (binaries with bridge networking): links skiffa…/skiffb…, tables.
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^skiff(ab|bb)' | xargs -r -n1 ip link del 2>/dev/null
  for x in a b; do nft delete table inet "skiff-ab-$x" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

[ -n "${RUN_ON_DISK:-}" ] || mount -t tmpfs -o mode=0755 skiff-ab-run "$work/run"
. "$(dirname "$0")/lib/memory.sh"
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/true"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

for x in a b; do
  bin=${bins[$([ $x = a ] && echo 0 || echo 1)]}
  netargs=()
  if "$bin" daemon --help | grep -q -- --network-prefix; then # each daemon its own bridge and table
    n=$([ $x = a ] && echo 97 || echo 98)
    netargs=(--network-prefix "skiff${x}b" --nftables-table "skiff-ab-$x" --bip "10.$n.0.1/24"
      --default-address-pool "base=10.$n.0.0/16,size=24")
  fi
  evict "$bin" # both start from disk: the RSS below counts the pages they touch, not the cache's state
  "$bin" daemon --root "$work/$x/root" --state "$work/run/$x-state" --socket "$work/$x.sock" \
    --cgroup-parent "skiff-ab-$x" "${netargs[@]}" >"$work/$x.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do [ -S "$work/$x.sock" ] && break; sleep 0.1; done
  DOCKER_HOST="unix://$work/$x.sock" "$bin" import "$work/rootfs.tar" skiff-ab/busybox >/dev/null
  DOCKER_HOST="unix://$work/$x.sock" "$bin" run --rm skiff-ab/busybox /bin/true # warm-up
done
# Each daemon's RSS after the import and one run (read once both are idle).
sleep 1
rss=()
for p in "${pids[@]}"; do rss+=("$(rss "$p")"); done

block() { # block a|b BINARY: five timed runs, microseconds appended to $work/a.t or b.t
  local i t0 t1
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    if [ "${CLIENT:-skiff}" = docker ]; then
      docker -H "unix://$work/$1.sock" run --rm ${NETWORK:+--network "$NETWORK"} skiff-ab/busybox /bin/true
    else
      DOCKER_HOST="unix://$work/$1.sock" "$2" run --rm ${NETWORK:+--network "$NETWORK"} skiff-ab/busybox /bin/true
    fi
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000)) >>"$work/$1.t"
  done
}
for _ in $(seq "$rounds"); do block a "${bins[0]}"; block b "${bins[1]}"; done

median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) / 1000}'; }
echo "A ${bins[0]}: median $(median "$work/a.t") ms (n=$(wc -l <"$work/a.t")), daemon RSS ${rss[0]}"
echo "B ${bins[1]}: median $(median "$work/b.t") ms (n=$(wc -l <"$work/b.t")), daemon RSS ${rss[1]}"
