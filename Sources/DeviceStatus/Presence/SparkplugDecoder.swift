import MQTT
import SwiftProtobuf

/// Sparkplug B (Eclipse Sparkplug 3.0): edge nodes announce themselves with NBIRTH and leave with NDEATH (their
/// Last Will), devices behind a node with DBIRTH and DDEATH. Payloads are protobuf (`Payload` of the Sparkplug B
/// schema), decoded with swift-protobuf from code generated once (see `Sparkplug/sparkplug_presence.proto`).
///
/// Keys: type = the group id (or the block's `type`), id = the node id, or `node/device` for a device. A node
/// death counts only when its `bdSeq` is the one of the node's last birth (`BirthSequenceOrdering`), and takes
/// the node's devices offline; a node's rebirth does not bring its devices back before their own DBIRTH.
public struct SparkplugDecoder: PresenceDecoder {
    public var source: PresenceSource { .sparkplug }
    /// `type`; nil: each message's group id.
    public let type: String?
    public let prefix: String
    let prefixLevels: Int
    public let filters: [TopicFilter]

    /// The message types this decoder reads, as `TopicMatch.kind`.
    enum MessageType: UInt8, CaseIterable {
        case nodeBirth = 1
        case nodeDeath, deviceBirth, deviceDeath

        var topicLevel: String {
            switch self {
            case .nodeBirth: "NBIRTH"
            case .nodeDeath: "NDEATH"
            case .deviceBirth: "DBIRTH"
            case .deviceDeath: "DDEATH"
            }
        }

        var isNode: Bool { self == .nodeBirth || self == .nodeDeath }
        var isBirth: Bool { self == .nodeBirth || self == .deviceBirth }
    }

    public init(type: String?, prefix: String) {
        self.type = type
        self.prefix = prefix
        prefixLevels = prefix.slashLevels.count
        filters = MessageType.allCases.compactMap { kind in
            try? TopicFilter(prefix + "/+/" + kind.topicLevel + (kind.isNode ? "/+" : "/+/+"))
        }
    }

    public func match(topic: String) -> TopicMatch? {
        let parts = topic.slashLevels
        guard parts.count >= prefixLevels + 3, topic.hasPrefix(prefix + "/"),
            let kind = MessageType.allCases.first(where: { $0.topicLevel == parts[prefixLevels + 1] }),
            parts.count == prefixLevels + (kind.isNode ? 3 : 4)
        else { return nil }
        let group = parts[prefixLevels]
        let ids = parts[(prefixLevels + 2)...]
        guard !group.isEmpty, ids.allSatisfy({ !$0.isEmpty }) else { return nil }
        return TopicMatch(
            key: DeviceKey(type: type ?? String(group), id: ids.joined(separator: "/")), kind: kind.rawValue)
    }

    /// A Sparkplug payload is a few hundred bytes to a few kilobytes (a birth lists every metric); past this it
    /// is not read.
    public static let maximumSize = 1 << 20

    public func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded {
        guard let kind = MessageType(rawValue: match.kind) else { return .malformed("not a Sparkplug message") }
        guard payload.count <= Self.maximumSize else {
            return .malformed("payload of \(payload.count) bytes exceeds \(Self.maximumSize)")
        }
        let message: Devstatusd_Sparkplug_Payload
        do {
            message = try Devstatusd_Sparkplug_Payload(serializedBytes: payload)
        } catch {
            return .malformed("not a Sparkplug B payload: \(error)")
        }
        var time: Int64?
        if message.hasTimestamp {
            guard message.timestamp <= UInt64(Int64.max / 1_000_000) else {
                return .malformed("timestamp \(message.timestamp) out of range")
            }
            let nanoseconds = Int64(message.timestamp) * 1_000_000
            do {
                try context.clockSkew.check(nanoseconds, now: context.now, field: "timestamp")
            } catch {
                return .malformed("\(error)")
            }
            time = nanoseconds
        }
        var sequence: Int64?
        if kind.isNode {
            switch Self.birthDeathSequence(message) {
            case .success(let value): sequence = value
            case .failure(let problem): return .malformed("\(kind.topicLevel): \(problem.reason)")
            }
        }
        var summary: [(String, String)] = [("messageType", JSONText.quote(kind.topicLevel))]
        if let sequence { summary.append(("bdSeq", "\(sequence)")) }
        if message.hasTimestamp { summary.append(("timestamp", "\(message.timestamp)")) }
        if message.hasSeq { summary.append(("seq", "\(message.seq)")) }
        return .observation(
            Observation(
                key: match.key, source: .sparkplug, status: .set(kind.isBirth ? .online : .offline),
                sourceTime: time, reason: kind.topicLevel, payload: Array(JSONText.object(summary).utf8),
                sequence: sequence, cascades: kind == .nodeDeath))
    }

    struct SequenceProblem: Error {
        let reason: String
    }

    /// The `bdSeq` metric of a node birth or death: an Int64 or UInt64 (kept as its 64 bits), required.
    static func birthDeathSequence(_ message: Devstatusd_Sparkplug_Payload) -> Result<Int64, SequenceProblem> {
        guard let metric = message.metrics.first(where: { $0.name == "bdSeq" }) else {
            return .failure(SequenceProblem(reason: "no bdSeq metric"))
        }
        guard !metric.isNull else { return .failure(SequenceProblem(reason: "bdSeq is null")) }
        switch metric.value {
        case .longValue(let value)?: return .success(Int64(bitPattern: value))
        case .intValue(let value)?: return .success(Int64(value))
        case nil: return .failure(SequenceProblem(reason: "bdSeq has no integer value"))
        }
    }
}
