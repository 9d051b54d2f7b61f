import Storage

/// What survives a restart of a watched device's watchdog (docs/behaviour.md §3, watchdog 3), kept in LevelDB under
/// `w/<name>` as one line of text: `1 <lastActivity or -> <helloCount> <expired 0|1> <since>` (times in wall-clock
/// nanoseconds). A device that was alive gets a new grace period at start; one that was expired stays expired, with
/// its last activity, until it speaks.
struct WatchdogRecord: Sendable, Equatable {
    var lastActivity: Int64?
    var helloCount: Int
    var expired: Bool
    var since: Int64

    static func key(device name: String) -> [UInt8] { Array("w/".utf8) + Array(name.utf8) }

    var encoded: [UInt8] {
        Array("1 \(lastActivity.map(String.init) ?? "-") \(helloCount) \(expired ? 1 : 0) \(since)".utf8)
    }

    /// Nil for anything but a record this version wrote (a damaged or foreign value is ignored: the device then
    /// starts as if never seen).
    init?(encoded: some Collection<UInt8>) {
        let fields = String(decoding: encoded, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 5, fields[0] == "1", let helloCount = Int(fields[2]), helloCount >= 0,
            fields[3] == "0" || fields[3] == "1", let since = Int64(fields[4])
        else { return nil }
        if fields[1] == "-" {
            lastActivity = nil
        } else {
            guard let time = Int64(fields[1]) else { return nil }
            lastActivity = time
        }
        self.helloCount = helloCount
        self.expired = fields[3] == "1"
        self.since = since
    }

    init(lastActivity: Int64?, helloCount: Int, expired: Bool, since: Int64) {
        self.lastActivity = lastActivity
        self.helloCount = helloCount
        self.expired = expired
        self.since = since
    }
}
