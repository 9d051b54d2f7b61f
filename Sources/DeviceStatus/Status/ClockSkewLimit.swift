/// How far ahead of the daemon's clock a message's own time (`Time`, `ts`) may lie.
///
/// Messages older than the stored status are ignored (out of order), so one accepted time far in the future
/// would make every real message after it "older" and freeze the device's status for good. A time beyond the
/// limit is therefore malformed: counted, logged and skipped, never stored.
///
/// A pure rule: the caller passes the clock reading, so tests need no clock.
public struct ClockSkewLimit: Sendable, Equatable {
    /// `[status] maxClockSkew`, default 3600 seconds.
    public var seconds: Int

    /// 3600 seconds: devices with a wrong time zone or a clock set by hand stay within it; a year typed wrong does not.
    public static let `default` = ClockSkewLimit(seconds: 3600)

    public init(seconds: Int) { self.seconds = max(0, seconds) }

    /// The latest time accepted when the daemon's clock reads `now` (nanoseconds since the epoch); saturates
    /// rather than overflows.
    public func latestAcceptable(now: Int64) -> Int64 {
        let (skew, overflowed) = Int64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflowed else { return .max }
        let (latest, overflowedSum) = now.addingReportingOverflow(skew)
        guard !overflowedSum else { return .max }
        return latest
    }

    /// Throws `badField(field, …)` when `time` lies more than the limit ahead of `now`.
    public func check(_ time: Int64, now: Int64, field: String) throws(MalformedPayload) {
        guard time > latestAcceptable(now: now) else { return }
        // time > now here, and both are Int64: the difference fits once computed in two steps of seconds.
        let ahead = time / 1_000_000_000 - now / 1_000_000_000
        throw .badField(
            field,
            "\(RFC3339.format(nanoseconds: time)) is \(ahead) s ahead of the daemon's clock "
                + "(more than maxClockSkew = \(seconds) s)")
    }
}
