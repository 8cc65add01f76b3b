#!/usr/bin/env bash
# Builds the e2e tests' Go tools (argocd-health: Argo CD's Lua engine for the
# health checks; kstatus: the kstatus library) from this module into a cache
# outside the repository, like e2e/cluster/build.sh:
#   $PAVED_CACHE/bin/e2e-tools-<key>/<tool>
# where <key> is a digest of go.mod, go.sum and the sources, so a change of any
# of them (a new dependency version included) builds anew and an unchanged tree
# builds nothing. Prints the directory holding the tools on stdout (the only
# thing on stdout); progress goes to stderr.
set -euo pipefail
tools_dir=$(cd "$(dirname "$0")" && pwd)
# lib.sh: PAVED_CACHE, GOTOOLCHAIN and GOFLAGS (-mod=readonly), log.
here=$tools_dir/../cluster
source "$here/lib.sh"
tools=(argocd-health kstatus)

key=$(cd "$tools_dir" && cat go.mod go.sum $(printf '%s/main.go ' "${tools[@]}") | sha256sum | cut -c1-16)
dir=$PAVED_CACHE/bin/e2e-tools-$key
for tool in "${tools[@]}"; do
  [ -x "$dir/$tool" ] && continue
  mkdir -p "$dir"
  start=$SECONDS
  log "e2e tool $tool: building (module cache from the Go module proxy)"
  (cd "$tools_dir" && go build -trimpath -ldflags "-s -w" -o "$dir/$tool.tmp" "./$tool") >&2
  mv "$dir/$tool.tmp" "$dir/$tool"
  log "e2e tool $tool: built in $((SECONDS - start))s -> $dir/$tool"
done
echo "$dir"
