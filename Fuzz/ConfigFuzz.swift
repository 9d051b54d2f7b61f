// libfuzzer: -max_len=2048 -detect_leaks=0 -rss_limit_mb=8192
// asan: detect_leaks=0
// libFuzzer entry for the configuration loader: TOML text (TOMLKit) to DaemonConfig, key by key, collecting errors.
// Leak detection is off, in libFuzzer (per input) and in AddressSanitizer (at exit): TOMLKit 0.6.0 never frees much of
// what it allocates (TOMLTable has no deinit, so every parsed toml++ table stays; an error buffer per parse; each
// string read through `.string` and each table's key list), which is little for a daemon that parses its config at
// start and on SIGHUP, but fails every run here (at exit after 10 million runs: 1.6 GB in 23 million allocations).
// For the same reason the memory grows with the runs (0.3-0.4 GB a million): the RSS limit is raised from libFuzzer's
// 2 GB so that 10 million runs fit (peak 3.4 GB).
//
// The loader runs TOMLGuard (a TOML 1.0.0 syntax check) before toml++, whose asserts end the process on some
// malformed text: an abort here is either a hole in the guard or toml++ failing on valid TOML.
//
// Checks, for every input that is UTF-8 (the loader refuses anything else before parsing):
// - the loader returns a configuration or at least one error, never traps;
// - every error names a line inside the text (or none), and formats;
// - an accepted text gives the same configuration when parsed again.
// A difference traps, which libFuzzer reports as a crash with the input saved.
//
// Keys naming files (tokenFile, cafile, ...) are opened as the loader does: Fuzz/run.sh runs the harness in an
// empty directory with stdin from /dev/null, so that a relative path finds nothing and /dev/stdin reads nothing.

import DeviceStatus

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    let lineCount = text.utf8.reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
    switch ConfigLoader.parse(text: text, fileName: "fuzz.toml") {
    case .success(let config):
        guard case .success(let again) = ConfigLoader.parse(text: text, fileName: "fuzz.toml"), again == config else {
            fatalError("the same text parsed twice gave different results")
        }
    case .failure(let errors):
        if errors.errors.isEmpty { fatalError("refused without an error") }
        for error in errors.errors {
            if let line = error.line, !(1...lineCount).contains(line) {
                fatalError("error on line \(line) of a \(lineCount)-line text: \(error)")
            }
            _ = error.description
        }
    }
    return 0
}
