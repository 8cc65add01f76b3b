#!/usr/bin/env bash
# Proves the Helm chart (charts/paved) on the local control plane:
#
#   1. its CRD copy equals crds/ (what `paved crd` generates);
#   2. `helm lint`, and values.schema.json refuses wrong values;
#   3. `helm install` and `helm upgrade` succeed and the Deployment becomes
#      Available (kwok runs its pods), restricted pod security included;
#   4. the controller built from this checkout, run with exactly the chart's
#      ServiceAccount permissions (its kubeconfig impersonates the
#      ServiceAccount), passes the core scenarios: the RBAC is sufficient;
#   5. with any one rule of the chart's ClusterRole or leader-election Role
#      removed, some scenario fails and the controller's log shows the API
#      server refusing exactly that rule's verb: the RBAC is minimal. (A rule
#      without list/watch is removed under a running controller; the others get
#      a controller started without them; see 5. for how it stays quick.)
#
# Usage: e2e/chart.sh [--quick]   (--quick: steps 1-4 only)
# Prints PASS/FAIL per check, with the seconds since the start, and exits
# non-zero on any failure. Everything it creates is removed at the end; a
# cluster it started is stopped (unless PAVED_KEEP_CLUSTER=1). Knobs:
# PAVED_CHART_TIMEOUT (seconds per wait, 20), PAVED_CHART_VARIANT_TIMEOUT (the
# same with one rule removed, 10), PAVED_CHART_GRACE (seconds a pending step
# gets once the removed rule's refusal is logged, 2), PAVED_CHART_PORT
# (controller metrics port, 18095), PAVED_CHART_RULES (see 5.),
# PAVED_CHART_TRACE=1 (print each scenario step's duration).
#
# It must be the only Paved controller acting on the cluster (another one would
# do the work the impersonated controller is refused): it checks that first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

quick=false
[ "${1:-}" = --quick ] && quick=true
timeout_s=${PAVED_CHART_TIMEOUT:-20}
# Without one rule a step times out by design; the API server's refusal in the
# log, not the timeout, is what attributes the failure, so a shorter wait will do.
variant_timeout_s=${PAVED_CHART_VARIANT_TIMEOUT:-10}
port=${PAVED_CHART_PORT:-18095}
release=paved-chart-e2e
release_ns=paved-chart-e2e
sa=$release                      # the chart's ServiceAccount: its fullname
chart=$root/charts/paved
lease=paved-controller

failures=0
# Every line carries the seconds since the start, to see where the time goes.
started=$SECONDS
stamp() { printf '%4ds' $((SECONDS - started)); }
checks=0
pass() { checks=$((checks + 1)); printf 'PASS %s  %s\n' "$(stamp)" "$*"; }
fail() { checks=$((checks + 1)); printf 'FAIL %s  %s\n' "$(stamp)" "$*"; failures=$((failures + 1)); }
die() { fail "$@"; exit 1; }

use_cluster
# The scenarios expose a Service through Gateway API too (the httproutes rules).
install_gateway_api_crds
"$here/build.sh" helm >&2
HELM=$(bin_path helm)
k() { "$KUBECTL" "$@"; }

work=$(mktemp -d)
# The scenarios poll (and step 5 edits roles) through the API server directly,
# with curl as the kubeconfig's admin: a kubectl per poll costs more CPU than
# the controller's work.
kubeconfig_json=$(k config view --raw --minify --flatten -o json)
api_server=$(jq -r '.clusters[0].cluster.server' <<<"$kubeconfig_json")
jq -r '.clusters[0].cluster["certificate-authority-data"]' <<<"$kubeconfig_json" | base64 -d >"$work/ca.pem"
jq -r '.users[0].user["client-certificate-data"]' <<<"$kubeconfig_json" | base64 -d >"$work/cert.pem"
jq -r '.users[0].user["client-key-data"]' <<<"$kubeconfig_json" | base64 -d >"$work/key.pem"
api_path() { # kind namespace name (name empty: the list)
  local ns=${2:+namespaces/$2/}
  case $1 in
    namespace) echo "api/v1/namespaces/$3" ;;
    environment.paved.dev) echo "apis/paved.dev/v1alpha1/environments/$3" ;;
    application.paved.dev) echo "apis/paved.dev/v1alpha1/${ns}applications/$3" ;;
    service.paved.dev) echo "apis/paved.dev/v1alpha1/${ns}services/$3" ;;
    deployment) echo "apis/apps/v1/${ns}deployments/$3" ;;
    service) echo "api/v1/${ns}services/$3" ;;
    ingress) echo "apis/networking.k8s.io/v1/${ns}ingresses/$3" ;;
    horizontalpodautoscaler) echo "apis/autoscaling/v2/${ns}horizontalpodautoscalers/$3" ;;
    poddisruptionbudget) echo "apis/policy/v1/${ns}poddisruptionbudgets/$3" ;;
    rolebinding) echo "apis/rbac.authorization.k8s.io/v1/${ns}rolebindings/$3" ;;
    resourcequota) echo "api/v1/${ns}resourcequotas/$3" ;;
    limitrange) echo "api/v1/${ns}limitranges/$3" ;;
    networkpolicy) echo "apis/networking.k8s.io/v1/${ns}networkpolicies/$3" ;;
    event) echo "apis/events.k8s.io/v1/${ns}events" ;;
    httproute) echo "apis/gateway.networking.k8s.io/v1/${ns}httproutes/$3" ;;
    *) echo "api_path: unknown kind $1" >&2; return 1 ;;
  esac
}
api() { # curl arguments... path (last)
  curl -sS --max-time 5 --cacert "$work/ca.pem" --cert "$work/cert.pem" --key "$work/key.pem" "${@:1:$#-1}" "$api_server/${*: -1}"
}
get_json() { local path; path=$(api_path "$@") || return 1; api -f "$path" 2>/dev/null; }
controller_pid=""
created_envs=()

stop_controller() {
  if [ -n "$controller_pid" ]; then
    kill "$controller_pid" 2>/dev/null || true
    wait "$controller_pid" 2>/dev/null || true
    controller_pid=""
  fi
}

