import Logging
import MQTT
import ServiceLifecycle
import Storage

/// Delivers pending operations (docs/behaviour.md §4.3): creates and cancels them durably, and when a device comes online sends
/// its QUEUED operations one at a time in creation order — SENDING, publish, the broker's acknowledgement, then (with
/// an `ackTopic`) a message on that topic within `ackTimeoutSeconds` → CONFIRMED. Every state change is stored.
///
/// Triggers: an online signal from `DeviceEvents` (status Connect, watchdog alive, hello), a creation while the
/// device is online, and the first broker connection (devices online then). The state itself lives in an
/// `OperationTable` that HTTP threads read without awaiting this actor.
public actor OperationDelivery {
    /// Why a creation failed.
    public enum CreateFailure: Error, Sendable, Equatable {
        /// The device has `limit` unfinished operations already (429).
        case deviceQueueFull(limit: Int)
        /// The synced write failed (500).
        case storage(String)
    }

    /// Why a cancellation failed.
    public enum CancelFailure: Error, Sendable, Equatable {
        case notFound
        /// Only QUEUED operations can be cancelled (409).
        case notQueued(OperationStatus)
        case storage(String)
    }

    public nonisolated let table: OperationTable
    private let store: OperationStore
    private let isOnline: @Sendable (DeviceKey) -> Bool
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    private var client: (any MQTTPublishing)?
    private var firstConnection = true
    private var subscribedAckTopics: Set<String> = []
    private var pendingCreates:
        [(operation: Operation, reply: CheckedContinuation<Result<Operation, CreateFailure>, Never>)] = []
    /// A group commit is running: creations that arrive meanwhile join its next write.
    private var committing = false
    private var timer: Task<Void, Never>?
    private var timerDeadline: Int64?
    private let onlineSignals: AsyncStream<DeviceKey>
    private nonisolated let onlineSignalInput: AsyncStream<DeviceKey>.Continuation

    /// - Parameters:
    ///   - store: the daemon's LevelDB (operations live under `o/`).
    ///   - settings: `[operations]`: the per-device cap and the attempts before FAILED.
    ///   - events: online signals (`DeviceEvent.isOnlineSignal`) start delivery for that device.
    ///   - isOnline: whether a device is online right now (checked at creation and after each confirmation).
    ///   - clock: wall-clock nanoseconds; default `wallClockNanoseconds`.
    public init(
        store: LevelDB, settings: OperationSettings = .init(), events: DeviceEvents?,
        isOnline: @escaping @Sendable (DeviceKey) -> Bool,
        clock: @escaping @Sendable () -> Int64 = wallClockNanoseconds,
        logger: Logger
    ) {
        self.store = OperationStore(database: store)
        self.table = OperationTable(
            limits: OperationBook.Limits(
                maxQueuedPerDevice: settings.maxQueuedPerDevice, maxAttempts: settings.maxAttempts))
        self.isOnline = isOnline
        self.clock = clock
        self.logger = logger
        let (stream, input) = AsyncStream.makeStream(of: DeviceKey.self)
        onlineSignals = stream
        onlineSignalInput = input
        events?.observe { event in
            if event.isOnlineSignal { input.yield(event.key) }
        }
    }

    /// Loads every stored operation (an operation found SENDING counts one attempt and returns to QUEUED; TTLs that
    /// passed while the daemon was down expire). Call once, before the HTTP port opens; online signals are acted on
    /// while ``run()`` runs.
    /// - Returns: the number of operations loaded.
    @discardableResult
    public func load() async throws -> Int {
        let store = store
        let (loaded, unreadable) = try await store.database.disk.run { try store.loadAll() }
        if unreadable > 0 {
            logger.warning("skipped unreadable stored operations", metadata: ["count": "\(unreadable)"])
        }
        let now = clock()
        var (book, changes) = OperationBook.recovering(loaded, limits: table.limits, now: now)
        changes += book.advance(to: now)
        let recovering = changes
        try await store.database.disk.run { () throws(StorageError) in try store.apply(recovering, sync: true) }
        table.replace(with: book)
        let recovered = changes.count {
            if case .store(let o) = $0 { o.lastError?.hasPrefix("interrupted") == true } else { false }
        }
        if recovered > 0 {
            logger.notice("operations found SENDING returned to QUEUED", metadata: ["count": "\(recovered)"])
        }
        rescheduleTimer()
        return loaded.count
    }

    /// Tells delivery that `device` came online (what `DeviceEvents` online signals do). Safe from any thread.
    public nonisolated func deviceCameOnline(_ device: DeviceKey) { onlineSignalInput.yield(device) }

    /// The store takes writes again: delivery resumes for every online device with queued operations.
    public func storeRecovered() {
        let devices = table.mutate { $0.devicesWithQueuedOperations }
        for device in devices where isOnline(device) { pump(device) }
        rescheduleTimer()
    }

    /// Starts delivery for each device that comes online, until ``stop()`` or a graceful shutdown; then stops.
    public func run() async {
        for await device in onlineSignals.cancelOnGracefulShutdown() { pump(device) }
        stop()
    }

    /// Stops listening (``run()`` returns) and cancels the timer; attempts in flight end on their own.
    public func stop() {
        onlineSignalInput.finish()
        timer?.cancel()
    }

    // MARK: Creating and cancelling

    /// Queues an operation and returns it (QUEUED, attempts 0) once it is on disk (synced write). Concurrent
    /// creations share one synced write (group commit). Starts delivery when the device is online.
    public func create(_ draft: OperationDraft, for device: DeviceKey) async -> Result<Operation, CreateFailure> {
        let now = clock()
        let operation: Operation
        do {
            operation = try table.mutate { (book: inout OperationBook) throws(OperationBook.AdmissionRefusal) in
                try book.admit(draft, for: device, now: now)
            }
        } catch {
            switch error {
            case .deviceQueueFull(let limit): return .failure(.deviceQueueFull(limit: limit))
            }
        }
        return await withCheckedContinuation { reply in
            pendingCreates.append((operation, reply))
            if !committing {
                committing = true
                // Runs after the creations already waiting for this actor, so they share the first write.
                Task { await commitCreates() }
            }
        }
    }

    /// Writes the waiting creations with one synced write on the disk queue, again and again while more arrive
    /// during a write (a group commit: one fsync for everything that came meanwhile).
    private func commitCreates() async {
        defer { committing = false }
        while !pendingCreates.isEmpty {
            let batch = pendingCreates
            pendingCreates = []
            let store = store
            let changes: [OperationBook.Change] = batch.map { .store($0.operation) }
            do {
                try await store.database.disk.run { () throws(StorageError) in try store.apply(changes, sync: true) }
            } catch {
                logger.error(
                    "could not store new operations", metadata: ["error": "\(error)", "count": "\(batch.count)"])
                table.mutate { book in for entry in batch { book.abandon(entry.operation) } }
                for entry in batch { entry.reply.resume(returning: .failure(.storage("\(error)"))) }
                continue
            }
            table.mutate { book in for entry in batch { book.commit(entry.operation) } }
            for entry in batch { entry.reply.resume(returning: .success(entry.operation)) }
            rescheduleTimer()
            var seen = Set<DeviceKey>()
            for entry in batch where seen.insert(entry.operation.device).inserted && isOnline(entry.operation.device) {
                pump(entry.operation.device)
            }
        }
    }

    /// QUEUED → CANCELLED, stored with a synced write; returns the cancelled operation.
    public func cancel(device: DeviceKey, id: String) async -> Result<Operation, CancelFailure> {
        guard let sequence = Operation.sequence(ofID: id) else { return .failure(.notFound) }
        let now = clock()
        let outcome: (operation: Operation, changes: [OperationBook.Change])
        do {
            outcome = try table.mutate { (book: inout OperationBook) throws(OperationBook.CancelRefusal) in
                try book.cancel(device: device, sequence: sequence, now: now)
            }
        } catch {
            switch error {
            case .notFound: return .failure(.notFound)
            case .notQueued(let status): return .failure(.notQueued(status))
            }
        }
        let store = store
        do {
            try await store.database.disk.run { () throws(StorageError) in
                try store.apply(outcome.changes, sync: true)
            }
        } catch {
            logger.error("could not store a cancellation", metadata: ["error": "\(error)", "operation": "\(id)"])
            return .failure(.storage("\(error)"))
        }
        return .success(outcome.operation)
    }

    // MARK: Delivering

    /// Starts the device's next attempt if nothing is in flight for it. Not while the store refuses writes: an
    /// attempt whose states cannot be stored would be repeated after a restart.
    private func pump(_ device: DeviceKey) {
        guard let client, store.database.failure == nil else { return }
        let now = clock()
        let (next, changes) = table.mutate { $0.beginNext(for: device, now: now) }
        persist(changes)
        guard let operation = next else { return }
        let sequence = operation.sequence
        let draft = operation.draft
        // Bounds the broker's acknowledgement too: a QoS 1/2 publish waits through a broker outage otherwise.
        let timeout = Duration.seconds(draft.ackTimeoutSeconds)
        let subscribeFirst = draft.ackTopic.flatMap { subscribedAckTopics.contains($0) ? nil : $0 }
        Task {
            do {
                if let ackTopic = subscribeFirst {
                    // Subscribed before publishing, so an answer cannot come before we listen.
                    try await client.subscribe(ackTopic, qos: 1, timeout: timeout)
                    subscribedAckTopics.insert(ackTopic)
                }
                try await client.publish(
                    topic: draft.topic, payload: draft.payload.bytes, qos: draft.qos, retain: draft.retain,
                    timeout: timeout)
            } catch {
                attemptFailed(device, sequence, reason: "publish to \(draft.topic) failed: \(error)")
                return
            }
            published(device, sequence)
        }
    }

    private func published(_ device: DeviceKey, _ sequence: UInt64) {
        let now = clock()
        let (changes, confirmed) = table.mutate { $0.published(device: device, sequence: sequence, now: now) }
        persist(changes)
        if confirmed {
            logger.debug(
                "operation confirmed", metadata: ["device": "\(device)", "operation": "\(Operation.id(of: sequence))"])
            if isOnline(device) { pump(device) }
        } else {
            rescheduleTimer()
        }
    }

    private func attemptFailed(_ device: DeviceKey, _ sequence: UInt64, reason: String) {
        let now = clock()
        let changes = table.mutate { $0.attemptFailed(device: device, sequence: sequence, reason: reason, now: now) }
        report(changes)
        persist(changes)
        rescheduleTimer()
    }

    private func report(_ changes: [OperationBook.Change]) {
        for case .store(let operation) in changes where operation.status == .failed || operation.status == .queued {
            let level: Logger.Level = operation.status == .failed ? .warning : .info
            logger.log(
                level: level, operation.status == .failed ? "operation failed" : "operation attempt failed",
                metadata: [
                    "device": "\(operation.device)", "operation": "\(operation.id)",
                    "attempts": "\(operation.attempts)", "error": "\(operation.lastError ?? "")",
                ])
        }
    }

    /// Stores delivery's state changes, unsynced, on the disk queue: after the synced writes queued before them, so
    /// every write of an operation lands in the order this actor made it. A crash may lose the last of them; start-up
    /// recovery returns a SENDING operation to QUEUED (delivery is at least once).
    private func persist(_ changes: [OperationBook.Change]) {
        if !changes.isEmpty {
            let (store, logger) = (store, logger)
            store.database.disk.submit {
                do {
                    try store.apply(changes, sync: false)
                } catch {
                    logger.error("could not store operation changes", metadata: ["error": "\(error)"])
                }
            }
        }
        releaseAckTopics(after: changes)
    }

    /// Unsubscribes the ack topics of operations that left flight when no other operation in flight waits on
    /// them: a topic used once (an operation id in it) would otherwise stay subscribed, and be renewed on every
    /// reconnect, for the life of the process. The next operation that needs one subscribes again (`pump`).
    private func releaseAckTopics(after changes: [OperationBook.Change]) {
        guard let client, !subscribedAckTopics.isEmpty else { return }
        var candidates = Set<String>()
        for case .store(let operation) in changes where operation.status != .sending {
            if let topic = operation.draft.ackTopic, subscribedAckTopics.contains(topic) { candidates.insert(topic) }
        }
        guard !candidates.isEmpty else { return }
        let idle = table.mutate { book in candidates.filter { !book.isAwaitingAck(on: $0) } }
        for topic in idle {
            subscribedAckTopics.remove(topic)
            client.unsubscribe(topic)
        }
    }

    // MARK: Deadlines

    private func rescheduleTimer() {
        guard let next = table.mutate({ $0.nextDeadline }) else { return }
        if let timerDeadline, timerDeadline <= next { return }
        timer?.cancel()
        timerDeadline = next
        let delay = max(0, next - clock())
        timer = Task {
            try? await Task.sleep(for: .nanoseconds(delay))
            guard !Task.isCancelled else { return }
            tick()
        }
    }

    private func tick() {
        timerDeadline = nil
        timer = nil
        let now = clock()
        let changes = table.mutate { $0.advance(to: now) }
        report(changes)
        persist(changes)
        rescheduleTimer()
    }
}

