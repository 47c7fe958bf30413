#!/usr/bin/env bash
# The floor for bench/pods.sh: what this machine allows for N containers started at once, without
# skiff. Each container gets what a pod's container gets at the least: a network namespace of its
# own (`ip netns add`), the same busybox-static rootfs as a lower dir on an overlay mount of its
# own, a cgroup of its own (under one parent), started with a bare OCI runtime (`crun run -d`, the
# "bare crun" peer of bench/engine.sh; FLOOR_RUNTIME=runc for runc). All N are launched at once
# (one background job each); then all are removed at once (runtime delete -f, unmount, netns del).
#
# Prints per container the time from its job's start to its runtime's `run -d` returning (the
# container is running), p50/p99, the time until all N were running after the first launch, the
# time to remove them all, and the CPU used by everything (jobs, ip, mount, the runtime and the
# containers: the cpuacct usage of one parent cgroup) per container, for creating and removing.
# With FLOOR_OUT=FILE it also writes those figures as KEY=VALUE lines (bench/pods.sh reads them).
#
#   sudo N=100 bench/pods-floor.sh
#
# It runs in a private mount namespace of its own (unshare -m), so its overlay and netns mounts
# never reach the host's mount table. There /sys/fs/cgroup/unified is unmounted: crun refuses the
# host's hybrid layout while cgroup2 holds hugetlb (docs/adr/0004), and without that mount it sees
# plain v1 — the host's cgroups are not changed. Everything it creates is named skiff-bench-floor-*
# and removed on exit, also on failure (the cgroups, the one thing outside the namespace, too).
set -euo pipefail
. "$(dirname "$0")/lib/cgroups.sh"
N=${N:-100}
runtime=${FLOOR_RUNTIME:-crun}
if [ -z "${SKIFF_FLOOR_INNER:-}" ]; then
  exec unshare -m --propagation private env SKIFF_FLOOR_INNER=1 "$0" "$@"
fi
command -v "$runtime" >/dev/null || { echo "$runtime missing" >&2; exit 1; }
umount /sys/fs/cgroup/unified 2>/dev/null || true
# /run/netns private to this namespace (ip netns add shares it otherwise).
mkdir -p /run/netns
mount -t tmpfs skiff-bench-floor /run/netns

tag="skiff-bench-floor-$$"
work=$(mktemp -d "/tmp/$tag.XXXXXX")
state="$work/state"
cg_parent="$tag"
acct="/sys/fs/cgroup/cpuacct/$cg_parent"

cleanup() {
  set +e
  for i in $(seq 1 "$N"); do
    "$runtime" --root "$state" delete -f "$tag-$i" >/dev/null 2>&1
  done
  grep " $work" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for i in $(seq 1 "$N"); do ip netns del "$tag-$i" 2>/dev/null; done
  # The driver leaves its cgroup before it is removed.
  echo $$ >/sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null
  remove_cgroups "$cg_parent"
  umount /run/netns 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rootfs of bench/pods.sh's image (bench/lib/cluster.sh: busybox-static, sh, sleep), and one
# bundle per container: its config.json names its overlay, netns and cgroup.
lower="$work/rootfs"
mkdir -p "$lower/bin" "$lower/tmp" "$lower/etc" "$lower/proc" "$lower/dev" "$lower/sys"
cp /bin/busybox "$lower/bin/"
for a in sh sleep; do ln -s busybox "$lower/bin/$a"; done
mkdir -p "$work/template"
(cd "$work/template" && "$runtime" spec)
python3 - "$work" "$tag" "$N" <<'PY'
import json, os, sys
work, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = json.load(open(os.path.join(work, "template", "config.json")))
base["process"]["terminal"] = False
base["process"]["args"] = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
for i in range(1, n + 1):
    c = json.loads(json.dumps(base))
    d = os.path.join(work, f"c{i}")
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(d, sub))
    c["root"] = {"path": os.path.join(d, "merged"), "readonly": False}
    c["hostname"] = f"{tag}-{i}"
    c["linux"]["cgroupsPath"] = f"/{tag}/c{i}"
    for ns in c["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/run/netns/{tag}-{i}"
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
PY

# The driver (this shell and every job it starts) is counted in the same parent's cpuacct.
mkdir -p "$acct/driver"
echo $$ >"$acct/driver/cgroup.procs"
usage() { cat "$acct/cpuacct.usage"; }

now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
one_up() {
  local i=$1 d="$work/c$1" t0
  t0=$(now_ms)
  ip netns add "$tag-$i"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/merged"
  "$runtime" --root "$state" run -d -b "$d" "$tag-$i" >/dev/null
  echo "$i $t0 $(now_ms)" >>"$work/up.$i"
}
one_down() {
  local d="$work/c$1"
  "$runtime" --root "$state" delete -f "$tag-$1" >/dev/null
  umount "$d/merged"
  ip netns del "$tag-$1"
}

cpu0=$(usage)
start=$(now_ms)
for i in $(seq 1 "$N"); do one_up "$i" & done
wait
up_ms=$(( $(now_ms) - start ))
cpu1=$(usage)
running=$(cat "$work"/up.* | wc -l)
# Each container is running: its init is in its cgroup.
for i in $(seq 1 "$N"); do
  grep -q . "/sys/fs/cgroup/pids/$cg_parent/c$i/cgroup.procs" || { echo "container $i is not running" >&2; exit 1; }
done
start_down=$(now_ms)
for i in $(seq 1 "$N"); do one_down "$i" & done
wait
down_ms=$(( $(now_ms) - start_down ))
cpu2=$(usage)

lat=$(cat "$work"/up.* | awk '{ print $3 - $2 }' | sort -n)
pct() { awk -v p="$1" '{ v[NR] = $1 } END { i = int(p / 100 * (NR - 1) + 0.5) + 1; print v[i] }' <<<"$lat"; }
p50=$(pct 50)
p99=$(pct 99)
all=$(cat "$work"/up.* | awk -v start="$start" '$3 - start > m { m = $3 - start } END { print m }')
cpu_up=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }')
cpu_down=$(awk -v a="$cpu1" -v b="$cpu2" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }')
echo "floor ($runtime run -d, own netns + overlay + cgroup each): N=$N, running: $running/$N"
echo "floor start->running p50 $p50 ms, p99 $p99 ms; all running $all ms after the first launch (jobs done in $up_ms ms)"
echo "floor remove all: $down_ms ms; CPU per container: $cpu_up ms to start, $cpu_down ms to remove"
if [ -n "${FLOOR_OUT:-}" ]; then
  printf 'runtime=%s\np50_ms=%s\np99_ms=%s\nall_ms=%s\ndelete_ms=%s\ncpu_start_ms=%s\ncpu_remove_ms=%s\n' \
    "$runtime" "$p50" "$p99" "$all" "$down_ms" "$cpu_up" "$cpu_down" >"$FLOOR_OUT"
fi