# An Environment the impersonated controller could not finalize keeps its
# finalizer: drop it as admin, then delete the Environment and its namespace.
delete_environment() { # name
  api -X PATCH -H 'Content-Type: application/merge-patch+json' -d '{"metadata":{"finalizers":null}}' \
    "$(api_path environment.paved.dev "" "$1")" >/dev/null 2>&1 || true
  api -X DELETE "$(api_path environment.paved.dev "" "$1")" >/dev/null 2>&1 || true
  api -X DELETE "$(api_path namespace "" "$1")" >/dev/null 2>&1 || true
}

cleanup() {
  local rc=$?
  stop_controller
  for env in "${created_envs[@]}"; do delete_environment "$env"; done
  "$HELM" uninstall "$release" -n "$release_ns" --wait --timeout 60s >/dev/null 2>&1 || true
  k delete namespace "$release_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  # The uninstall took the adopted user ClusterRoles along: put back what was there.
  if ${user_roles_existed:-false} && [ -f "$root/config/rbac/user-roles.yaml" ]; then
    k apply --server-side --force-conflicts -f "$root/config/rbac/user-roles.yaml" >/dev/null 2>&1 || true
  fi
  # The CRDs stay (helm.sh/resource-policy: keep): hand them back as crds/ has them.
  for crd in environments.paved.dev applications.paved.dev services.paved.dev; do
    k annotate crd "$crd" meta.helm.sh/release-name- meta.helm.sh/release-namespace- helm.sh/resource-policy- >/dev/null 2>&1 || true
    k label crd "$crd" app.kubernetes.io/managed-by- app.kubernetes.io/instance- app.kubernetes.io/name- \
      app.kubernetes.io/part-of- app.kubernetes.io/version- helm.sh/chart- >/dev/null 2>&1 || true
  done
  wait  # background deletions
  rm -rf "$work"
  if ! $cluster_was_running && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
  if [ $failures -gt 0 ]; then rc=1; fi
  [ $rc -eq 0 ] && echo "chart: all $checks checks passed in $(stamp)" || echo "chart: $failures of $checks check(s) failed ($(stamp))"
  exit $rc
}
trap cleanup EXIT

# While one rule is removed (step 5): the API server's refusal of it (an
# extended regular expression), the controller's log, and the log's size when
# the last step succeeded. A refusal logged since then means the pending step is
# waiting on that rule: it gets PAVED_CHART_GRACE more seconds, not the full
# timeout (the rule stays removed, so no retry can succeed in the meantime).
refusal_re="" refusal_log="" refusal_mark=0
grace_s=${PAVED_CHART_GRACE:-2}
refused_since_mark() { [ -n "$refusal_re" ] && tail -c +$((refusal_mark + 1)) "$refusal_log" 2>/dev/null | grep -qE -- "$refusal_re"; }
mark_log() { [ -z "$refusal_log" ] || refusal_mark=$(stat -c %s "$refusal_log" 2>/dev/null || echo 0); }

# Polls `cmd...` until it succeeds or PAVED_CHART_TIMEOUT passes (see above).
wait_for() { # description cmd...
  local what=$1; shift
  local deadline=$((SECONDS + timeout_s)) refused=false
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      $refused && echo "  still not done ${grace_s}s after the refusal: $what" >&2 || echo "  timed out after ${timeout_s}s: $what" >&2
      return 1
    fi
    if ! $refused && refused_since_mark; then
      refused=true
      [ $((SECONDS + grace_s)) -lt $deadline ] && deadline=$((SECONDS + grace_s))
    fi
    sleep 0.5
  done
  mark_log
}

# --- 1. the CRD copy ---------------------------------------------------------
if diff -r "$root/crds" "$chart/files/crds" >/dev/null; then
  pass "charts/paved/files/crds equals crds/"
else
  # Installing a stale copy would downgrade the cluster's CRDs: stop here.
  die "charts/paved/files/crds differs from crds/: run \`make crds\` (it copies them)"
fi

# --- 2. lint and schema --------------------------------------------------------
kube_version=$(k version -o json | jq -r '.serverVersion.gitVersion')
if "$HELM" lint "$chart" --strict --kube-version "$kube_version" >"$work/lint.log" 2>&1; then
  pass "helm lint --strict"
else
  cat "$work/lint.log" >&2; fail "helm lint --strict"
fi
# A user copying the README's helm commands passes no --kube-version: helm's
# default (set at link time from its client-go) must satisfy the chart's kubeVersion.
if "$HELM" template t "$chart" >"$work/template.log" 2>&1; then
  pass "helm template without --kube-version (the chart's kubeVersion $(sed -n 's/^kubeVersion: //p' "$chart/Chart.yaml"))"
else
  cat "$work/template.log" >&2; fail "helm template without --kube-version"
fi
for bad in replicaCount=0 replicaCount=two crds.enabled=maybe image.pullPolicy=Sometimes \
  controller.logFormat=xml securityContext.readOnlyRootFilesystem=false \
  securityContext.allowPrivilegeEscalation=true podSecurityContext.runAsNonRoot=false \
  metrics.port=80 unknownKey=1 controller.leaseName=Not_A_Name \
  controller.leaseDurationSeconds=5 controller.retryPeriodSeconds=10; do
  if "$HELM" template t "$chart" --kube-version "$kube_version" --set "$bad" >/dev/null 2>&1; then
    fail "values.schema.json accepted --set $bad"
  else
    pass "values.schema.json refuses --set $bad"
  fi
done

# --- 3. install and upgrade ------------------------------------------------------
# Another controller acting on the cluster would mask what the impersonated one
# is refused: an Environment nobody should touch yet must stay untouched.
# Whether a Paved controller other than ours acts on the cluster: an Environment
# created while ours is stopped must stay untouched for a few seconds.
probes=0
another_controller_active() {
  local probe=chart-probe-$$-$probes
  probes=$((probes + 1))
  created_envs+=("$probe")
  k apply --server-side --field-manager chart-e2e -f - >/dev/null <<EOF || die "could not create the probe Environment $probe"
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $probe}
spec: {type: preview, domain: $probe.example.test}
EOF
  sleep 4
  local touched
  # A finalizer, or a field written by anyone but this script (the CRDs default
  # an absent status, so a status alone says nothing).
  touched=$(k get environment.paved.dev "$probe" --show-managed-fields -o json 2>/dev/null \
    | jq -r '[(.metadata.finalizers // [])[], (.metadata.managedFields // [] | .[] | select(.manager != "chart-e2e") | .manager)] | join(" ")' || true)
  if [ -n "$touched" ]; then
    echo "  probe $probe was reconciled; its field managers: $(k get environment.paved.dev "$probe" --show-managed-fields \
      -o jsonpath='{range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource} {end}' 2>/dev/null)" >&2
  fi
  delete_environment "$probe"
  [ -n "$touched" ]
}
# The probe needs the CRDs (a fresh cluster has none yet); the release adopts them below.
install_crds "$root/crds" >/dev/null 2>&1
if another_controller_active; then
  die "another Paved controller is running against this cluster (it reconciled a probe Environment): stop it first"
