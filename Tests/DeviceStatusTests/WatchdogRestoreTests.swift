import Testing

@testable import DeviceStatus

@Suite struct WatchdogRestoreTests {
    @Test func recordRoundTripsAndRefusesWhatItDidNotWrite() {
        let seen = WatchdogRecord(lastActivity: 1_700_000_000_123_456_789, helloCount: 3, expired: true, since: -5)
        #expect(WatchdogRecord(encoded: seen.encoded) == seen)
        let never = WatchdogRecord(lastActivity: nil, helloCount: 0, expired: false, since: 42)
        #expect(WatchdogRecord(encoded: never.encoded) == never)
        for text in ["", "1", "2 - 0 0 1", "1 x 0 0 1", "1 - -1 0 1", "1 - 0 2 1", "1 - 0 0 1 extra", "1  0 0 1"] {
            #expect(WatchdogRecord(encoded: Array(text.utf8)) == nil, "\(text)")
        }
    }

    @Test func anExpiredDeviceStaysExpiredWithItsLastActivityUntilItSpeaks() {
        var watchdog = Watchdog(timeouts: [("a", 1_000)], monotonicNow: 0, wallNow: 5_000)
        watchdog.restore(device: 0, lastActivity: 1_234, expired: true, since: 2_000)
        watchdog.rebuildSchedule()
        #expect(watchdog.nextDeadline == nil)
        #expect(watchdog.expireDue(monotonicNow: 10_000, wallNow: 15_000).isEmpty)
        #expect(watchdog.devices[0].expired && watchdog.devices[0].lastActivity == 1_234)
        #expect(watchdog.devices[0].since == 2_000)
        #expect(watchdog.recordActivity(device: 0, monotonicNow: 11_000, wallNow: 16_000) == .alive(device: 0))
        #expect(watchdog.nextDeadline == 12_000)
    }

    @Test func anAliveDeviceGetsTheGracePeriodAgain() {
        var watchdog = Watchdog(timeouts: [("a", 1_000)], monotonicNow: 100, wallNow: 5_000)
        watchdog.restore(device: 0, lastActivity: 1_234, expired: false, since: 2_000)
        watchdog.rebuildSchedule()
        #expect(watchdog.nextDeadline == 1_100)
        #expect(watchdog.expireDue(monotonicNow: 1_099, wallNow: 6_000).isEmpty)
        #expect(watchdog.expireDue(monotonicNow: 1_100, wallNow: 6_100) == [.expired(device: 0)])
        // The expiry carries the last activity from before the restart, not the restart time.
        #expect(watchdog.devices[0].lastActivity == 1_234)
    }
}
