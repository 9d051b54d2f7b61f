#!/usr/bin/env bash
# Compares devstatusd's HTTP server with nginx answering the same body from memory.
#
#   scripts/bench-http.sh [options] TARGET...
#
# TARGET is a URL (http://127.0.0.1:5000/healthz), PORT/PATH (5000/type1/dev1) or PORT.
# For each target the script fetches the body once with curl, starts nginx on a free port in a
# temporary prefix (daemon off, master_process off, one worker, `return 200 '<body>'`, keep-alive),
# then runs `wrk -t1 -c64 -d5s --latency` against devstatusd and nginx alternately for several
# rounds, and prints both rates, their ratio and p99 latencies.
#
# Options (or the environment variables in brackets):
#   --rounds N          rounds per target [ROUNDS, default 3]
#   --duration D        wrk duration per run [DURATION, default 5s]
#   --connections N     wrk connections [CONNECTIONS, default 64]
#   --random-devices    request /type<k>/dev<n> at random over DEVICES (default 10000) distinct ids,
#                       k = n % TYPES (default 10), below the target's path; nginx answers every
#                       path with the body of the first id. Seed the daemon with the same ids.
#   --server-pid PID    pin this process (devstatusd) to the server CPU, as nginx is [SERVER_PID]
#   --no-pin            leave scheduling to the kernel [PIN=0]
#
# With two or more CPUs and taskset, both servers run on SERVER_CPU (default: the last CPU) and wrk on
# CLIENT_CPU (default 0): on a small machine the load generator and the server otherwise take turns on
# the same cores and one run differs from the next by ±15%. Compare devstatusd with `[http] threads = 1`
# against this single nginx worker.
#
# Needs wrk, nginx and curl (make install-deps or apt-get install wrk nginx-light curl).
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-64}"
DEVICES="${DEVICES:-10000}"
TYPES="${TYPES:-10}"
RANDOM_DEVICES=0
PIN="${PIN:-1}"
SERVER_PID="${SERVER_PID:-}"
CPUS="$(nproc 2>/dev/null || echo 1)"
SERVER_CPU="${SERVER_CPU:-$((CPUS - 1))}"
CLIENT_CPU="${CLIENT_CPU:-0}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --random-devices) RANDOM_DEVICES=1; shift ;;
    --server-pid) SERVER_PID="$2"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    -h | --help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage 1 >&2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || usage 1 >&2
for tool in wrk curl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "bench-http: $tool not found" >&2; exit 1; }
done

if [ "$PIN" = 1 ] && { [ "$CPUS" -lt 2 ] || ! command -v taskset >/dev/null; }; then
    echo "bench-http: fewer than two CPUs or no taskset: not pinning" >&2
    PIN=0
fi
client=()
if [ "$PIN" = 1 ]; then
    client=(taskset -c "$CLIENT_CPU")
    if [ -n "$SERVER_PID" ]; then taskset -a -c -p "$SERVER_CPU" "$SERVER_PID" >/dev/null; fi
    echo "(pinned: servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU)"
fi

work="$(mktemp -d /tmp/bench-http.XXXXXX)"
nginx_pid=""
stop_nginx() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=""
    fi
}
trap 'stop_nginx; rm -rf "$work"' EXIT

# http://host:port/path from URL, PORT/PATH or PORT.
normalize() {
    case "$1" in
    http://*) echo "$1" ;;
    [0-9]*/*) echo "http://127.0.0.1:${1%%/*}/${1#*/}" ;;
    [0-9]*) echo "http://127.0.0.1:$1/" ;;
    *) echo "bench-http: cannot read target '$1'" >&2; exit 1 ;;
    esac
}

free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    echo "bench-http: no free port found" >&2
    exit 1
}

# Starts nginx answering every path with the body in file $1.
start_nginx() {
    local body_file="$1" port body
    port="$(free_port)"
    body="$(cat "$body_file")"
    mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
    # nginx expands $variables in return text and has no escape for '$': serve the file instead.
    local answer
    if [[ "$body" == *'$'* ]]; then
        cp "$body_file" "$work/nginx/body"
        answer="root $work/nginx; try_files /body =404;"
    else
        body="${body//\\/\\\\}"
        body="${body//\'/\\\'}"
        answer="return 200 '$body';"
    fi
    cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            $answer
        }
    }
}
CONF
    local pin=()
    [ "$PIN" = 1 ] && pin=(taskset -c "$SERVER_CPU")
    "${pin[@]}" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" &
    nginx_pid=$!
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
            nginx_url="http://127.0.0.1:$port"
            return
        fi
        sleep 0.05
    done
    echo "bench-http: nginx did not start:" >&2
    cat "$work/nginx/logs/error.log" >&2
    exit 1
}

# Writes the Lua script for random device lookups under path prefix $1.
write_lua() {
    cat >"$work/devices.lua" <<LUA
local prefix = "$1"
local devices, types = $DEVICES, $TYPES
math.randomseed(os.time())
request = function()
    local n = math.random(0, devices - 1)
    return wrk.format("GET", prefix .. "/type" .. (n % types) .. "/dev" .. n)
end
LUA
}

