#!/usr/bin/env bash
# Engine benchmark: end-to-end `run --rm IMG /bin/true` for skiff (embedded and runc backends, through both
# the skiff CLI and the docker CLI), bare `runc run` / `crun run` on the same bundle, and Docker's own daemon
# (Debian docker.io) with the same image — all in one run, on one machine. Each daemon is measured with its
# default bridge network and with `--network none`, and with a published port (`-p 80`); `docker --version`
# gives the docker CLI's own start, and the docker CLI against an API that answers at once
# (bench/instant-docker-api.py) its own cost of the whole run flow. Then TCP throughput host → container through a published port (skiff:
# nftables DNAT; dockerd: docker-proxy), 1 GiB per transfer, with each path's CPU time per GiB. Prints medians
# and ratios, plus the idle RSS of the skiff daemon (anonymous and file-backed parts; its binary, like dockerd's,
# is evicted from the page cache before the start) and the RSS of one container's shim.
#
#   sudo bench/engine.sh            # N=30 runs per variant
#   N=100 sudo bench/engine.sh
#   THROUGHPUT_ONLY=1 MIB=2048 sudo bench/engine.sh   # only the throughput part, 2 GiB per transfer
#
# Needs: root, runc, crun, busybox-static, python3, taskset, docker.io (dockerd), the docker CLI. Everything it creates
# lives under a temp dir, the `skiff-bench` and `skiff-bench-docker` cgroup parents, skiff's `skiffbn…` links
# and `skiff-bench` nftables table, and the `skiff-bench-docker` network namespace dockerd runs in (its
# bridge, iptables rules and docker-proxy stay there, off the host), and is removed on exit.
set -euo pipefail
N=${N:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/skiff-bench.XXXXXX)
# Runtime state (skiff's --state, crun's and runc's --root, dockerd's --exec-root) on a tmpfs, where a standard
# install keeps it (/run). On disk, it cost the engine that writes more state files per container the most: on
# an ext4 without a journal (this VM's root) every file created scans the inodes deleted in the last minutes
# (ext4's recently_deleted), so each container's create got slower with every container removed before it.
# RUN_ON_DISK=1 keeps it under the temp dir on disk as before. Images and containers stay on disk.
run="$work/run"
pids=()
hugetlb_mount=""
dnetns=skiff-bench-docker

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  # dockerd puts its relative --cgroup-parent under its own cgroup, which is not the root in every hierarchy
  # (the memory controller's is not, here): look for both parents anywhere.
  find /sys/fs/cgroup -type d \( -name skiff-bench -o -name skiff-bench-docker \) -prune 2>/dev/null |
    while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  # The bench daemon's network: its links (skiffbn…) and its nftables table.
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^skiffbn' | xargs -r -n1 ip link del 2>/dev/null
  nft delete table inet skiff-bench 2>/dev/null
  # dockerd's network namespace: its bridge, veths, iptables rules and proxies go with it.
  ip netns del "$dnetns" 2>/dev/null
  hugetlb_unbind
  [ -n "${KEEP_LOGS:-}" ] && cp "$work"/*.log "$KEEP_LOGS"/ 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
# SKIFF_BIN=path/to/skiff skips the build (e.g. to measure a given binary).
if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --manifest-path "$here/Cargo.toml" >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"

# crun refuses hybrid cgroups while cgroup2 holds a controller; binding hugetlb to a v1 hierarchy empties it
# (docs/adr/0004). Only while crun is measured: runc refuses to run while that extra hierarchy is mounted.
hugetlb_bind() {
  if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    hugetlb_mount=/run/skiff-bench-hugetlb
    mkdir -p "$hugetlb_mount" && mount -t cgroup -o hugetlb cgroup "$hugetlb_mount"
  fi
}
hugetlb_unbind() {
  if [ -n "$hugetlb_mount" ]; then
    find "$hugetlb_mount" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    umount "$hugetlb_mount" && rmdir "$hugetlb_mount"
    hugetlb_mount=""
  fi
}

mkdir -p "$run"
[ -n "${RUN_ON_DISK:-}" ] || mount -t tmpfs -o mode=0755 skiff-bench-run "$run"

# One rootfs for everything: busybox-static.
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true echo sleep; do ln -s busybox "$rootfs/bin/$a"; done
# The throughput sink runs the host's python3 from a read-only bind of /usr.
mkdir -p "$rootfs/usr" && ln -s usr/lib "$rootfs/lib" && ln -s usr/lib64 "$rootfs/lib64"
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = "/skiff-bench/bare"
json.dump(c, open(p, "w"))
PY

. "$here/bench/lib/memory.sh"
# Both daemons start from binaries read from disk, not from whatever the page cache holds (idle RSS).
evict "$skiff" "$(command -v dockerd)" "$(command -v containerd)" "$(command -v containerd-shim-runc-v2 || true)"
"$skiff" daemon --root "$work/skiff-root" --state "$run/skiff-state" --socket "$work/skiff.sock" \
  --cgroup-parent skiff-bench --network-prefix skiffbn --nftables-table skiff-bench --bip 10.96.0.1/24 \
  --default-address-pool base=10.96.0.0/16,size=24 >"$work/skiff.log" 2>&1 & pids+=($!); skiff_pid=$!
# dockerd with its default bridge (and iptables, docker-proxy) in a network namespace of its own: its
# "host" for the throughput test is that namespace.
ip netns add "$dnetns"
ip netns exec "$dnetns" ip link set lo up
# (nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup hierarchies from dockerd.)
nsenter --net="/run/netns/$dnetns" dockerd -H "unix://$work/docker.sock" --data-root "$work/docker-root" \
  --exec-root "$run/docker-exec" --pidfile "$run/docker.pid" --ip6tables=false \
  --cgroup-parent skiff-bench-docker >"$work/dockerd.log" 2>&1 & pids+=($!); dockerd_pid=$!
for s in skiff docker; do
  for _ in $(seq 200); do docker -H "unix://$work/$s.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  docker -H "unix://$work/$s.sock" import "$work/rootfs.tar" skiff-bench/busybox:latest >/dev/null
done
python3 "$here/bench/instant-docker-api.py" "$work/instant.sock" & pids+=($!)
for _ in $(seq 100); do [ -S "$work/instant.sock" ] && break; sleep 0.1; done
export DOCKER_HOST="unix://$work/skiff.sock"
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$skiff_pid/status")
idle_rss_parts=$(rss "$skiff_pid")

# time_ms CMD... → prints elapsed milliseconds (fractional) of one run; fails if the command fails.
time_ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null || return 1; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A med
bench() {
  local name=$1; shift
  "$@" >/dev/null 2>&1 || true # warm-up
  local i samples=()
  local t
  for i in $(seq "$N"); do
    t=$(time_ms "$@") || { echo "benchmark command failed: $*" >&2; exit 1; }
    samples+=("$t")
  done
  med[$name]=$(printf '%s\n' "${samples[@]}" | median)
  printf '%-28s median %8.2f ms  (N=%d)\n' "$name" "${med[$name]}" "$N"
}

# interleave NAME CMD_ARRAY [NAME CMD_ARRAY]...: N runs of each command, taking turns, so the machine's
# drift hits every variant alike (the differences between them are what the targets are about).
run_ref() { local -n _cmd=$1; time_ms "${_cmd[@]}"; }
interleave() {
  local -a names=() refs=()
  while [ $# -gt 0 ]; do names+=("$1"); refs+=("$2"); shift 2; done
  local -a samples=()
  local i j t
  for j in "${!refs[@]}"; do run_ref "${refs[$j]}" >/dev/null 2>&1 || true; done # warm-up
  for i in $(seq "$N"); do
    for j in "${!refs[@]}"; do
      t=$(run_ref "${refs[$j]}") || { echo "benchmark command failed: ${names[$j]}" >&2; exit 1; }
      samples[j]+="$t "
    done
  done
  for j in "${!names[@]}"; do
    # shellcheck disable=SC2086 # one sample per word
    med[${names[$j]}]=$(printf '%s\n' ${samples[$j]} | median)
    printf '%-28s median %8.2f ms  (N=%d, interleaved)\n' "${names[$j]}" "${med[${names[$j]}]}" "$N"
  done
}

img=skiff-bench/busybox:latest
dockerd_cli=(docker -H "unix://$work/docker.sock")
# THROUGHPUT_ONLY=1 skips the run-time variants and the shim (a quicker throughput measure).
shim_rss="?"
if [ -z "${THROUGHPUT_ONLY:-}" ]; then
  i=0
  bare() { i=$((i+1)); "$1" --root "$run/$1-root" run -b "$work/bundle" "skiff-bench-$1-$i"; }
  hugetlb_bind
  bench "crun run (bare)" bare crun
  hugetlb_unbind
  bench "runc run (bare)" bare runc
  bench "skiff CLI, runc" "$skiff" run --rm --runtime runc "$img" /bin/true
  version=(docker --version)
  instant=(docker -H "unix://$work/instant.sock" run --rm "$img" /bin/true)
  s_bridge=("$skiff" run --rm "$img" /bin/true)
  s_none=("$skiff" run --rm --network none "$img" /bin/true)
  s_port=("$skiff" run --rm -p 80 "$img" /bin/true)
  ds_bridge=(docker run --rm "$img" /bin/true)
  ds_none=(docker run --rm --network none "$img" /bin/true)
  ds_port=(docker run --rm -p 80 "$img" /bin/true)
  interleave "docker --version" version "docker CLI -> instant API" instant \
    "skiff CLI, embedded" s_bridge "skiff CLI, embedded, none" s_none "skiff CLI, embedded, -p" s_port \
    "docker CLI -> skiff" ds_bridge "docker CLI -> skiff, none" ds_none "docker CLI -> skiff, -p" ds_port
  dd_bridge=("${dockerd_cli[@]}" run --rm "$img" /bin/true)
  dd_none=("${dockerd_cli[@]}" run --rm --network none "$img" /bin/true)
  dd_port=("${dockerd_cli[@]}" run --rm -p 80 "$img" /bin/true)
  interleave "docker CLI -> dockerd" dd_bridge "docker CLI -> dockerd, none" dd_none "docker CLI -> dockerd, -p" dd_port

  cid=$("$skiff" run -d "$img" /bin/sleep 600)
  shim_pid=$(cat "$run"/skiff-state/c/"${cid:0:16}"/shim.pid 2>/dev/null || true)
  # Steady state: a shim drops the code pages its start touched once it has idled 100 ms.
  sleep 1
  shim_rss=$([ -n "$shim_pid" ] && awk '/VmRSS/ {print $2}' "/proc/$shim_pid/status" || echo "?")
  "$skiff" rm -f "$cid" >/dev/null
fi

# Throughput host → container through a published port: a python3 sink in the container (reads until the
# sender closes, then closes its side), a python3 sender on the daemon's host (1 GiB to 127.0.0.1:PORT in 1 MiB
# writes, then waits for the sink's close so every byte is counted). MIB=… changes the size; the median of 5
# transfers per path, skiff's and dockerd's taking turns (drift from other work hits both alike).
# The sender runs on CPU 0 and the sink on CPU 0 ("one CPU") or CPU 1 ("two CPUs"), the same for both daemons:
# left to the scheduler, the sink's placement flipped skiff's figure by 1.5-2x between runs (in-kernel DNAT does
# the receive work on the sender's CPU; a sink on the other CPU copies from a cold cache), while docker-proxy,
# a third process, is left where the scheduler puts it: in "one CPU" it has the other CPU to itself. "all on
# CPU 0" pins docker-proxy with the sender and the sink, so both paths get one CPU.
# docker-proxy does not copy in user space: Go's io.Copy between two TCP connections is splice(2).
# Each path also gets its CPU time per GiB: the sender's own user+system time (os.times), the sink's and
# docker-proxy's from /proc/PID/stat (all threads), over the 5 transfers. Softirq work is charged to the task
# it interrupted, nearly always one of these (no IRQ time accounting in this kernel). It depends less on the
# machine's load than MiB/s, which also measures the CPU share the path got.
# TCP_CC=cubic (say) gives the transfers' data-sending sockets that congestion control instead of the host's
# default (net.ipv4.tcp_congestion_control): the sender's socket (setsockopt) and docker-proxy's connection to
# the container (a `congctl` on docker0's route in dockerd's namespace); the sinks only send ACKs. On a host
# whose default is bbr, TCP paces every packet with a timer, which cost skiff's path three times its CPU per
# GiB on the 2026-12-07 VM (docs/benchmarks.md).
MIB=${MIB:-1024}
TCP_CC=${TCP_CC:-}
sink='import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    while c.recv_into(buf):
        pass
    c.close()'
cat >"$work/send.py" <<'PY'
import os, socket, sys, time
port, mib = int(sys.argv[1]), int(sys.argv[2])
os.sched_setaffinity(0, {0})
deadline = time.monotonic() + 20
while True:  # the sink may not listen yet
    try:
        s = socket.socket()
        if os.environ.get("TCP_CC"):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, os.environ["TCP_CC"].encode())
        s.connect(("127.0.0.1", port))
        s.sendall(b"\0")
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
buf = b"\0" * (1 << 20)  # from user memory, as applications send (sendfile of a sparse file
t = time.monotonic()      # measured the DNAT path far below this: page-cache artefacts)
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
while s.recv(1 << 16):
    pass
elapsed = time.monotonic() - t
c = os.times()
print("%.1f %.3f" % (mib / elapsed, c.user + c.system))  # MiB/s, the sender's CPU seconds
PY
placements=("one CPU:0")
[ "$(nproc)" -ge 2 ] && placements+=("two CPUs:1" "all on CPU 0:0:pin")
clk_tck=$(getconf CLK_TCK)
# ticks PID…: user+system clock ticks of these processes so far (all their threads).
ticks() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat"))); done
  echo "$t"
}
declare -A mbps cpu samples cost
# transfer NAME PORT SINK_PID "OTHER_PIDS" SENDER_PREFIX…: one transfer; appends its MiB/s to samples[NAME]
# and adds its CPU seconds (sender, sink, the others) to cost[NAME].
transfer() {
  local name=$1 port=$2 sink_pid=$3 others=$4; shift 4
  local s0 s1 o0=0 o1=0 out
  s0=$(ticks "$sink_pid")
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$others" ] || o0=$(ticks $others)
  out=$("$@" python3 "$work/send.py" "$port" "$MIB")
  s1=$(ticks "$sink_pid")
  # shellcheck disable=SC2086
  [ -z "$others" ] || o1=$(ticks $others)
  samples[$name]+="${out% *} "
  cost[$name]=$(awk -v c="${cost[$name]:-0 0 0}" -v snd="${out#* }" -v s=$((s1 - s0)) -v o=$((o1 - o0)) -v hz="$clk_tck" \
    'BEGIN { split(c, a, " "); printf "%.3f %.3f %.3f", a[1] + snd, a[2] + s / hz, a[3] + o / hz }')
}
# report NAME PLACEMENT [OTHERS_LABEL]: the median MiB/s and the CPU seconds per GiB of its transfers.
report() {
  local name=$1 p=$2 gib
  gib=$(awk -v m="$MIB" 'BEGIN { printf "%.4f", 5 * m / 1024 }')
  # shellcheck disable=SC2086 # one sample per word
  mbps[$name, $p]=$(printf '%s\n' ${samples[$name]} | median)
  cpu[$name, $p]=$(awk -v c="${cost[$name]}" -v g="$gib" 'BEGIN { split(c, a, " "); printf "%.2f", (a[1] + a[2] + a[3]) / g }')
  printf '%-28s median %8.1f MiB/s  (%d x %d MiB, %s)  CPU %s s/GiB: %s\n' "$name" "${mbps[$name, $p]}" 5 "$MIB" "$p" \
    "${cpu[$name, $p]}" "$(awk -v c="${cost[$name]}" -v g="$gib" -v x="${3:-}" \
      'BEGIN { split(c, a, " "); printf "sender %.2f, sink %.2f", a[1] / g, a[2] / g; if (x != "") printf ", %s %.2f", x, a[3] / g }')"
}
usr_ro=(-v /usr:/usr:ro)
sid=$("$skiff" run -d -p 5001 "${usr_ro[@]}" "$img" /usr/bin/python3 -c "$sink")
sport=$("$skiff" port "$sid" 5001/tcp | head -1 | sed 's/.*://')
spid=$(docker inspect -f '{{.State.Pid}}' "$sid")
did=$("${dockerd_cli[@]}" run -d -p 5001 "${usr_ro[@]}" "$img" /usr/bin/python3 -c "$sink")
dport=$("${dockerd_cli[@]}" port "$did" 5001/tcp | head -1 | sed 's/.*://')
dpid=$("${dockerd_cli[@]}" inspect -f '{{.State.Pid}}' "$did")
# dockerd's proxies for that port (one per address family), children of dockerd.
proxies=$(ps --ppid "$dockerd_pid" -o pid=,args= | awk -v p="$dport" '/docker-proxy/ && $0 ~ ("-host-port " p " ") { print $1 }' | xargs)
[ -n "$proxies" ] || { echo "no docker-proxy found for port $dport" >&2; exit 1; }
S="skiff, nftables DNAT" D="dockerd, docker-proxy"
in_dnetns=(nsenter --net="/run/netns/$dnetns")
if [ -n "$TCP_CC" ]; then
  export TCP_CC
  route=$("${in_dnetns[@]}" ip -4 route show dev docker0 scope link | head -1)
  # shellcheck disable=SC2086 # the route's words
  "${in_dnetns[@]}" ip route change $route dev docker0 congctl "$TCP_CC"
fi
cc="$(sysctl -n net.ipv4.tcp_congestion_control) (the host's default)"
echo "throughput, TCP congestion control of the data senders: ${TCP_CC:-$cc}"
python3 "$work/send.py" "$sport" 64 >/dev/null # warm-up
"${in_dnetns[@]}" python3 "$work/send.py" "$dport" 64 >/dev/null
all_cpus="0-$(($(nproc) - 1))"
for p in "${placements[@]}"; do
  IFS=: read -r label sink_cpu pin <<<"$p"
  taskset -apc "$sink_cpu" "$spid" >/dev/null
  taskset -apc "$sink_cpu" "$dpid" >/dev/null
  proxy_cpus=$all_cpus
  [ -z "$pin" ] || proxy_cpus=0
  for q in $proxies; do taskset -apc "$proxy_cpus" "$q" >/dev/null; done
  samples=() cost=()
  for k in 1 2 3 4 5; do # taking turns, each path first in every other round
    if [ $((k % 2)) = 1 ]; then
      transfer "$S" "$sport" "$spid" "" env
      transfer "$D" "$dport" "$dpid" "$proxies" "${in_dnetns[@]}"
    else
      transfer "$D" "$dport" "$dpid" "$proxies" "${in_dnetns[@]}"
      transfer "$S" "$sport" "$spid" "" env
    fi
  done
  report "$S" "$label"
  report "$D" "$label" docker-proxy
done
"$skiff" rm -f "$sid" >/dev/null
"${dockerd_cli[@]}" rm -f "$did" >/dev/null

echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f ms", a - b }'; }
if [ -z "${THROUGHPUT_ONLY:-}" ]; then
  echo "skiff (embedded) / bare crun : $(ratio "${med[skiff CLI, embedded]}" "${med[crun run (bare)]}")x   (default bridge; target <= 2x)"
  echo "skiff (runc)     / bare runc : $(ratio "${med[skiff CLI, runc]}" "${med[runc run (bare)]}")x"
  echo "bridge cost, skiff CLI       : $(diff_ms "${med[skiff CLI, embedded]}" "${med[skiff CLI, embedded, none]}")   (bridge - none; target <= 5 ms)"
  echo "bridge cost, docker -> skiff : $(diff_ms "${med[docker CLI -> skiff]}" "${med[docker CLI -> skiff, none]}")"
  echo "bridge cost, dockerd         : $(diff_ms "${med[docker CLI -> dockerd]}" "${med[docker CLI -> dockerd, none]}")"
  echo "published port cost, skiff   : $(diff_ms "${med[skiff CLI, embedded, -p]}" "${med[skiff CLI, embedded]}")   (-p 80 - bridge)"
  echo "published port cost, dockerd : $(diff_ms "${med[docker CLI -> dockerd, -p]}" "${med[docker CLI -> dockerd]}")"
  echo "dockerd / skiff (embedded)   : $(ratio "${med[docker CLI -> dockerd]}" "${med[skiff CLI, embedded]}")x faster   (both bridge; target >= 12x)"
  echo "dockerd / skiff via docker CLI: $(ratio "${med[docker CLI -> dockerd]}" "${med[docker CLI -> skiff]}")x faster   (both bridge)"
  budget=$(awk -v a="${med[crun run (bare)]}" -v b="${med[docker --version]}" 'BEGIN { printf "%.2f", a + b + 3 }')
  echo "docker CLI -> skiff, none    : ${med[docker CLI -> skiff, none]} ms vs bare crun + docker --version + 3 ms = $budget ms"
  echo "docker CLI -> skiff (bridge) : ${med[docker CLI -> skiff]} ms vs the same $budget ms"
  echo "docker CLI's own run flow    : ${med[docker CLI -> instant API]} ms against an API that answers at once ($(diff_ms "${med[docker CLI -> instant API]}" "${med[docker --version]}") over docker --version)"
  echo "skiff's part via docker CLI  : $(diff_ms "${med[docker CLI -> skiff, none]}" "${med[docker CLI -> instant API]}") (docker CLI -> skiff, none - the CLI's own run flow; bare crun: ${med[crun run (bare)]} ms)"
fi
for p in "${placements[@]}"; do
  p=${p%%:*}
  echo "throughput skiff / dockerd   : $(ratio "${mbps[$S, $p]}" "${mbps[$D, $p]}")x   (published port from 127.0.0.1, $p; target >= 2x; CPU per GiB, dockerd / skiff: $(ratio "${cpu[$D, $p]}" "${cpu[$S, $p]}")x)"
done
echo "skiff daemon idle RSS        : $((idle_rss / 1024)) MiB ($idle_rss_parts; target <= 20 MB; binary evicted from the page cache before the start)"
echo "skiff shim RSS (1 container) : ${shim_rss} KiB (target <= 3 MB)"
