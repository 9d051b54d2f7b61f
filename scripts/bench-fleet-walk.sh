#!/usr/bin/env bash
# Lookups while the fleet is paged: `wrk` on GET /<type>/<id> against a daemon holding DEVICES
# (default 1,000,000) devices, first alone (the reference), then while a client pages GET /devices
# back to back, following nextCursor: in type/id order, by lastSeen, and with a search (q) by since.
# Paging must not hold up lookups: each line prints its ratio to the lookups alone (target >= 0.8). First, each
# kind of paging alone, with the daemon's CPU time per page (what the ratio depends on, whatever else runs).
#
#   scripts/bench-fleet-walk.sh            DEVICES=200000 DURATION=5 scripts/bench-fleet-walk.sh
#
# Expects `swift build -c release` done (or BIN=<dir with the release binaries>). Needs wrk, curl, python3.
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
# The fleet index is built in the background after the start: the first page waits for it.
curl -fsS -o /dev/null "http://127.0.0.1:$port/devices?limit=1"

lookups() {
    wrk -t1 -c8 -d"${DURATION}s" --latency "http://127.0.0.1:$port/type1/dev1" | awk '
        /Requests\/sec:/ { rate = $2 }
        /^ +99%/ { p99 = $2 }
        /^ +Latency +[0-9]/ { max = $4 }
        END { printf "%.0f %s %s", rate, p99, max }'
}

# Pages back to back with QUERY, one curl per page as a script or a dashboard would, following nextCursor to the
# end and starting over; counts pages in $work/pages.
pages() {
    local query="$1" cursor="" body
    while true; do
        body="$(curl -fsS "http://127.0.0.1:$port/devices?limit=100${query:+&$query}${cursor:+&cursor=$cursor}")" || return
        cursor=""
        if [[ "$body" == *'"nextCursor":"'* ]]; then
            cursor="${body##*\"nextCursor\":\"}"
            cursor="${cursor%%\"*}"
        fi
        printf . >>"$work/pages"
    done
}

pages_served() { if [ -e "$work/pages" ]; then wc -c <"$work/pages"; else echo 0; fi; }

# CPU seconds (user + system) the daemon has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$daemon/stat"; }

# What a page costs the daemon, paged alone for a few seconds: its CPU time divided by the pages served.
for query in "" "sort=lastSeen" "q=dev12&sort=since" "status=offline&type=type3&q=9"; do
    rm -f "$work/pages"
    before=$(cpu)
    pages "$query" 2>/dev/null &
    pager=$!
    sleep 5
    kill "$pager" 2>/dev/null || true
    wait "$pager" 2>/dev/null || true
    n=$(pages_served)
    printf '%-48s %6.2f ms of daemon CPU per page (%s pages in 5 s)\n' "paging alone ${query:-in key order}" \
        "$(python3 -c "print(($(cpu) - $before) * 1000 / max($n, 1))")" "$n"
done

read -r alone alone_p99 alone_max <<<"$(lookups)"
printf '%-48s %8.0f req/s   p99 %9s   max %9s\n' "lookups alone ($DEVICES devices)" "$alone" "$alone_p99" "$alone_max"
rates=()
for query in "" "sort=lastSeen" "q=dev12&sort=since" "status=offline&type=type3&q=9"; do
    rm -f "$work/pages"
    pages "$query" 2>/dev/null &
    pager=$!
    read -r rate p99 max <<<"$(lookups)"
    rates+=("$rate")
    kill "$pager" 2>/dev/null || true
    wait "$pager" 2>/dev/null || true
    printf '%-48s %8.0f req/s   p99 %9s   max %9s   ratio %.2f   (%s pages)\n' \
        "lookups while paging ${query:-in key order}" "$rate" "$p99" "$max" \
        "$(python3 -c "print($rate / $alone)")" "$(pages_served)"
done
# The machine's load drifts: the reference once more, after; the ratios to the mean of both.
read -r again again_p99 again_max <<<"$(lookups)"
printf '%-48s %8.0f req/s   p99 %9s   max %9s\n' "lookups alone again" "$again" "$again_p99" "$again_max"
printf 'ratios to the mean of both references (%.0f req/s):%s\n' "$(python3 -c "print(($alone + $again) / 2)")" \
    "$(for rate in "${rates[@]}"; do python3 -c "print(' %.2f' % ($rate * 2 / ($alone + $again)), end='')"; done)"