# CPU time (user + system, in clock ticks) a process has used so far; empty without a process.
cpu_ticks() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] && awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Runs wrk against $1; $2 is the server's pid (may be empty). Prints "rate p99_ms errors cpu_us_per_request"
# ("-" for the CPU without a pid): with a client-bound run, the server's CPU per request shows its cost.
run_wrk() {
    local url="$1" pid="$2" out before after
    local args=(-t1 -c"$CONNECTIONS" -d"$DURATION" --latency)
    [ "$RANDOM_DEVICES" = 1 ] && args+=(-s "$work/devices.lua")
    before="$(cpu_ticks "$pid")"
    out="$("${client[@]}" wrk "${args[@]}" "$url")"
    after="$(cpu_ticks "$pid")"
    echo "$out" >>"$work/wrk.log"
    echo "$out" | awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        /requests in/ { requests = $1 }
        /Requests\/sec:/ { rate = $2 }
        /^ +99%/ {
            v = $2
            if (v ~ /us$/) { sub(/us$/, "", v); p99 = v / 1000 }
            else if (v ~ /ms$/) { sub(/ms$/, "", v); p99 = v }
            else if (v ~ /s$/) { sub(/s$/, "", v); p99 = v * 1000 }
        }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
        END {
            cpu = (before != "" && after != "" && requests > 0) ? sprintf("%.2f", (after - before) * 1e6 / hz / requests) : "-"
            printf "%.0f %.2f %d %s\n", rate, p99, errors, cpu
        }'
}

printf '%-40s %5s %11s %7s %7s %11s %7s %7s %6s\n' target round devstatusd p99_ms cpu_us nginx p99_ms cpu_us ratio
for target in "${targets[@]}"; do
    url="$(normalize "$target")"
    base="${url#http://}"
    hostport="${base%%/*}"
    path="/${base#*/}"
    [ "$base" = "$hostport" ] && path="/"
    sample="$path"
    if [ "$RANDOM_DEVICES" = 1 ]; then
        prefix="${path%/}"
        write_lua "$prefix"
        sample="$prefix/type0/dev0"
        label="$hostport$prefix/type<k>/dev<n> x$DEVICES"
    else
        label="$hostport$path"
    fi
    curl -fsS "http://$hostport$sample" >"$work/body" || {
        echo "bench-http: GET http://$hostport$sample failed; is devstatusd running?" >&2
        exit 1
    }
    start_nginx "$work/body"
    sum_dev=0 sum_nginx=0 worst_dev=0 worst_nginx=0 cpu_dev=0 cpu_nginx=0
    for round in $(seq "$ROUNDS"); do
        read -r dev_rate dev_p99 dev_err dev_cpu < <(run_wrk "http://$hostport$path" "$SERVER_PID")
        read -r ngx_rate ngx_p99 ngx_err ngx_cpu < <(run_wrk "$nginx_url$path" "$nginx_pid")
        ratio="$(awk -v a="$dev_rate" -v b="$ngx_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
        printf '%-40s %5s %11s %7s %7s %11s %7s %7s %6s\n' "$label" "$round" "$dev_rate" "$dev_p99" "$dev_cpu" \
            "$ngx_rate" "$ngx_p99" "$ngx_cpu" "$ratio"
        cpu_dev="$(awk -v a="$cpu_dev" -v b="$dev_cpu" 'BEGIN { print (b == "-" ? "-" : a + b) }')"
        cpu_nginx="$(awk -v a="$cpu_nginx" -v b="$ngx_cpu" 'BEGIN { print a + b }')"
        [ "$dev_err" = 0 ] || echo "  devstatusd: $dev_err non-2xx responses or socket errors" >&2
        [ "$ngx_err" = 0 ] || echo "  nginx: $ngx_err non-2xx responses or socket errors" >&2
        sum_dev=$((sum_dev + dev_rate))
        sum_nginx=$((sum_nginx + ngx_rate))
        worst_dev="$(awk -v a="$worst_dev" -v b="$dev_p99" 'BEGIN { print ((b > a) ? b : a) }')"
        worst_nginx="$(awk -v a="$worst_nginx" -v b="$ngx_p99" 'BEGIN { print ((b > a) ? b : a) }')"
    done
    stop_nginx
    awk -v l="$label" -v d="$sum_dev" -v n="$sum_nginx" -v r="$ROUNDS" -v dp="$worst_dev" -v np="$worst_nginx" \
        -v dc="$cpu_dev" -v nc="$cpu_nginx" 'BEGIN {
        dcpu = (dc == "-" ? "-" : sprintf("%.2f", dc / r))
        printf "%-40s %5s %11.0f %7s %7s %11.0f %7s %7.2f %6.2f\n", l, "mean", d / r, dp, dcpu, n / r, np, nc / r, (n > 0 ? d / n : 0) }'
done
echo "(mean rows: rates and CPU averaged over the rounds, p99 of the worst round; cpu_us: the server's CPU time"
echo " per request, user + system, from /proc; '-' for devstatusd without --server-pid)"
