import Dispatch
import Foundation
import Logging
import Storage
import Synchronization

/// The second stage of status ingestion: stores each judged batch in LevelDB, then lets the table serve it and
/// announces its transitions, on a serial queue of its own, while the registry judges the next batch.
///
/// A batch is written to LevelDB's log before the table serves it (a status answered once is found again after a
/// crash of the daemon). Until then its records are held here, in flight, so that the registry judges the next
/// messages against them: `record(forPath:)` is the registry's view (in flight, else the table).
final class StatusCommitter: Sendable {
    /// What one judged batch changes.
    struct Batch: Sendable {
        var records: [(path: String, record: StatusRecord?)] = []
        var transitions: [(path: String, from: DeviceState, to: DeviceState, source: PresenceSource, reason: String?)] =
            []
        /// Devices heard from without a change of status (their last-seen time moved).
        var seen: [(path: String, source: PresenceSource)] = []
        /// The last record of each device the batch changes.
        var pending: [String: StatusRecord?] = [:]
        /// How the number of stored statuses changes with the batch (devices added minus devices deleted).
        var countChange = 0
        /// A newly learned organization, to store with the batch.
        var organization: String?
    }

    /// Batches handed over and not yet served, beyond which `submit` tells its caller to wait (`drain()`): bounds
    /// the memory held between the stages when storing falls behind.
    static var backlogLimit: Int { 8 }

    private struct InFlight {
        /// The batches handed over and not yet served, oldest first, each with its devices' last records (the
        /// batch's own dictionary, shared: handing a batch over copies nothing per device).
        var batches: [(number: UInt64, pending: [String: StatusRecord?])] = []
        var submitted: UInt64 = 0
        var served: UInt64 = 0
    }

    let table: DeviceTable
    private let store: LevelDB
    private let events: DeviceEvents?
    private let logger: Logger
    private let onStoreWrite: (@Sendable (Duration) -> Void)?
    private let clock: @Sendable () -> Int64
    private let queue = DispatchQueue(label: "status-store", qos: .userInitiated)
    private let inFlight = Mutex(InFlight())
    /// Devices whose status changed in memory but could not be stored (the store failed): written with the next
    /// batch the store takes, or by `storeUnsaved()` once it is back. Touched on `queue` only (and by
    /// `storeUnsaved`, after a drain).
    private let unsaved = Mutex(Set<String>())
    private let storeErrors = Atomic(0)

    init(
        store: LevelDB, table: DeviceTable, events: DeviceEvents?, logger: Logger,
        onStoreWrite: (@Sendable (Duration) -> Void)?, clock: @escaping @Sendable () -> Int64
    ) {
        self.store = store
        self.table = table
        self.events = events
        self.logger = logger
        self.onStoreWrite = onStoreWrite
        self.clock = clock
    }

    /// Failed LevelDB writes so far.
    var errors: Int { storeErrors.load(ordering: .relaxed) }

    /// The device's record as the registry judges against it: the latest in flight, else the table's.
    func record(forPath path: String) -> StatusRecord? {
        let held = inFlight.withLock { state -> StatusRecord?? in
            for batch in state.batches.reversed() {
                if let record = batch.pending[path] { return record }
            }
            return nil
        }
        if let held { return held }
        return table.record(forPath: path)
    }

    /// The records of `paths` as `record(forPath:)` answers each, read at once: the batches in flight are taken first,
    /// then the table, so that a batch served in between is seen in one or the other (this registry is the only
    /// submitter, and it is the caller).
    func records(forPaths paths: [String]) -> [StatusRecord?] {
        let held = inFlight.withLock { $0.batches.map(\.pending) }
        var found = table.records(forPaths: paths)
        guard !held.isEmpty else { return found }
        for index in paths.indices {
            for pending in held.reversed() {
                if let record = pending[paths[index]] {
                    found[index] = record
                    break
                }
            }
        }
        return found
    }

    /// Paths of the records in flight (for a node death's cascade, which also walks the table).
    func pathsInFlight() -> [String] {
        inFlight.withLock { state in
            var paths = Set<String>()
            for batch in state.batches { paths.formUnion(batch.pending.keys) }
            return Array(paths)
        }
    }

    /// Hands a judged batch over to be stored, served and announced in order.
    /// - Returns: whether the caller should `drain()` before handing over more (the backlog is full).
    func submit(_ batch: Batch) -> Bool {
        let (number, backlog) = inFlight.withLock { state -> (UInt64, UInt64) in
            state.submitted += 1
            state.batches.append((state.submitted, batch.pending))
            return (state.submitted, state.submitted - state.served)
        }
        queue.async { [self] in commit(batch, number: number) }
        return backlog >= UInt64(Self.backlogLimit)
    }

