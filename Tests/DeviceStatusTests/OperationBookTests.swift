import Testing

@testable import DeviceStatus

/// The operation state machine of docs/behaviour.md §4.3, driven with explicit times (no clock, no I/O).
@Suite struct OperationBookTests {
    static let second: Int64 = 1_000_000_000
    /// A wall-clock start far from 0, as in real life.
    static let t0: Int64 = 1_700_000_000 * second
    let lamp = DeviceKey(type: "lamp", id: "l1")
    let door = DeviceKey(type: "door", id: "d1")

    func draft(_ topic: String = "cmd/x", ackTopic: String? = nil, ackTimeout: Int = 30, ttl: Int? = nil)
        -> OperationDraft
    {
        OperationDraft(
            topic: topic, payload: .text("on"), ackTopic: ackTopic, ackTimeoutSeconds: ackTimeout, ttlSeconds: ttl)
    }

    /// Admits and commits `count` operations for `device`, a second apart.
    @discardableResult
    func queue(_ book: inout OperationBook, _ device: DeviceKey, _ drafts: [OperationDraft], at start: Int64 = t0)
        throws -> [Operation]
    {
        var created: [Operation] = []
        for (offset, draft) in drafts.enumerated() {
            let operation = try book.admit(draft, for: device, now: start + Int64(offset) * Self.second)
            book.commit(operation)
            created.append(operation)
        }
        return created
    }

    func status(_ book: OperationBook, _ operation: Operation) -> OperationStatus? {
        book.operation(for: operation.device, sequence: operation.sequence)?.status
    }

    // MARK: Creation

