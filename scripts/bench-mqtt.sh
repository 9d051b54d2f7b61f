#!/bin/sh
# Receive throughput of devstatusd's MQTTClient against mosquitto_sub on the same local broker:
# a live stream of 100,000 QoS 0 messages and a retained replay of 100,000 topics.
# Prints one line per scenario ("live: …", "retained: …"). Needs mosquitto and mosquitto-clients.
set -eu
cd "$(dirname "$0")/.."
# Release build with -enable-testing: the MQTT tests use @testable for a test-only hook.
MQTT_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-bench \
    --filter MQTTBenchmarkTests 2>&1 | grep -E '^(live|retained):|✘|error'