fi

# Objects of the release that already exist are adopted by it: the CRDs
# (e2e/run.sh applies crds/) and the user ClusterRoles and the catalog reader's
# binding (the e2e tests apply config/rbac/user-roles.yaml when they are missing).
adopt() { # kind name
  if k get "$1" "$2" >/dev/null 2>&1; then
    k label "$1" "$2" app.kubernetes.io/managed-by=Helm --overwrite >/dev/null
    k annotate "$1" "$2" meta.helm.sh/release-name="$release" meta.helm.sh/release-namespace="$release_ns" --overwrite >/dev/null
  fi
}
for crd in environments.paved.dev applications.paved.dev services.paved.dev; do adopt crd "$crd"; done
user_roles_existed=false
k get clusterrole paved-developer >/dev/null 2>&1 && user_roles_existed=true
for role in paved-developer paved-viewer paved-catalog-reader; do adopt clusterrole "$role"; done
adopt clusterrolebinding paved-catalog-reader
if "$HELM" install "$release" "$chart" -n "$release_ns" --create-namespace --wait --timeout 120s >"$work/install.log" 2>&1; then
  pass "helm install (Deployment Available with 2 replicas)"
else
  cat "$work/install.log" >&2; die "helm install"
fi
available=$(k -n "$release_ns" get deployment "$release" -o jsonpath='{.status.availableReplicas}')
[ "$available" = 2 ] && pass "2 controller replicas available" || fail "available replicas: '$available', want 2"
keep=$(k get crd services.paved.dev -o jsonpath='{.metadata.annotations.helm\.sh/resource-policy}')
[ "$keep" = keep ] && pass "CRDs carry helm.sh/resource-policy: keep" || fail "CRD resource-policy is '$keep'"

pod_json=$(k -n "$release_ns" get deployment "$release" -o json)
check_pod() { # description jq-filter
  if jq -e "$2" >/dev/null <<<"$pod_json"; then pass "pod: $1"; else fail "pod: $1"; fi
}
check_pod "runAsNonRoot" '.spec.template.spec.securityContext.runAsNonRoot == true and .spec.template.spec.containers[0].securityContext.runAsNonRoot == true'
check_pod "readOnlyRootFilesystem" '.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem == true'
check_pod "allowPrivilegeEscalation false" '.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation == false'
check_pod "capabilities drop ALL" '.spec.template.spec.containers[0].securityContext.capabilities.drop == ["ALL"]'
check_pod "seccomp RuntimeDefault" '.spec.template.spec.containers[0].securityContext.seccompProfile.type == "RuntimeDefault"'
check_pod "resources set" '.spec.template.spec.containers[0].resources.requests.cpu != null and .spec.template.spec.containers[0].resources.limits.memory != null'
check_pod "probes on /healthz and /readyz" '.spec.template.spec.containers[0].livenessProbe.httpGet.path == "/healthz" and .spec.template.spec.containers[0].readinessProbe.httpGet.path == "/readyz"'
check_pod "recommended labels" '.metadata.labels["app.kubernetes.io/name"] == "paved" and .metadata.labels["app.kubernetes.io/instance"] != null and .metadata.labels["app.kubernetes.io/version"] != null and .metadata.labels["app.kubernetes.io/managed-by"] == "Helm"'
# The restricted Pod Security Standard, as the API server's PodSecurity admission
# judges it: a Pod made of the Deployment's template passes a server-side dry run
# in a namespace that enforces `restricted`, and a privileged one does not.
k label namespace "$release_ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
psa_pod() { jq --arg ns "$release_ns" '{apiVersion: "v1", kind: "Pod", metadata: {name: "psa-check", namespace: $ns}, spec: .spec.template.spec}' <<<"$pod_json"; }
if psa_pod | k create --dry-run=server -f - >"$work/psa.log" 2>&1; then
  pass "the controller pod is admitted under pod-security.kubernetes.io/enforce=restricted"
else
  cat "$work/psa.log" >&2; fail "the controller pod is refused under pod-security restricted"
fi
if psa_pod | jq '.spec.containers[0].securityContext.allowPrivilegeEscalation = true' | k create --dry-run=server -f - >/dev/null 2>&1; then
  fail "PodSecurity admission accepted a pod that escalates privileges (the check above proves nothing)"
else
  pass "PodSecurity admission refuses the same pod with allowPrivilegeEscalation: true (control)"
fi

# The catalog: by default every authenticated user lists Environments, and
# nothing else comes with it.
catalog_user=(--as "catalog-user-$$" --as-group "some-team-$$")
if [ "$(k auth can-i list environments.paved.dev "${catalog_user[@]}" 2>/dev/null)" = yes ] \
  && [ "$(k auth can-i get environments.paved.dev/any "${catalog_user[@]}" 2>/dev/null)" = yes ]; then
  pass "any authenticated user may list and get Environments (paved-catalog-reader)"
else
  fail "an authenticated user cannot list Environments"
fi
for denied in "list applications.paved.dev -A" "list services.paved.dev -A" "create environments.paved.dev" "update environments.paved.dev/any"; do
  # shellcheck disable=SC2086
  if [ "$(k auth can-i $denied "${catalog_user[@]}" 2>/dev/null)" = no ]; then
    pass "the catalog reader alone may not $denied"
  else
    fail "the catalog reader alone may $denied"
  fi
done

