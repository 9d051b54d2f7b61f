#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its figures beside a reference measured in the same run
# (mosquitto_sub for ingestion, nginx for HTTP). Expects `swift build -c release` done (the Makefile does it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build -c release --show-bin-path)"
[ -x "$bin/devstatusd-bench" ] || swift build -c release --product devstatusd-bench

echo "== core (issue 2), watchdog (issue 4) and availability (issue 14): devstatusd-bench all"
"$bin/devstatusd-bench" all --daemon "$bin/devstatusd" 2>&1 | grep -vE ' (info|notice) '

echo "== HTTP (issue 3): wrk against devstatusd and nginx"
work=$(mktemp -d /tmp/devstatusd-bench-http.XXXXXX)
trap 'kill "${daemon:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/devstatusd-bench" seed "$work/data" --devices 10000 --http-names
# One event loop, as nginx runs one worker; bench-http.sh pins both to the same CPU.
. scripts/lookup-daemon.sh
start_lookup_daemon "$bin" "$work"
scripts/bench-http.sh --server-pid "$daemon" "$port/type1/dev1"
scripts/bench-http.sh --server-pid "$daemon" --random-devices "$port"
kill "$daemon"; wait "$daemon" 2>/dev/null || true

echo "== HTTP (issue 3): lookups alone, then while GET /devices pages walk 1,000,000 devices"
BIN="$bin" scripts/bench-fleet-walk.sh

echo "== operations (issue 5)"
scripts/bench-operations.sh
