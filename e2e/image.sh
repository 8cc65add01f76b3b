#!/usr/bin/env bash
# Builds Paved's container image the way the Dockerfile does, without a Docker
# engine, and checks it:
#
#   1. the static binary: the Dockerfile's `build` stage, on this machine
#      (musl-tools, the x86_64-unknown-linux-musl target, cargo build
#      --release --locked); it must be statically linked and run (`paved crd`
#      prints what crds/ holds);
#   2. the image: buildah (Debian package, daemonless) builds the Dockerfile
#      with BINARY_STAGE=prebuilt from a context holding only that binary
#      (`FROM scratch`, so nothing is pulled); it must run as non-root with
#      `/paved` as its entrypoint;
#   3. the size budget: the image (and so the binary, its only file) under
#      40 MB.
#
# PASS/FAIL per check; exits non-zero on a failure. A machine without buildah
# gets steps 1 and 3 (on the binary) and a plain SKIP for 2.
# Knobs: PAVED_IMAGE_TAG (localhost/paved:dev), PAVED_IMAGE_BUDGET_MB (40).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=x86_64-unknown-linux-musl
tag=${PAVED_IMAGE_TAG:-localhost/paved:dev}
budget_mb=${PAVED_IMAGE_BUDGET_MB:-40}
# A target dir of its own: a release build must not wait on, or evict, the
# debug builds of the tests.
target_dir=${CARGO_TARGET_DIR:-$root/target}/static
failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'SKIP  %s\n' "$*"; }

# --- 1. the static binary -----------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target" || { fail "rustup cannot add $target (no access to the Rust distribution server?)"; exit 1; }
fi
command -v musl-gcc >/dev/null || { fail "musl-gcc missing: install the Debian package musl-tools"; exit 1; }
CARGO_TARGET_DIR=$target_dir cargo build --release --locked --bin paved --target "$target"
binary=$target_dir/$target/release/paved
if file "$binary" | grep -Eq 'static(-pie)? linked|statically linked'; then
  pass "the binary is statically linked ($(file -b "$binary" | grep -Eo 'static(-pie)? linked|statically linked'))"
else
  fail "the binary is not static: $(file -b "$binary")"
fi
binary_bytes=$(stat -c %s "$binary")
crd_dir=$(mktemp -d)
if "$binary" crd --out-dir "$crd_dir" 2>/dev/null && diff -r crds "$crd_dir" >/dev/null; then
  pass "the static binary runs: \`paved crd\` writes exactly crds/"
else
  fail "the static binary does not run, or its \`paved crd\` differs from crds/"
fi
rm -rf "$crd_dir"

# --- 2. the image ---------------------------------------------------------------
image_bytes=""
if command -v buildah >/dev/null 2>&1; then
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$binary" "$context/paved"
  # vfs storage and chroot isolation: no daemon, no overlay mounts, no user namespaces needed.
  bh() { buildah --storage-driver vfs "$@"; }
  if bh build --isolation chroot --build-arg BINARY_STAGE=prebuilt -f "$root/Dockerfile" -t "$tag" "$context" >"$context/build.log" 2>&1; then
    pass "buildah built $tag from the Dockerfile (BINARY_STAGE=prebuilt)"
    config=$(bh inspect --type image "$tag")
    user=$(jq -r '.OCIv1.config.User' <<<"$config")
    entrypoint=$(jq -c '.OCIv1.config.Entrypoint' <<<"$config")
    [ "$user" = 65532:65532 ] && pass "runs as non-root ($user)" || fail "image user is '$user'"
    [ "$entrypoint" = '["/paved"]' ] && pass "entrypoint $entrypoint" || fail "entrypoint is $entrypoint"
    layers=$(jq '.OCIv1.rootfs.diff_ids | length' <<<"$config")
    [ "$layers" = 1 ] && pass "one layer: the binary only" || fail "$layers layers"
    # Size as a registry stores it: the compressed layer, plus config and manifest.
    oci=$context/oci
    bh push "$tag" "oci:$oci:paved" >/dev/null 2>&1
    image_bytes=$(du -sb "$oci/blobs" | cut -f1)
    # The file system inside is exactly one file.
    files=$(for blob in "$oci"/blobs/sha256/*; do tar -tzf "$blob" 2>/dev/null; done | grep -v '/$' | sort -u | tr '\n' ' ')
    [ "$files" = "paved " ] && pass "the image holds /paved and nothing else" || fail "image files: $files"
  else
    tail -n 20 "$context/build.log" >&2
    fail "buildah build"
  fi
else
  skip "no buildah (Debian package buildah): the image itself was not built; the budget is checked on the binary"
fi

# --- 3. size budget ----------------------------------------------------------------
budget=$((budget_mb * 1000 * 1000))
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
[ "$binary_bytes" -lt "$budget" ] && pass "binary $(mb "$binary_bytes") < ${budget_mb} MB" || fail "binary $(mb "$binary_bytes") over ${budget_mb} MB"
if [ -n "$image_bytes" ]; then
  [ "$image_bytes" -lt "$budget" ] && pass "image $(mb "$image_bytes") (compressed, as pushed) < ${budget_mb} MB" || fail "image $(mb "$image_bytes") over ${budget_mb} MB"
fi
[ $failures -eq 0 ] && echo "image: all checks passed" || echo "image: $failures check(s) failed"
[ $failures -eq 0 ]
