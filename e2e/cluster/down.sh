#!/usr/bin/env bash
# Stops every process up.sh started, by PID, in reverse order. Keeps the PKI and
# the cache; `--purge` also deletes the cluster's state (etcd data, logs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
stop_test_gateway
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c=${COMPONENTS[$i]}
  if pid=$(pid_of "$c"); then log "stopping $c (pid $pid)"; fi
  stop_component "$c"
done
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$CLUSTER_DIR"
  log "removed $CLUSTER_DIR"
fi