# The upgrade also unbinds the catalog reader: step 4 and 5 prove the
# controller's own rules, which a grant to every authenticated user (the
# controller's ServiceAccount included) would otherwise hide.
if "$HELM" upgrade "$release" "$chart" -n "$release_ns" --reuse-values --set replicaCount=1 \
  --set metrics.serviceMonitor.enabled=false --set rbac.portalReader.enabled=true \
  --set-json 'rbac.catalogReader.subjects=[]' \
  --wait --timeout 120s >"$work/upgrade.log" 2>&1; then
  pass "helm upgrade (replicaCount=1, portal reader on, catalog reader unbound)"
else
  cat "$work/upgrade.log" >&2; fail "helm upgrade"
fi
if k get clusterrolebinding paved-catalog-reader >/dev/null 2>&1; then
  fail "rbac.catalogReader.subjects=[] left the ClusterRoleBinding paved-catalog-reader"
else
  pass "rbac.catalogReader.subjects=[] removes the ClusterRoleBinding paved-catalog-reader"
fi
k get clusterrole "$release-portal-reader" >/dev/null 2>&1 && pass "portal-reader ClusterRole created on upgrade" || fail "portal-reader ClusterRole missing"
for role in paved-developer paved-viewer paved-catalog-reader; do
  k get clusterrole "$role" >/dev/null 2>&1 && pass "ClusterRole $role" || fail "ClusterRole $role missing"
done
# Aggregation: the built-in edit and view roles now carry Paved's kinds.
wait_for "edit aggregates paved-developer" bash -c "'$KUBECTL' get clusterrole edit -o json | jq -e '.rules[] | select(.apiGroups == [\"paved.dev\"]) | select(.verbs | index(\"create\"))'" \
  && pass "edit aggregates paved-developer" || fail "edit does not aggregate paved-developer"
wait_for "view aggregates paved-viewer" bash -c "'$KUBECTL' get clusterrole view -o json | jq -e '.rules[] | select(.apiGroups == [\"paved.dev\"])'" \
  && pass "view aggregates paved-viewer" || fail "view does not aggregate paved-viewer"
if k get clusterrole "$release" -o json | jq -e '[.rules[] | (.verbs + .resources + .apiGroups)[]] | index("*")' >/dev/null; then
  fail "the controller's ClusterRole has a wildcard"
else
  pass "the controller's ClusterRole has no wildcard"
fi

# --- 4. the controller as the chart's ServiceAccount -------------------------------
cargo build --quiet --bin paved --manifest-path "$root/Cargo.toml"
# A copy: every variant must run the same binary, even if the checkout is rebuilt meanwhile.
paved_bin=$work/paved
cp "$TARGET_DIR/debug/paved" "$paved_bin"
impersonating=$work/kubeconfig-as-sa.json
k config view --raw --minify --flatten -o json | jq \
  --arg user "system:serviceaccount:$release_ns:$sa" --arg ns_group "system:serviceaccounts:$release_ns" \
  '.users[0].user += {"as": $user, "as-groups": ["system:serviceaccounts", $ns_group, "system:authenticated"]}' \
  > "$impersonating"
if KUBECONFIG=$impersonating "$KUBECTL" auth whoami -o jsonpath='{.status.userInfo.username}' 2>/dev/null | grep -qx "system:serviceaccount:$release_ns:$sa"; then
  pass "kubeconfig impersonates system:serviceaccount:$release_ns:$sa"
else
  die "impersonation does not work"
fi

run=0
start_controller() { # log-file
  k -n "$release_ns" delete lease "$lease" --ignore-not-found >/dev/null 2>&1 || true
  KUBECONFIG=$impersonating RUST_LOG=info,paved=debug,kube_runtime=debug "$paved_bin" run \
    --usage-interval 5 --listen "127.0.0.1:$port" --lease-namespace "$release_ns" --lease-name "$lease" \
    --lease-duration 3 --renew-deadline 2 --retry-period 0.5 --identity "chart-e2e-$run" >"$1" 2>&1 &
  controller_pid=$!
  # Ready within 10 s, or (step 5) refused the removed rule and still not ready
  # PAVED_CHART_GRACE seconds later.
  local deadline=$((SECONDS + 10)) refused=false
  until curl -fsS --max-time 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$controller_pid" 2>/dev/null || return 1
    [ $SECONDS -ge $deadline ] && return 1
    if ! $refused && refused_since_mark; then
      refused=true
      [ $((SECONDS + grace_s)) -lt $deadline ] && deadline=$((SECONDS + grace_s))
    fi
    sleep 0.25
  done
  mark_log
}

# One field (a jq path) of an object; a string as it is, anything else as JSON.
field() { # kind namespace name jq-path
  get_json "$1" "$2" "$3" | jq -r "$4 | if type == \"string\" then . else tojson end" 2>/dev/null
}
field_is() { [ "$(field "$1" "$2" "$3" "$4")" = "$5" ]; } # kind namespace name jq-path expected
exists() { get_json "$@" >/dev/null; }                       # kind namespace name
absent() { # kind namespace name: the API server answers 404
  local path; path=$(api_path "$@") || return 1
  [ "$(api -o /dev/null -w '%{http_code}' "$path" 2>/dev/null)" = 404 ]
}
condition_is() { # kind name namespace type status
  field_is "$1" "$3" "$2" ".status.conditions // [] | map(select(.type == \"$4\"))[0].status // \"\"" "$5"
}
# Deleted, or on its way out (a namespace's deletion takes the controller-manager a while).
gone_or_going() { absent "$@" || [ "$(field "$1" "$2" "$3" '.metadata.deletionTimestamp // ""')" != "" ]; }
config_hash() { field deployment "$1" conf '.spec.template.metadata.annotations["paved.dev/config-hash"] // ""'; }
hash_differs() { local now; now=$(config_hash "$1"); [ -n "$now" ] && [ "$now" != "$2" ]; }
# The Deployment `conf` did not change for 3 s: nothing of its own wakes the controller.
conf_quiet() {
  local rv; rv=$(field deployment "$1" conf .metadata.resourceVersion)
  sleep 3
  [ -n "$rv" ] && [ "$(field deployment "$1" conf .metadata.resourceVersion)" = "$rv" ]
}
event_count() { # namespace object reason -> series count (1 when created once)
  get_json event "$1" "" | jq -r --arg o "$2" --arg r "$3" \
    '[.items[] | select(.regarding.name == $o and .reason == $r)][0] | if . == null then 0 else (.series.count // 1) end'
}
event_count_at_least() { [ "$(event_count "$1" "$2" "$3")" -ge "$4" ]; }
leading() { curl -fsS --max-time 1 "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -qx 'paved_leader 1'; }

# Environments as a product (issue 4): a preview of $1 with access and
# guardrails. Runs inside scenarios() and uses its try, apply and failed_step.
environment_scenarios() { # base-environment
  local base=$1 pr=$1-pr
  created_envs+=("$pr")
  apply <<EOF || return 1
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: docs, namespace: $base}
spec: {owner: team-docs}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: extra, namespace: $base}
spec: {application: docs, image: registry.example.test/extra:1, replicas: 1}
---
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $pr}
spec:
  type: preview
  domain: $pr.example.test
  cloneFrom: {environment: $base}
  access: [{group: team-a, role: developer}]
  guardrails:
    quota: {pods: "50"}
    defaults: {resources: {requests: {cpu: 50m}}}
    networkIsolation: true
