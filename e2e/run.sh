#!/usr/bin/env bash
# Runs the e2e tests against the local control plane: starts the cluster (or
# reuses a running one), installs the CRDs, runs the controller built from this
# checkout, runs `cargo test --test e2e`, then stops the controller, and the
# cluster too when this run started it. Extra arguments go to the test binary
# (a name filter, --nocapture, ...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

use_cluster

controller_pid=""
cleanup() {
  local rc=$?
  if [ -n "$controller_pid" ]; then
    touch "$controller_pid_file.stop"
    kill "$(cat "$controller_pid_file" 2>/dev/null)" 2>/dev/null || true
    wait "$controller_pid" 2>/dev/null || true
    rm -f "$controller_pid_file" "$controller_pid_file.stop"
  fi
  if [ $rc -ne 0 ] && [ -f "$CLUSTER_DIR/logs/paved-e2e.log" ]; then
    log "the controller's last log lines ($CLUSTER_DIR/logs/paved-e2e.log):"
    tail -n 30 "$CLUSTER_DIR/logs/paved-e2e.log" >&2
  fi
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
  exit $rc
}
trap cleanup EXIT

cd "$root"
cargo build --bin paved --quiet
cargo test -p paved-e2e --test e2e --no-run --quiet
cargo build -p paved-e2e --bin paved-test-gateway --quiet
# The Go tools the shipping tests run (Argo CD's Lua engine, the kstatus
# library): built once per version of e2e/tools/, cached outside the repository.
PAVED_E2E_TOOLS=$("$root/e2e/tools/build.sh")
export PAVED_E2E_TOOLS
log "installing the CRDs"
install_crds crds/
log "installing the Gateway API CRDs ($GATEWAY_API_VERSION) and starting the test gateway"
install_gateway_api_crds
start_test_gateway

# The controller under test must be the only one acting on the cluster: stop a
# `make dev` controller, and take a Lease of our own so that no stale holder
# keeps ours on standby.
dev_pid_file=$CLUSTER_DIR/pids/paved-dev.pid
if [ -f "$dev_pid_file" ] && kill -0 "$(cat "$dev_pid_file")" 2>/dev/null; then
  log "stopping the 'make dev' controller (pid $(cat "$dev_pid_file")) for the tests; 'make dev' starts it again"
  kill "$(cat "$dev_pid_file")"; rm -f "$dev_pid_file"
fi
export PAVED_LEASE_NAME=${PAVED_LEASE_NAME:-paved-e2e-$$}
metrics_addr=127.0.0.1:${PAVED_E2E_METRICS_PORT:-18080}
log "starting the controller (metrics on $metrics_addr)"
# Under a restart loop: a test may SIGTERM the PID in $PAVED_E2E_CONTROLLER_PID_FILE
# to prove that nothing depends on the controller's memory (expiry after a restart).
controller_pid_file=$CLUSTER_DIR/pids/paved-e2e.pid
rm -f "$controller_pid_file.stop"
: > "$CLUSTER_DIR/logs/paved-e2e.log"
(
  while :; do
    # Example prices, so the tests see cost estimates (paved_insights.rs checks them).
    # Usage read every 5 s and the usage insights after 20 s, so paved_usage.rs sees them move;
    # kwok gives every pod 1m CPU and 1Mi by default: only a saving of 3 cores or 3Gi (paved_usage.rs's
    # Service) is over-provisioned, and only 0m CPU is idle, so the other tests' scorecards keep still.
    PAVED_COST_CPU_HOUR=${PAVED_COST_CPU_HOUR:-0.04} PAVED_COST_GIB_HOUR=${PAVED_COST_GIB_HOUR:-0.005} \
    PAVED_USAGE_INTERVAL=${PAVED_USAGE_INTERVAL:-5} \
    PAVED_INSIGHTS_OVER_PROVISIONED_FOR=${PAVED_INSIGHTS_OVER_PROVISIONED_FOR:-20s} \
    PAVED_INSIGHTS_IDLE_FOR=${PAVED_INSIGHTS_IDLE_FOR:-20s} \
    PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MILLICORES=${PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MILLICORES:-3000} \
    PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MIB=${PAVED_INSIGHTS_OVER_PROVISIONED_MIN_MIB:-3072} \
    PAVED_INSIGHTS_IDLE_MILLICORES=${PAVED_INSIGHTS_IDLE_MILLICORES:-0} \
    PAVED_E2E_METRICS=http://$metrics_addr RUST_LOG=${RUST_LOG:-info,paved=debug} \
      "$TARGET_DIR"/debug/paved run --listen "$metrics_addr" >> "$CLUSTER_DIR/logs/paved-e2e.log" 2>&1 &
    echo $! > "$controller_pid_file"
    wait $! || true
    [ -e "$controller_pid_file.stop" ] && break
  done
) &
controller_pid=$!
wait_controller_ready "$metrics_addr" "$controller_pid" || { log "the controller did not become ready"; exit 1; }
export PAVED_E2E_CONTROLLER_PID_FILE=$controller_pid_file
# What the tests leave for a person to look at (the catalog page's screenshots).
export PAVED_E2E_OUTPUT=${PAVED_E2E_OUTPUT:-$TARGET_DIR/e2e-output}
log "test output (screenshots) in $PAVED_E2E_OUTPUT"
export PAVED_E2E_KUBECTL=$KUBECTL PAVED_E2E_METRICS=http://$metrics_addr PAVED_E2E_CONTROLLER_LOG=$CLUSTER_DIR/logs/paved-e2e.log PAVED_BIN="$TARGET_DIR"/debug/paved
cargo test -p paved-e2e --test e2e -- "$@"