extension OperationDelivery: Service {}

extension OperationDelivery: BrokerComponent {
    /// None up front: ack topics are subscribed when an operation that needs one is first sent (and then renewed
    /// on every reconnect by the client).
    public nonisolated var subscriptions: [(filter: TopicFilter, qos: UInt8)] { [] }

    /// Ack topics are subscribed at run time, so every message is offered (a hash lookup decides).
    public nonisolated var takesEveryMessage: Bool { true }

    /// Live (non-retained) messages on an ack topic confirm the operations in flight that wait for it; a retained
    /// one is an old answer replayed by the broker and does not count.
    public func consume(_ messages: [MQTTMessage]) async {
        let now = clock()
        let (changes, confirmed) = table.mutate { book in
            var changes: [OperationBook.Change] = []
            var confirmed: [DeviceKey] = []
            for message in messages where !message.retain {
                let outcome = book.messageArrived(on: message.topic, now: now)
                changes += outcome.changes
                confirmed += outcome.confirmed
            }
            return (changes, confirmed)
        }
        persist(changes)
        for device in confirmed where isOnline(device) { pump(device) }
    }

    /// Remembers the client; on the first connection, starts delivery for every online device with work waiting.
    public func brokerConnected(_ client: any MQTTPublishing) async {
        self.client = client
        guard firstConnection else { return }
        firstConnection = false
        for device in table.mutate({ $0.devicesWithQueuedOperations }) where isOnline(device) { pump(device) }
    }
}
