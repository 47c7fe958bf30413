#!/usr/bin/env bash
# Image benchmark (issue 11, "Speed"): skiff vs Docker's own daemon (Debian docker.io, classic builder,
# DOCKER_BUILDKIT=0), both driven by the same docker CLI, in one run on one machine:
#   1. cold build of a three-stage Dockerfile (--no-cache: every step runs),
#   2. rebuild with everything cached,
#   3. rebuild after changing one source file (its COPY and what follows rebuild),
#   4. pull and 5. push of a ~100 MB, 5-layer image (random, incompressible content) from/to a local
#      registry (Debian's docker-registry on 127.0.0.1).
# Prints every sample's median and the ratios against the targets: cached rebuild <= 100 ms and >= 5x
# faster than dockerd; every other figure at least as fast as dockerd.
#
#   sudo bench/images.sh                        # N=10 build samples (cold: N/2), R=3 pushes/pulls
#   N=20 R=5 MB_PER_LAYER=20 SKIFF_BIN=path/to/skiff sudo bench/images.sh
#
# Every push goes to a fresh, empty registry (no blob already there or mountable); every pull goes into
# an engine that holds no image (every layer is downloaded, verified and unpacked), and the output is
# checked to show every layer crossing the wire.
#
# Needs: root, busybox-static, docker.io (dockerd), docker-registry, the docker CLI, python3, curl.
# dockerd runs with --bridge none and --iptables=false (its builds use --network none), so it creates no
# bridge and no iptables chains; the FORWARD policy is restored anyway. The daemons and registries are
# stopped by PID; everything lives under one temp dir and the `skiff-bench-images` /
# `skiff-bench-images-docker` cgroup parents, removed on exit.
set -euo pipefail
N=${N:-10}
R=${R:-3}
LAYERS=5
MB_PER_LAYER=${MB_PER_LAYER:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/skiff-bench-images.XXXXXX)
pids=()
registry_pid=""
forward_policy=$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}' || true)

cleanup() {
  set +e
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}" $registry_pid; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for d in /sys/fs/cgroup/*/skiff-bench-images /sys/fs/cgroup/*/skiff-bench-images-docker; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [ -n "$forward_policy" ] && [ "$(iptables -S FORWARD | awk '$1 == "-P" {print $3}')" != "$forward_policy" ]; then
    iptables -P FORWARD "$forward_policy"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "docker-registry missing: apt-get install -y docker-registry" >&2; exit 1; }
# SKIFF_BIN=path/to/skiff skips the build (e.g. to measure a given binary).
if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --bin skiff --manifest-path "$here/Cargo.toml" >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"
docker=${DOCKER:-docker}
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"

# --- inputs ---------------------------------------------------------------------------------------
# The base image of the builds: busybox-static.
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true echo cat ls mkdir; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .

# The build context: 200 source files of ~5 KiB, a dependency list, a three-stage Dockerfile.
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

# The registry image: LAYERS layers of one random file each, gzip-compressed, as a docker-archive both
# engines load. Random content does not compress: the layers are as large on the wire as on disk.
python3 - "$work/image.tar" "$LAYERS" "$MB_PER_LAYER" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, layers, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
diff_ids, names, blobs = [], [], []
for i in range(layers):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = os.urandom(mb << 20)
        info = tarfile.TarInfo(f"data/layer{i}.bin")
        info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
        t.addfile(info, io.BytesIO(data))
    raw = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    blob = gzip.compress(raw, compresslevel=1, mtime=0)
    names.append(f"{hashlib.sha256(blob).hexdigest()}/layer.tar")
    blobs.append(blob)
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2020-09-13T12:26:40Z",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2020-09-13T12:26:40Z", "created_by": f"layer {i}"} for i in range(layers)],
}).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": ["skiff-bench/big:1"], "Layers": names}]).encode()
with tarfile.open(out, "w") as t:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 1_600_000_000
        t.addfile(info, io.BytesIO(data))
    for name, blob in zip(names, blobs):
        add(name, blob)
    add(config_name, config)
    add("manifest.json", manifest)
PY
image_mb=$(du -m "$work/image.tar" | cut -f1)

# --- the two daemons ------------------------------------------------------------------------------
"$skiff" daemon --root "$work/skiff-root" --state "$work/skiff-state" --socket "$work/skiff.sock" \
  --cgroup-parent skiff-bench-images >"$work/skiff.log" 2>&1 & pids+=($!)
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker-root" --exec-root "$work/docker-exec" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false \
  --cgroup-parent skiff-bench-images-docker >"$work/dockerd.log" 2>&1 & pids+=($!)
for s in skiff docker; do
  for _ in $(seq 300); do $docker -H "unix://$work/$s.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  $docker -H "unix://$work/$s.sock" import "$work/rootfs.tar" skiff-bench/busybox:latest >/dev/null
done

# time_ms CMD... → elapsed milliseconds of one run (its output in $work/out); fails if it fails.
time_ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >"$work/out" 2>&1 || return 1; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
declare -A med

# --- 1-3: builds ----------------------------------------------------------------------------------
on_skiff() { DOCKER_HOST="unix://$work/skiff.sock" $docker build "$@"; }
on_dockerd() { DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=0 $docker build --network none "$@"; }
skiff_cli() { DOCKER_HOST="unix://$work/skiff.sock" "$skiff" build "$@"; }
edit=0
touch_one() { edit=$((edit + 1)); echo "edit $edit" >> "$ctx/src/file7.txt"; }
nothing() { :; }

