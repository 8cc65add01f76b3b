# Shared settings of the local control plane scripts. Sourced, not run.
here=${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
source "$here/versions.env"
# auto: a Go older than the modules' `go 1.26.0` line fetches that toolchain
# from the module proxy; a newer one builds as it is.
export GOTOOLCHAIN=${PAVED_GOTOOLCHAIN:-auto} GOFLAGS="-mod=readonly -buildvcs=false"
PAVED_CACHE=${PAVED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paved}

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

version_of() { # component
  case $1 in
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    metrics-server) echo "$METRICS_SERVER_VERSION" ;;
    *) echo "$KUBERNETES_VERSION" ;;
  esac
}
bin_path() { echo "$PAVED_CACHE/bin/$1-$(version_of "$1")/$1"; }

# Where a running cluster keeps its state: PKI, kubeconfigs, logs, PIDs, etcd data.
CLUSTER_DIR=${PAVED_CLUSTER_DIR:-$PAVED_CACHE/cluster}
KUBECONFIG_PATH=$CLUSTER_DIR/kubeconfig
# Loopback ports, each overridable.
ETCD_PORT=${PAVED_ETCD_PORT:-12379}
ETCD_PEER_PORT=${PAVED_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${PAVED_APISERVER_PORT:-16443}
CONTROLLER_MANAGER_PORT=${PAVED_CONTROLLER_MANAGER_PORT:-20257}
SCHEDULER_PORT=${PAVED_SCHEDULER_PORT:-20259}
KWOK_PORT=${PAVED_KWOK_PORT:-20300}
METRICS_SERVER_PORT=${PAVED_METRICS_SERVER_PORT:-20443}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server)

pid_of() { # component: prints the PID if that component is alive
  local f=$CLUSTER_DIR/pids/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_component() { # component: TERM, then KILL after 10s
  local pid i
  pid=$(pid_of "$1") || { rm -f "$CLUSTER_DIR/pids/$1.pid"; return 0; }
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$CLUSTER_DIR/pids/$1.pid"
}

# A kubectl within one minor version of the API server: the one on PATH when
# it is close enough, otherwise one built from the pinned Kubernetes release.
resolve_kubectl() {
  local want=${KUBERNETES_VERSION#v1.} have
  want=${want%%.*}
  if command -v kubectl >/dev/null 2>&1; then
    have=$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n1)
    if [ -n "$have" ] && [ $((have - want)) -le 1 ] && [ $((want - have)) -le 1 ]; then
      command -v kubectl; return 0
    fi
  fi
  "$here/build.sh" kubectl >&2
  bin_path kubectl
}

# Where cargo puts its build outputs (CI keeps it outside the clone).
TARGET_DIR=${CARGO_TARGET_DIR:-$(cd "$here/../.." && pwd)/target}

# Start the local control plane, or reuse the running one. Sets
# cluster_was_running, KUBECONFIG (exported) and KUBECTL.
use_cluster() {
  cluster_was_running=false
  if "$here/up.sh" --check >/dev/null 2>&1; then cluster_was_running=true; fi
  export KUBECONFIG
  KUBECONFIG=$("$here/up.sh")
  KUBECTL=$(resolve_kubectl)
}

# Apply the CRDs in directory $1 and wait until the API server serves them.
install_crds() {
  "$KUBECTL" apply --server-side --force-conflicts -f "$1" >&2
  "$KUBECTL" wait --for condition=Established --timeout 60s -f "$1" >&2
}

# Gateway API's standard-channel CRDs at $GATEWAY_API_VERSION, from the Go module
# sigs.k8s.io/gateway-api (its zip holds config/crd/standard/*.yaml): fetched once
# into the module cache like the other components, then applied. Everything on stderr.
install_gateway_api_crds() {
  local dir
  dir=$(cd "$PAVED_CACHE" 2>/dev/null || cd /tmp; GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/config/crd/standard" ] || { log "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION has no config/crd/standard"; return 1; }
  local crds=()
  # The CRDs only (not the ValidatingAdmissionPolicy beside them).
  for f in "$dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    grep -q '^kind: CustomResourceDefinition' "$f" && crds+=(-f "$f")
  done
  "$KUBECTL" apply --server-side --force-conflicts "${crds[@]}" >&2
  "$KUBECTL" wait --for condition=Established --timeout 60s "${crds[@]}" >&2
}

# The stand-in Gateway API controller (e2e/test_gateway.rs, no data plane) and
# its GatewayClass `paved-e2e`, plus the shared Gateway the examples use
# (e2e/gateway.yaml). Built by the caller (cargo build -p paved-e2e --bin
# paved-test-gateway); restarted when already running. Log: logs/test-gateway.log.
start_test_gateway() {
  local pidfile=$CLUSTER_DIR/pids/test-gateway.pid pid
  if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  KUBECONFIG=$KUBECONFIG setsid "$TARGET_DIR"/debug/paved-test-gateway >> "$CLUSTER_DIR/logs/test-gateway.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  local root; root=$(cd "$here/../.." && pwd)
  "$KUBECTL" apply --server-side -f "$root/e2e/gateway.yaml" >&2
}

stop_test_gateway() {
  local pidfile=$CLUSTER_DIR/pids/test-gateway.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# Wait until the controller (process $2) answers on http://$1/readyz, trying
# $3 times (default 120) every 0.25 s; fails at once if the process is gone.
wait_controller_ready() { # address pid [tries]
  local i
  for i in $(seq 1 "${3:-120}"); do
    curl -fsS --max-time 1 "http://$1/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.25
  done
  return 1
}
