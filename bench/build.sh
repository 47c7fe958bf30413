#!/usr/bin/env bash
# Build benchmark (issue 11, Speed 1-3): skiff vs Docker's own daemon (Debian docker.io, classic builder,
# DOCKER_BUILDKIT=0) on the same machine, the same context and the same three-stage Dockerfile, in one run:
#   1. cold build (--no-cache: every step runs),
#   2. rebuild with everything cached,
#   3. rebuild after changing one source file (its COPY and what follows rebuild).
# Both are driven by the same docker CLI; skiff is also timed through `skiff build` for (2). Prints medians
# and ratios against the targets: cached rebuild <= 100 ms and >= 5x faster than dockerd; the others at
# least as fast as dockerd.
#
#   sudo bench/build.sh                 # N=10 samples per figure (cold: N/2)
#   N=20 SKIFF_BIN=path/to/skiff sudo bench/build.sh
#
# Needs: root, busybox-static, docker.io (dockerd), the docker CLI. dockerd runs with --bridge none and
# --iptables=false (builds use --network none), so it creates no bridge and no iptables chains; the FORWARD
# policy is restored anyway. Both daemons are stopped by PID; everything lives under a temp dir and the
# `skiff-bench-build` / `skiff-bench-build-docker` cgroup parents, removed on exit.
set -euo pipefail
N=${N:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/skiff-bench-build.XXXXXX)
pids=()
forward_policy=$(iptables -S FORWARD 2>/dev/null | awk '/^-P FORWARD/ {print $3}')

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for d in /sys/fs/cgroup/*/skiff-bench-build /sys/fs/cgroup/*/skiff-bench-build-docker; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [ -n "$forward_policy" ]; then iptables -P FORWARD "$forward_policy" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --bin skiff --manifest-path "$here/Cargo.toml" >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"

# The base image: busybox-static.
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true echo cat ls mkdir; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .

# The context: 200 source files of 4 KiB, a dependency list, a three-stage Dockerfile.
ctx="$work/ctx"
mkdir -p "$ctx/src"
for i in $(seq 200); do head -c 4096 /dev/urandom | base64 > "$ctx/src/file$i.txt"; done
seq 1000 > "$ctx/deps.txt"
cat > "$ctx/Dockerfile" <<'DF'
FROM skiff-bench/busybox AS deps
WORKDIR /deps
COPY deps.txt .
RUN cat deps.txt > resolved && echo done >> resolved

FROM skiff-bench/busybox AS build
ENV OUT=/out
WORKDIR /src
COPY src/ ./
RUN mkdir -p $OUT && cat *.txt > $OUT/app.bin

FROM skiff-bench/busybox
LABEL org.example.bench=build
COPY --from=deps /deps/resolved /app/deps
COPY --from=build /out/app.bin /app/app.bin
CMD ["cat", "/app/deps"]
DF

"$skiff" daemon --root "$work/skiff-root" --state "$work/skiff-state" --socket "$work/skiff.sock" \
  --cgroup-parent skiff-bench-build >"$work/skiff.log" 2>&1 & pids+=($!)
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker-root" --exec-root "$work/docker-exec" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false \
  --cgroup-parent skiff-bench-build-docker >"$work/dockerd.log" 2>&1 & pids+=($!)
for s in skiff docker; do
  for _ in $(seq 300); do docker -H "unix://$work/$s.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  docker -H "unix://$work/$s.sock" import "$work/rootfs.tar" skiff-bench/busybox:latest >/dev/null
done
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"

time_ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1 || return 1; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

on_skiff() { DOCKER_HOST="unix://$work/skiff.sock" docker build "$@"; }
on_dockerd() { DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=0 docker build --network none "$@"; }
skiff_cli() { DOCKER_HOST="unix://$work/skiff.sock" "$skiff" build "$@"; }
edit=0
touch_one() { edit=$((edit + 1)); echo "edit $edit" >> "$ctx/src/file7.txt"; }

declare -A med
# sample NAME RUNS BEFORE CMD... : BEFORE runs untimed before each sample (e.g. an edit).
sample() {
  local name=$1 runs=$2 before=$3; shift 3
  local i t samples=()
  for i in $(seq "$runs"); do
    $before
    t=$(time_ms "$@") || { echo "benchmark command failed: $*" >&2; tail -20 "$work/skiff.log" >&2; exit 1; }
    samples+=("$t")
  done
  med[$name]=$(printf '%s\n' "${samples[@]}" | median)
  printf '%-40s median %9.2f ms  (N=%d)\n' "$name" "${med[$name]}" "$runs"
}
nothing() { :; }
cold_runs=$(( N / 2 > 2 ? N / 2 : 3 ))

for engine in skiff dockerd; do
  "on_$engine" -t bench:warm "$ctx" >/dev/null 2>&1 # warm-up: page cache, base image unpacked
done
sample "cold build, dockerd" "$cold_runs" nothing on_dockerd --no-cache -t bench:1 "$ctx"
sample "cold build, skiff" "$cold_runs" nothing on_skiff --no-cache -t bench:1 "$ctx"
sample "cached rebuild, dockerd" "$N" nothing on_dockerd -t bench:1 "$ctx"
sample "cached rebuild, skiff" "$N" nothing on_skiff -t bench:1 "$ctx"
sample "cached rebuild, skiff (skiff CLI)" "$N" nothing skiff_cli -t bench:1 "$ctx"
sample "one file changed, dockerd" "$N" touch_one on_dockerd -t bench:1 "$ctx"
sample "one file changed, skiff" "$N" touch_one on_skiff -t bench:1 "$ctx"

# Both engines build the same content from the final context.
on_skiff -t bench:1 "$ctx" >/dev/null 2>&1 && on_dockerd -t bench:1 "$ctx" >/dev/null 2>&1
a=$(DOCKER_HOST="unix://$work/skiff.sock" docker run --rm bench:1 cat /app/app.bin | md5sum)
b=$(DOCKER_HOST="unix://$work/docker.sock" docker run --rm --network none bench:1 cat /app/app.bin | md5sum)
[ "$a" = "$b" ] || { echo "skiff and dockerd built different content" >&2; exit 1; }

echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "cold build      dockerd / skiff : $(ratio "${med[cold build, dockerd]}" "${med[cold build, skiff]}")x   (target >= 1x)"
echo "cached rebuild  dockerd / skiff : $(ratio "${med[cached rebuild, dockerd]}" "${med[cached rebuild, skiff]}")x   (target >= 5x; skiff ${med[cached rebuild, skiff]} ms, target <= 100 ms)"
echo "one file changed dockerd / skiff: $(ratio "${med[one file changed, dockerd]}" "${med[one file changed, skiff]}")x   (target >= 1x)"
