#!/usr/bin/env bash
# Proves that the cluster scripts whose stdout a caller captures print that
# value and nothing else on a cold machine, without a 10-minute build:
#
#   use_cluster      (e2e/run.sh, `make dev`, chart.sh): KUBECONFIG is exactly
#                    the kubeconfig path and KUBECTL exactly the kubectl path;
#   up.sh            stdout is exactly the kubeconfig path, cold and warm (and
#                    the cluster it starts serves metrics.k8s.io);
#   resolve_kubectl  stdout is exactly one path;
#   build.sh         stdout is empty;
#   e2e/tools/build.sh  (e2e/run.sh captures it) stdout is exactly the tools' directory.
#
# It runs them with an empty PAVED_CACHE and a stub `go` first on PATH. The
# stub answers `go list -deps` with package names on stdout, and `go build -v`
# with package names and `go: downloading` lines on stderr, as the real one
# does, and writes for each component an executable that runs the real
# (already built) binary, so up.sh starts a real second control plane on free
# ports in a temporary directory. A `kubectl` on PATH too old for the cluster
# makes resolve_kubectl build one too. Everything else (`go mod download`,
# `go list -m`) goes to the real go. The cluster and the directory are removed
# at the end. Usage: e2e/cluster/test-cold-start.sh   (`make test` runs it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }

# The real binaries the stub's executables run: built (or found cached) in the
# caller's PAVED_CACHE, as `make test` needs them anyway.
log "cold-start test: making sure the real binaries exist"
"$here/build.sh" "${COMPONENTS[@]}"
real_kubectl=$(resolve_kubectl)
real_go=$(command -v go)

work=$(mktemp -d "${TMPDIR:-/tmp}/paved-cold-start.XXXXXX")
stub=$work/stub-bin
mkdir -p "$stub" "$work/cache" "$work/logs"
cold_env=(PAVED_CACHE="$work/cache" PAVED_CLUSTER_DIR="$work/cluster" PATH="$stub:$PATH")

# Loopback ports nobody listens on, from PAVED_COLD_TEST_PORT (31400) upwards.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || [[ " ${taken[*]:-} " == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}
taken=()
p=${PAVED_COLD_TEST_PORT:-31400}
for var in PAVED_APISERVER_PORT PAVED_ETCD_PORT PAVED_ETCD_PEER_PORT PAVED_CONTROLLER_MANAGER_PORT PAVED_SCHEDULER_PORT PAVED_KWOK_PORT \
  PAVED_METRICS_SERVER_PORT; do
  p=$(free_port "$p"); taken+=("$p")
  cold_env+=("$var=$p")
  p=$((p + 1))
done

cleanup() {
  local rc=$?
  env "${cold_env[@]}" "$here/down.sh" >/dev/null 2>&1 || true
  rm -rf "$work"
  [ $failures -eq 0 ] && [ $rc -eq 0 ] && echo "cold start: all checks passed" || echo "cold start: $failures check(s) failed"
  [ $failures -eq 0 ] || exit 1
  exit $rc
}
trap cleanup EXIT

# The stub go. Which component a build is for: the name of its -o output.
cat > "$stub/go" <<EOF
#!/usr/bin/env bash
set -euo pipefail
real_cache='$PAVED_CACHE' real_kubectl='$real_kubectl'
$(declare -f version_of)
$(sed -n 's/^\(KUBERNETES_VERSION\|ETCD_VERSION\|KWOK_VERSION\|HELM_VERSION\|METRICS_SERVER_VERSION\)=.*/&/p' "$here/versions.env")
EOF
cat >> "$stub/go" <<'EOF'
downloading() { local m; for m in golang.org/x/net@v0.40.0 k8s.io/api@v0.33.13 sigs.k8s.io/yaml@v1.4.0; do echo "go: downloading ${m%@*} ${m#*@}" >&2; done; }
packages() { printf '%s\n' internal/goarch internal/abi runtime k8s.io/apimachinery/pkg/util/runtime "$1"; }
case "${1:-} ${2:-}" in
  "list -deps")
    downloading
    packages "${*: -1}" ;;
  "build "*)
    out="" pkg="${*: -1}"
    while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
    downloading
    packages "$pkg" >&2
    name=$(basename "${out%.tmp}")
    case $name in
      kubectl) real=$real_kubectl ;;
      etcd|kube-*|kwok|metrics-server) real=$real_cache/bin/$name-$(version_of "$name")/$name ;;
      *) real=/bin/true ;; # the e2e tools (e2e/tools/build.sh): only their path matters here
    esac
    [ -x "$real" ] || { echo "stub go: no real $name at $real" >&2; exit 1; }
    printf '#!/bin/sh\nexec %s "$@"\n' "$real" > "$out"
    chmod +x "$out" ;;
  *) exec "$REAL_GO" "$@" ;;
esac
EOF
chmod +x "$stub/go"
cold_env+=(REAL_GO="$real_go")
# A kubectl two minor versions behind the cluster: resolve_kubectl must build one.
cat > "$stub/kubectl" <<'EOF'
#!/bin/sh
echo '{"clientVersion": {"major": "1", "minor": "20", "gitVersion": "v1.20.0"}}'
EOF
chmod +x "$stub/kubectl"