# sample NAME RUNS BEFORE CMD... : BEFORE runs untimed before each sample (e.g. an edit).
sample() {
  local name=$1 runs=$2 before=$3; shift 3
  local i t samples=()
  for i in $(seq "$runs"); do
    $before
    t=$(time_ms "$@") || { echo "benchmark command failed: $*" >&2; cat "$work/out" >&2; tail -20 "$work/skiff.log" >&2; exit 1; }
    samples+=("$t")
  done
  med[$name]=$(printf '%s\n' "${samples[@]}" | median)
  printf '%-40s median %9.1f ms  (N=%d)\n' "$name" "${med[$name]}" "$runs"
}
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
a=$(DOCKER_HOST="unix://$work/skiff.sock" $docker run --rm bench:1 cat /app/app.bin | md5sum)
b=$(DOCKER_HOST="unix://$work/docker.sock" $docker run --rm --network none bench:1 cat /app/app.bin | md5sum)
[ "$a" = "$b" ] || { echo "skiff and dockerd built different content" >&2; exit 1; }
# The phases of skiff's last build (receive the context, plan, run the steps), from its log.
grep "image built" "$work/skiff.log" | tail -1 | sed 's/^.*image built/skiff phases of the last build:/' || true

# --- 4-5: pull and push ---------------------------------------------------------------------------
# The builds' images go first (no container uses them), so that each pull starts from an empty engine.
for s in skiff docker; do
  $docker -H "unix://$work/$s.sock" image prune -a -f >/dev/null
  $docker -H "unix://$work/$s.sock" load -q -i "$work/image.tar" >/dev/null
done

# A fresh, empty registry on a free port: sets $registry (host:port) and $registry_pid.
reg_n=0
start_registry() {
  stop_registry
  reg_n=$((reg_n + 1))
  local port dir=$work/registry-$reg_n
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir"
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir" "$port" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 & registry_pid=$!
  registry=127.0.0.1:$port
  for _ in $(seq 200); do curl -sf "http://$registry/v2/" >/dev/null && return; sleep 0.05; done
  echo "registry did not start: $(cat "$dir/log")" >&2; exit 1
}
stop_registry() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid"; while kill -0 "$registry_pid" 2>/dev/null; do sleep 0.05; done
    registry_pid=""; rm -rf "$work/registry-$reg_n"
  fi
}
# Every layer really went over the wire: LAYERS lines ending in STATUS in the last output.
check_layers() {
  local n
  n=$(grep -c ": $1\$" "$work/out" || true)
  [ "$n" = "$LAYERS" ] || { echo "$2: $n layers '$1', want $LAYERS:" >&2; cat "$work/out" >&2; exit 1; }
}

declare -A push_ms pull_ms current
current[skiff]=skiff-bench/big:1
current[docker]=skiff-bench/big:1
for i in $(seq "$R"); do
  for e in skiff docker; do
    d=($docker -H "unix://$work/$e.sock")
    start_registry
    target=$registry/bench/big:1
    "${d[@]}" tag "${current[$e]}" "$target"
    tp=$(time_ms "${d[@]}" push "$target") || { echo "$e push failed" >&2; cat "$work/out" >&2; exit 1; }
    check_layers Pushed "$e push"
    push_ms[$e]+="$tp "
    # An empty engine: every layer is downloaded, checked and unpacked.
    "${d[@]}" rmi -f $("${d[@]}" images -q --no-trunc | sort -u) >/dev/null
    [ -z "$("${d[@]}" images -q)" ] || { echo "$e still holds images" >&2; exit 1; }
    t=$(time_ms "${d[@]}" pull "$target") || { echo "$e pull failed" >&2; cat "$work/out" >&2; exit 1; }
    check_layers "Pull complete" "$e pull"
    pull_ms[$e]+="$t "
    current[$e]=$target
    printf '%-6s run %d: push %8.1f ms, pull %8.1f ms\n' "$e" "$i" "$tp" "$t"
  done
done
stop_registry
med[push, skiff]=$(printf '%s\n' ${push_ms[skiff]} | median)
med[push, dockerd]=$(printf '%s\n' ${push_ms[docker]} | median)
med[pull, skiff]=$(printf '%s\n' ${pull_ms[skiff]} | median)
med[pull, dockerd]=$(printf '%s\n' ${pull_ms[docker]} | median)

# --- summary --------------------------------------------------------------------------------------
echo
echo "medians; builds N=$N (cold $cold_runs), registry R=$R with $LAYERS layers x $MB_PER_LAYER MiB random (archive ${image_mb} MB)"
printf '%-22s %10s %10s %14s  %s\n' figure "skiff ms" "dockerd ms" "dockerd/skiff" target
row() {
  local r; r=$(ratio "$3" "$2")
  local ok; ok=$(awk -v r="$r" -v want="$4" -v s="$2" -v cap="${5:-0}" \
    'BEGIN { print (r >= want && (cap == 0 || s <= cap)) ? "met" : "MISSED" }')
  printf '%-22s %10.1f %10.1f %13sx  %s (%s)\n' "$1" "$2" "$3" "$r" "$ok" "$6"
}
row "1 cold build" "${med[cold build, skiff]}" "${med[cold build, dockerd]}" 1 0 ">= 1x"
row "2 cached rebuild" "${med[cached rebuild, skiff]}" "${med[cached rebuild, dockerd]}" 5 100 ">= 5x and <= 100 ms"
row "3 one file changed" "${med[one file changed, skiff]}" "${med[one file changed, dockerd]}" 1 0 ">= 1x"
row "4 pull ${image_mb} MB" "${med[pull, skiff]}" "${med[pull, dockerd]}" 1 0 ">= 1x"
row "5 push ${image_mb} MB" "${med[push, skiff]}" "${med[push, dockerd]}" 1 0 ">= 1x"
echo "(cached rebuild through the skiff CLI: ${med[cached rebuild, skiff (skiff CLI)]} ms)"
