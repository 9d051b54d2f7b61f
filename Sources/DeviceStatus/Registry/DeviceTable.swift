import Synchronization

/// The status map that HTTP threads read. The `StatusRegistry` actor is its only writer; readers take a short
/// lock for one lookup and never await the actor (PLATFORM.md: HTTP threads must not hop to an actor per request).
public final class DeviceTable: Sendable {
    private let records = Mutex<[String: StatusRecord]>([:])
    private let organization = Mutex<String>("")

    public init() {}

    /// The status record of `type/id`, if one is stored.
    public func record(forPath path: String) -> StatusRecord? {
        records.withLock { $0[path] }
    }

    public func record(for key: DeviceKey) -> StatusRecord? { record(forPath: key.path) }

    public var count: Int { records.withLock { $0.count } }

    /// Counts of stored records by their last action.
    public func countsByAction() -> (connected: Int, disconnected: Int) {
        records.withLock { table in
            var connected = 0
            for record in table.values where record.action == .connect { connected += 1 }
            return (connected, table.count - connected)
        }
    }

    /// Calls `body` with every device path and its last action, under the lock: keep `body` short.
    public func forEach(_ body: (_ path: String, _ action: MonPayload.Action) -> Void) {
        records.withLock { table in
            for (path, record) in table { body(path, record.action) }
        }
    }

    /// The org used for never-connected answers: configured, else learned from messages, else "".
    public var organizationForUnknownDevices: String { organization.withLock { $0 } }

    func setOrganization(_ value: String) { organization.withLock { $0 = value } }

    /// Applies one batch of changes under a single lock: `nil` removes the device.
    func apply(_ changes: [(path: String, record: StatusRecord?)]) {
        guard !changes.isEmpty else { return }
        records.withLock { table in
            for change in changes {
                if let record = change.record {
                    table[change.path] = record
                } else {
                    table.removeValue(forKey: change.path)
                }
            }
        }
    }

    func replaceAll(_ loaded: consuming [String: StatusRecord]) {
        let loaded = loaded
        records.withLock { $0 = loaded }
    }
}
