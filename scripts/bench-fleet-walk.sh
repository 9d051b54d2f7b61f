#!/usr/bin/env bash
# Lookups while the whole fleet is walked: `wrk` on GET /<type>/<id> against a daemon holding DEVICES
# (default 1,000,000) devices, first alone (the reference), then while a client pages GET /devices
# back to back (each page walks the whole table). A walk must not hold up lookups.
#
#   scripts/bench-fleet-walk.sh            DEVICES=200000 DURATION=5 scripts/bench-fleet-walk.sh
#
# Expects `swift build -c release` done (or BIN=<dir with the release binaries>). Needs wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${DEVICES:-1000000}"
DURATION="${DURATION:-10}"
bin="${BIN:-$(swift build -c release --show-bin-path)}"
work="$(mktemp -d /tmp/bench-fleet-walk.XXXXXX)"
trap 'kill "${daemon:-}" "${pager:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/devstatusd-bench" seed "$work/data" --devices "$DEVICES" --http-names >/dev/null
. scripts/lookup-daemon.sh
start_lookup_daemon "$bin" "$work"

lookups() {
    wrk -t1 -c8 -d"${DURATION}s" --latency "http://127.0.0.1:$port/type1/dev1" | awk '
        /Requests\/sec:/ { rate = $2 }
        /^ +99%/ { p99 = $2 }
        /^ +Latency +[0-9]/ { max = $4 }
        END { printf "%10.0f req/s   p99 %9s   max %9s", rate, p99, max }'
}

printf '%-34s %s\n' "lookups alone ($DEVICES devices)" "$(lookups)"
(
    n=0
    while true; do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/devices?limit=100"
        n=$((n + 1))
        echo "$n" >"$work/pages"
    done
) &
pager=$!
result="$(lookups)"
kill "$pager" 2>/dev/null || true
printf '%-34s %s   (%s pages of GET /devices)\n' "lookups while paging the fleet" "$result" "$(cat "$work/pages" 2>/dev/null || echo 0)"
