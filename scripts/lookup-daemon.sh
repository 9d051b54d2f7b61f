# Sourced by the HTTP benchmarks: start_lookup_daemon BIN WORK starts devstatusd on the store in WORK/data
# with one event loop (as nginx runs one worker) on a free port, and waits until it answers. No broker is
# needed to answer lookups: the store is loaded before the port opens. Sets `daemon` (its pid) and `port`.
start_lookup_daemon() {
    local bin="$1" work="$2"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '[http]\nthreads = 1\n' >"$work/http.toml"
    STATE_DIRECTORY= "$bin/devstatusd" --config "$work/http.toml" --data-dir "$work/data" --port "$port" \
        --broker tcp://127.0.0.1:1 --log-level error >"$work/daemon.log" 2>&1 &
    daemon=$!
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "devstatusd did not answer:" >&2
    cat "$work/daemon.log" >&2
    return 1
}
