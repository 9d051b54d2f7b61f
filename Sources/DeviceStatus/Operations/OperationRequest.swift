/// Parses the body of `POST /devices/<type>/<id>/operations` (docs/behaviour.md §4.3) strictly: bad JSON, a member of the wrong
/// type or out of range, an unknown or repeated member are refused with a message naming the member.
///
/// Members: `topic` or `command` (exactly one), `payload` (required; a string is sent as is, any other JSON value as
/// its JSON text), `qos` (0–2, default 1), `retain` (default false), `ackTopic`, `ackTimeoutSeconds` (1–86400,
/// default 30), `ttlSeconds` (1–31536000). `null` for an optional member means "not given".
public enum OperationRequest {
    /// Why a body was refused: `field` names the member, when one is at fault.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public let field: String?
        public let message: String
        public var description: String { message }
    }

    static let fields: Set<String> = [
        "topic", "command", "payload", "qos", "retain", "ackTopic", "ackTimeoutSeconds", "ttlSeconds",
    ]
    /// An attempt holds up the device's queue while it waits; a day is beyond any device's answer time.
    static let maximumAckTimeoutSeconds = 86_400
    /// A year: longer-lived work is not "pending"; it also keeps `expiresAt` far from overflowing.
    static let maximumTTLSeconds = 31_536_000

    /// The draft for `device`; `topic` defaults to `iot-2/type/<type>/id/<id>/cmd/<command>/fmt/json`.
    public static func parse(_ body: [UInt8], for device: DeviceKey) throws(Refusal) -> OperationDraft {
        let members: [StrictJSON.Member]
        do {
            members = try StrictJSON.members(of: body)
        } catch {
            throw Refusal(field: nil, message: "body is not a JSON object: \(error)")
        }
        var given: [String: StrictJSON.Member] = [:]
        for member in members {
            guard fields.contains(member.name) else {
                throw Refusal(
                    field: member.name,
                    message:
                        "unknown field \(JSONText.quote(member.name)); known: \(fields.sorted().joined(separator: ", "))"
                )
            }
            if member.kind != .null { given[member.name] = member }
        }

        let topic: String
        switch (given["topic"], given["command"]) {
        case (nil, nil): throw Refusal(field: "topic", message: "topic or command is required")
        case (.some, .some): throw Refusal(field: "command", message: "give either topic or command, not both")
        case (let member?, nil):
            topic = try string(member)
            if let problem = TopicName.problem(topic) { throw Refusal(field: "topic", message: "topic \(problem)") }
        case (nil, let member?):
            let command = try string(member)
            guard !command.isEmpty, TopicName.problem(command) == nil, !command.contains("/") else {
                throw Refusal(field: "command", message: "command must be one non-empty topic level without + or #")
            }
            topic = "iot-2/type/\(device.type)/id/\(device.id)/cmd/\(command)/fmt/json"
            if let problem = TopicName.problem(topic) {
                throw Refusal(field: "command", message: "the default topic \(problem)")
            }
        }

        guard let payloadMember = members.first(where: { $0.name == "payload" }) else {
            throw Refusal(field: "payload", message: "payload is required")
        }
        let payload: OperationPayload
        if case .string(let text) = payloadMember.kind {
            payload = .text(text)
        } else {
            payload = .json(Array(body[payloadMember.span]))
        }

        var draft = OperationDraft(topic: topic, payload: payload)
        if let member = given["qos"] { draft.qos = UInt8(try integer(member, in: 0...2)) }
        if let member = given["retain"] {
            guard case .bool(let value) = member.kind else {
                throw Refusal(field: "retain", message: "retain must be true or false")
            }
            draft.retain = value
        }
        if let member = given["ackTopic"] {
            let ackTopic = try string(member)
            if let problem = TopicName.problem(ackTopic) {
                throw Refusal(field: "ackTopic", message: "ackTopic \(problem)")
            }
            draft.ackTopic = ackTopic
        }
        if let member = given["ackTimeoutSeconds"] {
            draft.ackTimeoutSeconds = try integer(member, in: 1...maximumAckTimeoutSeconds)
        }
        if let member = given["ttlSeconds"] { draft.ttlSeconds = try integer(member, in: 1...maximumTTLSeconds) }
        return draft
    }

    private static func string(_ member: StrictJSON.Member) throws(Refusal) -> String {
        guard case .string(let text) = member.kind else {
            throw Refusal(field: member.name, message: "\(member.name) must be a string")
        }
        return text
    }

    private static func integer(_ member: StrictJSON.Member, in range: ClosedRange<Int>) throws(Refusal) -> Int {
        guard case .number(let text) = member.kind, let value = integralValue(of: text) else {
            throw Refusal(field: member.name, message: "\(member.name) must be an integer")
        }
        guard range.contains(value) else {
            throw Refusal(
                field: member.name,
                message: "\(member.name) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
        }
        return value
    }
}

