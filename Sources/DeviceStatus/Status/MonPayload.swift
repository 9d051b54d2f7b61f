/// The fields devstatusd reads from an IBM Watson IoT `mon` status payload. The payload itself is kept as
/// received (see `DeviceStatusRecord.payload`); only these fields decide what happens to it.
public struct MonPayload: Sendable, Equatable {
    public enum Action: UInt8, Sendable {
        case connect = 1
        case disconnect = 2
    }

    public var action: Action
    public var clientID: String
    /// `Time` in nanoseconds since the Unix epoch.
    public var time: Int64
    public var closeCode: Int?

    /// The largest payload accepted: IBM's are a few hundred bytes; anything far bigger is not a status message.
    public static let maximumSize = 64 * 1024

    /// Parses and validates a whole payload: it must be one strict JSON object with string `Action`
    /// ("Connect" | "Disconnect"), string `ClientID` and an RFC 3339 string `Time`; `CloseCode`, when present,
    /// must be an integer.
    public init(parsing bytes: some Collection<UInt8>) throws(MalformedPayload) {
        guard bytes.count <= Self.maximumSize else { throw .tooLarge(bytes.count) }
        let scanned = bytes.withContiguousStorageIfAvailable { buffer in
            var scanner = MonFieldScanner(buffer)
            return Result { () throws(MalformedPayload) in try scanner.scan() }
        }
        let fields = try
            (scanned ?? Result { () throws(MalformedPayload) in try MonFieldScanner.scanCopy(Array(bytes)) }).get()
        guard let actionText = fields.action else { throw .missingField("Action") }
        guard let clientID = fields.clientID else { throw .missingField("ClientID") }
        guard let timeText = fields.time else { throw .missingField("Time") }
        switch actionText {
        case "Connect": action = .connect
        case "Disconnect": action = .disconnect
        default: throw .badField("Action", "expected \"Connect\" or \"Disconnect\", found \"\(actionText.prefix(40))\"")
        }
        guard let parsedTime = RFC3339.parse(timeText) else {
            throw .badField(
                "Time", "not an RFC 3339 timestamp between 1677 and 2262: \"\(timeText.prefix(40))\"")
        }
        self.clientID = clientID
        self.time = parsedTime
        self.closeCode = fields.closeCode
    }

    /// Parses like `init(parsing:)`, then applies the clock-skew rule: a `Time` more than `skew` ahead of `now`
    /// (wall-clock nanoseconds) is malformed.
    public init(parsing bytes: some Collection<UInt8>, now: Int64, skew: ClockSkewLimit) throws(MalformedPayload) {
        try self.init(parsing: bytes)
        try skew.check(time, now: now, field: "Time")
    }
}

/// Why a status payload was dropped. Counted and logged; ingestion goes on.
public enum MalformedPayload: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case badJSON(offset: Int, reason: String)
    case notAnObject
    case missingField(String)
    case badField(String, String)

    public var description: String {
        switch self {
        case .tooLarge(let size): "payload of \(size) bytes exceeds \(MonPayload.maximumSize)"
        case .badJSON(let offset, let reason): "invalid JSON at byte \(offset): \(reason)"
        case .notAnObject: "payload is not a JSON object"
        case .missingField(let name): "missing field \(name)"
        case .badField(let name, let why): "field \(name): \(why)"
        }
    }

    /// A short label for metrics.
    public var label: String {
        switch self {
        case .tooLarge: "too_large"
        case .badJSON, .notAnObject: "bad_json"
        case .missingField: "missing_field"
        case .badField: "bad_field"
        }
    }
}

/// A strict RFC 8259 validator that also picks the top-level fields a `mon` payload is judged by.
/// It never builds a tree: a status message costs one pass over its bytes.
struct MonFieldScanner {
    struct Fields {
        var action: String?
        var clientID: String?
        var time: String?
        var closeCode: Int?
    }

    /// Deeper nesting than any status payload has; the bound keeps recursion off the stack's edge.
    static let maximumDepth = 64

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    static func scanCopy(_ array: [UInt8]) throws(MalformedPayload) -> Fields {
        try array.withUnsafeBufferPointer { buffer throws(MalformedPayload) in
            var scanner = MonFieldScanner(buffer)
            return try scanner.scan()
        }
    }