EOF
  try "preview -> copy of the base's Application" exists application.paved.dev "$pr" docs || return 1
  try "preview -> copy of the base's Service" exists service.paved.dev "$pr" web || return 1
  try "access -> RoleBinding" exists rolebinding "$pr" paved-developer || return 1
  try "guardrails -> ResourceQuota" exists resourcequota "$pr" paved-quota || return 1
  try "guardrails -> LimitRange" exists limitrange "$pr" paved-defaults || return 1
  try "guardrails -> NetworkPolicy" exists networkpolicy "$pr" paved-isolation || return 1

  k -n "$base" patch application.paved.dev docs --type merge -p '{"spec":{"description":"changed"}}' >/dev/null
  try "preview Application follows the base" field_is application.paved.dev "$pr" docs .spec.description changed || return 1
  k -n "$base" patch service.paved.dev web --type merge -p '{"spec":{"image":"registry.example.test/web:2"}}' >/dev/null
  try "preview Service follows the base" field_is service.paved.dev "$pr" web .spec.image registry.example.test/web:2 || return 1
  k patch environment.paved.dev "$pr" --type merge \
    -p '{"spec":{"access":[{"group":"team-b","role":"developer"}],"guardrails":{"quota":{"pods":"60"},"defaults":{"resources":{"requests":{"cpu":"60m"}}}}}}' >/dev/null
  try "RoleBinding follows access" field_is rolebinding "$pr" paved-developer '.subjects[0].name' team-b || return 1
  try "ResourceQuota follows guardrails" field_is resourcequota "$pr" paved-quota .spec.hard.pods 60 || return 1
  try "LimitRange follows guardrails" field_is limitrange "$pr" paved-defaults '.spec.limits[0].defaultRequest.cpu' 60m || return 1
  k -n "$pr" patch networkpolicy paved-isolation --type merge -p '{"spec":{"policyTypes":["Ingress","Egress"]}}' >/dev/null
  try "NetworkPolicy repaired after a hand edit" field_is networkpolicy "$pr" paved-isolation .spec.policyTypes '["Ingress"]' || return 1

  k -n "$base" delete service.paved.dev extra >/dev/null
  try "base Service deleted -> copy deleted" absent service.paved.dev "$pr" extra || return 1
  k -n "$base" delete application.paved.dev docs >/dev/null
  try "base Application deleted -> copy deleted" absent application.paved.dev "$pr" docs || return 1
  k patch environment.paved.dev "$pr" --type merge -p '{"spec":{"access":null,"guardrails":null}}' >/dev/null
  try "access removed -> RoleBinding deleted" absent rolebinding "$pr" paved-developer || return 1
  try "quota removed -> ResourceQuota deleted" absent resourcequota "$pr" paved-quota || return 1
  try "defaults removed -> LimitRange keeps only the memory defaults" field_is limitrange "$pr" paved-defaults '.spec.limits[0].defaultRequest' '{"memory":"128Mi"}' || return 1
  try "LimitRange keeps the default memory limit" field_is limitrange "$pr" paved-defaults '.spec.limits[0].default' '{"memory":"512Mi"}' || return 1
  try "isolation removed -> NetworkPolicy deleted" absent networkpolicy "$pr" paved-isolation || return 1
  k delete environment.paved.dev "$pr" --wait=false >/dev/null
  return 0
}

