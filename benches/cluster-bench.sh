#!/usr/bin/env bash
# The seed incident's figure on a real Kubernetes v1.20.2 (tests/cluster.rs:
# the real kubelet in a kubeadm-style systemd-nspawn node, the node
# lifecycle controller, the scheduler): power back -> both
# node.kubernetes.io/unreachable taints gone with taint-guard's boot unit,
# next to the baseline of a person typing `systemctl enable --now kubelet`
# (measured from the command: the page that brought the person is not in
# it). Medians over REPLAYS outages each (default 5), each outage long
# enough for both taints. Needs what tests/cluster.rs needs (root, nspawn,
# the v1.20.2 binaries from tests/kube/build.sh);
# ~2 min per replay pair.
set -euo pipefail
cd "$(dirname "$0")/.."
REPLAYS=${REPLAYS:-5}
log=${TMPDIR:-/tmp}/taint-guard-cluster-bench.log
TG_REQUIRE_SYSTEMD=1 TG_REQUIRE_APISERVER=1 TG_REQUIRE_CLUSTER=1 TG_BENCH_REPLAYS=$REPLAYS \
  cargo test --features failpoints --test cluster -- power_loss_ >"$log" 2>&1 || {
  tail -n 60 "$log" >&2; echo "failed; the whole log: $log" >&2; exit 1; }
grep '^FIGURE' "$log" | sed 's/^FIGURE /  /'
