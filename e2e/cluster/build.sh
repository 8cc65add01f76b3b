#!/usr/bin/env bash
# Builds the local control plane's binaries from the wrapper Go modules, one at
# a time (these machines have 2 cores), into a cache outside the repository:
#   $PAVED_CACHE/bin/<component>-<version>/<component>
# PAVED_CACHE defaults to ~/.cache/paved. A binary that is already there is not
# rebuilt. Usage: build.sh [component...]  (default: all that `up.sh` needs)
set -euo pipefail
# Progress and Go's own lines ("go: downloading ...") are logs, never a value
# for a caller to capture: all of this script's output goes to stderr.
exec 1>&2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

build_one() { # component
  local name=$1 module pkg version ldflags=""
  local k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      module=kubernetes pkg=k8s.io/kubernetes/cmd/$name version=$KUBERNETES_VERSION
      # The same variables the Kubernetes release build sets, so /version and
      # `kubectl version` report the real release.
      local v
      for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$k8s_minor"
        ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
      done ;;
    etcd) module=etcd pkg=go.etcd.io/etcd/server/v3 version=$ETCD_VERSION ;;
    kwok)
      module=kwok pkg=sigs.k8s.io/kwok/cmd/kwok version=$KWOK_VERSION
      ldflags=" -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" ;;
    metrics-server)
      # As metrics-server's own Makefile does: its version is client-go's.
      module=metrics-server pkg=sigs.k8s.io/metrics-server/cmd/metrics-server version=$METRICS_SERVER_VERSION
      ldflags=" -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/client-go/pkg/version.gitTreeState=clean"
      ldflags+=" -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z" ;;
    helm)
      module=helm pkg=helm.sh/helm/v3/cmd/helm version=$HELM_VERSION
      ldflags=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
      ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      # As helm's own Makefile does: the default Kubernetes version (what
      # `helm template` and `helm lint` assume without --kube-version) is the
      # client-go it is built with, v0.N.M -> v1.N. Unset, it stays v1.20.0,
      # which charts asking for a newer kubeVersion refuse.
      local client_go k8s_major k8s_minor_helm
      client_go=$(cd "$here/modules/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
      client_go=${client_go#v}
      k8s_major=$((${client_go%%.*} + 1)) k8s_minor_helm=${client_go#*.}; k8s_minor_helm=${k8s_minor_helm%%.*}
      for v in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $v.k8sVersionMajor=$k8s_major -X $v.k8sVersionMinor=$k8s_minor_helm"
      done ;;
    *) echo "unknown component: $name" >&2; return 2 ;;
  esac
  local out; out=$(bin_path "$name")
  [ "$name" != kwok ] || write_kwok_stages "$(dirname "$out")/stages.yaml"
  [ "$name" != kwok ] || write_kwok_metrics "$(dirname "$out")"
  # Beside each binary, the link flags it was built with: a binary built with
  # other flags (an older build.sh) is rebuilt. A helm without that record
  # predates its Kubernetes-version flags, so it is rebuilt too; the other
  # components' flags have not changed, so theirs are kept.
  local stamp=$out.ldflags
  if [ -x "$out" ]; then
    if { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ldflags" ]; } || { [ ! -f "$stamp" ] && [ "$name" != helm ]; }; then
      log "$name $version: cached at $out"
      return 0
    fi
    log "$name $version: cached at $out, but built with other link flags: rebuilding"
  fi
  mkdir -p "$(dirname "$out")"
  local dir=$here/modules/$module start=$SECONDS total
  total=$(cd "$dir" && go list -deps "$pkg" | wc -l)
  log "$name $version: building $total packages (a cold build takes minutes; progress below)"
  # `go build -v` names each package as it compiles it; turn that into a
  # progress line every 10 seconds so a long cold build visibly moves.
  (cd "$dir" && go build -v -trimpath -ldflags "-s -w$ldflags" -o "$out.tmp" "$pkg" 2>&1) |
    awk -v name="$name" -v total="$total" -v start="$(date +%s)" '
      /^(#|go: |.*\.go:[0-9]+)/ { print; fflush(); next }
      { n++; now = systime(); if (now - last >= 10) { last = now;
          printf "  %s: %d/%d packages compiled, %ds\n", name, n, total, now - start; fflush() } }'
  [ "${PIPESTATUS[0]}" -eq 0 ] && [ -x "$out.tmp" ] || { echo "building $name failed" >&2; return 1; }
  mv "$out.tmp" "$out"
  printf '%s' "$ldflags" > "$stamp"
  log "$name $version: built in $((SECONDS - start))s -> $out"
}

# kwok needs Stage objects that say how fake nodes and pods move through their
# lifecycle. Take the "fast" ones from the pinned kwok release itself, so they
# match the binary: nodes Ready at once with lease heartbeats; pods Running and
# Ready at once; deleted pods removed (there is no kubelet to do it).
write_kwok_stages() { # output file
  [ -s "$1" ] && return 0
  mkdir -p "$(dirname "$1")"
  local dir
  dir=$(cd "$here/modules/kwok" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local f stage=$dir/kustomize/stage
  for f in "$stage"/node/fast/node-initialize.yaml "$stage"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           "$stage"/pod/fast/pod-ready.yaml "$stage"/pod/fast/pod-complete.yaml "$stage"/pod/fast/pod-delete.yaml; do
    [ -f "$f" ] || { echo "kwok stage missing: $f" >&2; return 1; }
    printf -- '---\n'; cat "$f"
  done > "$1.tmp"
  mv "$1.tmp" "$1"
}

# kwok emulates the kubelet's /metrics/resource endpoint for its fake nodes
# with a Metric (kwok's own metrics-resource.yaml, served at
# /metrics/nodes/{nodeName}/metrics/resource) from ResourceUsage objects, whose
# CRDs it ships too. Copied from the pinned kwok release beside the binary:
#   metric-resource.yaml                 the Metric, part of kwok's configuration
#   crd-resourceusages.yaml, crd-clusterresourceusages.yaml   the usage CRDs
#   usage-from-annotation.yaml           a ClusterResourceUsage: every pod's
#     usage from its annotations kwok.x-k8s.io/usage-{cpu,memory}, else 1m, 1Mi
kwok_metrics_files=(metric-resource.yaml crd-resourceusages.yaml crd-clusterresourceusages.yaml usage-from-annotation.yaml)
write_kwok_metrics() { # output directory
  local n missing=false
  for n in "${kwok_metrics_files[@]}"; do [ -s "$1/$n" ] || missing=true; done
  $missing || return 0
  mkdir -p "$1"
  local dir
  dir=$(cd "$here/modules/kwok" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local src=("$dir/kustomize/metrics/resource/metrics-resource.yaml" "$dir/kustomize/crd/bases/kwok.x-k8s.io_resourceusages.yaml"
    "$dir/kustomize/crd/bases/kwok.x-k8s.io_clusterresourceusages.yaml" "$dir/kustomize/metrics/usage/usage-from-annotation.yaml") i
  for i in "${!src[@]}"; do
    [ -f "${src[$i]}" ] || { echo "kwok file missing: ${src[$i]}" >&2; return 1; }
    cp "${src[$i]}" "$1/${kwok_metrics_files[$i]}.tmp" && mv "$1/${kwok_metrics_files[$i]}.tmp" "$1/${kwok_metrics_files[$i]}"
  done
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server)
for c in "${components[@]}"; do build_one "$c"; done