# The core scenarios; each step names what it needs. Stops at the first failing
# step (one is enough to show a missing rule) and prints it. The steps that most
# rules need come first (step 5 stops at a rule's first failing step).
scenarios() { # environment-name
  local env=$1 domain=$1.example.test step=""
  failed_step="applying the manifests"
  apply() { k apply --server-side --field-manager chart-e2e -f - >/dev/null; }
  try() {
    step=$1; shift
    local t0=$SECONDS
    wait_for "$step" "$@" || { failed_step=$step; return 1; }
    # PAVED_CHART_TRACE=1: how long each step took.
    [ "${PAVED_CHART_TRACE:-}" != 1 ] || echo "  $(stamp) $((SECONDS - t0))s  $step" >&2
  }

  # The Environment whose ttl passes comes first: its minute (the schema's
  # least) runs while the rest goes on. Another one is deleted early on.
  created_envs+=("$env" "$env-ttl" "$env-gone")
  apply <<EOF || return 1
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $env-ttl}
spec: {domain: $env-ttl.example.test, lifecycle: {ttl: 1m}}
---
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $env-gone}
spec: {domain: $env-gone.example.test}
---
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $env}
spec: {type: production, domain: $domain}
EOF
  try "Environment -> labelled namespace" field_is namespace "" "$env" '.metadata.labels["paved.dev/environment"]' "$env" || return 1
  try "Environment Ready" condition_is environment.paved.dev "$env" "" Ready True || return 1

  apply <<EOF || return 1
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: $env}
stringData: {password: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: $env}
data: {level: info}
---
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: $env}
spec: {owner: team-shop, lifecycle: production}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: $env}
spec:
  application: shop
  image: registry.example.test/web:1
  ports: [{name: http, port: 8080}]
  expose: {}
  autoscaling: {min: 1, max: 3}
  env:
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: cfg, key: level}}}
EOF
  try "Service -> Deployment" exists deployment "$env" web || return 1
  try "Service -> core Service" exists service "$env" web || return 1
  try "Service -> Ingress" exists ingress "$env" web || return 1
  try "Service -> HPA" exists horizontalpodautoscaler "$env" web || return 1
  try "production Service -> PodDisruptionBudget" exists poddisruptionbudget "$env" web || return 1
  try "Service Ready" condition_is service.paved.dev web "$env" Ready True || return 1
  try "Application Ready" condition_is application.paved.dev shop "$env" Ready True || return 1
  # The local cluster serves metrics.k8s.io (metrics-server fed by kwok): the
  # usage poller's cluster-wide list of PodMetrics reaches the Service's status.
  try "Service -> usage from metrics.k8s.io" field_is service.paved.dev "$env" web '.status.usage.available' true || return 1

  environment_scenarios "$env" || return 1

  # Deleting an Environment (the ttl below does too, but a minute later).
  try "another Environment Ready" condition_is environment.paved.dev "$env-gone" "" Ready True || return 1
  k delete environment.paved.dev "$env-gone" --wait=false >/dev/null
  try "an Environment deleted (finalizer removed)" absent environment.paved.dev "" "$env-gone" || return 1
  try "its namespace deleted" gone_or_going namespace "" "$env-gone" || return 1

  k -n "$env" patch service.paved.dev web --type merge \
    -p '{"spec":{"expose":null,"autoscaling":null,"env":null,"ports":null,"replicas":1}}' >/dev/null
  try "no longer exposed -> Ingress deleted" absent ingress "$env" web || return 1
  try "no longer autoscaled -> HPA deleted" absent horizontalpodautoscaler "$env" web || return 1
  try "no ports -> core Service deleted" absent service "$env" web || return 1
  try "one replica -> PodDisruptionBudget deleted" absent poddisruptionbudget "$env" web || return 1

  apply <<EOF || return 1
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: flaky, namespace: $env}
spec: {application: shop, image: registry.example.test/flaky:1, ports: [{name: http, port: 80}], expose: {host: flaky.elsewhere.test}}
EOF
  try "a problem becomes an Event" event_count_at_least "$env" flaky HostOutsideDomain 1 || return 1
  k -n "$env" patch service.paved.dev flaky --type merge -p "{\"spec\":{\"expose\":{\"host\":\"flaky.$domain\"}}}" >/dev/null
  try "fixed host -> Ready" condition_is service.paved.dev flaky "$env" Ready True || return 1
  # Gateway API: the Environment switches to a Gateway (nobody serves it here:
  # the route is enough), then back to Ingresses.
  k patch environment.paved.dev "$env" --type merge -p "{\"spec\":{\"gateway\":{\"parentRefs\":[{\"namespace\":\"$env\",\"name\":\"edge\"}]}}}" >/dev/null
  try "gateway Environment -> HTTPRoute" exists httproute "$env" flaky || return 1
  k patch environment.paved.dev "$env" --type merge -p '{"spec":{"gateway":null}}' >/dev/null
  try "ingress Environment -> HTTPRoute deleted" absent httproute "$env" flaky || return 1
  k -n "$env" patch service.paved.dev flaky --type merge -p '{"spec":{"expose":{"host":"flaky.elsewhere.test"}}}' >/dev/null
  try "the same problem again is counted on its Event" event_count_at_least "$env" flaky HostOutsideDomain 2 || return 1

  try "still leading after the lease duration (renewals)" leading || return 1

  # Config changes roll a Service of its own, `conf`: one replica, no HPA, no PDB,
  # not exposed, so that nothing but its Deployment could wake the controller
  # (an HPA or a PDB gets status updates from the controller-manager at any time).
  # Each change starts once that Deployment has been still for 3 s: then only the
  # watch of the Secret or ConfigMap itself can wake the controller in time.
  # Late, as its quiet periods take time and the rules it needs are needed earlier.
  apply <<EOF || return 1
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: conf, namespace: $env}
spec:
  application: shop
  image: registry.example.test/conf:1
  replicas: 1
  env:
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: cfg, key: level}}}
EOF
  local before
  try "config Service Ready" condition_is service.paved.dev conf "$env" Ready True || return 1
  try "config Service quiet" conf_quiet "$env" || return 1
  before=$(config_hash "$env")
  k -n "$env" patch secret db --type merge -p '{"stringData":{"password":"two"}}' >/dev/null
  try "Secret change rolls the pods (config hash)" hash_differs "$env" "$before" || return 1
  try "config Service Ready again" condition_is service.paved.dev conf "$env" Ready True || return 1
  try "config Service quiet again" conf_quiet "$env" || return 1
  before=$(config_hash "$env")
  k -n "$env" patch configmap cfg --type merge -p '{"data":{"level":"debug"}}' >/dev/null
  try "ConfigMap change rolls the pods (config hash)" hash_differs "$env" "$before" || return 1

  # Most of the ttl's minute has passed by now: up to 90 s for this step alone.
  timeout_s=90 try "an Environment whose ttl passed deletes itself" absent environment.paved.dev "" "$env-ttl" || return 1
  k delete environment.paved.dev "$env" --wait=false >/dev/null
  try "the production Environment deleted (finalizer removed)" absent environment.paved.dev "" "$env" || return 1
  try "its namespace deleted too" gone_or_going namespace "" "$env" || return 1
  failed_step=""
  return 0
}

log_file=$work/controller-full.log
if start_controller "$log_file"; then
  if scenarios "chart-full-$$"; then
    stop_controller
    if another_controller_active; then
      fail "core scenarios passed, but another Paved controller was acting on the cluster: inconclusive, run again alone"
    else
      pass "core scenarios with the chart's RBAC (sufficient)"
    fi
  else
    fail "core scenarios with the chart's RBAC: '$failed_step' failed"
    tail -n 20 "$log_file" | cut -c1-400 >&2
  fi
  refused=$(grep -c 'forbidden' "$log_file" || true)
  if [ "$refused" = 0 ]; then
    pass "the controller was never refused anything"
  else
    fail "$refused forbidden responses in the controller log, e.g.:"
    grep -o 'cannot [a-z]* resource [^:]*' "$log_file" | sort -u | head -n 5 >&2
  fi
else
  tail -n 20 "$log_file" >&2; fail "the controller did not start"
fi
stop_controller
for suffix in "" -pr -ttl -gone; do delete_environment "chart-full-$$$suffix"; done

$quick && exit 0

