#!/usr/bin/env bash
# Proves an upgrade from the previous release to this checkout, and back:
#
#   1. the previous release is the commit in e2e/upgrade-from (`<tag> <sha>`):
#      the tag when the clone has it, the commit otherwise; its controller is
#      built from `git archive` of that commit (cached by commit id), its chart
#      and CRDs come from the same tree;
#   2. its chart is installed and its controller (run as the chart's
#      ServiceAccount, as in e2e/chart.sh) converges Environments, Applications
#      and Services, a preview with access and guardrails included;
#   3. `helm upgrade` to this checkout's chart (CRDs included), then this
#      checkout's controller: no child is recreated or rewritten (resourceVersions
#      equal), no Deployment rolls (generation and ReplicaSets equal), the
#      objects' specs read back unchanged (a CRD that prunes a stored field fails
#      here), every object stays Ready, and a new Service converges;
#   4. the previous controller alone again, on this checkout's CRDs: it starts,
#      reads every object (no decode error) and keeps them Ready.
#
# A reason to let an upgrade change something (a new label on every Deployment,
# say) belongs in the release notes and in PAVED_UPGRADE_ALLOWED, a regular
# expression of `kind/namespace/name` lines allowed to differ in step 3.
#
# Usage: e2e/upgrade.sh. Knobs: PAVED_UPGRADE_PORT (controller metrics, 18096),
# PAVED_UPGRADE_TIMEOUT (seconds per wait, 60). Leaves the cluster running if it
# was; removes everything it created.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/e2e/cluster
source "$here/lib.sh"

timeout_s=${PAVED_UPGRADE_TIMEOUT:-60}
port=${PAVED_UPGRADE_PORT:-18096}
release=paved-upgrade-e2e
release_ns=paved-upgrade-e2e
sa=$release
lease=paved-controller

started=$SECONDS
stamp() { printf '%4ds' $((SECONDS - started)); }
failures=0 checks=0
pass() { checks=$((checks + 1)); printf 'PASS %s  %s\n' "$(stamp)" "$*"; }
fail() { checks=$((checks + 1)); printf 'FAIL %s  %s\n' "$(stamp)" "$*"; failures=$((failures + 1)); }
die() { fail "$@"; exit 1; }

# --- 1. the previous release ---------------------------------------------------
read -r prev_tag prev_sha < "$root/e2e/upgrade-from"
if git -C "$root" rev-parse -q --verify "refs/tags/$prev_tag^{commit}" >/dev/null; then
  prev=$(git -C "$root" rev-parse "refs/tags/$prev_tag^{commit}")
  [ "$prev" = "$prev_sha" ] || die "tag $prev_tag is $prev, but e2e/upgrade-from says $prev_sha: fix one of them"
elif git -C "$root" cat-file -e "$prev_sha^{commit}" 2>/dev/null; then
  prev=$prev_sha
else
  echo "upgrade: the previous release $prev_tag ($prev_sha, e2e/upgrade-from) is not in this clone: fetch its history (git fetch --unshallow) or its tag" >&2
  exit 1
fi

work=$(mktemp -d)
controller_pid=""
envs=(up-prod up-prod-pr)

stop_controller() {
  if [ -n "$controller_pid" ]; then
    kill "$controller_pid" 2>/dev/null || true
    wait "$controller_pid" 2>/dev/null || true
    controller_pid=""
  fi
}
cleanup() {
  local rc=$?
  stop_controller
  [ -n "${KUBECTL:-}" ] && for env in "${envs[@]}"; do
    k patch environment.paved.dev "$env" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    k delete environment.paved.dev "$env" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    k delete namespace "$env" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
  [ -n "${HELM:-}" ] && "$HELM" uninstall "$release" -n "$release_ns" --wait --timeout 60s >/dev/null 2>&1 || true
  [ -n "${KUBECTL:-}" ] && k delete namespace "$release_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if ${user_roles_existed:-false} && [ -f "$root/config/rbac/user-roles.yaml" ]; then
    k apply --server-side --force-conflicts -f "$root/config/rbac/user-roles.yaml" >/dev/null 2>&1 || true
  fi
  # The CRDs stay (helm.sh/resource-policy: keep): hand back this checkout's.
  if [ -n "${KUBECTL:-}" ]; then
    for crd in environments.paved.dev applications.paved.dev services.paved.dev; do
      k annotate crd "$crd" meta.helm.sh/release-name- meta.helm.sh/release-namespace- helm.sh/resource-policy- >/dev/null 2>&1 || true
      k label crd "$crd" app.kubernetes.io/managed-by- app.kubernetes.io/instance- app.kubernetes.io/name- \
        app.kubernetes.io/part-of- app.kubernetes.io/version- helm.sh/chart- >/dev/null 2>&1 || true
    done
    k apply --server-side --force-conflicts -f "$root/crds" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  if ! ${cluster_was_running:-true} && [ "${PAVED_KEEP_CLUSTER:-}" != 1 ]; then "$here/down.sh"; fi
  [ $failures -gt 0 ] && rc=1
  [ $rc -eq 0 ] && echo "upgrade: all $checks checks passed in $(stamp)" || echo "upgrade: $failures of $checks check(s) failed ($(stamp))"
  exit $rc
}
trap cleanup EXIT

