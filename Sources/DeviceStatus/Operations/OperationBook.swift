/// Every device's operations and the rules of docs/behaviour.md §4.3, with no I/O and no clock: each mutating call takes the
/// wall-clock time and returns the `Change`s to persist; the caller (`OperationDelivery`) publishes, waits and
/// stores. One operation per device is in flight at a time, always the device's oldest QUEUED one.
///
/// Deadlines (TTL of queued operations, the ack-topic window of a sent one) sit in a min-heap; `advance(to:)`
/// applies those that are due and `nextDeadline` says when to call it next.
public struct OperationBook: Sendable {
    /// The bounds of the book (`[operations]` settings).
    public struct Limits: Sendable, Equatable {
        /// QUEUED and SENDING operations one device may have; default 100 (`maxQueuedPerDevice`).
        public var maxQueuedPerDevice: Int
        /// Failed attempts before FAILED; default 3 (`maxAttempts`).
        public var maxAttempts: Int
        /// Finished operations kept per device for `GET …/operations`; default 100. The oldest finished ones are
        /// deleted beyond it, so a device that gets an operation a minute does not grow the store forever.
        public var finishedKeptPerDevice: Int

        public init(maxQueuedPerDevice: Int = 100, maxAttempts: Int = 3, finishedKeptPerDevice: Int = 100) {
            self.maxQueuedPerDevice = maxQueuedPerDevice
            self.maxAttempts = maxAttempts
            self.finishedKeptPerDevice = finishedKeptPerDevice
        }
    }

    /// What to persist: store the operation as it now is, or delete it.
    public enum Change: Sendable, Equatable {
        case store(Operation)
        case remove(device: DeviceKey, sequence: UInt64)
    }

    /// Why an operation was not admitted.
    public enum AdmissionRefusal: Error, Sendable, Equatable {
        /// The device already has `limit` unfinished operations (429).
        case deviceQueueFull(limit: Int)
    }

    /// Why an operation was not cancelled.
    public enum CancelRefusal: Error, Sendable, Equatable {
        case notFound
        /// Only QUEUED operations can be cancelled (409).
        case notQueued(OperationStatus)
    }

    /// The attempt under way for one device.
    struct InFlight: Sendable {
        let sequence: UInt64
        /// The broker acknowledged the publish.
        var published = false
        /// A message arrived on the ack topic (possibly before the broker's acknowledgement).
        var acknowledged = false
        /// When the ack-topic window closes, once published.
        var ackDeadline: Int64?
    }

    struct Ledger: Sendable {
        /// In creation (sequence) order.
        var operations: [Operation] = []
        /// Admitted, not yet committed.
        var reserved = 0
        var inFlight: InFlight?
        var unfinished = 0
        var finished = 0

        func index(of sequence: UInt64) -> Int? {
            var low = 0
            var high = operations.count
            while low < high {
                let middle = (low + high) / 2
                if operations[middle].sequence < sequence { low = middle + 1 } else { high = middle }
            }
            return low < operations.count && operations[low].sequence == sequence ? low : nil
        }
    }

    private enum DeadlineKind: Sendable { case ttl, ack }

    private struct Deadline: Sendable {
        let time: Int64
        let device: DeviceKey
        let sequence: UInt64
        let kind: DeadlineKind
    }

    public let limits: Limits
    private var ledgers: [DeviceKey: Ledger] = [:]
    private var lastSequence: UInt64 = 0
    /// Ack topic → devices whose in-flight operation waits for a message on it.
    private var ackWaiters: [String: Set<DeviceKey>] = [:]
    private var heap = DeadlineHeap<Deadline>()
    public private(set) var totals: [OperationStatus: Int] = [:]

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// A book holding `loaded` (any order), with docs/behaviour.md §4.3's start-up rule applied: an operation found SENDING
    /// counts one failed attempt and returns to QUEUED (FAILED if that was the last allowed attempt).
    /// - Returns: the book and the changes the recovery made.
    public static func recovering(_ loaded: [Operation], limits: Limits = Limits(), now: Int64) -> (
        book: OperationBook, changes: [Change]
    ) {
        var book = OperationBook(limits: limits)
        var changes: [Change] = []
        for var operation in loaded.sorted(by: { $0.sequence < $1.sequence }) {
            if operation.status == .sending {
                operation.attempts += 1
                operation.status = operation.attempts >= limits.maxAttempts ? .failed : .queued
                operation.lastError = "interrupted: the daemon stopped while sending"
                operation.updatedAt = now
                changes.append(.store(operation))
            }
            book.lastSequence = max(book.lastSequence, operation.sequence)
            book.ledgers[operation.device, default: Ledger()].operations.append(operation)
            book.count(operation.status, +1, in: operation.device)
            if operation.status == .queued, let expiresAt = operation.expiresAt {
                book.push(Deadline(time: expiresAt, device: operation.device, sequence: operation.sequence, kind: .ttl))
            }
        }
        for device in Array(book.ledgers.keys) { changes += book.prune(device) }
        return (book, changes)
    }

