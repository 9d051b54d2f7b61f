// Pure: no Logging, no Glibc.

/// A point on a monotonic clock, in nanoseconds. The event loop reads CLOCK_MONOTONIC
/// (`Moment.monotonic()`, Sockets.swift); tests start from any value and add durations.
///
/// Not `ContinuousClock.Instant`: that is a resilient type of the standard library, so every copy of
/// one, and of each struct or optional holding one, goes through runtime value witnesses. The
/// connection state machine copies instants on every request, and perf showed those calls at ~5% of a
/// loop's CPU; this is one word of plain data.
struct Moment: Comparable, Hashable, Sendable {
    var nanoseconds: Int64

    static func < (a: Moment, b: Moment) -> Bool { a.nanoseconds < b.nanoseconds }

    static func + (a: Moment, b: Duration) -> Moment {
        Moment(nanoseconds: a.nanoseconds &+ b.wholeNanoseconds)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at ±292 years.
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        guard seconds < Int64.max / 1_000_000_000 - 1, seconds > Int64.min / 1_000_000_000 + 1 else {
            return seconds > 0 ? .max / 2 : .min / 2
        }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
