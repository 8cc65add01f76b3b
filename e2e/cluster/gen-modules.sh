#!/usr/bin/env bash
# Regenerates the wrapper Go modules under e2e/cluster/modules/ from the pinned
# versions in versions.env. Run it after changing a version, then commit the
# go.mod and go.sum files it writes.
#
# Why wrappers: `go install pkg@version` refuses modules whose go.mod has
# `replace` lines, and k8s.io/kubernetes and etcd's server module both have
# them. A wrapper module that requires them (and, for Kubernetes, replaces each
# staging module with its published v0.Y.Z) builds with a plain `go build`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

write_module() { # dir module-path requirement tool...
  local dir=$1 path=$2 req=$3; shift 3
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init "$path" >/dev/null 2>&1 && go mod edit -go=1.26.0 -require="$req")
}

# Kubernetes: derive the staging replacements from the release's own go.mod.
k8s_dir=$here/modules/kubernetes
write_module "$k8s_dir" paved.dev/e2e/kubernetes "k8s.io/kubernetes@$KUBERNETES_VERSION"
staging_version="v0.${KUBERNETES_VERSION#v1.}"
k8s_gomod=$(cd "$k8s_dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$k8s_gomod")
[ "${#staging[@]}" -gt 20 ] || { echo "found only ${#staging[@]} staging modules in $k8s_gomod" >&2; exit 1; }
for m in "${staging[@]}"; do
  (cd "$k8s_dir" && go mod edit -replace="$m=$m@$staging_version")
done
(cd "$k8s_dir" && for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  go mod edit -tool="k8s.io/kubernetes/cmd/$cmd"; done && go mod tidy)

(cd "$k8s_dir" && go mod edit -godebug=default=go1.24)

write_module "$here/modules/etcd" paved.dev/e2e/etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
(cd "$here/modules/etcd" && go mod edit -tool=go.etcd.io/etcd/server/v3 && go mod tidy)

write_module "$here/modules/kwok" paved.dev/e2e/kwok "sigs.k8s.io/kwok@$KWOK_VERSION"
(cd "$here/modules/kwok" && go mod edit -tool=sigs.k8s.io/kwok/cmd/kwok && go mod tidy)

write_module "$here/modules/helm" paved.dev/e2e/helm "helm.sh/helm/v3@$HELM_VERSION"
(cd "$here/modules/helm" && go mod edit -tool=helm.sh/helm/v3/cmd/helm && go mod tidy)
# metrics-server, with the Kubernetes libraries it shares with the control plane
# raised to the cluster's own patch release (metrics-server v0.8.0 is built on
# v0.33.x; a KUBERNETES_VERSION of another minor wants a matching release): the
# client matches the cluster, and the packages whose dependencies are the same
# versions come from kube-apiserver's build in Go's build cache. (Go's cache
# keys a package by its module's required version, so `replace` lines forcing
# the other shared modules down to Kubernetes' versions would not share more.)
ms_dir=$here/modules/metrics-server
write_module "$ms_dir" paved.dev/e2e/metrics-server "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION"
(cd "$ms_dir" && go mod edit -tool=sigs.k8s.io/metrics-server/cmd/metrics-server && go mod tidy)
ms_k8s=()
for m in "${staging[@]}"; do
  (cd "$ms_dir" && go list -m "$m" >/dev/null 2>&1) && ms_k8s+=("$m@$staging_version")
done
(cd "$ms_dir" && go get "${ms_k8s[@]}" && go mod tidy)
echo "wrapper modules written under $here/modules"
