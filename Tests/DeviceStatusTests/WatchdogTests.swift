import Testing

@testable import DeviceStatus

@Suite struct WatchdogTests {
    let second: Int64 = 1_000_000_000

    func makeWatchdog() -> Watchdog {
        Watchdog(
            timeouts: [("esp04", 60 * second), ("doorbell", 30 * second)], monotonicNow: 0, wallNow: 1000 * second)
    }

    @Test func givesEveryDeviceAGracePeriodFromDaemonStart() {
        var watchdog = makeWatchdog()
        #expect(watchdog.expireDue(monotonicNow: 29 * second, wallNow: 1029 * second).isEmpty)
        #expect(watchdog.expireDue(monotonicNow: 30 * second, wallNow: 1030 * second) == [.expired(device: 1)])
        #expect(watchdog.devices[1].lastActivity == nil)
        #expect(watchdog.expireDue(monotonicNow: 60 * second, wallNow: 1060 * second) == [.expired(device: 0)])
    }

    @Test func activityPushesTheDeadlineOut() {
        var watchdog = makeWatchdog()
        #expect(watchdog.recordActivity(device: 1, monotonicNow: 20 * second, wallNow: 1020 * second) == nil)
        #expect(watchdog.expireDue(monotonicNow: 49 * second, wallNow: 1049 * second).isEmpty)
        #expect(watchdog.nextDeadline == 50 * second)
        #expect(watchdog.expireDue(monotonicNow: 50 * second, wallNow: 1050 * second) == [.expired(device: 1)])
        #expect(watchdog.devices[1].lastActivity == 1020 * second)
    }

    @Test func anExpiredDeviceComesBackAliveOnActivityAndCanExpireAgain() {
        var watchdog = makeWatchdog()
        _ = watchdog.expireDue(monotonicNow: 30 * second, wallNow: 1030 * second)
        #expect(watchdog.devices[1].expired)
        #expect(
            watchdog.recordActivity(device: 1, monotonicNow: 40 * second, wallNow: 1040 * second) == .alive(device: 1))
        #expect(!watchdog.devices[1].expired)
        #expect(watchdog.devices[1].since == 1040 * second)
        #expect(watchdog.expireDue(monotonicNow: 69 * second, wallNow: 1069 * second) == [.expired(device: 0)])
        #expect(watchdog.expireDue(monotonicNow: 70 * second, wallNow: 1070 * second) == [.expired(device: 1)])
    }

    @Test func expiresOnlyOncePerSilence() {
        var watchdog = makeWatchdog()
        #expect(watchdog.expireDue(monotonicNow: 100 * second, wallNow: 1100 * second).count == 2)
        #expect(watchdog.expireDue(monotonicNow: 1000 * second, wallNow: 2000 * second).isEmpty)
        #expect(watchdog.nextDeadline == nil)
    }

    @Test func keepsOneHeapEntryPerDeviceUnderAStreamOfActivity() {
        var watchdog = Watchdog(
            timeouts: (0..<1000).map { ("d\($0)", Int64(5 + $0 % 56) * second) }, monotonicNow: 0, wallNow: 0)
        var now: Int64 = 0
        for step in 0..<100_000 {
            now += second / 1000
            _ = watchdog.recordActivity(device: step % 1000, monotonicNow: now, wallNow: now)
            _ = watchdog.expireDue(monotonicNow: now, wallNow: now)
        }
        // Every device was seen at least every second: none may have expired.
        #expect(watchdog.expiredCount == 0)
    }
}

@Suite struct WatchdogReconfigurationTests {
    let second: Int64 = 1_000_000_000

    @Test func carriesStateOverToTheSameDeviceInANewLayout() {
        var old = Watchdog(timeouts: [("a", 10 * second), ("b", 10 * second)], monotonicNow: 0, wallNow: 0)
        _ = old.recordActivity(device: 0, monotonicNow: 5 * second, wallNow: 5 * second)
        _ = old.expireDue(monotonicNow: 12 * second, wallNow: 12 * second)
        #expect(old.devices[1].expired && !old.devices[0].expired)
        // "b" stays, "a" goes, "c" is new.
        var new = Watchdog(
            timeouts: [("b", 10 * second), ("c", 10 * second)], monotonicNow: 13 * second, wallNow: 13 * second)
        new.carryOver(device: 0, from: old.devices[1])
        new.rebuildSchedule()
        #expect(new.devices[0].expired)
        #expect(new.expireDue(monotonicNow: 22 * second, wallNow: 22 * second).isEmpty)
        #expect(new.expireDue(monotonicNow: 23 * second, wallNow: 23 * second) == [.expired(device: 1)])
        #expect(new.recordActivity(device: 0, monotonicNow: 24 * second, wallNow: 24 * second) == .alive(device: 0))
        #expect(new.expireDue(monotonicNow: 34 * second, wallNow: 34 * second) == [.expired(device: 0)])
    }
}
