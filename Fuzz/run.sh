#!/bin/sh
# Fuzzes every parser of outside bytes with libFuzzer + AddressSanitizer: one harness per Fuzz/<Name>.swift.
#   Fuzz/run.sh                         every harness, 10 million runs each (or an hour each, whichever comes first)
#   Fuzz/run.sh MonPayloadFuzz          the harnesses named
#   RUNS=100000 Fuzz/run.sh             a quick run
#   MAX_TIME=60 Fuzz/run.sh             stop each after a minute
# Builds into .build-fuzz/ (release, instrumented), keeps each growing corpus in fuzz-corpus/<Name> (both ignored by
# git); Fuzz/seeds/<Name>/ holds the checked-in starting inputs. A crash leaves .build-fuzz/<Name>-crash-* and fails.
#
# Adding a harness (e.g. for a new payload decoder):
#   1. Fuzz/<Name>.swift: a `@_cdecl("LLVMFuzzerTestOneInput")` function that feeds the bytes to the decoder and
#      traps (fatalError) only when an invariant breaks; copy MonPayloadFuzz.swift. Its first line may carry
#      libFuzzer flags: `// libfuzzer: -max_len=4096`, and its second AddressSanitizer options, set as ASAN_OPTIONS
#      for that harness: `// asan: detect_leaks=0` (libFuzzer's -detect_leaks=0 alone still leaves the leak check at
#      exit, which fails a run that found nothing when a library leaks by design).
#   2. One line in `fuzzHarnesses` at the end of Package.swift: ("<Name>", ["<module it imports>"]).
#   3. Optionally, seed inputs in Fuzz/seeds/<Name>/ (one file each).
set -eu
cd "$(dirname "$0")/.."

RUNS="${RUNS:-10000000}"
MAX_TIME="${MAX_TIME:-3600}"

if [ $# -gt 0 ]; then
    HARNESSES="$*"
else
    HARNESSES=$(cd Fuzz && ls *.swift | sed 's/\.swift$//')
fi

for name in $HARNESSES; do
    grep -q "(\"$name\"," Package.swift || { echo "Fuzz/run.sh: $name is not listed in fuzzHarnesses (Package.swift)" >&2; exit 1; }
done

# One instrumented build: ASan everywhere, libFuzzer's coverage in every Swift module (SwiftPM's --sanitize=fuzzer
# alone instruments only the executable's own file, leaving the parsers under test blind: hence -Xswiftc); lld links
# the sanitizer runtimes without gold's export warnings.
FLAGS="-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld --scratch-path .build-fuzz"
build() {
    DEVSTATUSD_FUZZ=1 swift build $FLAGS --product "$1"
}
for name in $HARNESSES; do build "$name"; done
BIN_DIR=$(DEVSTATUSD_FUZZ=1 swift build $FLAGS --show-bin-path)

run() {
    name=$1
    flags=$(sed -n '1s|^// libfuzzer: ||p' "Fuzz/$name.swift")
    asan=$(sed -n '2s|^// asan: ||p' "Fuzz/$name.swift")
    mkdir -p "fuzz-corpus/$name" "Fuzz/seeds/$name"
    corpus="$PWD/fuzz-corpus/$name"
    seeds="$PWD/Fuzz/seeds/$name"
    artifacts="$PWD/.build-fuzz/$name-"
    # An empty working directory: paths inside inputs (a config's tokenFile) find nothing; stdin reads nothing.
    work=$(mktemp -d)
    status=0
    (cd "$work" && ASAN_OPTIONS="$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" "$BIN_DIR/$name" -runs="$RUNS" -max_total_time="$MAX_TIME" $flags -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$corpus" "$seeds" </dev/null) >"$PWD/.build-fuzz/$name.log" 2>&1 || status=$?
    rm -rf "$work"
    grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)|ERROR|SUMMARY" \
        ".build-fuzz/$name.log" | sed "s|^|$name: |"
    [ "$status" -eq 0 ] || { echo "$name: FAILED (exit $status); log: .build-fuzz/$name.log" >&2; return 1; }
}

# One harness at a time: each uses one core.
failed=0
for name in $HARNESSES; do run "$name" || failed=1; done
exit $failed
