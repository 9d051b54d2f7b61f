import MQTT

/// EMQX's client lifecycle system messages: `P/<node>/clients/<clientid>/connected` and `…/disconnected`, a JSON
/// object with `clientid`, `ts` (milliseconds since the epoch) and, on disconnect, `reason`. The topic says the
/// status; `ts` orders them like a `mon` `Time` (older ignored, disconnect wins ties; more than `[status]
/// maxClockSkew` ahead is malformed).
public struct EMQXDecoder: PresenceDecoder {
    public var source: PresenceSource { .emqx }
    public let type: String
    public let prefix: String
    let prefixLevels: Int
    public let filters: [TopicFilter]

    static let connected: UInt8 = 1
    static let disconnected: UInt8 = 2

    public init(type: String, prefix: String) {
        self.type = type
        self.prefix = prefix
        prefixLevels = prefix.slashLevels.count
        filters = ["connected", "disconnected"].compactMap { try? TopicFilter(prefix + "/+/clients/+/" + $0) }
    }

    public func match(topic: String) -> TopicMatch? {
        let parts = topic.slashLevels
        guard parts.count == prefixLevels + 4, topic.hasPrefix(prefix + "/"), parts[prefixLevels + 1] == "clients",
            !parts[prefixLevels + 2].isEmpty
        else { return nil }
        let kind: UInt8
        switch parts[prefixLevels + 3] {
        case "connected": kind = Self.connected
        case "disconnected": kind = Self.disconnected
        default: return nil
        }
        return TopicMatch(key: DeviceKey(type: type, id: String(parts[prefixLevels + 2])), kind: kind)
    }

    public static let maximumSize = 64 * 1024

    public func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded {
        guard payload.count <= Self.maximumSize else {
            return .malformed("payload of \(payload.count) bytes exceeds \(Self.maximumSize)")
        }
        let members: [StrictJSON.Member]
        do {
            members = try StrictJSON.members(of: payload)
        } catch {
            return .malformed("\(error)")
        }
        guard let ts = members.first(where: { $0.name == "ts" }) else { return .malformed("missing field ts") }
        guard case .number(let text) = ts.kind, let milliseconds = Int64(text), milliseconds >= 0 else {
            return .malformed("field ts: expected a whole number of milliseconds")
        }
        let (nanoseconds, overflow) = milliseconds.multipliedReportingOverflow(by: 1_000_000)
        guard !overflow else { return .malformed("field ts: out of range") }
        do {
            try context.clockSkew.check(nanoseconds, now: context.now, field: "ts")
        } catch {
            return .malformed("\(error)")
        }
        var reason: String?
        if case .string(let text)? = members.first(where: { $0.name == "reason" })?.kind { reason = text }
        let online = match.kind == Self.connected
        return .observation(
            Observation(
                key: match.key, source: .emqx, status: .set(online ? .online : .offline), sourceTime: nanoseconds,
                reason: reason ?? (online ? "connected" : "disconnected"), payload: payload))
    }
}
