/// How the messages of a source are put in order (each source has one).
public enum OrderingModel: Sendable, Equatable {
    /// By the message's own time (`mon` `Time`, EMQX `ts`): older ignored, offline wins ties.
    case timestamp
    /// Sparkplug: a node's death counts only if its `bdSeq` is the one of the node's last birth.
    case birthSequence
    /// In arrival order (sources without a timestamp); a retained replay is judged, not trusted.
    case arrival
}

/// What to do with one observation, by its source's ordering model. Pure: no clock, no storage.
public enum OrderingDecision: Sendable, Equatable {
    /// Store it.
    case accept
    /// It says what is already stored: nothing changes (no event, `since` kept).
    case unchanged
    /// The same status for another reason (Homie `ready` → `alert`): the reason is stored, `since` kept, no event.
    case restate
    /// Older than what is stored.
    case ignoreOutOfOrder
    /// At the same time as a stored offline status, it says online: offline wins ties.
    case ignoreTieLost
    /// A death whose birth sequence is not the current one (a stale Last Will).
    case ignoreStale

    /// The `/metrics` outcome label.
    public var outcome: String {
        switch self {
        case .accept, .restate: "accepted"
        case .unchanged: "unchanged"
        case .ignoreOutOfOrder: "out_of_order"
        case .ignoreTieLost: "tie_lost"
        case .ignoreStale: "stale"
        }
    }
}

/// What is stored for a device, as the ordering rules see it.
public struct StoredPresence: Sendable, Equatable {
    public var source: PresenceSource
    public var status: PresenceStatus
    public var time: Int64
    public var sequence: Int64

    public init(source: PresenceSource, status: PresenceStatus, time: Int64, sequence: Int64 = 0) {
        self.source = source
        self.status = status
        self.time = time
        self.sequence = sequence
    }
}

/// Ordered by the messages' own time: older ignored; on equal time the same status is a replay, and offline
/// (or sleeping) beats online.
public enum TimestampOrdering {
    public static func decide(stored: (status: PresenceStatus, time: Int64)?, incoming: PresenceStatus, time: Int64)
        -> OrderingDecision
    {
        guard let stored else { return .accept }
        if time < stored.time { return .ignoreOutOfOrder }
        if time > stored.time { return .accept }
        if incoming == stored.status { return .unchanged }
        return incoming == .online ? .ignoreTieLost : .accept
    }
}

/// In arrival order: a message that says what is stored changes nothing (live or retained); anything else is a
/// transition.
public enum ArrivalOrdering {
    public static func decide(stored: PresenceStatus?, incoming: PresenceStatus) -> OrderingDecision {
        stored == incoming ? .unchanged : .accept
    }

    /// As `decide(stored:incoming:)`, and a different reason for the same status is a restatement (Homie's
    /// `alert` while `ready`); a retained replay's marker does not count as a different reason.
    public static func decide(
        stored: (status: PresenceStatus, reason: String?)?, incoming: PresenceStatus, reason: String?
    ) -> OrderingDecision {
        guard let stored, stored.status == incoming else { return .accept }
        let bare = { (text: String?) in text.map { $0.hasSuffix(" (retained)") ? String($0.dropLast(11)) : $0 } }
        return bare(stored.reason) == bare(reason) || stored.reason == "retained" ? .unchanged : .restate
    }

    /// The reason of a transition: the decoder's, marked when it was learned from a retained replay.
    public static func reason(_ reason: String?, retained: Bool) -> String? {
        guard retained else { return reason }
        return reason.map { "\($0) (retained)" } ?? "retained"
    }
}

/// Sparkplug's guard: births apply in arrival order and set the node's `bdSeq`; a node death counts only when
/// its `bdSeq` equals the one of the node's last birth (a Last Will registered by an earlier session is stale).
/// Device births and deaths (no sequence of their own) apply in arrival order.
public enum BirthSequenceOrdering {
    /// - Parameters:
    ///   - stored: what is stored for the key.
    ///   - sequence: the incoming message's `bdSeq` (node births and deaths), nil for device messages.
    public static func decide(stored: StoredPresence?, incoming: PresenceStatus, sequence: Int64?) -> OrderingDecision {
        if incoming == .online {
            guard let stored, stored.status == .online else { return .accept }
            // A rebirth with a new sequence is news even if the node never looked offline.
            if let sequence, sequence != stored.sequence { return .accept }
            return .unchanged
        }
        guard let sequence else { return ArrivalOrdering.decide(stored: stored?.status, incoming: incoming) }
        guard let stored else { return .ignoreStale }
        guard stored.sequence == sequence else { return .ignoreStale }
        return stored.status == incoming ? .unchanged : .accept
    }
}
