/// The watchdog of IotMonitor's watched devices (docs/behaviour.md §3): a device is alive while a non-retained message
/// arrives on one of its watch topics within its timeout; the first deadline runs from daemon start (a grace period).
///
/// Pure and clock-free: the caller passes the monotonic time (for deadlines) and the wall time (for what is
/// published). Deadlines sit in a min-heap with one entry per device. Activity only moves a device's deadline;
/// its entry is re-filed when it comes due, so a message costs O(1) and the cost of time passing grows with the
/// number of expiring deadlines, not with a scan of every device.
public struct Watchdog: Sendable {
    public struct Device: Sendable, Equatable {
        public let name: String
        /// Nanoseconds.
        public let timeout: Int64
        /// Monotonic nanoseconds.
        public fileprivate(set) var deadline: Int64
        /// Wall-clock nanoseconds of the last activity; nil if none since daemon start.
        public fileprivate(set) var lastActivity: Int64?
        public fileprivate(set) var expired = false
        /// Wall-clock nanoseconds of the last transition (or daemon start).
        public fileprivate(set) var since: Int64
        fileprivate var scheduled = true
    }

    public enum Transition: Sendable, Equatable {
        /// The device went silent: `lastActivity` is nil if it was never seen.
        case expired(device: Int)
        /// The device is alive again after having expired.
        case alive(device: Int)
    }

    public private(set) var devices: [Device]
    private var heap = DeadlineHeap<Int>()

    /// - Parameters:
    ///   - timeouts: each device's name and `watchTimeOut` in nanoseconds.
    ///   - monotonicNow/wallNow: daemon start, from which the first deadlines run.
    public init(timeouts: [(name: String, timeout: Int64)], monotonicNow: Int64, wallNow: Int64) {
        devices = timeouts.map {
            Device(name: $0.name, timeout: $0.timeout, deadline: monotonicNow + $0.timeout, since: wallNow)
        }
        heap.reserveCapacity(devices.count)
        for index in devices.indices { heap.push(devices[index].deadline, index) }
    }

    /// The earliest deadline still to be checked, if any.
    public var nextDeadline: Int64? { heap.first?.time }

    /// Counts of alive and expired devices.
    public var expiredCount: Int { devices.lazy.filter(\.expired).count }

    /// A qualifying message arrived for `device`: pushes its deadline out. Returns `.alive` if it had expired.
    public mutating func recordActivity(device index: Int, monotonicNow: Int64, wallNow: Int64) -> Transition? {
        devices[index].deadline = monotonicNow + devices[index].timeout
        devices[index].lastActivity = wallNow
        if !devices[index].scheduled {
            devices[index].scheduled = true
            heap.push(devices[index].deadline, index)
        }
        guard devices[index].expired else { return nil }
        devices[index].expired = false
        devices[index].since = wallNow
        return .alive(device: index)
    }

    /// Expires every device whose deadline has passed; returns them in deadline order.
    public mutating func expireDue(monotonicNow: Int64, wallNow: Int64) -> [Transition] {
        var transitions: [Transition] = []
        while let top = heap.first, top.time <= monotonicNow {
            heap.popFirst()
            let index = top.payload
            if devices[index].deadline > monotonicNow {
                // Activity moved the deadline since this entry was filed.
                heap.push(devices[index].deadline, index)
                continue
            }
            devices[index].scheduled = false
            if !devices[index].expired {
                devices[index].expired = true
                devices[index].since = wallNow
                transitions.append(.expired(device: index))
            }
        }
        return transitions
    }

    /// Gives `device` the state a device of the same name had before a reconfiguration, then files its deadline
    /// again. Call `rebuildSchedule()` once after the last carry-over.
    public mutating func carryOver(device index: Int, from old: Device) {
        devices[index].deadline = old.deadline
        devices[index].lastActivity = old.lastActivity
        devices[index].expired = old.expired
        devices[index].since = old.since
        devices[index].scheduled = old.scheduled
    }

    /// Gives `device` what an earlier run of the daemon knew of it (docs/behaviour.md §3, watchdog 3): its last
    /// activity, and its state. One that was expired stays expired (no deadline) until it speaks; one that was alive
    /// keeps the grace period it started with. Call `rebuildSchedule()` once after the last restore.
    public mutating func restore(device index: Int, lastActivity: Int64?, expired: Bool, since: Int64) {
        devices[index].lastActivity = lastActivity
        devices[index].since = since
        devices[index].expired = expired
        devices[index].scheduled = !expired
    }

    /// Files every scheduled device's deadline anew (after carry-overs).
    public mutating func rebuildSchedule() {
        heap.removeAll()
        for index in devices.indices where devices[index].scheduled { heap.push(devices[index].deadline, index) }
    }
}
