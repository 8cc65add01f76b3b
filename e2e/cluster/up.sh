#!/usr/bin/env bash
# Starts a real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver
# (secure port, RBAC), kube-controller-manager, kube-scheduler, kwok with
# simulated nodes that run Pods to Ready, and metrics-server serving
# metrics.k8s.io (`kubectl top`) from kwok's simulated resource usage.
# Builds any missing binary first.
#
# Idempotent: when the cluster is already up it is reused. On any failure it
# prints the failing component's last log lines and stops what it started.
# Prints the kubeconfig path on stdout (everything else goes to stderr).
# `up.sh --check` only tells, by its exit code, whether the cluster is up.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

PKI=$CLUSTER_DIR/pki
LOGS=$CLUSTER_DIR/logs
FAKE_NODES=${PAVED_FAKE_NODES:-2}
# `make bench-scale` (PAVED_SCALE_LIMITS=1): the controller-manager's and the
# scheduler's client limits raised from their defaults (20 QPS, burst 30; the
# scheduler 50/100), as scale tests on kwok clusters do, so that making and
# scheduling 10,000 pods is not throttled by the cluster's own clients. The
# marker file tells a reused cluster's limits.
client_limits=()
if [ "${PAVED_SCALE_LIMITS:-}" = 1 ]; then client_limits=(--kube-api-qps 5000 --kube-api-burst 10000); fi

api_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

running() { api_ready && for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done; }
if [ "${1:-}" = "--check" ]; then running; exit; fi
if running; then
  log "reusing the running cluster ($CLUSTER_DIR)"
  echo "$KUBECONFIG_PATH"
  exit 0
fi
# Half a cluster is no use: stop whatever is left before starting afresh.
for c in "${COMPONENTS[@]}"; do stop_component "$c"; done

"$here/build.sh" "${COMPONENTS[@]}" >&2
started_at=$SECONDS

mkdir -p "$PKI" "$LOGS" "$CLUSTER_DIR/pids"
failed=""
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    if [ -n "$failed" ] && [ -f "$LOGS/$failed.log" ]; then
      log "$failed failed; the last lines of $LOGS/$failed.log:"
      tail -n 40 "$LOGS/$failed.log" >&2
    fi
    log "stopping everything this run started"
    for c in "${COMPONENTS[@]}"; do stop_component "$c"; done
  fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- PKI
