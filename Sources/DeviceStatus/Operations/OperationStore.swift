import Storage

/// Operations in LevelDB under `o/<type>/<id>/<16 hex digits of the sequence>`: a device's operations sit together
/// in creation order (type and id never contain `/`). The value is a small JSON object with the request and the
/// state, times in nanoseconds; the payload is kept as given (a JSON value raw, a string as a JSON string).
struct OperationStore: Sendable {
    static let prefix: [UInt8] = Array("o/".utf8)

    let database: LevelDB

    static func key(device: DeviceKey, sequence: UInt64) -> [UInt8] {
        prefix + Array(device.path.utf8) + [UInt8(ascii: "/")] + Array(Operation.id(of: sequence).utf8)
    }

    /// Every stored operation; records that cannot be read are counted and skipped.
    func loadAll() throws -> (operations: [Operation], unreadable: Int) {
        var operations: [Operation] = []
        var unreadable = 0
        try database.forEach(prefix: Self.prefix) { key, value in
            if let operation = Self.decode(key: Array(key), value: Array(value)) {
                operations.append(operation)
            } else {
                unreadable += 1
            }
            return true
        }
        return (operations, unreadable)
    }

    /// Writes `changes` as one batch; `sync` waits until they are on disk (creation and cancellation).
    func apply(_ changes: [OperationBook.Change], sync: Bool) throws(StorageError) {
        guard !changes.isEmpty else { return }
        var batch = WriteBatch()
        for change in changes {
            switch change {
            case .store(let operation):
                batch.put(Self.key(device: operation.device, sequence: operation.sequence), Self.encode(operation))
            case .remove(let device, let sequence):
                batch.delete(Self.key(device: device, sequence: sequence))
            }
        }
        try database.write(batch, sync: sync)
    }

    static func encode(_ operation: Operation) -> [UInt8] {
        let draft = operation.draft
        var members: [(String, String)] = [
            ("topic", JSONText.quote(draft.topic)), ("payload", draft.payload.jsonValue), ("qos", "\(draft.qos)"),
            ("retain", draft.retain ? "true" : "false"), ("ackTimeoutSeconds", "\(draft.ackTimeoutSeconds)"),
            ("status", JSONText.quote(operation.status.rawValue)), ("attempts", "\(operation.attempts)"),
            ("createdAt", "\(operation.createdAt)"), ("updatedAt", "\(operation.updatedAt)"),
        ]
        if let ackTopic = draft.ackTopic { members.append(("ackTopic", JSONText.quote(ackTopic))) }
        if let ttl = draft.ttlSeconds { members.append(("ttlSeconds", "\(ttl)")) }
        if let error = operation.lastError { members.append(("lastError", JSONText.quote(error))) }
        return Array(JSONText.object(members).utf8)
    }

    static func decode(key: [UInt8], value: [UInt8]) -> Operation? {
        // o/<type>/<id>/<16 hex>
        guard key.count > prefix.count + 17, key[key.count - 17] == UInt8(ascii: "/") else { return nil }
        let path = String(decoding: key[prefix.count..<(key.count - 17)], as: UTF8.self)
        guard let device = DeviceKey(storedPath: path),
            let sequence = Operation.sequence(ofID: String(decoding: key.suffix(16), as: UTF8.self)),
            let members = try? StrictJSON.members(of: value)
        else { return nil }
        var fields: [String: StrictJSON.Member] = [:]
        for member in members { fields[member.name] = member }
        func string(_ name: String) -> String? {
            if case .string(let text)? = fields[name]?.kind { return text }
            return nil
        }
        func integer(_ name: String) -> Int64? {
            if case .number(let text)? = fields[name]?.kind { return Int64(text) }
            return nil
        }
        guard let topic = string("topic"), let payloadMember = fields["payload"],
            let qos = integer("qos"), (0...2).contains(qos), case .bool(let retain)? = fields["retain"]?.kind,
            let ackTimeout = integer("ackTimeoutSeconds"),
            let status = string("status").flatMap(OperationStatus.init(rawValue:)),
            let attempts = integer("attempts"), let createdAt = integer("createdAt"),
            let updatedAt = integer("updatedAt")
        else { return nil }
        let payload: OperationPayload
        if case .string(let text) = payloadMember.kind {
            payload = .text(text)
        } else {
            payload = .json(Array(value[payloadMember.span]))
        }
        let draft = OperationDraft(
            topic: topic, payload: payload, qos: UInt8(qos), retain: retain, ackTopic: string("ackTopic"),
            ackTimeoutSeconds: Int(ackTimeout), ttlSeconds: integer("ttlSeconds").map { Int($0) })
        return Operation(
            device: device, sequence: sequence, draft: draft, status: status, attempts: Int(attempts),
            createdAt: createdAt, updatedAt: updatedAt, lastError: string("lastError"))
    }
}