    // MARK: Reading

    /// The device's operations in creation order (finished ones included, up to `finishedKeptPerDevice`).
    public func operations(for device: DeviceKey) -> [Operation] { ledgers[device]?.operations ?? [] }

    public func operation(for device: DeviceKey, sequence: UInt64) -> Operation? {
        guard let ledger = ledgers[device], let index = ledger.index(of: sequence) else { return nil }
        return ledger.operations[index]
    }

    /// The number of the device's operations in each status (statuses with none are absent).
    public func counts(for device: DeviceKey) -> [OperationStatus: Int] {
        var counts: [OperationStatus: Int] = [:]
        for operation in ledgers[device]?.operations ?? [] { counts[operation.status, default: 0] += 1 }
        return counts
    }

    /// Devices that have QUEUED operations and nothing in flight.
    public var devicesWithQueuedOperations: [DeviceKey] {
        ledgers.compactMap { key, ledger in
            ledger.inFlight == nil && ledger.operations.contains { $0.status == .queued } ? key : nil
        }
    }

    /// The sequence of the device's operation in flight, if any.
    public func inFlight(for device: DeviceKey) -> UInt64? { ledgers[device]?.inFlight?.sequence }

    /// The earliest TTL or ack-window deadline to check with `advance(to:)`; may be one that no longer matters.
    public var nextDeadline: Int64? { heap.first?.time }

    /// Whether an operation in flight waits for a message on `topic`.
    public func isAwaitingAck(on topic: String) -> Bool { ackWaiters[topic] != nil }

    // MARK: Creating and cancelling

    /// Assigns the next sequence to a new QUEUED operation and reserves its place under the device's cap; it is not
    /// in the book until `commit(_:)` (call that once it is durably stored, or `abandon(_:)` if storing failed).
    /// Sequences follow the wall clock in microseconds when it is ahead, so ids stay increasing across restarts even
    /// after old operations were pruned.
    public mutating func admit(_ draft: OperationDraft, for device: DeviceKey, now: Int64) throws(AdmissionRefusal)
        -> Operation
    {
        let ledger = ledgers[device, default: Ledger()]
        guard ledger.unfinished + ledger.reserved < limits.maxQueuedPerDevice else {
            throw .deviceQueueFull(limit: limits.maxQueuedPerDevice)
        }
        lastSequence = max(lastSequence + 1, UInt64(max(0, now / 1000)))
        ledgers[device, default: Ledger()].reserved += 1
        return Operation(device: device, sequence: lastSequence, draft: draft, createdAt: now)
    }

    /// Adds an admitted operation (now stored) to the book.
    public mutating func commit(_ operation: Operation) {
        let device = operation.device
        ledgers[device, default: Ledger()].reserved -= 1
        // Admitted operations are committed in sequence order by one caller, so this is an append in practice.
        var ledger = ledgers[device]!
        let position = ledger.operations.lastIndex { $0.sequence < operation.sequence }.map { $0 + 1 } ?? 0
        ledger.operations.insert(operation, at: position)
        ledgers[device] = ledger
        count(operation.status, +1, in: device)
        if let expiresAt = operation.expiresAt {
            push(Deadline(time: expiresAt, device: device, sequence: operation.sequence, kind: .ttl))
        }
    }

    /// Releases the place of an admitted operation that could not be stored.
    public mutating func abandon(_ operation: Operation) {
        ledgers[operation.device]?.reserved -= 1
        if let ledger = ledgers[operation.device], ledger.operations.isEmpty, ledger.reserved == 0 {
            ledgers[operation.device] = nil
        }
    }

