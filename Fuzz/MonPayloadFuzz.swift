// libfuzzer: -max_len=4096
// libFuzzer entry for the IBM `mon` status payload decoder and the RFC 3339 timestamps inside it: what arrives on a
// status topic, from anyone who may publish there.
//
// Checks, for every input:
// - the decoder returns a payload or a MalformedPayload error, never traps (an overflow, an index out of range);
// - contiguous bytes and the same bytes in a non-contiguous collection are judged alike;
// - the clock-skew rule keeps exactly the payloads whose Time is at most maxClockSkew ahead;
// - a parsed Time formats and parses back to itself at millisecond precision.
// The input read as text also goes through RFC3339.parse directly. A difference traps, which libFuzzer reports as a
// crash with the input saved.

import DeviceStatus

/// A fixed clock reading (2026-06-01T00:00:00Z): the harness must be deterministic.
private let now: Int64 = 1_780_272_000_000_000_000

private func checkTimeRoundTrip(_ time: Int64) {
    let text = RFC3339.format(nanoseconds: time)
    let millisecond: Int64 = 1_000_000
    let remainder = ((time % millisecond) + millisecond) % millisecond
    let (floored, overflowed) = time.subtractingReportingOverflow(remainder)
    let parsed = RFC3339.parse(text)
    if overflowed {
        // Only the first millisecond of the range floors below what Int64 holds.
        guard parsed == nil else { fatalError("\(text) parsed although below the range") }
    } else if parsed != floored {
        fatalError("\(time) formatted as \(text) parsed back as \(String(describing: parsed))")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMonPayload(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let contiguous = Result { () throws(MalformedPayload) in try MonPayload(parsing: bytes) }
    let copied = Result { () throws(MalformedPayload) in try MonPayload(parsing: bytes.lazy.map { $0 }) }
    if contiguous != copied { fatalError("contiguous \(contiguous) but non-contiguous \(copied)") }
    let judged = Result { () throws(MalformedPayload) in
        try MonPayload(parsing: bytes, now: now, skew: .default)
    }
    switch contiguous {
    case .success(let payload):
        let admitted = payload.time <= now + Int64(ClockSkewLimit.default.seconds) * 1_000_000_000
        if admitted != ((try? judged.get()) != nil) {
            fatalError("clock-skew rule: Time \(payload.time) judged \(judged)")
        }
        checkTimeRoundTrip(payload.time)
    case .failure(let error):
        if case .success = judged { fatalError("malformed \(error) but accepted with the clock-skew rule") }
        _ = (error.description, error.label)
    }
    if let time = RFC3339.parse(String(decoding: bytes, as: UTF8.self)) { checkTimeRoundTrip(time) }
    return 0
}
