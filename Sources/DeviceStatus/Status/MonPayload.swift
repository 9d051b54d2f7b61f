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
            Result { () throws(MalformedPayload) in try MonFieldScanner.scan(buffer) }
        }
        let fields = try
            (scanned
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(MalformedPayload) in try MonFieldScanner.scan(buffer) }
            }).get()
        guard let action = fields.action else { throw .missingField("Action") }
        guard let clientID = fields.clientID else { throw .missingField("ClientID") }
        guard let time = fields.time else { throw .missingField("Time") }
        switch action {
        case .success(let action): self.action = action
        case .failure(let text):
            throw .badField("Action", "expected \"Connect\" or \"Disconnect\", found \"\(text.text.prefix(40))\"")
        }
        switch time {
        case .success(let time): self.time = time
        case .failure(let text):
            throw .badField("Time", "not an RFC 3339 timestamp between 1677 and 2262: \"\(text.text.prefix(40))\"")
        }
        self.clientID = clientID
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

/// Picks the top-level fields a `mon` payload is judged by while `StrictJSON.Reader` checks the whole document: one
/// pass over its bytes, a String only for `Action`, `ClientID` and `Time`, every other member checked and skipped.
enum MonFieldScanner {
    struct Fields {
        /// The action, or the text that is none.
        var action: Result<MonPayload.Action, Unreadable>?
        var clientID: String?
        /// `Time` in nanoseconds, or the text that is no RFC 3339 time in range.
        var time: Result<Int64, Unreadable>?
        var closeCode: Int?
    }

    /// A field's text that does not say what the field must (kept for the error message).
    struct Unreadable: Error {
        let text: String
    }

    static func scan(_ bytes: UnsafeBufferPointer<UInt8>) throws(MalformedPayload) -> Fields {
        var reader = StrictJSON.Reader(bytes)
        let scanned: Result<Fields, MalformedPayload>
        do {
            scanned = try scan(&reader)
        } catch {
            throw .badJSON(offset: error.offset, reason: error.reason)
        }
        return try scanned.get()
    }

    /// Syntax errors are thrown; a member of the wrong type ends the scan as soon as it is read, as a failure.
    private static func scan(_ reader: inout StrictJSON.Reader) throws(StrictJSON.SyntaxError) -> Result<
        Fields, MalformedPayload
    > {
        var fields = Fields()
        reader.skipWhitespace()
        guard !reader.atEnd else { throw reader.error("empty document") }
        guard reader.peek == UInt8(ascii: "{") else {
            try reader.skipValue(depth: 0)
            try reader.finish("trailing data")
            return .failure(.notAnObject)
        }
        if try reader.beginObject() {
            repeat {
                let name = try reader.memberName()
                if name.is("Action") {
                    // Read in place: no String is made for a valid action or time.
                    guard let action = try stringField(&reader, Self.action) else {
                        return .failure(notAString("Action"))
                    }
                    fields.action = action
                } else if name.is("ClientID") {
                    guard let text = try stringField(&reader, { String(decoding: $0, as: UTF8.self) }) else {
                        return .failure(notAString("ClientID"))
                    }
                    fields.clientID = text
                } else if name.is("Time") {
                    guard let time = try stringField(&reader, Self.time) else { return .failure(notAString("Time")) }
                    fields.time = time
                } else if name.is("CloseCode") {
                    let start = reader.index
                    try reader.skipValue(depth: 1)
                    switch integer(UnsafeBufferPointer(rebasing: reader.bytes[start..<reader.index])) {
                    case .some(.some(let value)): fields.closeCode = value
                    case .some(.none): return .failure(.badField("CloseCode", "integer out of range"))
                    case .none: return .failure(.badField("CloseCode", "expected an integer"))
                    }
                } else {
                    try reader.skipValue(depth: 1)
                }
            } while try reader.nextMember()
        }
        try reader.finish("trailing data")
        return .success(fields)
    }

    private static func notAString(_ name: String) -> MalformedPayload { .badField(name, "expected a string") }

    /// `read` of the string value at the reader (its UTF-8, unescaped), or nil (the value checked and skipped) when it
    /// is not a string.
    private static func stringField<T>(
        _ reader: inout StrictJSON.Reader, _ read: (UnsafeBufferPointer<UInt8>) -> T
    ) throws(StrictJSON.SyntaxError) -> T? {
        guard reader.peek == UInt8(ascii: "\"") else {
            try reader.skipValue(depth: 1)
            return nil
        }
        if let plain = try reader.plainString() { return read(plain) }
        var text = try reader.string()
        return text.withUTF8(read)
    }

    private static func action(_ text: UnsafeBufferPointer<UInt8>) -> Result<MonPayload.Action, Unreadable> {
        if text.elementsEqual("Connect".utf8) { return .success(.connect) }
        if text.elementsEqual("Disconnect".utf8) { return .success(.disconnect) }
        return .failure(Unreadable(text: String(decoding: text, as: UTF8.self)))
    }

    private static func time(_ text: UnsafeBufferPointer<UInt8>) -> Result<Int64, Unreadable> {
        RFC3339.parse(bytes: text).map { .success($0) }
            ?? .failure(Unreadable(text: String(decoding: text, as: UTF8.self)))
    }

    /// A JSON value's text as an integer; nil when it is not one, `.some(nil)` when it is out of range.
    private static func integer(_ text: UnsafeBufferPointer<UInt8>) -> Int?? {
        var value = 0
        var position = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { position = 1 }
        guard position < text.count else { return nil }
        while position < text.count {
            let digit = text[position] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(digit))
            guard !overflow1, !overflow2 else { return .some(nil) }
            value = sum
            position += 1
        }
        return .some(negative ? -value : value)
    }
}
