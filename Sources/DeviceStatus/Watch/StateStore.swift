import Storage

/// Devices' state records (docs/behaviour.md §6): the last message on each of a device's state topics, with its retain flag,
/// kept in LevelDB under `t/<name>\0<topic>` so that a device's own states are one prefix scan.
public struct StateStore: Sendable {
    /// One stored state.
    public struct Record: Sendable, Equatable {
        public var topic: String
        public var payload: [UInt8]
        public var retain: Bool
    }

    let store: LevelDB

    public init(store: LevelDB) { self.store = store }

    static func prefix(device name: String) -> [UInt8] { Array("t/".utf8) + Array(name.utf8) + [0] }

    static func key(device name: String, topic: String) -> [UInt8] { prefix(device: name) + Array(topic.utf8) }

    /// Adds the recording of one message to `batch`: an empty payload deletes the record.
    func record(device name: String, topic: String, payload: [UInt8], retain: Bool, into batch: inout WriteBatch) {
        let key = Self.key(device: name, topic: topic)
        if payload.isEmpty {
            batch.delete(key)
        } else {
            batch.put(key, [retain ? 1 : 0] + payload)
        }
    }

    /// The device's stored states, in topic order.
    public func records(device name: String) throws -> [Record] {
        let prefix = Self.prefix(device: name)
        var result: [Record] = []
        try store.forEach(prefix: prefix) { key, value in
            guard let flag = value.first else { return true }
            let topic = String(decoding: key.dropFirst(prefix.count), as: UTF8.self)
            result.append(Record(topic: topic, payload: Array(value.dropFirst()), retain: flag == 1))
            return true
        }
        return result
    }
}
