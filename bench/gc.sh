#!/usr/bin/env bash
# The garbage collector at the scale goal (issue 13): ReplicaSets owning 3,000 and then 30,000 pods
# (100 each, made by the ReplicaSet controller; no scheduler and no node, so no container starts) in
# the real API server on a SQLite store in a temporary directory, with the whole controller set on
# the in-process kube client `skiff server` uses. Prints per size: the collector's graph build when
# a fresh controller set starts, background and foreground cascading deletion of the owners until
# every pod is gone (pods/s, CPU of the process, peak RSS), and how long a small Deployment scaled
# meanwhile takes to reach its replicas.
#
#   bench/gc.sh                      # 3,000 then 30,000 pods, release profile
#   SIZES=30000 RUNS=2 bench/gc.sh   # one size, two runs back to back
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export SIZES=${SIZES:-3000,30000}
RUNS=${RUNS:-1}
cargo bench -p skiff-controllers --bench gc --no-run
for i in $(seq 1 "$RUNS"); do
  echo "--- run $i: sizes $SIZES"
  cargo bench -q -p skiff-controllers --bench gc 2>"${GC_BENCH_LOG:-/dev/null}"
done
