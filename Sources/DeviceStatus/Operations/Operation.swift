/// Where an operation is in its life (docs/behaviour.md §4.3): QUEUED → SENDING → CONFIRMED; a failed attempt goes back to
/// QUEUED, or to FAILED after the last allowed attempt; QUEUED → CANCELLED on request; past its TTL → EXPIRED.
public enum OperationStatus: String, Sendable, CaseIterable, Hashable {
    case queued = "QUEUED"
    case sending = "SENDING"
    case confirmed = "CONFIRMED"
    case failed = "FAILED"
    case cancelled = "CANCELLED"
    case expired = "EXPIRED"

    /// True for the statuses nothing leaves (CONFIRMED, FAILED, CANCELLED, EXPIRED).
    public var isFinal: Bool { self != .queued && self != .sending }
}

/// What an operation publishes: a JSON value is sent as its JSON text exactly as given, a string as is.
public enum OperationPayload: Sendable, Equatable {
    /// The JSON text of a non-string value, byte for byte as the client wrote it.
    case json([UInt8])
    /// A string, sent as its UTF-8 bytes.
    case text(String)

    /// The bytes published.
    public var bytes: [UInt8] {
        switch self {
        case .json(let bytes): bytes
        case .text(let text): Array(text.utf8)
        }
    }

    /// The payload as a JSON value (the raw JSON, or the string quoted).
    var jsonValue: String {
        switch self {
        case .json(let bytes): String(decoding: bytes, as: UTF8.self)
        case .text(let text): JSONText.quote(text)
        }
    }
}

/// A validated request to queue an operation, before it has an id and times (see `OperationRequest`).
public struct OperationDraft: Sendable, Equatable {
    public var topic: String
    public var payload: OperationPayload
    /// Default 1.
    public var qos: UInt8
    /// Default false.
    public var retain: Bool
    /// A topic whose next (non-retained) message confirms the operation; default nil: the broker's ack confirms it.
    public var ackTopic: String?
    /// Default 30: how long the broker's acknowledgement, and then the message on `ackTopic`, may take.
    public var ackTimeoutSeconds: Int
    /// Default nil: the operation never expires.
    public var ttlSeconds: Int?

    public init(
        topic: String, payload: OperationPayload, qos: UInt8 = 1, retain: Bool = false, ackTopic: String? = nil,
        ackTimeoutSeconds: Int = 30, ttlSeconds: Int? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.ackTopic = ackTopic
        self.ackTimeoutSeconds = ackTimeoutSeconds
        self.ttlSeconds = ttlSeconds
    }
}

/// One pending operation for a device. Times are wall-clock nanoseconds since the Unix epoch.
public struct Operation: Sendable, Equatable {
    public let device: DeviceKey
    /// Daemon-wide creation order; also the operation's id (16 hex digits).
    public let sequence: UInt64
    public let draft: OperationDraft
    public internal(set) var status: OperationStatus
    /// Failed attempts so far.
    public internal(set) var attempts: Int
    public let createdAt: Int64
    public internal(set) var updatedAt: Int64
    /// `createdAt` + `ttlSeconds`, if a TTL was given.
    public var expiresAt: Int64? { draft.ttlSeconds.map { createdAt + Int64($0) * 1_000_000_000 } }
    /// Why the last attempt failed (or why the operation ended), if it did.
    public internal(set) var lastError: String?

    public init(
        device: DeviceKey, sequence: UInt64, draft: OperationDraft, status: OperationStatus = .queued,
        attempts: Int = 0,
        createdAt: Int64, updatedAt: Int64? = nil, lastError: String? = nil
    ) {
        self.device = device
        self.sequence = sequence
        self.draft = draft
        self.status = status
        self.attempts = attempts
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.lastError = lastError
    }

    /// The id clients use: the sequence as 16 lower-case hex digits.
    public var id: String { Self.id(of: sequence) }

    public static func id(of sequence: UInt64) -> String {
        let hex = String(sequence, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The sequence an id names, if it is 16 hex digits.
    public static func sequence(ofID id: String) -> UInt64? {
        guard id.utf8.count == 16, id.utf8.allSatisfy(\.isHexDigitASCII) else { return nil }
        return UInt64(id, radix: 16)
    }

    func isExpired(at now: Int64) -> Bool {
        if let expiresAt { return now >= expiresAt }
        return false
    }

    /// The operation as the API shows it:
    /// `{"id","type","deviceId","topic","payload","qos","retain","ackTopic"?,"ackTimeoutSeconds","ttlSeconds"?,
    /// "status","attempts","createdAt","updatedAt","expiresAt"?,"lastError"?}`, times in RFC 3339 UTC.
    public var json: String {
        var members: [(String, String)] = [
            ("id", JSONText.quote(id)), ("type", JSONText.quote(device.type)), ("deviceId", JSONText.quote(device.id)),
            ("topic", JSONText.quote(draft.topic)), ("payload", draft.payload.jsonValue), ("qos", "\(draft.qos)"),
            ("retain", draft.retain ? "true" : "false"),
        ]
        if let ackTopic = draft.ackTopic { members.append(("ackTopic", JSONText.quote(ackTopic))) }
        members.append(("ackTimeoutSeconds", "\(draft.ackTimeoutSeconds)"))
        if let ttl = draft.ttlSeconds { members.append(("ttlSeconds", "\(ttl)")) }
        members += [
            ("status", JSONText.quote(status.rawValue)), ("attempts", "\(attempts)"),
            ("createdAt", JSONText.quote(RFC3339.format(nanoseconds: createdAt))),
            ("updatedAt", JSONText.quote(RFC3339.format(nanoseconds: updatedAt))),
        ]
        if let expiresAt { members.append(("expiresAt", JSONText.quote(RFC3339.format(nanoseconds: expiresAt)))) }
        if let lastError { members.append(("lastError", JSONText.quote(lastError))) }
        return JSONText.object(members)
    }
}

extension UInt8 {
    fileprivate var isHexDigitASCII: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
