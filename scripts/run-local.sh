#!/usr/bin/env bash
# Runs devstatusd with the given config; starts a throwaway mosquitto on 127.0.0.1:1883 first when the
# config's broker is local (localhost / 127.0.0.1 / ::1) and nothing listens there.
set -euo pipefail
config=${1:-config.toml.example}
cd "$(dirname "$0")/.."
binary=.build/release/devstatusd

address=$(sed -n 's/^[[:space:]]*serverAddress[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n 1)
address=${address:-tcp://localhost:1883}
hostport=${address#*://}
host=${hostport%%:*}
port=1883
[[ "$hostport" == *:* ]] && port=${hostport##*:}
case "$host" in
  localhost|127.0.0.1|::1|"[::1]")
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      rundir=$(mktemp -d /tmp/devstatusd-mosquitto.XXXXXX)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n' "$port" > "$rundir/mosquitto.conf"
      mosquitto -c "$rundir/mosquitto.conf" > "$rundir/mosquitto.log" 2>&1 &
      broker=$!
      trap 'kill $broker 2>/dev/null; rm -rf "$rundir"' EXIT
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
      echo "started a local mosquitto on 127.0.0.1:$port (pid $broker, log $rundir/mosquitto.log)"
    fi
    ;;
esac
"$binary" --config "$config" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon; kill ${broker:-} 2>/dev/null; rm -rf "${rundir:-/nonexistent}"' EXIT INT TERM
wait $daemon
