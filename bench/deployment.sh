#!/usr/bin/env bash
# Deployment benchmark (issue 13, "Speed"): one `skiff server` with its local node on a temp data
# dir; a 100-replica Deployment from `kubectl apply` to all replicas Ready, a rolling update of it
# (`kubectl set image`, default maxSurge/maxUnavailable 25 %) to complete, and its deletion. The
# image is present on the node (busybox-static, two tags). Prints the seconds of each.
#
#   sudo bench/deployment.sh                  # N=100, release build
#   N=20 SKIFF_BIN=/path/to/skiff sudo bench/deployment.sh
#
# Needs: root, busybox-static, kubectl, docker CLI, pyenv's python3 with the kubernetes client.
# Everything lives under one temp dir and skiff-prefixed names; processes are stopped by PID.
N=${N:-100}
bench=deploy
# shellcheck source=bench/lib/cluster.sh
. "$(dirname "$0")/lib/cluster.sh"

start_server --bind 127.0.0.1 --node-ip 127.0.0.1 --kubelet-address 127.0.0.1 --cluster-cidr 10.250.0.0/16
wait_ready "$node"
load_image "$work/run/skiff.sock"
echo "skiff deployment bench: N=$N, $(nproc) CPUs, $("$skiff" --version 2>/dev/null || echo skiff) ($skiff)"
python3 "$here/bench/deployment.py" rollout "$KUBECONFIG" bench/busybox:1 bench/busybox:2 "$N"