    /// QUEUED → CANCELLED.
    public mutating func cancel(device: DeviceKey, sequence: UInt64, now: Int64) throws(CancelRefusal) -> (
        operation: Operation, changes: [Change]
    ) {
        guard let index = ledgers[device]?.index(of: sequence) else { throw .notFound }
        let status = ledgers[device]!.operations[index].status
        guard status == .queued else { throw .notQueued(status) }
        let changes = finish(device, index, .cancelled, error: nil, now: now)
        // The first change stores the cancelled operation (pruning may already have dropped it from the ledger).
        guard case .store(let cancelled) = changes[0] else { preconditionFailure("finish stores first") }
        return (cancelled, changes)
    }

    // MARK: Delivering

    /// Starts the next attempt for `device` when nothing is in flight: its oldest QUEUED operation becomes SENDING
    /// (QUEUED ones past their TTL on the way become EXPIRED).
    /// - Returns: the operation to publish (nil if none) and the changes.
    public mutating func beginNext(for device: DeviceKey, now: Int64) -> (operation: Operation?, changes: [Change]) {
        guard let ledger = ledgers[device], ledger.inFlight == nil else { return (nil, []) }
        var changes: [Change] = []
        var index = 0
        while index < (ledgers[device]?.operations.count ?? 0) {
            let operation = ledgers[device]!.operations[index]
            guard operation.status == .queued else {
                index += 1
                continue
            }
            if operation.isExpired(at: now) {
                changes += finish(device, index, .expired, error: nil, now: now)
                // Pruning may have removed older entries: look the rest up again from the start.
                index = 0
                continue
            }
            set(device, index, .sending, now: now)
            ledgers[device]!.inFlight = InFlight(sequence: operation.sequence)
            if let ackTopic = operation.draft.ackTopic { ackWaiters[ackTopic, default: []].insert(device) }
            let sending = ledgers[device]!.operations[index]
            changes.append(.store(sending))
            return (sending, changes)
        }
        return (nil, changes)
    }

    /// The broker acknowledged the publish of the device's operation in flight (`sequence`): CONFIRMED, unless it
    /// has an ack topic and no message arrived on it yet, in which case the ack window opens.
    /// - Returns: the changes, and whether the operation is now CONFIRMED.
    public mutating func published(device: DeviceKey, sequence: UInt64, now: Int64) -> (
        changes: [Change], confirmed: Bool
    ) {
        guard var inFlight = ledgers[device]?.inFlight, inFlight.sequence == sequence,
            let index = ledgers[device]!.index(of: sequence)
        else { return ([], false) }
        let operation = ledgers[device]!.operations[index]
        if operation.draft.ackTopic == nil || inFlight.acknowledged {
            return (confirm(device, index, now: now), true)
        }
        inFlight.published = true
        let deadline = now + Int64(operation.draft.ackTimeoutSeconds) * 1_000_000_000
        inFlight.ackDeadline = deadline
        ledgers[device]!.inFlight = inFlight
        push(Deadline(time: deadline, device: device, sequence: sequence, kind: .ack))
        return ([], false)
    }

    /// A non-retained message arrived on `topic`: every operation in flight that waits for it is acknowledged
    /// (CONFIRMED at once if the broker already acknowledged its publish).
    /// - Returns: the changes and the devices whose operation was confirmed.
    public mutating func messageArrived(on topic: String, now: Int64) -> (changes: [Change], confirmed: [DeviceKey]) {
        guard let waiting = ackWaiters[topic] else { return ([], []) }
        var changes: [Change] = []
        var confirmed: [DeviceKey] = []
        for device in waiting {
            guard var inFlight = ledgers[device]?.inFlight, let index = ledgers[device]!.index(of: inFlight.sequence)
            else { continue }
            if inFlight.published {
                changes += confirm(device, index, now: now)
                confirmed.append(device)
            } else {
                inFlight.acknowledged = true
                ledgers[device]!.inFlight = inFlight
            }
        }
        return (changes, confirmed)
    }

