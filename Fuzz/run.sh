#!/bin/sh
# Fuzzes the HTTP/1.1 request parser with libFuzzer + AddressSanitizer.
#   Fuzz/run.sh                  10 million runs (or an hour, whichever comes first)
#   RUNS=100000 Fuzz/run.sh      a quick run
#   MAX_TIME=60 Fuzz/run.sh      stop after a minute
# Builds into .build-fuzz/, keeps the growing corpus in fuzz-corpus/http (both ignored by git);
# Fuzz/seeds holds the checked-in starting inputs. A crash leaves crash-* in .build-fuzz/.
set -eu
cd "$(dirname "$0")/.."

RUNS="${RUNS:-10000000}"
MAX_TIME="${MAX_TIME:-3600}"
# Inputs up to 512 bytes: the small limit set in the harness reaches every limit within that.
MAX_LEN="${MAX_LEN:-512}"
BIN=.build-fuzz/http-parser-fuzz

mkdir -p .build-fuzz fuzz-corpus/http
# Only the pure parser sources (and the encoder the header types use): they import nothing but the standard library.
# lld (shipped with the toolchain) links the sanitizer runtimes without gold's export warnings.
swiftc -O -sanitize=fuzzer,address -use-ld=lld -parse-as-library -swift-version 6 -module-name HTTPParserFuzz \
    Fuzz/HTTPParserFuzz.swift \
    Sources/HTTP1/HTTPTypes.swift Sources/HTTP1/HTTPRequest.swift Sources/HTTP1/HTTPResponse.swift \
    Sources/HTTP1/RequestTarget.swift Sources/HTTP1/RequestParser.swift Sources/HTTP1/ResponseEncoder.swift \
    -o "$BIN"

"$BIN" -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len="$MAX_LEN" -print_final_stats=1 \
    -artifact_prefix=.build-fuzz/ fuzz-corpus/http Fuzz/seeds
