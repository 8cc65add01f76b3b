#!/usr/bin/env bash
# `make bench-scale`: the sweep of e2e/benches/scale_sweep.rs (100, 1,000 and
# 10,000 Services; PAVED_SCALE_SIZES to change) against the local control
# plane, with a release build of the controller that the bench starts and
# restarts itself. Prints figures, writes them as JSON and draws the chart
# (PAVED_SCALE_OUT, default $CARGO_TARGET_DIR/bench-scale: result.json,
# chart.png). Not part of `make test`.
#
# The cluster runs with the controller-manager's and scheduler's client limits
# raised and PAVED_FAKE_NODES (8) kwok nodes, enough for 10,000 pods: a running
# cluster started without those limits is not reused (stop it first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

export PAVED_SCALE_LIMITS=1 PAVED_FAKE_NODES=${PAVED_FAKE_NODES:-8}
if "$here/up.sh" --check >/dev/null 2>&1 && [ ! -f "$CLUSTER_DIR/scale-limits" ]; then
  log "the running cluster ($CLUSTER_DIR) has the default client limits: stop it (e2e/cluster/down.sh) and run again"
  exit 1
fi
use_cluster
cleanup() {
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT

cd "$root"
cargo build --release --bin paved --quiet
cargo bench -p paved-e2e --bench scale_sweep --no-run --quiet
cargo build --release -p paved-bench-chart --quiet
install_crds crds/
pids=""
for f in "$CLUSTER_DIR"/pids/*.pid; do
  name=$(basename "$f" .pid)
  case $name in paved-*|test-gateway) continue ;; esac
  pids="$pids${pids:+,}$name=$(cat "$f")"
done
# A cluster this script started is stopped at the end: the last size's objects
# go with it instead of being deleted one namespace at a time.
leave_last=0
if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then leave_last=1; fi
out=${PAVED_SCALE_OUT:-$TARGET_DIR/bench-scale}
mkdir -p "$out"
PAVED_BENCH_PIDS=$pids PAVED_BIN="$TARGET_DIR"/release/paved PAVED_SCALE_OUT=$out \
  PAVED_SCALE_LEAVE_LAST=${PAVED_SCALE_LEAVE_LAST:-$leave_last} \
  PAVED_SCALE_LISTEN=127.0.0.1:${PAVED_BENCH_METRICS_PORT:-18090} \
  PAVED_SCALE_LOG="$CLUSTER_DIR/logs/paved-bench-scale.log" \
  cargo bench -p paved-e2e --bench scale_sweep --quiet
"$TARGET_DIR"/release/paved-bench-chart "$out/result.json" "$out/chart.png"
echo "the README's chart is docs/bench-scale.png: copy $out/chart.png there to publish a run"
