#!/usr/bin/env bash
# Fail-over benchmark (issue 13, "Speed"): `skiff server` with its local node plus one `skiff agent`
# in a network namespace of its own (joined with the node token over a test bridge), a short
# configured node-monitor grace period and unreachable toleration; a Deployment of N replicas
# spread over both nodes; then SIGKILL of the agent. Prints the seconds from the kill until the
# agent's Node is not Ready and until every replica runs on the surviving node.
#
#   sudo bench/failover.sh                   # N=10, grace 10 s, toleration 5 s, release build
#   GRACE=20s TOLERATION=10 SKIFF_BIN=/path/to/skiff sudo bench/failover.sh
#
# Needs: root, busybox-static, kubectl, docker CLI, nsenter, pyenv's python3 with the kubernetes
# client. Everything lives under one temp dir and skiff-prefixed names (bridge, veth, netns, tables,
# cgroups); processes are stopped by PID.
N=${N:-10}
GRACE=${GRACE:-10s}
TOLERATION=${TOLERATION:-5}
bench=failover
# shellcheck source=bench/lib/cluster.sh
. "$(dirname "$0")/lib/cluster.sh"

subnet="172.30.$(( $$ % 250 + 1 ))"
bridge="skifff${hex}0"
ns="skifff${hex}n"
ip link add "$bridge" type bridge
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
ip netns add "$ns"
netns+=("$ns")
ip link add "skifff${hex}h" type veth peer name eth0 netns "$ns"
ip link set "skifff${hex}h" master "$bridge" up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip addr add "$subnet.2/24" dev eth0
ip netns exec "$ns" ip link set eth0 up
ip netns exec "$ns" ip route add default via "$subnet.1"

start_server --bind "$subnet.1" --node-ip "$subnet.1" --kubelet-address "$subnet.1" \
  --cluster-cidr 10.251.0.0/16 --node-monitor-grace-period "$GRACE" \
  --default-unreachable-toleration-seconds "$TOLERATION"
for _ in $(seq 1 300); do [ -s "$work/data/node-token" ] && break; sleep 0.1; done
# nsenter --net only (not `ip netns exec`): the agent's mounts stay visible for the cleanup.
nsenter --net="/run/netns/$ns" -- "$skiff" agent --server "https://$subnet.1:$port" \
  --token-file "$work/data/node-token" --data-dir "$work/agent-data" --run-dir "$work/agent-run" \
  --node-name bench-agent --node-ip "$subnet.2" --cgroup-parent "$cgroup-agent" \
  --pod-bridge "skiffb${hex}a" --pod-nftables-table "$table-agent" --pod-interface-prefix "skiffg${hex}" \
  --engine-bridge none --engine-network-prefix "skiffh${hex}" --engine-nftables-table "$table-agent-engine" \
  >/dev/null 2>"$work/agent.log" &
agent_pid=$!
bench_pids+=("$agent_pid")
disown "$agent_pid"
wait_ready "$node"
wait_ready bench-agent
load_image "$work/run/skiff.sock"
load_image "$work/agent-run/skiff.sock"
echo "skiff fail-over bench: N=$N, grace $GRACE, toleration ${TOLERATION}s, $(nproc) CPUs, $("$skiff" --version 2>/dev/null || echo skiff) ($skiff)"
python3 "$here/bench/deployment.py" failover "$KUBECONFIG" bench/busybox:1 "$N" bench-agent "$agent_pid"
