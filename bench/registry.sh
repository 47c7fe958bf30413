#!/usr/bin/env bash
# Registry benchmark (issue 11, "Speed" items 4 and 5): push and pull of a ~100 MB, 5-layer image
# (random, incompressible content, built here) to and from a local registry (Debian's docker-registry
# on 127.0.0.1), by skiff and by Docker's own dockerd (Debian docker.io), both driven by the same docker
# CLI, in one run on one machine. Prints medians and ratios.
#
#   sudo bench/registry.sh          # N=3 pushes and pulls per engine
#   N=5 MB_PER_LAYER=40 sudo bench/registry.sh
#
# Every push goes to a fresh, empty registry (no blob is already there or mountable), every pull into
# an engine that holds no image (so every layer is downloaded, verified and unpacked).
#
# Needs: root, docker-registry, docker.io (dockerd), the docker CLI, python3. Everything it creates
# lives under one temp dir; the daemons and registries it started are stopped by PID; the iptables
# FORWARD policy is restored if dockerd changed it (it runs with --iptables=false --bridge none, so it
# should not).
set -euo pipefail
N=${N:-3}
LAYERS=5
MB_PER_LAYER=${MB_PER_LAYER:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/skiff-bench-registry.XXXXXX)
pids=()
registry_pid=""
forward_policy=$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}' || true)

cleanup() {
  set +e
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}" $registry_pid; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ -n "$forward_policy" ] && [ "$(iptables -S FORWARD | awk '$1 == "-P" {print $3}')" != "$forward_policy" ]; then
    iptables -P FORWARD "$forward_policy"
  fi
  for d in /sys/fs/cgroup/*/skiff-bench-registry /sys/fs/cgroup/*/skiff-bench-registry-docker; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "docker-registry missing: apt-get install -y docker-registry" >&2; exit 1; }
# SKIFF_BIN=path/to/skiff skips the build (e.g. to measure a given binary).
if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release --manifest-path "$here/Cargo.toml" >&2
fi
skiff="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/skiff}"
docker=${DOCKER:-docker}

# The image: LAYERS layers of one random file each, gzip-compressed, as a docker-archive both engines
# load. Random content does not compress: the layers are as large on the wire as on disk.
python3 - "$work/image.tar" "$LAYERS" "$MB_PER_LAYER" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile, time
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

"$skiff" daemon --root "$work/skiff-root" --state "$work/skiff-state" --socket "$work/skiff.sock" \
  --cgroup-parent skiff-bench-registry >"$work/skiff.log" 2>&1 & pids+=($!)
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker-root" --exec-root "$work/docker-exec" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false \
  --cgroup-parent skiff-bench-registry-docker >"$work/dockerd.log" 2>&1 & pids+=($!)
for s in skiff docker; do
  for _ in $(seq 200); do $docker -H "unix://$work/$s.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
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

# time_ms CMD... → elapsed milliseconds of one run (its output in $work/out); fails if it fails.
time_ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >"$work/out" || return 1; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", (b - a) / 1e6 }'
}
# Every layer really went over the wire: LAYERS lines ending in STATUS in the last output.
check_layers() {
  local n
  n=$(grep -c ": $1\$" "$work/out" || true)
  [ "$n" = "$LAYERS" ] || { echo "$2: $n layers '$1', want $LAYERS:" >&2; cat "$work/out" >&2; exit 1; }
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A push_ms pull_ms current
current[skiff]=skiff-bench/big:1
current[docker]=skiff-bench/big:1
for i in $(seq "$N"); do
  for e in skiff docker; do
    d=($docker -H "unix://$work/$e.sock")
    start_registry
    target=$registry/bench/big:1
    "${d[@]}" tag "${current[$e]}" "$target"
    tp=$(time_ms "${d[@]}" push "$target") || { echo "$e push failed" >&2; exit 1; }
    check_layers Pushed "$e push"
    push_ms[$e]+="$tp "
    # An empty engine: every layer is downloaded, checked and unpacked.
    "${d[@]}" rmi -f $("${d[@]}" images -q --no-trunc | sort -u) >/dev/null
    [ -z "$("${d[@]}" images -q)" ] || { echo "$e still holds images" >&2; exit 1; }
    t=$(time_ms "${d[@]}" pull "$target") || { echo "$e pull failed" >&2; exit 1; }
    check_layers "Pull complete" "$e pull"
    pull_ms[$e]+="$t "
    current[$e]=$target
    printf '%-6s run %d: push %6d ms, pull %6d ms\n' "$e" "$i" "$tp" "$t"
  done
done
stop_registry

med() { printf '%s\n' $1 | median; }
sp=$(med "${push_ms[skiff]}"); dp=$(med "${push_ms[docker]}")
sl=$(med "${pull_ms[skiff]}"); dl=$(med "${pull_ms[docker]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "image: $LAYERS layers x $MB_PER_LAYER MiB random (archive ${image_mb} MB), N=$N, medians"
printf 'push  skiff %6d ms   dockerd %6d ms   dockerd/skiff %sx   (target >= 1)\n' "$sp" "$dp" "$(ratio "$dp" "$sp")"
printf 'pull  skiff %6d ms   dockerd %6d ms   dockerd/skiff %sx   (target >= 1)\n' "$sl" "$dl" "$(ratio "$dl" "$sl")"
