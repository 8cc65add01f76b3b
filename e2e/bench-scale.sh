#!/usr/bin/env bash
# `make bench-scale`: the sweep of e2e/benches/scale_sweep.rs (100, 1,000 and
# 10,000 Services; PAVED_SCALE_SIZES to change) against the local control
# plane, with a release build of the controller that the bench starts and
# restarts itself. Prints figures, writes them as JSON and draws the chart
# (PAVED_SCALE_OUT, default $CARGO_TARGET_DIR/bench-scale: result.json,
# chart.png). Not part of `make test`.
#
# The cluster runs with the controller-manager's and scheduler's client limits
# raised and PAVED_FAKE_NODES (8) kwok nodes, enough for 11,000 pods. The bench
# starts every phase on a fresh cluster (this script with --fresh: the cluster
# stopped, its etcd data dropped, started again, the CRDs installed), so it
# needs a cluster of its own: a running one at PAVED_CLUSTER_DIR is refused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

export PAVED_SCALE_LIMITS=1 PAVED_FAKE_NODES=${PAVED_FAKE_NODES:-8}
# name=pid of each of the cluster's processes, for their CPU seconds.
component_pids() {
  local pids="" f name
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    case $name in paved-*|test-gateway) continue ;; esac
    pids="$pids${pids:+,}$name=$(cat "$f")"
  done
  echo "$pids"
}

if [ "${1:-}" = --fresh ]; then
  # Called by the bench before each phase; prints the new processes' PIDs.
  # up.sh starts a stopped cluster afresh (it drops the etcd data).
  fresh_log=$CLUSTER_DIR/logs/bench-fresh.log
  mkdir -p "$CLUSTER_DIR/logs"
  # Its state is dropped anyway: no graceful stop (2 s per component).
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then kill -9 "$pid" 2>/dev/null || true; fi
  done
  # The controller-manager is restarted once the CRDs are served (restart.sh
  # returns once its /healthz answers): its garbage
  # collector reads which kinds exist when it starts and then only every 30 s,
  # and until it knows Paved's kinds it fails on every child owned by a Paved
  # object and retries, then looks each owner up with a GET (on a cluster
  # whose CRDs came first, as anywhere but a fresh bench cluster, it knows
  # them already). Left as it was, that landed on the Paved phase alone (about
  # 1,100 errors and 860 GETs at 1,000 Services); the floor's children have no
  # owner.
  if ! { "$here/down.sh" && KUBECONFIG=$("$here/up.sh") && export KUBECONFIG &&
         KUBECTL=$(resolve_kubectl) && install_crds "$root/crds/" &&
         "$here/restart.sh" kube-controller-manager >/dev/null; } >>"$fresh_log" 2>&1; then
    log "a fresh cluster failed to start; the last lines of $fresh_log:"
    tail -n 30 "$fresh_log" >&2
    exit 1
  fi
  component_pids
  exit 0
fi

if "$here/up.sh" --check >/dev/null 2>&1; then
  log "a cluster is running at $CLUSTER_DIR: the bench restarts its cluster (dropping every object) before each phase;"
  log "stop it (e2e/cluster/down.sh), or set PAVED_CLUSTER_DIR and the PAVED_*_PORT variables (README) for another one"
  exit 1
fi
cleanup() {
  if [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT

cd "$root"
# PAVED_BIN: a controller built elsewhere (or a wrapper), so none is built here.
[ -n "${PAVED_BIN:-}" ] || cargo build --release --bin paved --quiet
cargo bench -p paved-e2e --bench scale_sweep --no-run --quiet
cargo build --release -p paved-bench-chart --quiet
"$here/build.sh" "${COMPONENTS[@]}" >&2
export KUBECONFIG=$KUBECONFIG_PATH
out=${PAVED_SCALE_OUT:-$TARGET_DIR/bench-scale}
mkdir -p "$out"
PAVED_SCALE_FRESH="$root/e2e/bench-scale.sh" PAVED_BIN="${PAVED_BIN:-$TARGET_DIR/release/paved}" PAVED_SCALE_OUT=$out \
  PAVED_SCALE_LISTEN=127.0.0.1:${PAVED_BENCH_METRICS_PORT:-18090} \
  PAVED_SCALE_LOG="$CLUSTER_DIR/logs/paved-bench-scale.log" \
  cargo bench -p paved-e2e --bench scale_sweep --quiet
"$TARGET_DIR"/release/paved-bench-chart "$out/result.json" "$out/chart.png"
echo "the README's chart is docs/bench-scale.png: copy $out/chart.png there to publish a run"
