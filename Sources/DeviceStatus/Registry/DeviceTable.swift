import Synchronization

/// The status map that HTTP threads read. The `StatusRegistry` actor is its only writer; readers take a short
/// lock for one lookup and never await the actor (HTTP threads must not hop to an actor per request).
public final class DeviceTable: Sendable {
    private let records = Mutex<[String: StatusRecord]>([:])
    private let organization = Mutex<String>("")
    /// Walks in progress over a snapshot (`forEach`, `countsByAction`).
    private let walkers = Atomic<Int>(0)

    public init() {}

    /// The status record of `type/id`, if one is stored.
    public func record(forPath path: String) -> StatusRecord? {
        records.withLock { $0[path] }
    }

    public func record(for key: DeviceKey) -> StatusRecord? { record(forPath: key.path) }

    /// The status records of `paths`, in their order, read a few hundred per hold of the lock (the registry reads a
    /// whole batch's devices at once rather than taking the lock per message).
    func records(forPaths paths: [String]) -> [StatusRecord?] {
        var found: [StatusRecord?] = []
        found.reserveCapacity(paths.count)
        var start = paths.startIndex
        while start < paths.endIndex {
            let end = min(start + Self.changesPerLock, paths.endIndex)
            records.withLock { table in
                for path in paths[start..<end] { found.append(table[path]) }
            }
            start = end
        }
        return found
    }

    public var count: Int { records.withLock { $0.count } }

    /// Runs `body` over the whole map as it is now, taken in O(1) and walked outside the lock.
    ///
    /// Walking a million devices takes hundreds of milliseconds; under the lock that stalled every
    /// event loop's lookups for as long (one `GET /devices` page starved the HTTP server). The snapshot
    /// shares the map's storage instead, and `apply` copies it outside the lock while a walk holds it.
    private func walk<R>(_ body: ([String: StatusRecord]) -> R) -> R {
        walkers.add(1, ordering: .relaxed)
        defer { walkers.subtract(1, ordering: .relaxed) }
        return body(records.withLock { $0 })
    }

    /// Counts of stored records by their last action.
    public func countsByAction() -> (connected: Int, disconnected: Int) {
        walk { table in
            var connected = 0
            for record in table.values where record.action == .connect { connected += 1 }
            return (connected, table.count - connected)
        }
    }

    /// Counts of stored records by their status.
    public func countsByStatus() -> [PresenceStatus: Int] {
        walk { table in
            var counts = [0, 0, 0, 0]
            for record in table.values { counts[Int(record.status.rawValue)] += 1 }
            return [.online: counts[1], .offline: counts[2], .sleeping: counts[3]]
        }
    }

    /// Calls `body` with every device path and its status, from a snapshot (no lock held).
    public func forEachStatus(_ body: (_ path: String, _ status: PresenceStatus) -> Void) {
        walk { table in
            for (path, record) in table { body(path, record.status) }
        }
    }

    /// Calls `body` with every device path and its last action, from a snapshot (no lock held).
    public func forEach(_ body: (_ path: String, _ action: MonPayload.Action) -> Void) {
        walk { table in
            for (path, record) in table { body(path, record.action) }
        }
    }

    /// Calls `body` with every device path and its record, from a snapshot (no lock held).
    public func forEachRecord(_ body: (_ path: String, _ record: StatusRecord) -> Void) {
        walk { table in
            for (path, record) in table { body(path, record) }
        }
    }

    /// The org used for never-connected answers: configured, else learned from messages, else "".
    public var organizationForUnknownDevices: String { organization.withLock { $0 } }

    func setOrganization(_ value: String) { organization.withLock { $0 = value } }

    /// Changes applied per hold of the lock: readers (HTTP threads, the registry judging the next batch) wait at most
    /// this many insertions, not a whole replay batch's.
    static let changesPerLock = 256

    /// Applies one batch of changes: `nil` removes the device.
    ///
    /// While a walk holds a snapshot, changing the shared map in place would copy all of it under the lock that
    /// lookups take; the copy is made outside it instead and swapped in (the registry is the only writer, so nothing is
    /// lost in between). Otherwise the changes go in a few hundred per hold of the lock: readers wait for at most
    /// that many insertions (or the map growing), not for a whole replay batch.
    func apply(_ changes: [(path: String, record: StatusRecord?)]) {
        guard !changes.isEmpty else { return }
        if walkers.load(ordering: .relaxed) == 0 {
            var start = changes.startIndex
            while start < changes.endIndex {
                let end = min(start + Self.changesPerLock, changes.endIndex)
                records.withLock { Self.apply(changes[start..<end], to: &$0) }
                start = end
            }
            return
        }
        var updated = records.withLock { $0 }
        Self.apply(changes[...], to: &updated)
        records.withLock { swap(&$0, &updated) }
        // `updated` now holds the map the walk shares; it is released here, outside the lock.
    }

    private static func apply(
        _ changes: ArraySlice<(path: String, record: StatusRecord?)>, to table: inout [String: StatusRecord]
    ) {
        for change in changes {
            if let record = change.record {
                table[change.path] = record
            } else {
                table.removeValue(forKey: change.path)
            }
        }
    }

    func replaceAll(_ loaded: consuming [String: StatusRecord]) {
        let loaded = loaded
        records.withLock { $0 = loaded }
    }
}