# Generated once per cluster directory and kept, so kubeconfigs stay valid
# across restarts.
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
client_cert() { # name CN O
  local subj="/CN=$2"; [ -z "$3" ] || subj="/O=$3$subj"
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -subj "$subj" -out "$PKI/$1.csr"
  openssl_quiet x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -out "$PKI/$1.crt" -extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n')
}
if [ ! -f "$PKI/admin.crt" ]; then
  log "generating PKI in $PKI"
  openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -subj "/CN=paved-local-ca" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$PKI/apiserver.key" -subj "/CN=kube-apiserver" -out "$PKI/apiserver.csr"
  openssl_quiet x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
    -out "$PKI/apiserver.crt" -extfile <(printf '%s\n' \
      'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local' \
      'extendedKeyUsage=serverAuth' 'keyUsage=critical,digitalSignature,keyEncipherment')
  client_cert admin paved-admin system:masters
  client_cert controller-manager system:kube-controller-manager ""
  client_cert scheduler system:kube-scheduler ""
  client_cert kwok kwok system:masters
  openssl_quiet genrsa -out "$PKI/sa.key" 2048
  openssl_quiet rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  rm -f "$PKI"/*.csr
fi
# The aggregation layer (metrics.k8s.io): a front-proxy CA whose client cert the
# API server presents when it proxies to metrics-server, metrics-server's own
# client cert, and its serving cert for the name the API server checks
# (<service>.<namespace>.svc). Added to a PKI made before they existed.
if [ ! -f "$PKI/metrics-server-serving.crt" ]; then
  log "generating the aggregation layer's certificates in $PKI"
  openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$PKI/front-proxy-ca.key" -out "$PKI/front-proxy-ca.crt" \
    -subj "/CN=paved-local-front-proxy-ca" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr"
  openssl_quiet x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" -CAcreateserial \
    -days 3650 -out "$PKI/front-proxy-client.crt" -extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n')
  client_cert metrics-server system:metrics-server system:masters
  openssl_quiet req -newkey rsa:2048 -nodes -keyout "$PKI/metrics-server-serving.key" -subj "/CN=metrics-server" -out "$PKI/metrics-server-serving.csr"
  openssl_quiet x509 -req -in "$PKI/metrics-server-serving.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
    -out "$PKI/metrics-server-serving.crt" -extfile <(printf '%s\n' \
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:metrics-server.kube-system.svc' \
      'extendedKeyUsage=serverAuth' 'keyUsage=critical,digitalSignature,keyEncipherment')
  rm -f "$PKI"/*.csr
fi

write_kubeconfig() { # file user
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: paved-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: paved-local
  context: {cluster: paved-local, user: $2}
current-context: paved-local
EOF
}
write_kubeconfig "$KUBECONFIG_PATH" admin
for u in controller-manager scheduler kwok metrics-server; do write_kubeconfig "$CLUSTER_DIR/$u.kubeconfig" "$u"; done

# ---------------------------------------------------------------- start
start() { # component args...
  local name=$1; shift
  failed=$name
  log "starting $name"
  setsid "$(bin_path "$name")" "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$CLUSTER_DIR/pids/$name.pid"
}
wait_for() { # component seconds command...
  local name=$1 secs=$2 i; shift 2
  for i in $(seq 1 $((secs * 4))); do
    "$@" && { log "$name ready"; return 0; }
    pid_of "$name" >/dev/null || { log "$name exited"; return 1; }
    sleep 0.25
  done
  log "$name not ready after ${secs}s"; return 1
}
healthz() { curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null 2>&1; }

# A fresh start is a fresh cluster: what a stopped cluster held (test objects
# of an earlier run) is dropped, so every run starts from the same state.
rm -rf "$CLUSTER_DIR/etcd"
# Tests run against this etcd, never a production one: skipping fsync makes
# every write several times faster on a shared disk.
start etcd --name paved --data-dir "$CLUSTER_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "paved=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
probe() { curl -fs --max-time 2 "$1" >/dev/null 2>&1; }
wait_for etcd 30 probe "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.0.0.0/16 --allow-privileged=true --event-ttl 1h \
  --cert-dir "$CLUSTER_DIR/apiserver-certs" --profiling="${PAVED_APISERVER_PROFILING:-false}" --goaway-chance 0 --v 1 \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key"
wait_for kube-apiserver 90 api_ready

# --node-monitor-grace-period: a node whose Lease the controller-manager has not
# seen renewed for that long is marked NotReady, and so is every pod on it
# (Ready=False). A real kubelet marks its pods ready again; kwok never does (its
# pod-ready stage matches Pending pods only), so the pods stay unready for good
# and every Deployment on the node stops being available. The default 50 s is
# within reach of the fault tests' outages (etcd paused 30 s, then the control
# plane catching up: once in CI a Service's pod stayed unready after it) and of
# a saturated API server at scale, so the local cluster gives a node 5 minutes.
start kube-controller-manager --kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=true --cluster-signing-cert-file "$PKI/ca.crt" \
  --cluster-signing-key-file "$PKI/ca.key" --node-monitor-grace-period 5m \
  --profiling=false --v 1 "${client_limits[@]}"
wait_for kube-controller-manager 60 healthz "$CONTROLLER_MANAGER_PORT"

start kube-scheduler --kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false --v 1 "${client_limits[@]}"
if [ ${#client_limits[@]} -gt 0 ]; then echo "${client_limits[*]}" > "$CLUSTER_DIR/scale-limits"; else rm -f "$CLUSTER_DIR/scale-limits"; fi
wait_for kube-scheduler 60 healthz "$SCHEDULER_PORT"

# ---------------------------------------------------------------- usage
api() { # method path [body] [content type]: admin request to the API server
  curl -fsS --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    -X "$1" -H "Content-Type: ${4:-application/json}" "https://127.0.0.1:$APISERVER_PORT$2" ${3:+--data-binary "$3"}
}
# Simulated usage: kwok reads ResourceUsage (one pod, by name) and
# ClusterResourceUsage (pods by selector) objects and serves them as the
# kubelet's /metrics/resource for each fake node. Their CRDs come first.
kwok_files=$(dirname "$(bin_path kwok)")
failed=kube-apiserver
for crd in resourceusages clusterresourceusages; do
  api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$crd.kwok.x-k8s.io" >/dev/null 2>&1 ||
    api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "@$kwok_files/crd-$crd.yaml" application/yaml >/dev/null
done
crds_established() {
  local crd
  for crd in resourceusages clusterresourceusages; do
    api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$crd.kwok.x-k8s.io" 2>/dev/null |
      tr -d ' \n' | grep -q '"type":"Established","status":"True"' || return 1
  done
  api GET /apis/kwok.x-k8s.io/v1alpha1/clusterresourceusages >/dev/null 2>&1
}
wait_for kube-apiserver 30 crds_established
# Every pod has a usage by default (kwok's usage-from-annotation: the pod's
# annotations kwok.x-k8s.io/usage-cpu and -memory, else 1m and 1Mi); a
# ResourceUsage named after a pod overrides it for that pod.
api GET /apis/kwok.x-k8s.io/v1alpha1/clusterresourceusages/usage-from-annotation >/dev/null 2>&1 ||
  api POST /apis/kwok.x-k8s.io/v1alpha1/clusterresourceusages "@$kwok_files/usage-from-annotation.yaml" application/yaml >/dev/null

cat > "$CLUSTER_DIR/kwok.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  cidr: 10.244.0.1/16
  nodeLeaseDurationSeconds: 40
  # kwok fills these defaults only without a config file: set them here.
  nodeLeaseParallelism: 4
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 8
  podsOnNodeSyncParallelism: 2
  serverAddress: 127.0.0.1:$KWOK_PORT
  enableCRDs: [ResourceUsage, ClusterResourceUsage]
EOF
cat "$kwok_files/stages.yaml" >> "$CLUSTER_DIR/kwok.yaml"
{ printf -- '---\n'; cat "$kwok_files/metric-resource.yaml"; } >> "$CLUSTER_DIR/kwok.yaml"
start kwok --kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" --config "$CLUSTER_DIR/kwok.yaml"
wait_for kwok 30 probe "http://127.0.0.1:$KWOK_PORT/healthz"

# ---------------------------------------------------------------- nodes
# kwok plays the kubelet for Nodes annotated kwok.x-k8s.io/node=fake.
# Each fake node's kubelet address is kwok's server on loopback; metrics-server
# reads its resource metrics from the path the annotation names.
failed=kwok
for i in $(seq 1 "$FAKE_NODES"); do
  node=kwok-node-$i
  api GET "/api/v1/nodes/$node" >/dev/null 2>&1 || api POST /api/v1/nodes "$(cat <<EOF
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$node",
 "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0",
   "metrics.k8s.io/resource-metrics-path":"/metrics/nodes/$node/metrics/resource"},
 "labels":{"kubernetes.io/hostname":"$node","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/role":"agent","type":"kwok"}},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"1500"},"capacity":{"cpu":"32","memory":"256Gi","pods":"1500"},
  "addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"$node"}]}}
EOF
)" >/dev/null
done
node_ready() {
  local i
  for i in $(seq 1 "$FAKE_NODES"); do
    api GET "/api/v1/nodes/kwok-node-$i" 2>/dev/null | tr -d ' \n' | grep -q '"type":"Ready","status":"True"' || return 1
  done
}
wait_for kwok 60 node_ready
# Pods need the default ServiceAccount, which the controller-manager creates.
failed=kube-controller-manager
default_sa() { api GET /api/v1/namespaces/default/serviceaccounts/default >/dev/null 2>&1; }
wait_for kube-controller-manager 60 default_sa

# ---------------------------------------------------------------- metrics
# metrics-server scrapes every node's kubelet, here kwok's plain-HTTP server on
# loopback, and serves metrics.k8s.io through the API server's aggregation
# layer: an APIService whose Service is an ExternalName 127.0.0.1 (the API
# server dials 127.0.0.1:<APIService port>; no kube-proxy needed).
start metrics-server --bind-address 127.0.0.1 --secure-port "$METRICS_SERVER_PORT" \
  --tls-cert-file "$PKI/metrics-server-serving.crt" --tls-private-key-file "$PKI/metrics-server-serving.key" \
  --kubeconfig "$CLUSTER_DIR/metrics-server.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_DIR/metrics-server.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_DIR/metrics-server.kubeconfig" \
  --kubelet-preferred-address-types InternalIP --kubelet-port "$KWOK_PORT" --deprecated-kubelet-completely-insecure \
  --metric-resolution 10s --kubelet-request-timeout 5s --v 1
ms_healthy() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$METRICS_SERVER_PORT/livez" >/dev/null 2>&1
}
wait_for metrics-server 60 ms_healthy
service='{"apiVersion":"v1","kind":"Service","metadata":{"name":"metrics-server","namespace":"kube-system"},
 "spec":{"type":"ExternalName","externalName":"127.0.0.1"}}'
api GET /api/v1/namespaces/kube-system/services/metrics-server >/dev/null 2>&1 ||
  api POST /api/v1/namespaces/kube-system/services "$service" >/dev/null
apiservice='{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.metrics.k8s.io"},
 "spec":{"group":"metrics.k8s.io","version":"v1beta1","groupPriorityMinimum":100,"versionPriority":100,
  "service":{"name":"metrics-server","namespace":"kube-system","port":'$METRICS_SERVER_PORT'},
  "caBundle":"'$(base64 -w0 < "$PKI/ca.crt")'"}}'
api GET /apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io >/dev/null 2>&1 ||
  api POST /apis/apiregistration.k8s.io/v1/apiservices "$apiservice" >/dev/null
metrics_api() { api GET /apis/metrics.k8s.io/v1beta1/pods >/dev/null 2>&1; }
wait_for metrics-server 60 metrics_api

failed=""
log "cluster up in $((SECONDS - started_at))s; logs in $LOGS"
log "use it: export KUBECONFIG=$KUBECONFIG_PATH"
echo "$KUBECONFIG_PATH"
