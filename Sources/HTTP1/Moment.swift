// Pure: no Logging, no Glibc.

/// A point on `ContinuousClock` as nanoseconds since the first one taken in this process.
///
/// `ContinuousClock.Instant` is a resilient type of the standard library: every copy of one, and of
/// each struct or optional holding one, goes through runtime value witnesses. The connection state
/// machine copies instants on every request, and perf showed those calls at ~5% of a loop's CPU;
/// this is one word of plain data.
struct Moment: Comparable, Hashable, Sendable {
    var nanoseconds: Int64

    init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    init(_ instant: ContinuousClock.Instant) {
        self.nanoseconds = (instant - Moment.origin).wholeNanoseconds
    }

    private static let origin = ContinuousClock.now

    static var now: Moment { Moment(.now) }

    static func < (a: Moment, b: Moment) -> Bool { a.nanoseconds < b.nanoseconds }

    static func + (a: Moment, b: Duration) -> Moment {
        Moment(nanoseconds: a.nanoseconds &+ b.wholeNanoseconds)
    }

    static func - (a: Moment, b: Moment) -> Duration { .nanoseconds(a.nanoseconds &- b.nanoseconds) }
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
