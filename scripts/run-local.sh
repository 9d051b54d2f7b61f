#!/usr/bin/env bash
# Runs devstatusd with the given config; starts a throwaway mosquitto on 127.0.0.1 first when the config's
# broker is local (localhost / 127.0.0.1 / ::1) and nothing listens on its port.
#
# Ctrl-C (or SIGTERM to this script) stops the daemon first, then the broker this script started, removes the
# broker's temporary directory and exits with the daemon's exit code (0 after a clean stop). The broker runs in a
# session of its own, so the terminal's Ctrl-C reaches only the daemon and this script: the daemon never sees its
# broker vanish while it stops.
#
# DEVSTATUSD_BINARY overrides the binary (default .build/release/devstatusd, what `make run` builds).
set -uo pipefail
config=${1:-config.toml.example}
cd "$(dirname "$0")/.."
binary=${DEVSTATUSD_BINARY:-.build/release/devstatusd}
if [[ ! -r "$config" ]]; then
  echo "run-local: config file $config not found" >&2
  exit 1
fi

address=$(sed -n 's/^[[:space:]]*serverAddress[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n 1)
address=${address:-tcp://localhost:1883}
hostport=${address#*://}
host=${hostport%%:*}
port=1883
[[ "$hostport" == *:* ]] && port=${hostport##*:}

broker=""
rundir=""
daemon=""
stop_broker() {
  if [[ -n "$broker" ]]; then
    kill -TERM "$broker" 2>/dev/null
    wait "$broker" 2>/dev/null
    broker=""
  fi
  if [[ -n "$rundir" ]]; then
    rm -rf "$rundir"
    rundir=""
  fi
}
# A signal: pass it on to the daemon (Ctrl-C already did), wait for its clean stop, then stop the broker.
on_signal() {
  trap '' INT TERM
  [[ -n "$daemon" ]] && kill -TERM "$daemon" 2>/dev/null
}
trap on_signal INT TERM
trap stop_broker EXIT

case "$host" in
  localhost|127.0.0.1|::1|"[::1]")
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      command -v mosquitto >/dev/null || { echo "run-local: mosquitto is not installed (make deps)" >&2; exit 1; }
      rundir=$(mktemp -d /tmp/devstatusd-mosquitto.XXXXXX)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n' "$port" \
        > "$rundir/mosquitto.conf"
      # setsid: its own session and process group, out of reach of the terminal's Ctrl-C.
      setsid mosquitto -c "$rundir/mosquitto.conf" > "$rundir/mosquitto.log" 2>&1 < /dev/null &
      broker=$!
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
      if ! kill -0 "$broker" 2>/dev/null; then
        echo "run-local: mosquitto did not start on 127.0.0.1:$port:" >&2
        cat "$rundir/mosquitto.log" >&2
        broker=""
        exit 1
      fi
      echo "started a local mosquitto on 127.0.0.1:$port (pid $broker, log $rundir/mosquitto.log); it stops after the daemon"
    fi
    ;;
esac

"$binary" --config "$config" &
daemon=$!
# `wait` returns early when a trapped signal arrives: wait again until the daemon has really exited; the last
# `wait` gives its exit status (bash keeps it for a child already reaped).
while kill -0 "$daemon" 2>/dev/null; do wait "$daemon"; done
wait "$daemon"
status=$?
daemon=""
stop_broker
exit "$status"
