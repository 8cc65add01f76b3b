#!/usr/bin/env bash
# Restarts one component of the running local control plane, keeping its state
# (etcd's data stays: up.sh would start a fresh cluster instead). The component
# comes back with the command line it was running with, plus any extra
# arguments given after `--` (a later flag overrides an earlier one).
#
# Usage: e2e/cluster/restart.sh COMPONENT [--down SECONDS] [--signal KILL|TERM] [-- EXTRA ARGS...]
#   --down SECONDS   how long the component stays down (default 0)
#   --signal SIG     how it is stopped (default KILL: a crash, nothing flushed)
# Prints on stdout the epoch second (with decimals) at which the component
# answered again; logs go to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

component=${1:?usage: restart.sh COMPONENT [--down SECONDS] [--signal KILL|TERM] [-- EXTRA ARGS...]}
shift
down=0 signal=KILL extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --down) down=$2; shift 2 ;;
    --signal) signal=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) log "unknown argument $1"; exit 2 ;;
  esac
done

pid=$(pid_of "$component") || { log "$component is not running"; exit 1; }
mapfile -d '' command < "/proc/$pid/cmdline"
[ ${#command[@]} -gt 0 ] || { log "cannot read the command line of $component ($pid)"; exit 1; }

log "stopping $component ($pid) with SIG$signal for ${down}s"
kill "-$signal" "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null || true
sleep "$down"

setsid "${command[@]}" "${extra[@]}" >>"$CLUSTER_DIR/logs/$component.log" 2>&1 < /dev/null &
echo $! > "$CLUSTER_DIR/pids/$component.pid"
new_pid=$!

ready() {
  case $component in
    kube-apiserver) curl -fsS --max-time 2 --cacert "$CLUSTER_DIR/pki/ca.crt" --cert "$CLUSTER_DIR/pki/admin.crt" \
      --key "$CLUSTER_DIR/pki/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1 ;;
    etcd) curl -fs --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 ;;
    kube-controller-manager) curl -fsSk --max-time 2 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz" >/dev/null 2>&1 ;;
    kube-scheduler) curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz" >/dev/null 2>&1 ;;
    *) kill -0 "$new_pid" 2>/dev/null ;;
  esac
}
for _ in $(seq 1 360); do
  if ready; then
    log "$component is back (pid $new_pid)"
    date +%s.%N
    exit 0
  fi
  kill -0 "$new_pid" 2>/dev/null || { log "$component exited; last lines:"; tail -n 20 "$CLUSTER_DIR/logs/$component.log" >&2; exit 1; }
  sleep 0.25
done
log "$component not ready after 90s"; exit 1