    mutating func scan() throws(MalformedPayload) -> Fields {
        var fields = Fields()
        skipWhitespace()
        guard index < bytes.count else { throw .badJSON(offset: index, reason: "empty document") }
        guard bytes[index] == UInt8(ascii: "{") else {
            try skipValue(depth: 0)
            skipWhitespace()
            guard index == bytes.count else { throw fail("trailing data") }
            throw .notAnObject
        }
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                let name = try readMemberName()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                skipWhitespace()
                switch name {
                case .action: fields.action = try readStringField("Action")
                case .clientID: fields.clientID = try readStringField("ClientID")
                case .time: fields.time = try readStringField("Time")
                case .closeCode: fields.closeCode = try readIntegerField("CloseCode")
                case .other: try skipValue(depth: 1)
                }
                skipWhitespace()
                guard let next = peek() else { throw fail("unterminated object") }
                index += 1
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            }
        }
        skipWhitespace()
        guard index == bytes.count else { throw fail("trailing data") }
        return fields
    }

    private func fail(_ reason: String) -> MalformedPayload { .badJSON(offset: index, reason: reason) }

    enum MemberName { case action, clientID, time, closeCode, other }

    /// Reads a member name, comparing its bytes with the four that matter before building any String: a status
    /// payload has a dozen members, and this runs for every message.
    private mutating func readMemberName() throws(MalformedPayload) -> MemberName {
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20
        {
            end += 1
        }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else {
            // Escapes or an error: the general path validates and decodes.
            return switch try readString() {
            case "Action": .action
            case "ClientID": .clientID
            case "Time": .time
            case "CloseCode": .closeCode
            default: .other
            }
        }
        let name = UnsafeBufferPointer(rebasing: bytes[start..<end])
        index = end + 1
        guard name.allSatisfy({ $0 < 0x80 }) || String(validating: name, as: UTF8.self) != nil else {
            throw fail("invalid UTF-8")
        }
        if name.elementsEqual("Action".utf8) { return .action }
        if name.elementsEqual("ClientID".utf8) { return .clientID }
        if name.elementsEqual("Time".utf8) { return .time }
        if name.elementsEqual("CloseCode".utf8) { return .closeCode }
        return .other
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func readStringField(_ name: String) throws(MalformedPayload) -> String {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue(depth: 1)
            throw .badField(name, "expected a string")
        }
        return try readString()
    }

    private mutating func readIntegerField(_ name: String) throws(MalformedPayload) -> Int {
        let start = index
        try skipValue(depth: 1)
        var value = 0
        var negative = false
        var position = start
        if position < index, bytes[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        guard position < index else { throw .badField(name, "expected an integer") }
        while position < index {
            let digit = bytes[position] &- UInt8(ascii: "0")
            guard digit < 10 else { throw .badField(name, "expected an integer") }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(digit))
            guard !overflow1, !overflow2 else { throw .badField(name, "integer out of range") }
            value = sum
            position += 1
        }
        return negative ? -value : value
    }

    /// Reads a JSON string starting at its opening quote and returns its decoded value.
    private mutating func readString() throws(MalformedPayload) -> String {
        index += 1
        let start = index
        var hasEscapes = false
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw fail("control character in string") }
            if byte == UInt8(ascii: "\\") {
                hasEscapes = true
                index += 1
                guard index < bytes.count else { throw fail("unterminated escape") }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    guard index + 4 < bytes.count else { throw fail("short \\u escape") }
                    for offset in 1...4 where hexValue(bytes[index + offset]) == nil {
                        throw fail("bad \\u escape")
                    }
                    index += 5
                default:
                    throw fail("bad escape")
                }
                continue
            }
            index += 1
        }
        let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
        index += 1
        guard let text = String(validating: raw, as: UTF8.self) else { throw fail("invalid UTF-8") }
        return hasEscapes ? Self.unescape(text) : text
    }

    /// Validates a JSON string starting at its opening quote and steps over it without decoding it: most of a
    /// status payload's members are skipped, and building a String for each cost an allocation.
    private mutating func skipString() throws(MalformedPayload) {
        let start = index + 1
        var end = start
        var ascii = true
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            if byte >= 0x80 { ascii = false }
            end += 1
        }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else {
            // Escapes or an error: the general path validates.
            _ = try readString()
            return
        }
        index = end + 1
        if !ascii {
            guard String(validating: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) != nil else {
                throw fail("invalid UTF-8")
            }
        }
    }

    private func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// Decodes the escapes of an already validated string body.
    private static func unescape(_ text: String) -> String {
        var result = ""
        var scalars = Array(text.unicodeScalars)[...]
        var pendingHigh: UInt32?
        while let scalar = scalars.popFirst() {
            guard scalar == "\\", let kind = scalars.popFirst() else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch kind {
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "t": result.append("\t")
            case "u":
                let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                scalars = scalars.dropFirst(4)
                let value = UInt32(hex, radix: 16) ?? 0xFFFD
                if (0xD800...0xDBFF).contains(value) {
                    pendingHigh = value
                    continue
                }
                if (0xDC00...0xDFFF).contains(value), let high = pendingHigh {
                    let combined = 0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00)
                    result.unicodeScalars.append(Unicode.Scalar(combined) ?? "\u{FFFD}")
                } else {
                    result.unicodeScalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
                }
            default: result.unicodeScalars.append(kind)
            }
            pendingHigh = nil
        }
        return result
    }

    /// Validates and skips any JSON value.
    private mutating func skipValue(depth: Int) throws(MalformedPayload) {
        guard depth <= Self.maximumDepth else { throw fail("nested too deeply") }
        guard let byte = peek() else { throw fail("expected a value") }
        switch byte {
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "{"):
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                try skipString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard let next = peek() else { throw fail("unterminated object") }
                index += 1
                if next == UInt8(ascii: "}") { return }
                guard next == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard let next = peek() else { throw fail("unterminated array") }
                index += 1
                if next == UInt8(ascii: "]") { return }
                guard next == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(MalformedPayload) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("bad literal") }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] {
            throw fail("bad literal")
        }
        index += count
    }

    private mutating func skipNumber() throws(MalformedPayload) {
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw fail("bad number") }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek(), isDigit(byte) else { throw fail("bad number") }
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
        if let byte = peek(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), isDigit(digit) else { throw fail("bad number") }
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
