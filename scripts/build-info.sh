#!/usr/bin/env bash
# Writes Sources/CBuildInfo/build_info_values.h (git revision and build date for `devstatusd --version`) and
# touches build_info.c when the values changed, so the next `swift build` recompiles that one file and relinks.
# SOURCE_DATE_EPOCH (reproducible builds) fixes the date.
set -euo pipefail
cd "$(dirname "$0")/.."
header=Sources/CBuildInfo/build_info_values.h
revision=unknown
if git rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git rev-parse --short=12 HEAD)
  git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
fi
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
content=$(printf '#define DEVSTATUSD_REVISION "%s"\n#define DEVSTATUSD_BUILD_DATE "%s"\n' "$revision" "$date")
if [[ ! -f "$header" ]] || [[ "$(cat "$header")" != "$content" ]]; then
  printf '%s\n' "$content" > "$header"
  touch Sources/CBuildInfo/build_info.c
fi
echo "build info: revision $revision, built $date"