# The previous controller, built once per commit and cached. It shares this
# checkout's CARGO_TARGET_DIR, so the dependencies both lock at the same versions
# are reused and only the crate itself is compiled. Cargo would take the two
# trees' crate for one (same name, same relative path) and judge it by file
# times, which `git archive` sets to the commit's: a profile setting of the
# crate alone gives the previous one its own build, and fresh file times make
# cargo compile it. Its binary lands on debug/paved, which is put back after.
old_src=$work/prev
mkdir -p "$old_src"
git -C "$root" archive "$prev" | tar -x -C "$old_src"
old_bin=$PAVED_CACHE/bin/paved-$prev/paved
if [ ! -x "$old_bin" ]; then
  built=$SECONDS
  find "$old_src" -type f -exec touch {} +
  head_bin=$TARGET_DIR/debug/paved
  [ -f "$head_bin" ] && cp -p "$head_bin" "$work/paved-head"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build --quiet --bin paved --manifest-path "$old_src/Cargo.toml" \
    --config 'profile.dev.package.paved.debug="line-tables-only"'
  mkdir -p "$(dirname "$old_bin")"
  cp "$TARGET_DIR/debug/paved" "$old_bin.tmp" && mv "$old_bin.tmp" "$old_bin"
  if [ -f "$work/paved-head" ]; then cp -p "$work/paved-head" "$head_bin"; else rm -f "$head_bin"; fi
  echo "  built the $prev_tag controller in $((SECONDS - built))s (cached as $old_bin)"
fi
cargo build --quiet --bin paved --manifest-path "$root/Cargo.toml"
new_bin=$work/paved-new
cp "$TARGET_DIR/debug/paved" "$new_bin"
pass "previous release $prev_tag is ${prev:0:12}; its controller is built"

use_cluster
"$here/build.sh" helm >&2
HELM=$(bin_path helm)
k() { "$KUBECTL" "$@"; }

# Polls `cmd...` until it succeeds or PAVED_UPGRADE_TIMEOUT passes.
wait_for() { # description cmd...
  local what=$1; shift
  local deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "  timed out after ${timeout_s}s: $what" >&2; return 1; fi
    sleep 0.5
  done
}

# --- 2. install the previous release ------------------------------------------------
# The objects of a release that already exist (CRDs, user roles) are adopted.
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
# The catalog reader is not bound, as in e2e/chart.sh: the controller works with its own rules.
chart_args=(-n "$release_ns" --set replicaCount=1 --set-json 'rbac.catalogReader.subjects=[]' --wait --timeout 120s)
if "$HELM" install "$release" "$old_src/charts/paved" --create-namespace "${chart_args[@]}" >"$work/install.log" 2>&1; then
  pass "helm install of the $prev_tag chart"
else
  cat "$work/install.log" >&2; die "helm install of the $prev_tag chart"
fi

impersonating=$work/kubeconfig-as-sa.json
k config view --raw --minify --flatten -o json | jq \
  --arg user "system:serviceaccount:$release_ns:$sa" --arg ns_group "system:serviceaccounts:$release_ns" \
  '.users[0].user += {"as": $user, "as-groups": ["system:serviceaccounts", $ns_group, "system:authenticated"]}' \
  > "$impersonating"
