#!/usr/bin/env bash
# Scheduler throughput (issue 13, "Speed"): 1,000 simulated Node objects (no agents) and 10,000
# pending pods (100m cpu each) in the real API server on a SQLite store in a temporary directory,
# scheduled by skiff-scheduler through the in-process kube client `skiff server` gives it. Prints
# pods bound per second and per-pod latency percentiles; the run checks through the API that every
# pod ended up bound.
#
#   bench/scheduler.sh                      # 1,000 nodes, 10,000 pods, release profile
#   NODES=5000 PODS=10000 bench/scheduler.sh
#   RUNS=3 bench/scheduler.sh               # several runs back to back
#
# Target (issue 13): >= 5,000 pods/s. kube-scheduler's CI floor is ~680-1,100 pods/s at 5,000 nodes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export NODES=${NODES:-1000} PODS=${PODS:-10000}
RUNS=${RUNS:-1}
cargo bench -p skiff-scheduler --bench throughput --no-run
for i in $(seq 1 "$RUNS"); do
  echo "--- run $i: $NODES nodes, $PODS pods"
  cargo bench -q -p skiff-scheduler --bench throughput 2>/dev/null
done
