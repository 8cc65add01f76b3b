#!/usr/bin/env bash
# Prints each running component's PID and resident memory, and the versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
printf '%-24s %-10s %8s  %s\n' component version "RSS MiB" pid
for c in "${COMPONENTS[@]}"; do
  if pid=$(pid_of "$c"); then
    rss=$(ps -o rss= -p "$pid" | tr -d ' ')
    printf '%-24s %-10s %8.1f  %s\n' "$c" "$(version_of "$c")" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$pid"
  else
    printf '%-24s %-10s %8s  %s\n' "$c" "$(version_of "$c")" - "not running"
  fi
done