    @Test func createsQueuedOperationsWithIncreasingIdsInCreationOrder() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b"), draft("c")])
        #expect(created.map(\.status) == [.queued, .queued, .queued])
        #expect(created.allSatisfy { $0.attempts == 0 && $0.updatedAt == $0.createdAt })
        #expect(created.map(\.sequence) == created.map(\.sequence).sorted())
        #expect(Set(created.map(\.id)).count == 3)
        #expect(book.operations(for: lamp).map(\.draft.topic) == ["a", "b", "c"])
        #expect(book.operations(for: door).isEmpty)
        #expect(created.allSatisfy { $0.id.count == 16 && Operation.sequence(ofID: $0.id) == $0.sequence })
    }

    @Test func admittedButUncommittedOperationsAreInvisibleYetHoldTheirPlaceUnderTheCap() throws {
        var book = OperationBook(limits: .init(maxQueuedPerDevice: 2))
        let first = try book.admit(draft(), for: lamp, now: Self.t0)
        #expect(book.operations(for: lamp).isEmpty)
        _ = try book.admit(draft(), for: lamp, now: Self.t0)
        #expect(throws: OperationBook.AdmissionRefusal.deviceQueueFull(limit: 2)) {
            try book.admit(draft(), for: lamp, now: Self.t0)
        }
        // Another device has its own cap.
        _ = try book.admit(draft(), for: door, now: Self.t0)
        // A place whose write failed is given back.
        book.abandon(first)
        _ = try book.admit(draft(), for: lamp, now: Self.t0)
    }

    @Test func refusesBeyondTheCapUntilAnOperationFinishes() throws {
        var book = OperationBook(limits: .init(maxQueuedPerDevice: 2))
        let created = try queue(&book, lamp, [draft(), draft()])
        #expect(throws: OperationBook.AdmissionRefusal.deviceQueueFull(limit: 2)) {
            try book.admit(draft(), for: lamp, now: Self.t0)
        }
        // SENDING still counts as unfinished.
        _ = book.beginNext(for: lamp, now: Self.t0)
        #expect(throws: OperationBook.AdmissionRefusal.self) { try book.admit(draft(), for: lamp, now: Self.t0) }
        _ = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        _ = try book.admit(draft(), for: lamp, now: Self.t0)
    }

    @Test func idsKeepIncreasingAfterARestartEvenWhenOldOperationsWereDeleted() throws {
        var book = OperationBook()
        let before = try queue(&book, lamp, [draft()])[0]
        var restarted = OperationBook.recovering([], now: Self.t0 + Self.second).book
        let after = try restarted.admit(draft(), for: lamp, now: Self.t0 + Self.second)
        #expect(after.sequence > before.sequence)
    }

    // MARK: Delivery

    @Test func sendsOneOperationAtATimeOldestFirst() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b")])
        let (sending, changes) = book.beginNext(for: lamp, now: Self.t0 + 10 * Self.second)
        #expect(sending?.sequence == created[0].sequence)
        #expect(sending?.status == .sending)
        #expect(sending?.updatedAt == Self.t0 + 10 * Self.second)
        #expect(changes == [.store(sending!)])
        #expect(book.inFlight(for: lamp) == created[0].sequence)
        // Nothing else starts while one is in flight, however often the device comes online.
        #expect(book.beginNext(for: lamp, now: Self.t0 + 11 * Self.second).operation == nil)
        #expect(status(book, created[1]) == .queued)
    }

    @Test func theBrokerAcknowledgementConfirmsAnOperationWithoutAckTopic() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b")])
        _ = book.beginNext(for: lamp, now: Self.t0)
        let (changes, confirmed) = book.published(
            device: lamp, sequence: created[0].sequence, now: Self.t0 + Self.second)
        #expect(confirmed)
        #expect(status(book, created[0]) == .confirmed)
        #expect(changes.count == 1)
        #expect(book.inFlight(for: lamp) == nil)
        #expect(book.beginNext(for: lamp, now: Self.t0 + Self.second).operation?.sequence == created[1].sequence)
    }

    @Test func anAckTopicOperationIsConfirmedByAMessageOnItAfterTheBrokerAcknowledgement() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ackTopic: "lamp/ack")])
        _ = book.beginNext(for: lamp, now: Self.t0)
        let (_, confirmed) = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(!confirmed)
        #expect(status(book, created[0]) == .sending)
        #expect(book.nextDeadline == Self.t0 + 30 * Self.second)
        // Other topics are not an answer.
        #expect(book.messageArrived(on: "lamp/other", now: Self.t0).confirmed.isEmpty)
        let outcome = book.messageArrived(on: "lamp/ack", now: Self.t0 + 2 * Self.second)
        #expect(outcome.confirmed == [lamp])
        #expect(status(book, created[0]) == .confirmed)
        // The window that was open no longer matters.
        #expect(book.advance(to: Self.t0 + 60 * Self.second).isEmpty)
    }

    @Test func anAnswerArrivingBeforeTheBrokerAcknowledgementConfirmsOnTheAcknowledgement() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ackTopic: "lamp/ack")])
        _ = book.beginNext(for: lamp, now: Self.t0)
        #expect(book.messageArrived(on: "lamp/ack", now: Self.t0).confirmed.isEmpty)
        #expect(status(book, created[0]) == .sending)
        #expect(book.published(device: lamp, sequence: created[0].sequence, now: Self.t0).confirmed)
        #expect(status(book, created[0]) == .confirmed)
    }

    @Test func anAckTopicMessageWithNothingWaitingChangesNothing() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ackTopic: "lamp/ack")])
        #expect(book.messageArrived(on: "lamp/ack", now: Self.t0).changes.isEmpty)
        _ = book.beginNext(for: lamp, now: Self.t0)
        _ = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(status(book, created[0]) == .sending)
    }

    @Test func anAckWindowClosingWithoutAnswerIsAFailedAttemptBackToQueued() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ackTopic: "lamp/ack", ackTimeout: 5), draft("b")])
        _ = book.beginNext(for: lamp, now: Self.t0)
        _ = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(book.advance(to: Self.t0 + 4 * Self.second).isEmpty)
        let changes = book.advance(to: Self.t0 + 5 * Self.second)
        let operation = book.operation(for: lamp, sequence: created[0].sequence)!
        #expect(changes == [.store(operation)])
        #expect(operation.status == .queued)
        #expect(operation.attempts == 1)
        #expect(operation.lastError == "no message on lamp/ack within 5 s")
        // A late answer confirms nothing.
        #expect(book.messageArrived(on: "lamp/ack", now: Self.t0 + 6 * Self.second).confirmed.isEmpty)
        // The retry, at the next online transition, is the same operation: order is kept.
        #expect(book.beginNext(for: lamp, now: Self.t0 + 7 * Self.second).operation?.sequence == created[0].sequence)
    }

    @Test func aFailedPublishCountsAnAttemptAndTheThirdOneIsFinal() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b")])
        for attempt in 1...3 {
            let now = Self.t0 + Int64(attempt) * Self.second
            #expect(book.beginNext(for: lamp, now: now).operation?.sequence == created[0].sequence)
            let changes = book.attemptFailed(device: lamp, sequence: created[0].sequence, reason: "timed out", now: now)
            let operation = book.operation(for: lamp, sequence: created[0].sequence)!
            #expect(changes == [.store(operation)])
            #expect(operation.attempts == attempt)
            #expect(operation.status == (attempt < 3 ? .queued : .failed))
            #expect(operation.lastError == "timed out")
        }
        // The next operation goes next.
        #expect(book.beginNext(for: lamp, now: Self.t0 + 5 * Self.second).operation?.sequence == created[1].sequence)
    }

    @Test func maxAttemptsIsConfigurable() throws {
        var book = OperationBook(limits: .init(maxAttempts: 1))
        let created = try queue(&book, lamp, [draft()])
        _ = book.beginNext(for: lamp, now: Self.t0)
        _ = book.attemptFailed(device: lamp, sequence: created[0].sequence, reason: "x", now: Self.t0)
        #expect(status(book, created[0]) == .failed)
    }

    @Test func resultsForAnOperationNoLongerInFlightAreIgnored() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft()])
        #expect(book.published(device: lamp, sequence: created[0].sequence, now: Self.t0).changes.isEmpty)
        #expect(book.attemptFailed(device: lamp, sequence: created[0].sequence, reason: "x", now: Self.t0).isEmpty)
        #expect(status(book, created[0]) == .queued)
    }

    // MARK: Expiry

    @Test func aQueuedOperationExpiresAtItsTTL() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ttl: 60), draft()])
        #expect(created[0].expiresAt == Self.t0 + 60 * Self.second)
        #expect(book.nextDeadline == Self.t0 + 60 * Self.second)
        #expect(book.advance(to: Self.t0 + 59 * Self.second).isEmpty)
        let changes = book.advance(to: Self.t0 + 60 * Self.second)
        #expect(changes.count == 1)
        #expect(status(book, created[0]) == .expired)
        #expect(status(book, created[1]) == .queued)
        #expect(book.nextDeadline == nil)
    }

    @Test func anExpiredOperationIsSkippedWhenTheDeviceComesOnlineBeforeTheTimerRuns() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ttl: 10), draft("b")])
        let (sending, changes) = book.beginNext(for: lamp, now: Self.t0 + 20 * Self.second)
        #expect(sending?.sequence == created[1].sequence)
        #expect(status(book, created[0]) == .expired)
        #expect(changes.count == 2)
    }

    @Test func anOperationInFlightIsNotExpiredUnderItsAttemptButAFailedAttemptPastTheTTLExpiresIt() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ttl: 10)])
        _ = book.beginNext(for: lamp, now: Self.t0 + 9 * Self.second)
        #expect(book.advance(to: Self.t0 + 11 * Self.second).isEmpty)
        #expect(status(book, created[0]) == .sending)
        _ = book.attemptFailed(
            device: lamp, sequence: created[0].sequence, reason: "timed out", now: Self.t0 + 12 * Self.second)
        #expect(status(book, created[0]) == .expired)
        #expect(book.operation(for: lamp, sequence: created[0].sequence)?.attempts == 1)
    }

    @Test func aConfirmedOperationDoesNotExpireLater() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft(ttl: 10)])
        _ = book.beginNext(for: lamp, now: Self.t0)
        _ = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(book.advance(to: Self.t0 + 20 * Self.second).isEmpty)
        #expect(status(book, created[0]) == .confirmed)
    }

    // MARK: Cancellation

    @Test func cancelsOnlyQueuedOperations() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b")])
        _ = book.beginNext(for: lamp, now: Self.t0)
        #expect(throws: OperationBook.CancelRefusal.notQueued(.sending)) {
            try book.cancel(device: lamp, sequence: created[0].sequence, now: Self.t0)
        }
        let (cancelled, changes) = try book.cancel(device: lamp, sequence: created[1].sequence, now: Self.t0 + 1)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.updatedAt == Self.t0 + 1)
        #expect(changes == [.store(cancelled)])
        #expect(throws: OperationBook.CancelRefusal.notQueued(.cancelled)) {
            try book.cancel(device: lamp, sequence: created[1].sequence, now: Self.t0)
        }
        #expect(throws: OperationBook.CancelRefusal.notFound) {
            try book.cancel(device: door, sequence: created[1].sequence, now: Self.t0)
        }
        // A cancelled operation is never sent.
        _ = book.published(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(book.beginNext(for: lamp, now: Self.t0).operation == nil)
    }

    // MARK: Restart

    @Test func anOperationFoundSendingAtStartCountsOneAttemptAndReturnsToQueued() throws {
        var book = OperationBook()
        let created = try queue(&book, lamp, [draft("a"), draft("b")])
        let sending = book.beginNext(for: lamp, now: Self.t0).operation!
        // What the store holds after a crash: one SENDING, one QUEUED (in any order).
        let (restarted, changes) = OperationBook.recovering(
            [book.operation(for: lamp, sequence: created[1].sequence)!, sending], now: Self.t0 + 100)
        let recovered = restarted.operation(for: lamp, sequence: sending.sequence)!
        #expect(recovered.status == .queued)
        #expect(recovered.attempts == 1)
        #expect(recovered.updatedAt == Self.t0 + 100)
        #expect(recovered.lastError?.hasPrefix("interrupted") == true)
        #expect(changes == [.store(recovered)])
        #expect(restarted.inFlight(for: lamp) == nil)
        #expect(restarted.devicesWithQueuedOperations == [lamp])
        // Creation order survives the restart.
        var next = restarted
        #expect(next.beginNext(for: lamp, now: Self.t0 + 200).operation?.sequence == sending.sequence)
    }

    @Test func anOperationFoundSendingOnItsLastAttemptFailsAtStart() {
        let operation = Operation(
            device: lamp, sequence: 7, draft: draft(), status: .sending, attempts: 2, createdAt: Self.t0)
        let (book, changes) = OperationBook.recovering([operation], now: Self.t0 + 1)
        #expect(book.operation(for: lamp, sequence: 7)?.status == .failed)
        #expect(changes.count == 1)
    }

    @Test func ttlsKeepRunningAcrossARestart() {
        let operation = Operation(device: lamp, sequence: 7, draft: draft(ttl: 10), createdAt: Self.t0)
        var (book, _) = OperationBook.recovering([operation], now: Self.t0 + 5 * Self.second)
        #expect(book.nextDeadline == Self.t0 + 10 * Self.second)
        #expect(book.advance(to: Self.t0 + 30 * Self.second).count == 1)
        #expect(book.operation(for: lamp, sequence: 7)?.status == .expired)
    }

    // MARK: Bounds and counts

    @Test func keepsOnlyTheNewestFinishedOperationsPerDevice() throws {
        var book = OperationBook(limits: .init(finishedKeptPerDevice: 2))
        let created = try queue(&book, lamp, [draft("a"), draft("b"), draft("c"), draft("d")])
        var removed: [OperationBook.Change] = []
        for operation in created {
            _ = book.beginNext(for: lamp, now: Self.t0)
            removed += book.published(device: lamp, sequence: operation.sequence, now: Self.t0).changes.filter {
                if case .remove = $0 { true } else { false }
            }
        }
        #expect(book.operations(for: lamp).map(\.draft.topic) == ["c", "d"])
        #expect(
            removed == [
                .remove(device: lamp, sequence: created[0].sequence),
                .remove(device: lamp, sequence: created[1].sequence),
            ])
        #expect(book.totals[.confirmed] == 2)
    }

    @Test func cancellingAnOperationOlderThanEveryKeptFinishedOneStillAnswersWithIt() throws {
        var book = OperationBook(limits: .init(finishedKeptPerDevice: 1))
        let created = try queue(&book, lamp, [draft("old"), draft("new")])
        _ = try book.cancel(device: lamp, sequence: created[1].sequence, now: Self.t0)
        // "old" is now the oldest finished one beyond the limit: pruned at once, yet reported as cancelled.
        let (cancelled, changes) = try book.cancel(device: lamp, sequence: created[0].sequence, now: Self.t0)
        #expect(cancelled.status == .cancelled && cancelled.sequence == created[0].sequence)
        #expect(changes == [.store(cancelled), .remove(device: lamp, sequence: created[0].sequence)])
        #expect(book.operations(for: lamp).map(\.draft.topic) == ["new"])
        #expect(book.totals[.cancelled] == 1)
    }

    @Test func countsOperationsByStatusPerDeviceAndInTotal() throws {
        var book = OperationBook()
        let lampOps = try queue(&book, lamp, [draft(), draft(), draft()])
        try queue(&book, door, [draft()])
        _ = book.beginNext(for: lamp, now: Self.t0)
        _ = book.published(device: lamp, sequence: lampOps[0].sequence, now: Self.t0)
        _ = try book.cancel(device: lamp, sequence: lampOps[2].sequence, now: Self.t0)
        _ = book.beginNext(for: lamp, now: Self.t0)
        #expect(book.counts(for: lamp) == [.confirmed: 1, .sending: 1, .cancelled: 1])
        #expect(book.counts(for: door) == [.queued: 1])
        #expect(book.totals.filter { $0.value != 0 } == [.confirmed: 1, .sending: 1, .cancelled: 1, .queued: 1])
    }
}