    /// The attempt for the device's operation in flight failed (publish error or timeout, ack window closed):
    /// attempts + 1, then FAILED at `maxAttempts`, EXPIRED past its TTL, else QUEUED for the next online transition.
    public mutating func attemptFailed(device: DeviceKey, sequence: UInt64, reason: String, now: Int64) -> [Change] {
        guard let inFlight = ledgers[device]?.inFlight, inFlight.sequence == sequence,
            let index = ledgers[device]!.index(of: sequence)
        else { return [] }
        endFlight(device)
        var operation = ledgers[device]!.operations[index]
        operation.attempts += 1
        ledgers[device]!.operations[index].attempts = operation.attempts
        if operation.attempts >= limits.maxAttempts {
            return finish(device, index, .failed, error: reason, now: now)
        }
        if operation.isExpired(at: now) {
            return finish(device, index, .expired, error: reason, now: now)
        }
        set(device, index, .queued, now: now)
        ledgers[device]!.operations[index].lastError = reason
        if let expiresAt = operation.expiresAt {
            push(Deadline(time: expiresAt, device: device, sequence: sequence, kind: .ttl))
        }
        return [.store(ledgers[device]!.operations[index])]
    }

    /// Applies every deadline due at `now`: QUEUED operations past their TTL → EXPIRED; an ack window that closed
    /// without a message → a failed attempt.
    public mutating func advance(to now: Int64) -> [Change] {
        var changes: [Change] = []
        while let entry = heap.first, entry.time <= now {
            heap.popFirst()
            let top = entry.payload
            guard let ledger = ledgers[top.device], let index = ledger.index(of: top.sequence) else { continue }
            let operation = ledger.operations[index]
            switch top.kind {
            case .ttl:
                guard operation.status == .queued, operation.expiresAt == top.time else { continue }
                changes += finish(top.device, index, .expired, error: nil, now: now)
            case .ack:
                guard let inFlight = ledger.inFlight, inFlight.sequence == top.sequence,
                    inFlight.ackDeadline == top.time
                else { continue }
                let topic = operation.draft.ackTopic ?? ""
                changes += attemptFailed(
                    device: top.device, sequence: top.sequence,
                    reason: "no message on \(topic) within \(operation.draft.ackTimeoutSeconds) s", now: now)
            }
        }
        return changes
    }

    // MARK: Internals

    private mutating func confirm(_ device: DeviceKey, _ index: Int, now: Int64) -> [Change] {
        endFlight(device)
        return finish(device, index, .confirmed, error: nil, now: now)
    }

    private mutating func endFlight(_ device: DeviceKey) {
        guard let inFlight = ledgers[device]?.inFlight else { return }
        ledgers[device]!.inFlight = nil
        guard let index = ledgers[device]!.index(of: inFlight.sequence),
            let topic = ledgers[device]!.operations[index].draft.ackTopic
        else { return }
        ackWaiters[topic]?.remove(device)
        if ackWaiters[topic]?.isEmpty == true { ackWaiters[topic] = nil }
    }

    /// Moves an operation to a final status and prunes the device's oldest finished operations beyond the limit.
    private mutating func finish(
        _ device: DeviceKey, _ index: Int, _ status: OperationStatus, error: String?, now: Int64
    ) -> [Change] {
        set(device, index, status, now: now)
        if let error { ledgers[device]!.operations[index].lastError = error }
        return [.store(ledgers[device]!.operations[index])] + prune(device)
    }

    private mutating func prune(_ device: DeviceKey) -> [Change] {
        guard var ledger = ledgers[device], ledger.finished > limits.finishedKeptPerDevice else { return [] }
        var changes: [Change] = []
        var excess = ledger.finished - limits.finishedKeptPerDevice
        ledger.operations.removeAll { operation in
            guard excess > 0, operation.status.isFinal else { return false }
            excess -= 1
            changes.append(.remove(device: device, sequence: operation.sequence))
            totals[operation.status, default: 0] -= 1
            return true
        }
        ledger.finished = limits.finishedKeptPerDevice
        ledgers[device] = ledger
        return changes
    }

    private mutating func set(_ device: DeviceKey, _ index: Int, _ status: OperationStatus, now: Int64) {
        let old = ledgers[device]!.operations[index].status
        guard old != status else { return }
        count(old, -1, in: device)
        count(status, +1, in: device)
        ledgers[device]!.operations[index].status = status
        ledgers[device]!.operations[index].updatedAt = now
    }

    private mutating func count(_ status: OperationStatus, _ delta: Int, in device: DeviceKey) {
        totals[status, default: 0] += delta
        if status.isFinal {
            ledgers[device]!.finished += delta
        } else {
            ledgers[device]!.unfinished += delta
        }
    }

    private mutating func push(_ deadline: Deadline) { heap.push(deadline.time, deadline) }
}