# One controller at a time, with the default Lease timings (a busy machine
# misses the short ones of e2e/chart.sh); the previous one's Lease is removed.
start_controller() { # binary log-file
  k -n "$release_ns" delete lease "$lease" --ignore-not-found >/dev/null 2>&1 || true
  KUBECONFIG=$impersonating RUST_LOG=info,paved=debug "$1" run \
    --listen "127.0.0.1:$port" --lease-namespace "$release_ns" --lease-name "$lease" >"$2" 2>&1 &
  controller_pid=$!
  wait_controller_ready "127.0.0.1:$port" "$controller_pid" 80
}
metric() { # name{labels}: its value, 0 when absent
  curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}
# The controller has reconciled every Service and Environment at least once.
reconciled_all() {
  local s e
  s=$(metric 'paved_reconciles_total{kind="Service"}'); e=$(metric 'paved_reconciles_total{kind="Environment"}')
  [ "${s%.*}" -ge "$(k get service.paved.dev -A --no-headers 2>/dev/null | wc -l)" ] \
    && [ "${e%.*}" -ge "$(k get environment.paved.dev --no-headers 2>/dev/null | wc -l)" ]
}

if start_controller "$old_bin" "$work/controller-old.log"; then
  pass "the $prev_tag controller runs as the chart's ServiceAccount"
else
  tail -n 20 "$work/controller-old.log" >&2; die "the $prev_tag controller did not start"
fi

k apply --server-side --field-manager upgrade-e2e -f - >/dev/null <<EOF
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: up-prod}
spec: {type: production, domain: up-prod.example.test}
EOF
wait_for "namespace up-prod" k get namespace up-prod || die "Environment up-prod: no namespace"
# The config Service web reads; a preview's copy reads its own namespace's (made below).
config() { # namespace
  k -n "$1" create secret generic db --from-literal=password=one >/dev/null
  k -n "$1" create configmap cfg --from-literal=level=info >/dev/null
}
config up-prod
k apply --server-side --field-manager upgrade-e2e -f - >/dev/null <<EOF
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: up-prod}
spec: {owner: team-shop, lifecycle: production}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: up-prod}
spec:
  application: shop
  image: registry.example.test/web:1
  ports: [{name: http, port: 8080}]
  expose: {}
  autoscaling: {min: 2, max: 4}
  env:
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: cfg, key: level}}}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: worker, namespace: up-prod}
spec: {application: shop, image: registry.example.test/worker:1, replicas: 1}
---
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: up-prod-pr}
spec:
  type: preview
  domain: up-prod-pr.example.test
  cloneFrom: {environment: up-prod}
  access: [{group: team-a, role: developer}]
  guardrails:
    quota: {pods: "50"}
    defaults: {resources: {requests: {cpu: 50m}}}
    networkIsolation: true
EOF
wait_for "namespace up-prod-pr" k get namespace up-prod-pr || die "Environment up-prod-pr: no namespace"
config up-prod-pr