# --- 5. minimality: remove one rule at a time ---------------------------------------
# Without any one rule, some scenario step must fail and the controller's log must
# show the API server refusing exactly that rule. RBAC is evaluated on every
# request, so for a rule without list/watch one controller keeps running and the
# rule is removed under it (then put back); a rule with list or watch (checked when
# a watch starts) and the leader-election rules (used from the start) get a
# controller started without them. Each variant runs the scenarios in a fresh
# Environment and stops at the first failing step; a step that is still pending
# when the refusal of the removed rule is logged fails PAVED_CHART_GRACE seconds
# later (the rule stays removed meanwhile, so no retry can succeed), not after the
# full timeout. A rule that a running controller does without is tried again with
# a controller started without it before it is called unneeded.
original_cluster_role=$work/clusterrole.json
original_role=$work/role.json
k get clusterrole "$release" -o json | jq 'del(.metadata.resourceVersion, .metadata.uid, .metadata.creationTimestamp, .metadata.managedFields)' > "$original_cluster_role"
k -n "$release_ns" get role "$release-leader-election" -o json | jq 'del(.metadata.resourceVersion, .metadata.uid, .metadata.creationTimestamp, .metadata.managedFields)' > "$original_role"

# The API server's words for refusing rule $2 of $1, as an extended regular
# expression (quoted plainly or JSON-escaped inside an error's Debug output).
# A rule's parts, read once (one jq per rule, not one per part):
# verbs;resources;group;first resource name;kind of the role (verbs and
# resources joined by |).
rule_parts() { # file index
  jq -r --argjson i "$2" '.kind as $k | .rules[$i] | [(.verbs | join("|")), (.resources | join("|")), .apiGroups[0], (.resourceNames[0] // ""), $k] | join(";")' "$1"
}
refusal_regex() { # file index
  local q='\\?"' verbs resources group
  IFS=';' read -r verbs resources group _ _ < <(rule_parts "$1" "$2")
  printf 'cannot (%s) resource %s(%s)%s in API group %s%s%s' "$verbs" "$q" "$resources" "$q" "$q" "${group//./\\.}" "$q"
  # Without `bind`, granting a role is refused as an escalation instead.
  [ "$verbs" = bind ] && printf '|attempting to grant RBAC permissions not currently held'
  return 0
}
# Whether the ServiceAccount may use rule $2 of $1 (its first verb on its first
# resource and name), as the API server's authorizer answers now.
sa_may() { # file index
  local verb resource group name kind ns_flag=()
  [ -n "${parts_cache[$1:$2]:-}" ] || parts_cache[$1:$2]=$(rule_parts "$1" "$2")
  IFS=';' read -r verb resource group name kind <<<"${parts_cache[$1:$2]}"
  verb=${verb%%|*} resource=${resource%%|*}
  local ns=""; [ "$kind" = Role ] && ns=$release_ns
  local sub=""; [[ $resource == */* ]] && sub=${resource#*/}
  jq -n --arg user "system:serviceaccount:$release_ns:$sa" --arg ns_group "system:serviceaccounts:$release_ns" \
    --arg verb "$verb" --arg group "$group" --arg resource "${resource%%/*}" --arg sub "$sub" --arg name "$name" --arg ns "$ns" \
    '{apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec: {user: $user,
      groups: ["system:serviceaccounts", $ns_group, "system:authenticated"],
      resourceAttributes: {verb: $verb, group: $group, resource: $resource, subresource: $sub, name: $name, namespace: $ns}}}' \
    | api -f -X POST -H 'Content-Type: application/json' --data-binary @- apis/authorization.k8s.io/v1/subjectaccessreviews \
    | jq -e '.status.allowed == true' >/dev/null
}
declare -A parts_cache=()
# Waits until the authorizer answers $3 (yes or no) for rule $2 of $1.
wait_authorizer() { # file index yes|no
  local deadline=$((SECONDS + 10))
  while :; do
    if sa_may "$1" "$2"; then [ "$3" = yes ] && return 0; else [ "$3" = no ] && return 0; fi
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

live_log=$work/controller-live.log
start_live_controller() {
  refusal_re="" refusal_log=""
  run=$((run + 1))
  start_controller "$live_log" || { tail -n 20 "$live_log" >&2; die "the controller with every rule did not start"; }
}

# One variant: rule $2 of $1 removed; $3 is live (the running controller) or
# restart (a controller started without the rule). Sets failed_step and refusal.
# Replaces a role (ClusterRole, or the Role of the release's namespace) with the JSON on stdin.
put_role() {
  local body path
  body=$(cat)
  case $(jq -r .kind <<<"$body") in
    ClusterRole) path=apis/rbac.authorization.k8s.io/v1/clusterroles/$(jq -r .metadata.name <<<"$body") ;;
    *) path=apis/rbac.authorization.k8s.io/v1/namespaces/$release_ns/roles/$(jq -r .metadata.name <<<"$body") ;;
  esac
  api -f -X PUT -H 'Content-Type: application/json' --data-binary @- "$path" <<<"$body" >/dev/null
}
# The role of $1 without its rule $2 (empty: none) nor the rule removed in the
# background (below), to replace the role with.
background=""
without() { # file index
  local drop=$2
  if [ -n "$background" ] && [ "${background% *}" = "$1" ]; then drop=$drop${drop:+,}${background#* }; fi
  if [ -n "$drop" ]; then jq "del(.rules[$drop])" "$1"; else cat "$1"; fi
}

variant() { # file index live|restart
  local file=$1 i=$2 mode=$3 env
  run=$((run + 1)); env=chart-m$run-$$
  without "$file" "$i" | put_role
  failed_step="" refusal="" refusal_log_of_variant=/dev/null
  if ! wait_authorizer "$file" "$i" no; then
    failed_step="(none: the ServiceAccount may still do it, another rule grants it too)"
  else
    if [ "$mode" = live ]; then
      log=$live_log
    else
      log=$work/controller-$run.log; : >"$log"
    fi
    refusal_re=$(refusal_regex "$file" "$i") refusal_log=$log
    mark_log
    local variant_start=$refusal_mark
    if [ "$mode" = restart ] && ! start_controller "$log"; then
      failed_step="the controller becomes ready"
    else
      scenarios "$env" || true
    fi
    # The refusal counts if it is this variant's: a restarted controller's log is
    # its own; in the live log, it names this variant's Environment or namespace.
    refusal=$(tail -c +$((variant_start + 1)) "$log" | grep -E -- "$refusal_re" | { [ "$mode" = live ] && grep -F -- "$env" || cat; } \
      | grep -m1 -oE -- "$refusal_re" | tr -d '\\' || true)
    refusal_re="" refusal_log="" refusal_log_of_variant=$log
    [ "$mode" = restart ] && stop_controller
  fi
  without "$file" "" | put_role
  restored="$file $i"
  # The next live variant removes another rule of the same role: the authorizer
  # refusing that one shows it has this version, with this rule back. A
  # controller started without a rule must find every other one in place.
  if [ "$mode" = restart ]; then
    wait_authorizer "$file" "$i" yes || die "rule $i of $(jq -r .metadata.name "$file") did not come back"
  fi
  # In the background: the next variant uses other names.
  { delete_environment "$env"; delete_environment "$env-pr"; delete_environment "$env-ttl"; delete_environment "$env-gone"; } &
  return 0
}

restart_later=() restored=""
minimality() { # file index live|restart
  variant "$1" "$2" "$3"
  report "$@"
}
# The verdict on a variant (failed_step, refusal, refusal_log_of_variant).
report() { # file index live|restart
  local file=$1 i=$2 mode=$3 rule
  rule=$(jq -c ".rules[$i]" "$file")
  if [ "$mode" = live ] && { [ -z "$failed_step" ] || [ -z "$refusal" ]; }; then
    # Perhaps needed only when the controller starts, or the step failed for
    # another reason: try that later with a controller started without it.
    restart_later+=("$file $i"); return 0
  fi
  if [ -z "$failed_step" ]; then
    if another_controller_active; then
      fail "without $rule every scenario passed, but another Paved controller was acting on the cluster: inconclusive, run again alone"
    else
      fail "rule $rule is not needed: every scenario passed without it"
    fi
  elif [ -n "$refusal" ]; then
    pass "without $rule ($mode): '$failed_step' fails; refused: $refusal"
  else
    fail "without $rule ($mode): '$failed_step' failed, but the log shows no refusal of it"
    tail -n 15 "$refusal_log_of_variant" | cut -c1-400 >&2
  fi
}

timeout_s=$variant_timeout_s
# PAVED_CHART_RULES (a regular expression) limits the proof to the rules whose
# JSON matches it, to re-check a few rules quickly; CI checks them all.
selected() { [ -z "${PAVED_CHART_RULES:-}" ] || jq -c ".rules[$2]" "$1" | grep -Eq -- "$PAVED_CHART_RULES"; }
needs_start() { [ "$(jq -r .kind "$1")" = Role ] || jq -e ".rules[$2].verbs | index(\"list\") or index(\"watch\")" "$1" >/dev/null; }
start_live_controller

# Deleting an Environment whose ttl passed: the ttl is a minute at least (the
# schema), too long to wait for one rule alone. That rule is removed in the
# background while the other live variants run (none of them gets as far as a
# ttl: each stops at the step its own rule fails, and one that does not is tried
# again later with every other rule in place), and an Environment created with
# every rule must still be there, refused its deletion, once its minute is over.
ttl_rule=""
for i in $(seq 0 $(($(jq '.rules | length' "$original_cluster_role") - 1))); do
  if selected "$original_cluster_role" "$i" && jq -e ".rules[$i] | .apiGroups == [\"paved.dev\"] and .resources == [\"environments\"] and .verbs == [\"delete\"]" "$original_cluster_role" >/dev/null; then
    ttl_rule=$i
  fi
done
if [ -n "$ttl_rule" ]; then
  ttl_env=chart-ttl-$$
  created_envs+=("$ttl_env")
  k apply --server-side --field-manager chart-e2e -f - >/dev/null <<EOF
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: $ttl_env}
spec: {domain: $ttl_env.example.test, lifecycle: {ttl: 1m}}
EOF
  ttl_created=$SECONDS
  wait_for "Environment $ttl_env Ready" condition_is environment.paved.dev "$ttl_env" "" Ready True || die "Environment $ttl_env did not become Ready"
  background="$original_cluster_role $ttl_rule"
  without "$original_cluster_role" "" | put_role
  wait_authorizer "$original_cluster_role" "$ttl_rule" no || die "removing rule $ttl_rule of the ClusterRole does not take effect"
  ttl_mark=$(stat -c %s "$live_log")
