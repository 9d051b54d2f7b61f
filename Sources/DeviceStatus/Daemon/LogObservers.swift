import HTTP1
import Logging
import Synchronization

extension DeviceKey {
    /// `deviceType` and `deviceId`: the log metadata of a device (under journald: `DEVICE_TYPE=`, `DEVICE_ID=`).
    public var logMetadata: Logger.Metadata { ["deviceType": "\(type)", "deviceId": "\(id)"] }
}

/// Logs every status transition at debug, whatever its source: `status changed deviceId=ps1 deviceType=type1
/// from=offline reason=… source=mon to=online`.
enum TransitionLog {
    static func observe(_ events: DeviceEvents, logger: Logger) {
        events.observe { event in
            // A retained replay is a transition per device: build no metadata that the level discards.
            guard logger.logLevel <= .debug, case .transition(let from, let to) = event.kind else { return }
            var metadata = event.key.logMetadata
            metadata["from"] = "\(from.rawValue)"
            metadata["to"] = "\(to.rawValue)"
            metadata["source"] = "\(event.source)"
            if let reason = event.reason { metadata["reason"] = "\(reason)" }
            logger.debug("status changed", metadata: metadata)
        }
    }
}

/// `[log] access = true`: one info line per HTTP response, `request method=GET route=/devices/:type/:id
/// status=200 ms=0.12` (the route pattern, not the path: paths carry device ids of any length). A reload turns it
/// on or off.
public final class AccessLog: Sendable {
    private let enabled: Atomic<Bool>
    private let logger: Logger

    public init(enabled: Bool, logger: Logger) {
        self.enabled = Atomic(enabled)
        self.logger = logger
    }

    public var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set { enabled.store(newValue, ordering: .relaxed) }
    }

    public func record(_ response: HTTPResponseRecord) {
        guard enabled.load(ordering: .relaxed) else { return }
        let milliseconds = Double(response.nanoseconds / 1000) / 1000
        logger.info(
            "request",
            metadata: [
                "method": "\(response.method.map { "\($0)" } ?? "-")", "route": "\(response.route ?? "-")",
                "status": "\(response.status.code)", "ms": "\(milliseconds)",
            ])
    }
}
