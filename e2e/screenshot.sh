#!/usr/bin/env bash
# `make screenshot`: regenerates docs/catalog-overview.png, the README's picture
# of the catalog page: `make dev` (the example shop on the local control plane),
# then headless Chromium photographs http://$PAVED_DEV_LISTEN/catalog.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
e2e/dev.sh >/dev/null
listen=${PAVED_DEV_LISTEN:-127.0.0.1:18081}
command -v chromium >/dev/null || { echo "chromium not found (.ci/install-deps installs it)" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p docs
# The controller serves the page once its caches are loaded.
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://$listen/catalog" && break; sleep 0.2; done
chromium --headless --disable-gpu --no-sandbox --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size=900,380 \
  --screenshot="$root/docs/catalog-overview.png" "http://$listen/catalog" 2>/dev/null
echo "wrote docs/catalog-overview.png (the overview at http://$listen/catalog)"
