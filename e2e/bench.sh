#!/usr/bin/env bash
# `make bench`: the scale benchmark of e2e/benches/scale.rs against the local
# control plane, with a release build of the controller. Prints figures; it is
# not part of `make test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

cluster_was_running=false
if "$here/up.sh" --check >/dev/null 2>&1; then cluster_was_running=true; fi
export KUBECONFIG
KUBECONFIG=$("$here/up.sh")
KUBECTL=$(resolve_kubectl)
controller_pid=""
cleanup() {
  if [ -n "$controller_pid" ]; then kill "$controller_pid" 2>/dev/null || true; wait "$controller_pid" 2>/dev/null || true; fi
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT

cd "$root"
cargo build --release --bin paved --quiet
cargo bench -p paved-e2e --bench scale --no-run --quiet
"$KUBECTL" apply --server-side --force-conflicts -f crds/ >&2
"$KUBECTL" wait --for condition=Established --timeout 60s -f crds/ >&2
listen=127.0.0.1:${PAVED_BENCH_METRICS_PORT:-18090}
RUST_LOG=${RUST_LOG:-warn} "$TARGET_DIR"/release/paved run --listen "$listen" > "$CLUSTER_DIR/logs/paved-bench.log" 2>&1 &
controller_pid=$!
for _ in $(seq 1 120); do
  curl -fs --max-time 1 "http://$listen/readyz" >/dev/null 2>&1 && break
  kill -0 "$controller_pid" 2>/dev/null || { log "the controller exited; see $CLUSTER_DIR/logs/paved-bench.log"; exit 1; }
  sleep 0.25
done
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
