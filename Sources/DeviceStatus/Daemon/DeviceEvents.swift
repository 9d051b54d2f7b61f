import Synchronization

/// A device's overall status, as `GET /devices` reports it. The order of the cases is stored (history entries
/// keep a case's index): new cases go at the end.
public enum DeviceState: String, Sendable, Codable, CaseIterable {
    case online, offline, expired, unknown
    /// The device said it sleeps and will be back (a battery device).
    case sleeping
}

/// Something that happened to a device: a status transition, or a hello.
public struct DeviceEvent: Sendable {
    public enum Kind: Sendable, Equatable {
        /// The device's status changed (`source`: "mon" for the status topics, "watchdog" for watch topics, a
        /// preset's name for a presence convention).
        case transition(from: DeviceState, to: DeviceState)
        /// The device's hello topic fired.
        case hello
        /// The device was heard from without a change of status (its last-seen time moved).
        case seen
    }

    public let key: DeviceKey
    public let kind: Kind
    public let source: String
    public let reason: String?
    /// Wall-clock nanoseconds.
    public let time: Int64

    public init(key: DeviceKey, kind: Kind, source: String, reason: String? = nil, time: Int64) {
        self.key = key
        self.kind = kind
        self.source = source
        self.reason = reason
        self.time = time
    }

    /// Whether this is the device coming online (what triggers operation delivery).
    public var isOnlineSignal: Bool {
        switch kind {
        case .hello: true
        case .transition(_, let to): to == .online
        case .seen: false
        }
    }
}

/// Fans device events out to observers (operation delivery, history, the event stream). Observers run on the
/// emitter's thread or actor and must return quickly.
public final class DeviceEvents: Sendable {
    private struct Observers {
        var each: [@Sendable (DeviceEvent) -> Void] = []
        var batches: [@Sendable ([DeviceEvent]) -> Void] = []
    }

    private let observers = Mutex(Observers())

    public init() {}

    /// `observer` is called with every event, one at a time.
    public func observe(_ observer: @escaping @Sendable (DeviceEvent) -> Void) {
        observers.withLock { $0.each.append(observer) }
    }

    /// `observer` is called with the events of each emission at once, in order (a retained replay emits a batch of
    /// thousands: an observer that takes a lock, or that only keeps the last of them, does so once per batch).
    public func observeBatches(_ observer: @escaping @Sendable ([DeviceEvent]) -> Void) {
        observers.withLock { $0.batches.append(observer) }
    }

    public func emit(_ event: DeviceEvent) {
        emit(contentsOf: [event])
    }

    /// Emits `events` in order: each observer gets all of them before the next observer does.
    public func emit(contentsOf events: [DeviceEvent]) {
        guard !events.isEmpty else { return }
        let current = observers.withLock { $0 }
        for observer in current.each {
            for event in events { observer(event) }
        }
        for observer in current.batches { observer(events) }
    }
}
