#!/usr/bin/env bash
# Pods benchmark (issue 12, "Speed and footprint"): one `skiff server` with its local node on a temp
# data dir; 100 pods bound to the node created at once (image present) through the Python kubernetes
# client; create -> Running and -> Ready latency p50/p99, the time until all are Running, the time to
# delete them all, and the RSS of the server process idle (node Ready, no pods) and with the pods
# running (the per-container shims are separate processes; their RSS is printed apart), and the CPU
# used to start and to delete them (server, shims and containers: their cpuacct cgroups).
#
# First, in the same run, the floor (bench/pods-floor.sh): the same N containers started at once
# with a bare OCI runtime (crun), each with a netns, an overlay and a cgroup of its own; skiff's
# figures are printed as ratios to it. FLOOR=0 skips it, FLOOR_RUNTIME=runc measures runc.
#
#   sudo bench/pods.sh             # N=100
#   N=20 SKIFF_BIN=/path/to/skiff sudo bench/pods.sh
#
# Needs: root, busybox-static, kubectl, pyenv's python3 with the kubernetes client. The server, its
# skiff-prefixed host objects and their cleanup come from bench/lib/cluster.sh.
N=${N:-100}
bench=pods
. "$(dirname "$0")/lib/cluster.sh"

if [ "${FLOOR:-1}" != 0 ]; then
  FLOOR_OUT="$work/floor.env" N=$N "$here/bench/pods-floor.sh"
  echo
fi

start_server --bind 127.0.0.1 --node-ip 127.0.0.1 --kubelet-address 127.0.0.1 --cluster-cidr 10.250.0.0/16
wait_ready "$node"
# The server (and the shims it starts from now on) in a cpuacct cgroup of its own; the pods'
# cgroups are under --cgroup-parent "$cgroup". Both are removed by cleanup (skiff-bench-pods-PID*).
server_acct="/sys/fs/cgroup/cpuacct/$cgroup-server"
mkdir -p "$server_acct"
echo "$server_pid" >"$server_acct/cgroup.procs"
# cpu_ns [server|pods]: CPU time (ns) used by the server and its shims, by the pods' containers,
# or (no argument) by both.
cpu_ns() {
  local t=0 f files=()
  [ "${1:-server}" = server ] && files+=("$server_acct/cpuacct.usage")
  [ "${1:-pods}" = pods ] && files+=("/sys/fs/cgroup/cpuacct/$cgroup/cpuacct.usage")
  for f in "${files[@]}"; do
    [ -f "$f" ] && t=$(( t + $(cat "$f") ))
  done
  echo "$t"
}
load_image "$work/run/skiff.sock"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sleep 2 # let the idle server settle before reading its memory
idle=$(rss "$server_pid")

echo "skiff pods bench: N=$N, $(nproc) CPUs, $("$skiff" --version 2>/dev/null || echo skiff), load: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu0=$(cpu_ns)
pods0=$(cpu_ns pods)
coproc BENCH { python3 "$here/bench/pods.py" "$KUBECONFIG" "$node" bench/busybox:1 "$N" --hold; }
out=""
while read -r line <&"${BENCH[0]}"; do
  [ "$line" = holding ] && break
  echo "$line"
  out+="$line"$'\n'
done
cpu1=$(cpu_ns)
pods1=$(cpu_ns pods)
loaded=$(rss "$server_pid")
shims=0
for p in $(grep -l "$work/run" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
  if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q ' shim '; then
    shims=$(( shims + $(rss "$p" 2>/dev/null || echo 0) ))
  fi
done
echo >&"${BENCH[1]}"
rest=$(cat <&"${BENCH[0]}")
echo "$rest"
out+="$rest"
# The shims delete their containers from the runtime after the pods are gone (at low priority):
# that is part of deleting them too.
shims_of_run() { grep -l "$work/run" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | while read -r p; do
  { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q ' shim ' && echo "$p"; done; }
for _ in $(seq 1 300); do
  [ -z "$(shims_of_run)" ] && break
  sleep 0.1
done
cpu2=$(cpu_ns)
echo "server RSS idle (local node Ready, no pods): $(( idle / 1024 )) MiB"
echo "server RSS with $N pods running: $(( loaded / 1024 )) MiB (shims, separate processes: $(( shims / 1024 )) MiB in all)"
per_pod() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }'; }
cpu_start=$(per_pod "$cpu0" "$cpu1")
cpu_delete=$(per_pod "$cpu1" "$cpu2")
echo "CPU per pod (server, shims, containers): $cpu_start ms to start" \
  "(containers: $(per_pod "$pods0" "$pods1") ms), $cpu_delete ms to delete"
if [ -f "$work/floor.env" ]; then
  . "$work/floor.env"
  p50=$(sed -n 's/^create->Running p50 \([0-9]*\) ms, p99 \([0-9]*\) ms$/\1/p' <<<"$out")
  p99=$(sed -n 's/^create->Running p50 \([0-9]*\) ms, p99 \([0-9]*\) ms$/\2/p' <<<"$out")
  all=$(sed -n 's/^all Running \([0-9.]*\) s .*/\1/p' <<<"$out" | awk '{ printf "%.0f", $1 * 1000 }')
  del=$(sed -n 's/^delete all: \([0-9.]*\) s .*/\1/p' <<<"$out" | awk '{ printf "%.0f", $1 * 1000 }')
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b <= 0) print "?"; else printf "%.2fx", a / b }'; }
  echo "skiff / floor ($runtime): create->Running p50 $(ratio "$p50" "$p50_ms") ($p50 / $p50_ms ms)," \
    "p99 $(ratio "$p99" "$p99_ms") ($p99 / $p99_ms ms), all Running $(ratio "$all" "$all_ms") ($all / $all_ms ms)"
  echo "skiff / floor ($runtime): delete all $(ratio "$del" "$delete_ms") ($del / $delete_ms ms)," \
    "CPU to start $(ratio "$cpu_start" "$cpu_start_ms") ($cpu_start / $cpu_start_ms ms), to delete $(ratio "$cpu_delete" "$cpu_remove_ms") ($cpu_delete / $cpu_remove_ms ms)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