kubeconfig=$work/cluster/kubeconfig
kubectl_path=$work/cache/bin/kubectl-$KUBERNETES_VERSION/kubectl

# 1. build.sh alone, cold: nothing on stdout.
out=$(env "${cold_env[@]}" "$here/build.sh" etcd 2>"$work/logs/build.err") || { cat "$work/logs/build.err" >&2; fail "build.sh etcd failed"; exit 1; }
if [ -z "$out" ]; then pass "build.sh (cold) prints nothing on stdout"; else fail "build.sh (cold) printed on stdout: $(head -c 300 <<<"$out")"; fi
grep -q '^go: downloading' "$work/logs/build.err" && pass "the stub's go: downloading lines reach stderr (the stub is in use)" \
  || fail "no go: downloading line on stderr: the stub go was not used"

# 2. use_cluster, cold (kube binaries and kubectl not built yet), as e2e/run.sh and make dev call it.
if env "${cold_env[@]}" bash -c '
  source "$1/lib.sh"
  use_cluster
  printf "%s\n" "$KUBECONFIG" > "$2/kubeconfig.txt"
  printf "%s\n" "$KUBECTL" > "$2/kubectl.txt"
  "$KUBECTL" get nodes -o name > "$2/nodes.txt"
  "$KUBECTL" get --raw /apis/metrics.k8s.io/v1beta1/pods > "$2/pod-metrics.txt"
' _ "$here" "$work" 2>"$work/logs/use_cluster.err"; then
  pass "use_cluster on a cold cache"
else
  tail -n 30 "$work/logs/use_cluster.err" >&2; fail "use_cluster on a cold cache failed"
fi
[ "$(cat "$work/kubeconfig.txt" 2>/dev/null)" = "$kubeconfig" ] && pass "use_cluster: KUBECONFIG is exactly $kubeconfig" \
  || fail "use_cluster: KUBECONFIG is '$(head -c 300 "$work/kubeconfig.txt" 2>/dev/null)', want $kubeconfig"
[ "$(cat "$work/kubectl.txt" 2>/dev/null)" = "$kubectl_path" ] && pass "use_cluster: KUBECTL is exactly the kubectl it built" \
  || fail "use_cluster: KUBECTL is '$(head -c 300 "$work/kubectl.txt" 2>/dev/null)', want $kubectl_path"
[ "$(wc -l < "$work/nodes.txt" 2>/dev/null || echo 0)" -ge 1 ] && pass "the cold-started cluster answers kubectl get nodes" \
  || fail "the cold-started cluster has no nodes"
grep -q '"kind":"PodMetricsList"' "$work/pod-metrics.txt" 2>/dev/null && pass "the cold-started cluster serves metrics.k8s.io" \
  || fail "the cold-started cluster does not serve metrics.k8s.io: $(head -c 300 "$work/pod-metrics.txt" 2>/dev/null)"
grep -q 'building' "$work/logs/use_cluster.err" && pass "use_cluster built the components (the cold path ran)" \
  || fail "use_cluster built nothing: the cold path did not run"

# 3. up.sh on a cold cache again (its binaries removed, the cluster stopped): stdout is the path alone.
env "${cold_env[@]}" "$here/down.sh" 2>/dev/null
rm -rf "$work/cache/bin"
out=$(env "${cold_env[@]}" "$here/up.sh" 2>"$work/logs/up.err") || { tail -n 30 "$work/logs/up.err" >&2; fail "up.sh (cold) failed"; }
[ "$out" = "$kubeconfig" ] && pass "up.sh (cold) prints exactly the kubeconfig path" \
  || fail "up.sh (cold) printed: $(head -c 300 <<<"$out")"
# 4. and warm: the running cluster is reused.
out=$(env "${cold_env[@]}" "$here/up.sh" 2>/dev/null)
[ "$out" = "$kubeconfig" ] && pass "up.sh (warm) prints exactly the kubeconfig path" || fail "up.sh (warm) printed: $(head -c 300 <<<"$out")"
# 5. resolve_kubectl, cold: one path.
rm -rf "$work/cache/bin/kubectl-$KUBERNETES_VERSION"
out=$(env "${cold_env[@]}" bash -c 'source "$1/lib.sh"; resolve_kubectl' _ "$here" 2>/dev/null)
[ "$out" = "$kubectl_path" ] && pass "resolve_kubectl (cold) prints exactly the kubectl path" || fail "resolve_kubectl printed: $(head -c 300 <<<"$out")"
# 6. e2e/tools/build.sh, cold: the directory of the tools, nothing else.
tools=$here/../tools
if [ -x "$tools/build.sh" ]; then
  out=$(env "${cold_env[@]}" "$tools/build.sh" 2>"$work/logs/tools.err") || { tail -n 20 "$work/logs/tools.err" >&2; fail "e2e/tools/build.sh (cold) failed"; }
  if [[ "$out" == "$work/cache/bin/e2e-tools-"* ]] && [ "$(wc -l <<<"$out")" -eq 1 ] && [ -x "$out/kstatus" ] && [ -x "$out/argocd-health" ]; then
    pass "e2e/tools/build.sh (cold) prints exactly the tools' directory"
  else
    fail "e2e/tools/build.sh (cold) printed: $(head -c 300 <<<"$out")"
  fi
fi