fi

for file in "$original_cluster_role" "$original_role"; do
  for i in $(seq 0 $(($(jq '.rules | length' "$file") - 1))); do
    selected "$file" "$i" || continue
    [ "$file $i" = "$background" ] && continue
    if needs_start "$file" "$i"; then restart_later+=("$file $i"); else minimality "$file" "$i" live; fi
  done
  # Every rule back before the next role's variants (see variant).
  if [ -n "$restored" ]; then
    # shellcheck disable=SC2086
    wait_authorizer $restored yes || die "rule $restored did not come back"
  fi
done
if [ -n "$ttl_rule" ]; then
  refusal_re=$(refusal_regex "$original_cluster_role" "$ttl_rule") refusal_log=$live_log refusal_mark=$ttl_mark
  failed_step="" refusal_log_of_variant=$live_log
  timeout_s=$((ttl_created + 90 - SECONDS))
  [ $timeout_s -gt $grace_s ] || timeout_s=$grace_s
  if ! wait_for "an Environment whose ttl passed deletes itself" absent environment.paved.dev "" "$ttl_env"; then
    failed_step="an Environment whose ttl passed deletes itself"
  fi
  refusal=$(tail -c +$((ttl_mark + 1)) "$live_log" | grep -E -- "$refusal_re" | grep -F -- "$ttl_env" \
    | grep -m1 -oE -- "$refusal_re" | tr -d '\\' || true)
  refusal_re="" refusal_log="" timeout_s=$variant_timeout_s background=""
  put_role <"$original_cluster_role"
  wait_authorizer "$original_cluster_role" "$ttl_rule" yes || die "rule $ttl_rule of the ClusterRole did not come back"
  report "$original_cluster_role" "$ttl_rule" live
  delete_environment "$ttl_env"
fi
stop_controller
for rule in "${restart_later[@]}"; do
  # shellcheck disable=SC2086
  minimality $rule restart
done
