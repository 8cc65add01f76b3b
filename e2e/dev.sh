#!/usr/bin/env bash
# `make dev`: builds what is missing, starts the local control plane, installs
# the CRDs, runs the controller in the background, applies the examples and
# prints the catalog. `dev.sh --down` stops the controller and the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"
# The shop: its Environments, then what runs in staging and in production.
read -r -a EXAMPLES <<< "${PAVED_EXAMPLES:-examples/00-environments.yaml examples/staging examples/production}"
LISTEN=${PAVED_DEV_LISTEN:-127.0.0.1:18081}
pidfile=$CLUSTER_DIR/pids/paved-dev.pid

stop_controller() {
  local pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then log "stopping the controller (pid $pid)"; kill "$pid"; fi
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

if [ "${1:-}" = "--down" ]; then
  stop_controller
  stop_test_gateway
  "$here/down.sh"
  exit 0
fi

use_cluster
cd "$root"
log "building the controller"
cargo build --bin paved --quiet
cargo build -p paved-e2e --bin paved-test-gateway --quiet
log "installing the CRDs"
install_crds crds/
# The examples expose through Gateway API: its CRDs, a stand-in controller that
# sets route status (no data plane) and the shared Gateway they attach to.
log "installing the Gateway API CRDs ($GATEWAY_API_VERSION) and starting the test gateway"
install_gateway_api_crds
start_test_gateway

stop_controller # a rebuilt binary replaces the running one
log "starting the controller; logs in $CLUSTER_DIR/logs/paved-dev.log, metrics on http://$LISTEN/metrics"
# Example prices, so `make dev` shows cost estimates (README: "Cost").
PAVED_COST_CPU_HOUR=${PAVED_COST_CPU_HOUR:-0.04} PAVED_COST_GIB_HOUR=${PAVED_COST_GIB_HOUR:-0.005} \
  setsid "$TARGET_DIR"/debug/paved run --listen "$LISTEN" > "$CLUSTER_DIR/logs/paved-dev.log" 2>&1 < /dev/null &
echo $! > "$pidfile"

# Namespaced objects can only be applied once their Environment's namespace
# exists, as with any GitOps sync: retry until everything applies.
log "applying ${EXAMPLES[*]}"
apply_args=()
for path in "${EXAMPLES[@]}"; do apply_args+=(-f "$path"); done
for attempt in $(seq 1 60); do
  if out=$("$KUBECTL" apply --server-side -R "${apply_args[@]}" 2>&1); then break; fi
  [ "$attempt" -lt 60 ] || { echo "$out" >&2; exit 1; }
  sleep 1
done
echo "$out" >&2
log "waiting for every object to be Ready"
for kind in environments.paved.dev applications.paved.dev services.paved.dev; do
  "$KUBECTL" wait --for condition=Ready --timeout 120s --all-namespaces --all "$kind" >/dev/null
done
# Environments count their Services in status, written at most every 2 s while
# things progress: give the counts a moment to show every Service ready.
for attempt in $(seq 1 20); do
  counts=$("$KUBECTL" get environments.paved.dev -o jsonpath='{range .items[*]}{.status.services.ready}/{.status.services.total} {end}')
  stale=$(tr ' ' '\n' <<<"$counts" | awk -F/ 'NF == 2 && ($1 != $2 || $2 == 0)' | wc -l)
  [ "$stale" -eq 0 ] && break
  sleep 0.5
done
"$KUBECTL" get paved -A
cat >&2 <<MSG

Paved runs on the local control plane. Try:
  export KUBECONFIG=$KUBECONFIG
  kubectl get paved -A
  kubectl describe services.paved.dev -n staging
  kubectl top pods -A       # simulated usage: a kwok ResourceUsage per pod sets it (README)
The catalog page (what runs where): http://$LISTEN/catalog
Controller logs: $CLUSTER_DIR/logs/paved-dev.log
Stop it with: make dev-down
MSG
