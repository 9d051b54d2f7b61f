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
    private let observers = Mutex<[@Sendable (DeviceEvent) -> Void]>([])

    public init() {}

    public func observe(_ observer: @escaping @Sendable (DeviceEvent) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    public func emit(_ event: DeviceEvent) {
        let current = observers.withLock { $0 }
        for observer in current { observer(event) }
    }
}
