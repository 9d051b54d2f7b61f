import MQTT

/// A convention whose device is named by topic levels and whose payload is one word from a list: Tasmota,
/// ESPHome, Shelly, Zigbee2MQTT, Homie and the generic `lwt`. No timestamp: applied in arrival order.
///
/// The template is a topic with `{id}` standing for one whole level (the device id), `{name}` for one or more
/// levels (a Zigbee2MQTT friendly name such as `room/lamp`, up to `maximumNameLevels`), `+` for any one level,
/// and literal levels.
public struct LevelTemplateDecoder: PresenceDecoder {
    enum Level: Sendable, Equatable {
        case literal(String)
        case id
        case name
        case any
    }

    /// A friendly name over more levels than this is not subscribed to: MQTT has no wildcard for "several
    /// levels, then `availability`", so each depth is one filter.
    public static let maximumNameLevels = 5

    public let source: PresenceSource
    public let type: String
    let levels: [Level]
    /// Exact payload text → (status, reason; nil: the payload text itself).
    let payloads: [String: (status: PresenceStatus, reason: String?)]
    /// When set, the payload is a JSON object whose member of this name holds the value.
    let jsonField: String?
    /// Whether a payload that is not a JSON object is read as the plain value (Zigbee2MQTT accepts both).
    let jsonOptional: Bool
    public let filters: [TopicFilter]

    /// Why a template cannot name devices.
    public struct TemplateError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Checks a template as the config loader does: `{id}` exactly once as a whole level; other levels literal
    /// or `+`; no `#`.
    public static func validate(template: String) -> TemplateError? {
        let parts = template.slashLevels
        guard parts.filter({ $0 == "{id}" }).count == 1 else {
            return TemplateError(description: "must contain {id} exactly once, as a whole topic level")
        }
        for part in parts where part != "{id}" {
            if part.contains("{") || part.contains("}") {
                return TemplateError(description: "only {id} may stand for a level; found \(part)")
            }
            if part.contains("#") { return TemplateError(description: "'#' is not allowed; use + for one level") }
            if part.contains("+") && part != "+" {
                return TemplateError(description: "'+' must be a whole level")
            }
        }
        let filter = parts.map { $0 == "{id}" ? "+" : String($0) }.joined(separator: "/")
        do throws(TopicFilterError) {
            _ = try TopicFilter(filter)
        } catch {
            return TemplateError(description: error.reasonText)
        }
        return nil
    }

    init(
        source: PresenceSource, type: String, template: String,
        payloads: [(String, PresenceStatus, String?)], jsonField: String? = nil, jsonOptional: Bool = false
    ) {
        self.source = source
        self.type = type
        levels = template.slashLevels.map { part in
            switch part {
            case "{id}": .id
            case "{name}": .name
            case "+": .any
            default: .literal(String(part))
            }
        }
        var table: [String: (PresenceStatus, String?)] = [:]
        for (text, status, reason) in payloads where table[text] == nil { table[text] = (status, reason) }
        self.payloads = table
        self.jsonField = jsonField
        self.jsonOptional = jsonOptional
        let levels = self.levels
        let text: (Int) -> String = { nameLevels in
            levels.map { level -> String in
                switch level {
                case .literal(let text): text
                case .id, .any: "+"
                case .name: Array(repeating: "+", count: nameLevels).joined(separator: "/")
                }
            }.joined(separator: "/")
        }
        let depths = levels.contains(.name) ? Array(1...Self.maximumNameLevels) : [1]
        filters = depths.compactMap { try? TopicFilter(text($0)) }
    }

    public func match(topic: String) -> TopicMatch? {
        let parts = topic.slashLevels
        let nameLevels = parts.count - levels.count + 1
        guard levels.contains(.name) ? nameLevels >= 1 : parts.count == levels.count else { return nil }
        var id: Substring?
        var offset = 0
        for (position, level) in levels.enumerated() {
            let index = position + offset
            switch level {
            case .literal(let text):
                guard parts[index] == text else { return nil }
            case .any:
                break
            case .id:
                id = parts[index]
            case .name:
                let range = index..<(index + nameLevels)
                guard parts[range].allSatisfy({ !$0.isEmpty }) else { return nil }
                id = topic[parts[range.lowerBound].startIndex..<parts[range.upperBound - 1].endIndex]
                offset = nameLevels - 1
            }
        }
        guard let id, !id.isEmpty else { return nil }
        return TopicMatch(key: DeviceKey(type: type, id: String(id)))
    }

    /// Payloads bigger than this are not presence messages (they are a word or a small object).
    public static let maximumSize = 64 * 1024

    public func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded {
        guard payload.count <= Self.maximumSize else {
            return .malformed("payload of \(payload.count) bytes exceeds \(Self.maximumSize)")
        }
        var value: String
        if let jsonField, !(jsonOptional && payload.first != UInt8(ascii: "{")) {
            let members: [StrictJSON.Member]
            do {
                members = try StrictJSON.members(of: payload)
            } catch {
                return .malformed("\(error)")
            }
            guard let member = members.first(where: { $0.name == jsonField }) else {
                return .malformed("missing field \(jsonField)")
            }
            switch member.kind {
            case .string(let text): value = text
            case .bool(let flag): value = flag ? "true" : "false"
            case .number(let text): value = text
            default: return .malformed("field \(jsonField): expected a string, a boolean or a number")
            }
        } else {
            guard let text = String(validating: payload, as: UTF8.self) else { return .malformed("invalid UTF-8") }
            value = text
        }
        guard let entry = payloads[value] else {
            return .malformed("unknown payload \(JSONText.quote(String(value.prefix(40))))")
        }
        return .observation(
            Observation(
                key: match.key, source: source, status: .set(entry.status), reason: entry.reason ?? value,
                payload: payload))
    }
}