ready() { # kind name [namespace]
  local ns=(); [ -n "${3:-}" ] && ns=(-n "$3")
  [ "$(k get "$1" "$2" "${ns[@]}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
# Every Paved object is Ready at its generation (status.observedGeneration).
all_ready() {
  k get environment.paved.dev,application.paved.dev,service.paved.dev -A -o json | jq -e '
    [.items[] | select((.metadata.name | startswith("up-")) or ((.metadata.namespace // "") | startswith("up-")))] as $mine
    | ($mine | length) > 0 and all($mine[]; (.status.conditions // [] | any(.type == "Ready" and .status == "True"))
        and ((.status.observedGeneration // .metadata.generation) == .metadata.generation))' >/dev/null
}
# Every object the two Environments should hold by now; prints the first one missing.
expected=("ready environment.paved.dev up-prod" "ready environment.paved.dev up-prod-pr"
  "k -n up-prod get ingress web" "k -n up-prod get hpa web" "k -n up-prod get pdb web"
  "k -n up-prod-pr get service.paved.dev web worker" "k -n up-prod-pr get deployment web worker"
  "k -n up-prod-pr get rolebinding paved-developer" "k -n up-prod-pr get resourcequota paved-quota"
  "k -n up-prod-pr get networkpolicy paved-isolation" "k -n up-prod-pr get limitrange paved-defaults")
missing() { local c; for c in "${expected[@]}"; do $c >/dev/null 2>&1 || { echo "$c"; return 0; }; done; return 1; }
expected_objects() { ! missing >/dev/null; }
if wait_for "the $prev_tag controller converges" expected_objects && wait_for "everything Ready" all_ready; then
  pass "the $prev_tag controller converged 2 Environments, their Applications and Services (preview copies, access and guardrails included)"
else
  echo "  missing: $(missing || echo nothing; )" >&2
  k get environment.paved.dev,application.paved.dev,service.paved.dev -A >&2 || true
  grep -E 'WARN|ERROR' "$work/controller-old.log" | tail -n 10 | cut -c1-300 >&2
  die "the $prev_tag controller did not converge"
fi

# What must not change: every object in the two namespaces (Paved's children,
# their ReplicaSets, the copies) and the namespaces: their uid (not recreated),
# generation (a Deployment's: not rolled), labels, annotations, owner references
# and spec, and Paved's field-manager entries with their times (any write by
# Paved that changes anything moves its time); every Paved object's spec and
# generation. A resourceVersion alone may move under a write that is not
# Paved's (the controller-manager's status of an HPA or a PDB): those are
# listed with their writer, and one moved by Paved fails.
kinds=deployments.apps,replicasets.apps,services,ingresses.networking.k8s.io,horizontalpodautoscalers.autoscaling,poddisruptionbudgets.policy,rolebindings.rbac.authorization.k8s.io,resourcequotas,limitranges,networkpolicies.networking.k8s.io
child_line='.items[] | select(.metadata.name != "kube-root-ca.crt") |
  "\(.kind)/\(.metadata.namespace // "")/\(.metadata.name) uid=\(.metadata.uid) gen=\(.metadata.generation // "-") paved=\(
    [.metadata.managedFields // [] | .[] | select(.manager == "paved")] | tojson) content=\(
    [.metadata.labels, .metadata.annotations, .metadata.ownerReferences, .spec] | tojson)"'
# resourceVersion and the last writer (manager, subresource) of each child.
versions() { # file
  {
    for ns in "${envs[@]}"; do k -n "$ns" get "$kinds" --show-managed-fields -o json; done
    k get namespace "${envs[@]}" --show-managed-fields -o json
  } | jq -r '.items[] | select(.metadata.name != "kube-root-ca.crt") | "\(.kind)/\(.metadata.namespace // "")/\(.metadata.name) \(.metadata.resourceVersion) \(
    .metadata.managedFields // [] | max_by(.time) | "\(.manager)/\(.subresource // "")")"' | sort >"$1"
}
snapshot() { # file
  {
    for ns in "${envs[@]}"; do
      k -n "$ns" get "$kinds" --show-managed-fields -o json | jq -r "$child_line"
      k -n "$ns" get application.paved.dev,service.paved.dev -o json | jq -r '.items[] |
        "\(.kind)/\(.metadata.namespace)/\(.metadata.name) gen=\(.metadata.generation) spec=\(.spec | tojson)"'
    done
    k get namespace "${envs[@]}" --show-managed-fields -o json | jq -r "$child_line"
    k get environment.paved.dev "${envs[@]}" -o json | jq -r '.items[] |
      "Environment//\(.metadata.name) gen=\(.metadata.generation) spec=\(.spec | tojson)"'
  } | sort >"$1"
}
# Every HPA has acted: its target's spec.replicas is what it wants. The HPA
# controller syncs every 15 s and scales a Deployment below minReplicas up
# (without metrics too), which moves the Deployment's generation: a 2 s quiet
# window taken before its first sync would blame that scaling on the upgrade.
hpas_settled() {
  local ns
  for ns in "${envs[@]}"; do
    { k -n "$ns" get hpa -o json; k -n "$ns" get deployments -o json; } | jq -se '
      (.[1].items | map({key: .metadata.name, value: .spec.replicas}) | from_entries) as $replicas |
      all(.[0].items[]; .status.desiredReplicas != null
        and $replicas[.spec.scaleTargetRef.name] == .status.desiredReplicas)' >/dev/null || return 1
  done
}
# Quiet: nothing of ours changes for 2 s (the controller-manager's status writes settled).
settled() { hpas_settled && snapshot "$work/a" && sleep 2 && snapshot "$work/b" && cmp -s "$work/a" "$work/b"; }
wait_for "the objects settle" settled || fail "the objects under the $prev_tag controller do not settle"
cp "$work/b" "$work/before"
versions "$work/versions-before"
pass "snapshot of $(wc -l <"$work/before") objects under $prev_tag"

# --- 3. upgrade to this checkout ------------------------------------------------------
stop_controller
if "$HELM" upgrade "$release" "$root/charts/paved" "${chart_args[@]}" >"$work/upgrade.log" 2>&1; then
  pass "helm upgrade to this checkout's chart (CRDs included)"
else
  cat "$work/upgrade.log" >&2; die "helm upgrade to this checkout's chart"
fi
crds_now() { for f in "$root"/crds/*.yaml; do
  name=$(awk '/^  name:/ {print $2; exit}' "$f")
  diff <(k get crd "$name" -o json | jq -S .spec.versions) <(k create --dry-run=client -f "$f" -o json | jq -S .spec.versions) >/dev/null || return 1
done; }
if wait_for "CRDs of this checkout served" crds_now; then
  pass "the cluster's CRDs are this checkout's"
else
  fail "the cluster's CRDs differ from crds/ after the upgrade"
fi
if start_controller "$new_bin" "$work/controller-new.log"; then
  pass "this checkout's controller runs as the upgraded chart's ServiceAccount"
else
  tail -n 20 "$work/controller-new.log" >&2; die "this checkout's controller did not start"
fi
if wait_for "a first reconcile of every object" reconciled_all && wait_for "the objects settle" settled; then
  pass "this checkout's controller reconciled every object"
else
  fail "this checkout's controller did not reconcile every object"
fi
snapshot "$work/after"
versions "$work/versions-after"
# Moved resourceVersions: by whom.
moved=$(join "$work/versions-before" "$work/versions-after" | awk '$2 != $4 {print $1 " (" $5 ")"}')
by_paved=$(grep ' (paved/' <<<"$moved" || true)
if [ -z "$moved" ]; then
  pass "every child keeps its resourceVersion"
elif [ -z "$by_paved" ]; then
  pass "resourceVersions moved only under writes that are not Paved's: $(tr '\n' ' ' <<<"$moved")"
else
  fail "Paved rewrote $(wc -l <<<"$by_paved") child(ren) on the upgrade: $(tr '\n' ' ' <<<"$by_paved")"
fi
echo "  the new controller's writes: $(curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null | grep '^paved_writes_total' | tr '\n' ' ')"
allowed=${PAVED_UPGRADE_ALLOWED:-^$}
changed=$(diff "$work/before" "$work/after" | sed -n 's/^[<>] \([^ ]*\) .*/\1/p' | sort -u | grep -Ev -- "$allowed" || true)
if [ -z "$changed" ]; then
  pass "nothing recreated, rewritten or rolled: $(wc -l <"$work/before") objects keep their uid, generation, ReplicaSets, labels, annotations, owners, spec and Paved's field entries"
else
  fail "the upgrade changed $(wc -w <<<"$changed") object(s): $(tr '\n' ' ' <<<"$changed")"
  { diff "$work/before" "$work/after" || true; } | head -n 20 | cut -c1-300 >&2
fi
all_ready && pass "every object Ready at its generation after the upgrade" || fail "not every object is Ready after the upgrade"
k apply --server-side --field-manager upgrade-e2e -f - >/dev/null <<EOF
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: fresh, namespace: up-prod}
spec: {application: shop, image: registry.example.test/fresh:1, ports: [{name: http, port: 80}], expose: {}}
EOF
if wait_for "Service fresh Ready" ready service.paved.dev fresh up-prod && k -n up-prod get deployment fresh >/dev/null 2>&1 \
  && k -n up-prod get ingress fresh >/dev/null 2>&1; then
  pass "a new Service converges after the upgrade"
else
  fail "a new Service does not converge after the upgrade"
fi

# --- 4. the previous controller alone, on this checkout's CRDs ----------------------
stop_controller
if start_controller "$old_bin" "$work/controller-down.log"; then
  pass "the $prev_tag controller starts again on this checkout's CRDs"
else
  tail -n 20 "$work/controller-down.log" >&2; fail "the $prev_tag controller does not start on this checkout's CRDs"
fi
if wait_for "a first reconcile of every object" reconciled_all && wait_for "everything Ready" all_ready; then
  pass "the $prev_tag controller reads every object and keeps it Ready"
else
  fail "the $prev_tag controller does not keep every object Ready"
fi
decode=$(grep -ciE 'error decoding|failed to decode|deseriali[sz]e|unknown variant|missing field' "$work/controller-down.log" || true)
[ "$decode" = 0 ] && pass "the $prev_tag controller logs no decode error" \
  || { fail "the $prev_tag controller logs $decode decode error(s)"; grep -iE 'decod|deseriali' "$work/controller-down.log" | head -n 3 | cut -c1-300 >&2; }
