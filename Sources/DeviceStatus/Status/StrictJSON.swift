/// The one strict RFC 8259 reader of the daemon: every JSON that arrives from outside (a `mon` status payload, a
/// presence convention's JSON payload, an operation request, a stored operation) is read by it.
///
/// Two ways in, over the same `Reader`:
/// - `members(of:)` reads one object whose members are read one level deep: each member's value is checked in full
///   but kept as its kind plus the exact bytes it occupied, so an operation's `payload` can be sent as the client
///   wrote it (whitespace, key order and number spelling included). Duplicate member names are refused.
/// - `Reader` itself walks an object member by member (`beginObject`, `memberName`, `nextMember`) and lets its user
///   decode the values it wants and skip the rest without building them: a `mon` payload costs one pass over its
///   bytes and a String only for the three fields it is judged by.
///
/// Stricter than Foundation's `JSONSerialization`: anything after the value but whitespace is refused, and so are
/// control characters in strings, bad escapes, lone surrogates, invalid UTF-8 and nesting deeper than 64 levels.
enum StrictJSON {
    /// What a member's value is.
    enum Kind: Equatable {
        case null
        case bool(Bool)
        /// The number as written (`-12`, `1.5e3`).
        case number(String)
        case string(String)
        case array
        case object
    }

    struct Member {
        let name: String
        let kind: Kind
        /// Where the value starts and ends in the input.
        let span: Range<Int>
    }

    struct SyntaxError: Error, Equatable, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// Nesting depth allowed inside a member's value. The reader recurses on the caller's thread (an event-loop
    /// thread); 64 KiB of `[` would otherwise be 64 Ki stack frames.
    static let maximumDepth = 64

