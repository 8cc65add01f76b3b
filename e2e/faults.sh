#!/usr/bin/env bash
# Proves what Paved does when things go wrong, on the local control plane:
# leader failover (SIGKILL, SIGTERM), the split-brain test (the leader paused
# past its lease, then resumed), the API server killed and restarted (briefly,
# and past the renew deadline), etcd paused for 30 s, a status write held up in
# the network past a failover, and SIGKILLs while a few hundred Services
# converge (crash consistency). The tests are in
# e2e/faults.rs; they start and stop controller replicas of their own, so this
# must be the only Paved acting on the cluster (run after e2e/run.sh, as
# `make test` does). Prints FIGURE lines: failover and recovery seconds.
#
# The API server gets an audit log of writes (restarted once with it, keeping
# etcd): the split-brain test judges "no write" on what the API server received.
# Knobs: PAVED_FAULTS_TIMEOUT (seconds for all the tests, 600),
# PAVED_E2E_FAULTS_PORT (first of the replicas' metrics ports, 18100).
# Arguments replace the test filter `faults::` (e.g. faults::a_terminated).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

use_cluster
cleanup() {
  local rc=$?
  # Never leave etcd paused, whatever happened.
  kill -CONT "$(cat "$CLUSTER_DIR/pids/etcd.pid" 2>/dev/null)" 2>/dev/null || true
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
  exit $rc
}
trap cleanup EXIT

cd "$root"
cargo build --bin paved --quiet
cargo test -p paved-e2e --test e2e --no-run --quiet
install_crds crds/
install_gateway_api_crds   # a test deletes the HTTPRoute CRD and puts it back

dev_pid_file=$CLUSTER_DIR/pids/paved-dev.pid
if [ -f "$dev_pid_file" ] && kill -0 "$(cat "$dev_pid_file")" 2>/dev/null; then
  log "stopping the 'make dev' controller (pid $(cat "$dev_pid_file")) for the fault tests"
  kill "$(cat "$dev_pid_file")"; rm -f "$dev_pid_file"
fi

audit_log=$CLUSTER_DIR/logs/audit.log
apiserver_pid=$(pid_of kube-apiserver)
if ! tr '\0' ' ' < "/proc/$apiserver_pid/cmdline" | grep -q -- --audit-log-path; then
  cat > "$CLUSTER_DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
POLICY
  log "restarting the API server with an audit log of writes ($audit_log)"
  "$here/restart.sh" kube-apiserver -- --audit-policy-file="$CLUSTER_DIR/audit-policy.yaml" \
    --audit-log-path="$audit_log" --audit-log-format=json --audit-log-maxsize=200 --audit-log-maxbackup=1 >/dev/null
fi

export PAVED_E2E_FAULTS=1 PAVED_BIN="$TARGET_DIR"/debug/paved
export PAVED_E2E_AUDIT_LOG=$audit_log PAVED_E2E_ETCD_PID_FILE=$CLUSTER_DIR/pids/etcd.pid
export PAVED_E2E_FAULTS_LOGS=$CLUSTER_DIR/logs
export PAVED_E2E_FAULTS_PORT=${PAVED_E2E_FAULTS_PORT:-18100}
out=$CLUSTER_DIR/logs/faults.out
started=$SECONDS
rc=0
timeout "${PAVED_FAULTS_TIMEOUT:-600}" \
  cargo test -p paved-e2e --test e2e -- "${@:-faults::}" --test-threads=1 --nocapture 2>&1 | tee "$out" || rc=$?
log "fault tests took $((SECONDS - started))s; figures:"
grep -o 'FIGURE.*' "$out" >&2 || true
exit $rc