    /// Returns once every batch handed over so far is stored and served.
    func drain() async {
        guard inFlight.withLock({ $0.submitted != $0.served }) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }

    private func commit(_ changes: Batch, number: UInt64) {
        var batch = WriteBatch()
        if let organization = changes.organization {
            batch.put(StatusRegistry.organizationKey, Array(organization.utf8))
            table.setOrganization(organization)
        }
        if !changes.records.isEmpty {
            for (path, record) in changes.records {
                if let record {
                    batch.put(StatusRegistry.statusPrefix + Array(path.utf8), record.encoded)
                } else {
                    batch.delete(StatusRegistry.statusPrefix + Array(path.utf8))
                }
            }
            // The table serves every batch before this one (this queue is its only writer).
            addUnsaved(to: &batch, except: changes.pending)
            batch.put(StatusRegistry.countKey, Array("\(table.count + changes.countChange)".utf8))
        }
        if !batch.isEmpty { write(batch, paths: changes.records.map(\.path)) }
        // Written before the table serves it: a status answered once is found again after a crash of the daemon.
        table.apply(changes.records)
        inFlight.withLock { state in
            state.served = number
            if state.batches.first?.number == number { state.batches.removeFirst() }
        }
        announce(changes)
    }

    private func announce(_ changes: Batch) {
        guard let events, !changes.transitions.isEmpty || !changes.seen.isEmpty else { return }
        let now = clock()
        var announced: [DeviceEvent] = []
        announced.reserveCapacity(changes.seen.count + changes.transitions.count)
        for (path, source) in changes.seen {
            guard let key = DeviceKey(storedPath: path) else { continue }
            announced.append(DeviceEvent(key: key, kind: .seen, source: source.name, time: now))
        }
        for transition in changes.transitions {
            guard let key = DeviceKey(storedPath: transition.path) else { continue }
            announced.append(
                DeviceEvent(
                    key: key, kind: .transition(from: transition.from, to: transition.to),
                    source: transition.source.name, reason: transition.reason, time: now))
        }
        events.emit(contentsOf: announced)
    }

    /// Writes `batch`, which changes the statuses of `paths`. A failed write leaves them unsaved: the next write the
    /// store takes carries them.
    private func write(_ batch: WriteBatch, paths: [String]) {
        let writeStarted = ContinuousClock.now
        do {
            try store.write(batch, sync: false)
            onStoreWrite?(ContinuousClock.now - writeStarted)
            unsaved.withLock { $0.removeAll() }
        } catch {
            storeErrors.add(1, ordering: .relaxed)
            let count = unsaved.withLock { unsaved in
                unsaved.formUnion(paths)
                return unsaved.count
            }
            logger.error("could not persist status changes", metadata: ["error": "\(error)", "unsaved": "\(count)"])
        }
    }

    /// Writes the statuses that changed while the store refused writes (call once it is back). Returns how many.
    func storeUnsaved() async -> Int {
        await drain()
        return await withCheckedContinuation { continuation in
            queue.async { [self] in continuation.resume(returning: storeUnsavedNow()) }
        }
    }

    private func storeUnsavedNow() -> Int {
        let waiting = unsaved.withLock { $0.count }
        guard waiting > 0 else { return 0 }
        var batch = WriteBatch()
        addUnsaved(to: &batch)
        batch.put(StatusRegistry.countKey, Array("\(table.count)".utf8))
        do {
            try store.write(batch, sync: false)
        } catch {
            storeErrors.add(1, ordering: .relaxed)
            logger.error(
                "could not persist status changes", metadata: ["error": "\(error)", "unsaved": "\(waiting)"])
            return 0
        }
        unsaved.withLock { $0.removeAll() }
        return waiting
    }

    /// Adds each unsaved device's current status (or its deletion) to `batch`, but for those `changes` writes.
    private func addUnsaved(to batch: inout WriteBatch, except changes: [String: StatusRecord?] = [:]) {
        let paths = unsaved.withLock { $0 }
        for path in paths where changes[path] == nil {
            if let record = table.record(forPath: path) {
                batch.put(StatusRegistry.statusPrefix + Array(path.utf8), record.encoded)
            } else {
                batch.delete(StatusRegistry.statusPrefix + Array(path.utf8))
            }
        }
    }
}