extension OperationRequest {
    /// The value of a JSON number that is an integer, written as one (`30`) or not (`30.0`, `3e1`: JSON Schema's
    /// `integer` counts them too); nil for a fraction (`30.5`). A value beyond `Int` is clamped to `Int.min`/`Int.max`,
    /// which every range refuses.
    static func integralValue(of text: String) -> Int? {
        if let value = Int(text) { return value }
        let bytes = Array(text.utf8)
        let isDigit = { (byte: UInt8) in (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
        var index = 0
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { index += 1 }
        var digits: [UInt8] = []
        while index < bytes.count, isDigit(bytes[index]) {
            digits.append(bytes[index])
            index += 1
        }
        guard !digits.isEmpty else { return nil }
        var exponent = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, isDigit(bytes[index]) {
                digits.append(bytes[index])
                index += 1
            }
            guard index > start else { return nil }
            exponent -= index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            // Int accepts a leading + or -.
            guard let written = Int(String(decoding: bytes[(index + 1)...], as: UTF8.self)), abs(written) < 1_000_000
            else { return nil }
            exponent += written
            index = bytes.count
        }
        guard index == bytes.count else { return nil }
        // value = digits × 10^exponent: an integer when the digits a negative exponent drops are zeros.
        while exponent < 0, let last = digits.last {
            guard last == UInt8(ascii: "0") else { return nil }
            digits.removeLast()
            exponent += 1
        }
        digits = Array(digits.drop { $0 == UInt8(ascii: "0") })
        if digits.isEmpty { return 0 }
        guard digits.count + max(exponent, 0) <= 18 else { return negative ? Int.min : Int.max }
        digits += Array(repeating: UInt8(ascii: "0"), count: max(exponent, 0))
        let magnitude = Int(String(decoding: digits, as: UTF8.self))!
        return negative ? -magnitude : magnitude
    }
}

/// MQTT topic names (MQTT 3.1.1 §4.7, §1.5.3): what may be published to.
enum TopicName {
    /// Why `topic` cannot be published to ("must not be empty", …), or nil when it can.
    static func problem(_ topic: String) -> String? {
        if topic.isEmpty { return "must not be empty" }
        // The MQTT length prefix is 16 bits.
        if topic.utf8.count > 65_535 { return "is longer than 65535 bytes" }
        if topic.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) {
            return "must not contain the wildcards + or #"
        }
        if topic.utf8.contains(0) { return "must not contain NUL" }
        if topic.unicodeScalars.contains(where: isRefused) {
            return "must not contain control characters (U+0001–U+001F, U+007F–U+009F) or Unicode noncharacters"
        }
        return nil
    }

    /// What libmosquitto refuses in a topic ("Malformed UTF-8", so every attempt would fail): the control characters
    /// MQTT says a string should not hold, and the noncharacters U+FDD0–U+FDEF and U+xxFFFE/U+xxFFFF.
    static func isRefused(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return value <= 0x1F || (0x7F...0x9F).contains(value) || (0xFDD0...0xFDEF).contains(value)
            || value & 0xFFFE == 0xFFFE
    }
}
