#!/bin/sh
# Issue 5's benchmark: the create rate of pending operations over HTTP with keep-alive (wrk, each 201 after a
# synced write), then 10,000 devices with 5 queued operations each come online at once → time until all 50,000
# are CONFIRMED (QoS 1, no ack topic). Release build of the daemon and tests; needs mosquitto and wrk.
set -eu
cd "$(dirname "$0")/.."
# -enable-testing: other test targets of the package use @testable imports.
OPS_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-bench-ops \
    --filter OperationBenchmark 2>&1 | grep -E '^(create|delivery):|^wrk |✘|error:'