    /// The members of the object `bytes` holds, in order. Throws when `bytes` is not exactly one JSON object
    /// (surrounding whitespace allowed) or a member name repeats.
    static func members(of bytes: [UInt8]) throws(SyntaxError) -> [Member] {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(SyntaxError) -> [Member] in
                var reader = Reader(buffer)
                reader.skipWhitespace()
                guard reader.peek == UInt8(ascii: "{") else { throw reader.error("expected an object") }
                var members: [Member] = []
                var names = Set<String>()
                if try reader.beginObject() {
                    repeat {
                        let nameOffset = reader.index
                        let name = try reader.memberName().text
                        guard names.insert(name).inserted else {
                            throw SyntaxError(offset: nameOffset, reason: "duplicate member \(JSONText.quote(name))")
                        }
                        let start = reader.index
                        let kind = try reader.value(depth: 1)
                        members.append(Member(name: name, kind: kind, span: start..<reader.index))
                    } while try reader.nextMember()
                }
                try reader.finish("unexpected data after the object")
                return members
            }
        }
        return try result.get()
    }

    /// A member name as read: its raw bytes when it has no escapes (no String is built to compare it), else decoded.
    struct Name {
        fileprivate let raw: UnsafeBufferPointer<UInt8>?
        fileprivate let decoded: String?

        /// Whether the name is exactly `literal`.
        func `is`(_ literal: StaticString) -> Bool {
            let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            if let raw {
                // Lengths first: a payload's other members are told apart from the wanted ones without a byte compared.
                return raw.count == expected.count && raw.elementsEqual(expected)
            }
            return decoded!.utf8.elementsEqual(expected)
        }

        var text: String { decoded ?? String(decoding: raw!, as: UTF8.self) }
    }

    /// Reads JSON from a buffer the caller keeps alive. Every method throws `SyntaxError` with the byte offset.
    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
        var atEnd: Bool { index >= bytes.count }

        func error(_ reason: String) -> SyntaxError {
            SyntaxError(offset: index, reason: index < bytes.count ? reason : reason + " (end of input)")
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        /// After the document: only whitespace may follow.
        mutating func finish(_ reason: String) throws(SyntaxError) {
            skipWhitespace()
            guard index == bytes.count else { throw error(reason) }
        }

        // MARK: Walking an object

        /// On an object's `{`: steps into it. Returns false for an empty object (then already stepped over).
        mutating func beginObject() throws(SyntaxError) -> Bool {
            index += 1
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                index += 1
                return false
            }
            return true
        }

        /// Reads a member's name and the `:` after it; the value comes next (whitespace skipped).
        mutating func memberName() throws(SyntaxError) -> Name {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let name: Name
            if let raw = try plainString() {
                name = Name(raw: raw, decoded: nil)
            } else {
                name = Name(raw: nil, decoded: try string())
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            return name
        }

        /// After a member's value: true when another member follows (its `,` stepped over), false at the `}`.
        mutating func nextMember() throws(SyntaxError) -> Bool {
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","):
                index += 1
                return true
            case UInt8(ascii: "}"):
                index += 1
                return false
            default: throw error("expected ',' or '}'")
            }
        }

        // MARK: Values

        /// Reads any value, decoding a string or a number, checking (and stepping over) an array or an object.
        mutating func value(depth: Int) throws(SyntaxError) -> Kind {
            guard let byte = peek else { throw error("expected a value") }
            switch byte {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = index
                try number()
                return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
            case UInt8(ascii: "{"):
                try skipValue(depth: depth)
                return .object
            case UInt8(ascii: "["):
                try skipValue(depth: depth)
                return .array
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default: throw error("expected a value")
            }
        }

        /// Checks any value and steps over it, building nothing.
        mutating func skipValue(depth: Int) throws(SyntaxError) {
            guard let byte = peek else { throw error("expected a value") }
            switch byte {
            case UInt8(ascii: "\""):
                if try plainString() == nil { _ = try string() }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < StrictJSON.maximumDepth else {
                    throw error("nested deeper than \(StrictJSON.maximumDepth) levels")
                }
                let isObject = byte == UInt8(ascii: "{")
                let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                index += 1
                skipWhitespace()
                if peek == close {
                    index += 1
                    return
                }
                while true {
                    skipWhitespace()
                    if isObject { _ = try memberName() }
                    try skipValue(depth: depth + 1)
                    skipWhitespace()
                    if peek == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    guard peek == close else {
                        throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                    }
                    index += 1
                    return
                }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw error("expected a value")
            }
        }

        private mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("expected \(word)") }
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
            for offset in 0..<count where bytes[index + offset] != expected[offset] { throw error("expected \(word)") }
            index += count
        }

        private mutating func number() throws(SyntaxError) {
            if peek == UInt8(ascii: "-") { index += 1 }
            guard let first = peek, first >= 0x30, first <= 0x39 else { throw error("expected a digit") }
            index += 1
            if first != 0x30 { skipDigits() }
            if peek == UInt8(ascii: ".") {
                index += 1
                guard let digit = peek, digit >= 0x30, digit <= 0x39 else { throw error("expected a digit") }
                skipDigits()
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard let digit = peek, digit >= 0x30, digit <= 0x39 else { throw error("expected a digit") }
                skipDigits()
            }
        }

        private mutating func skipDigits() {
            while let byte = peek, byte >= 0x30, byte <= 0x39 { index += 1 }
        }

        // MARK: Strings

        /// A string without escapes at `index` (on its opening quote): its bytes, checked, stepped over. Nil, with
        /// nothing consumed, when it has an escape or an error (`string()` then decodes it or says what is wrong).
        mutating func plainString() throws(SyntaxError) -> UnsafeBufferPointer<UInt8>? {
            let start = index + 1
            var end = start
            var ascii = true
            let count = bytes.count
            if let base = bytes.baseAddress {
                while true {
                    // Eight bytes at a time while none of them needs a look (most of a status payload's strings).
                    while end &+ 8 <= count,
                        !Self.needsALook(UnsafeRawPointer(base + end).loadUnaligned(as: UInt64.self))
                    {
                        end &+= 8
                    }
                    guard end < count else { break }
                    let byte = base[end]
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                    if byte >= 0x80 { ascii = false }
                    end += 1
                }
            }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else { return nil }
            let body = UnsafeBufferPointer(rebasing: bytes[start..<end])
            guard ascii || String(validating: body, as: UTF8.self) != nil else {
                throw SyntaxError(offset: start, reason: "invalid UTF-8 in a string")
            }
            index = end + 1
            return body
        }

        private static let ones: UInt64 = 0x0101_0101_0101_0101
        private static let highBits: UInt64 = 0x8080_8080_8080_8080

        /// Whether any of the eight bytes of `word` is a quote, a backslash, a control character or not ASCII. Each
        /// test is exact for a word without high bits: `(v - 0x01…) & ~v & 0x80…` is non-zero iff a byte of `v` is
        /// zero, and `(v - 0x20…) & ~v & 0x80…` iff a byte is below 0x20.
        @inline(__always)
        static func needsALook(_ word: UInt64) -> Bool {
            let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
            let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
            let zeroByte = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
            let control = (word &- ones &* 0x20) & ~word
            return (word | zeroByte | control) & highBits != 0
        }

        /// A string literal at `index` (on its opening quote), decoded; refuses control characters, bad escapes,
        /// lone surrogates and invalid UTF-8.
        mutating func string() throws(SyntaxError) -> String {
            if let plain = try plainString() { return String(decoding: plain, as: UTF8.self) }
            index += 1
            var scalars = String.UnicodeScalarView()
            var runStart = index
            func flush(_ reader: Reader, upTo end: Int) throws(SyntaxError) {
                guard runStart < end else { return }
                guard
                    let text = String(
                        validating: UnsafeBufferPointer(rebasing: reader.bytes[runStart..<end]), as: UTF8.self)
                else {
                    throw SyntaxError(offset: runStart, reason: "invalid UTF-8 in a string")
                }
                scalars.append(contentsOf: text.unicodeScalars)
            }
            while true {
                guard let byte = peek else { throw error("unterminated string") }
                if byte == UInt8(ascii: "\"") {
                    try flush(self, upTo: index)
                    index += 1
                    return String(scalars)
                }
                if byte < 0x20 { throw error("control character in a string") }
                if byte != UInt8(ascii: "\\") {
                    index += 1
                    continue
                }
                try flush(self, upTo: index)
                index += 1
                guard let escape = peek else { throw error("unterminated string") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let high = try hex4()
                    var value = UInt32(high)
                    if (0xD800...0xDBFF).contains(high) {
                        guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                        else { throw error("lone surrogate in a string") }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate in a string") }
                        value = 0x10000 + ((UInt32(high) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(high) {
                        throw error("lone surrogate in a string")
                    }
                    scalars.append(Unicode.Scalar(value)!)
                default:
                    index -= 1
                    throw error("invalid escape")
                }
                runStart = index
            }
        }

        private mutating func hex4() throws(SyntaxError) -> UInt16 {
            guard index + 4 <= bytes.count else { throw error("expected 4 hex digits") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x41...0x46: digit = byte - 0x41 + 10
                case 0x61...0x66: digit = byte - 0x61 + 10
                default: throw error("expected 4 hex digits")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }
    }
}
