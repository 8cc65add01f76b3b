#!/usr/bin/env bash
# `make bench`: the scale benchmark of e2e/benches/scale.rs against the local
# control plane, with a release build of the controller. Prints figures; it is
# not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

use_cluster
controller_pid=""
cleanup() {
  if [ -n "$controller_pid" ]; then kill "$controller_pid" 2>/dev/null || true; wait "$controller_pid" 2>/dev/null || true; fi
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT

cd "$root"
cargo build --release --bin paved --quiet
# The catalog page's render time for 1,000 Services (pure: no cluster needed).
cargo bench --bench page --quiet
cargo bench -p paved-e2e --bench scale --no-run --quiet
install_crds crds/
listen=127.0.0.1:${PAVED_BENCH_METRICS_PORT:-18090}
RUST_LOG=${RUST_LOG:-warn} "$TARGET_DIR"/release/paved run --listen "$listen" > "$CLUSTER_DIR/logs/paved-bench.log" 2>&1 &
controller_pid=$!
wait_controller_ready "$listen" "$controller_pid" ||
  { log "the controller did not become ready; see $CLUSTER_DIR/logs/paved-bench.log"; exit 1; }
pids="controller=$controller_pid"
for f in "$CLUSTER_DIR"/pids/*.pid; do
  name=$(basename "$f" .pid)
  case $name in paved-*) continue ;; esac
  pids="$pids,$name=$(cat "$f")"
done
PAVED_BENCH_PIDS=$pids PAVED_BENCH_CONTROLLER_PID=$controller_pid PAVED_BIN="$TARGET_DIR"/release/paved \
  cargo bench -p paved-e2e --bench scale --quiet
echo "controller: reconciles and writes by kind (its /metrics)"
curl -fsS --max-time 2 "http://$listen/metrics" | grep -E '^paved_(reconciles_total|writes_total|reconcile_errors_total|reconcile_duration_seconds_sum|reconcile_duration_seconds_count)\{' | sed 's/^/  /' || true
