/// A strict RFC 8259 reader for one JSON object whose members are read one level deep: each member's value is
/// checked in full but kept as its kind plus the exact bytes it occupied, so an operation's `payload` can be sent
/// as the client wrote it (whitespace, key order and number spelling included).
///
/// Stricter than Foundation's `JSONSerialization`: duplicate member names are refused, and so is anything after
/// the object but whitespace.
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
    /// (surrounding whitespace allowed) or a member name repeats (`duplicateName` is then set).
    static func members(of bytes: [UInt8]) throws(SyntaxError) -> [Member] {
        var reader = Reader(bytes: bytes)
        reader.skipWhitespace()
        guard reader.peek == UInt8(ascii: "{") else { throw reader.error("expected an object") }
        reader.index += 1
        var members: [Member] = []
        var names = Set<String>()
        reader.skipWhitespace()
        if reader.peek == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipWhitespace()
                guard reader.peek == UInt8(ascii: "\"") else { throw reader.error("expected a member name") }
                let nameOffset = reader.index
                let name = try reader.string()
                guard names.insert(name).inserted else {
                    throw SyntaxError(offset: nameOffset, reason: "duplicate member \(JSONText.quote(name))")
                }
                reader.skipWhitespace()
                guard reader.peek == UInt8(ascii: ":") else { throw reader.error("expected ':'") }
                reader.index += 1
                reader.skipWhitespace()
                let start = reader.index
                let kind = try reader.value(depth: 1)
                members.append(Member(name: name, kind: kind, span: start..<reader.index))
                reader.skipWhitespace()
                if reader.peek == UInt8(ascii: ",") {
                    reader.index += 1
                    continue
                }
                guard reader.peek == UInt8(ascii: "}") else { throw reader.error("expected ',' or '}'") }
                reader.index += 1
                break
            }
        }
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw reader.error("unexpected data after the object") }
        return members
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        func error(_ reason: String) -> SyntaxError {
            SyntaxError(offset: index, reason: index < bytes.count ? reason : reason + " (end of input)")
        }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func value(depth: Int) throws(SyntaxError) -> Kind {
            guard let byte = peek else { throw error("expected a value") }
            switch byte {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < StrictJSON.maximumDepth else {
                    throw error("nested deeper than \(StrictJSON.maximumDepth) levels")
                }
                try container(depth: depth)
                return byte == UInt8(ascii: "{") ? .object : .array
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("expected a value")
            }
        }

        private mutating func container(depth: Int) throws(SyntaxError) {
            let isObject = bytes[index] == UInt8(ascii: "{")
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            index += 1
            skipWhitespace()
            if peek == close {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                if isObject {
                    guard peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    _ = try string()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ":") else { throw error("expected ':'") }
                    index += 1
                    skipWhitespace()
                }
                _ = try value(depth: depth + 1)
                skipWhitespace()
                if peek == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard peek == close else { throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'") }
                index += 1
                return
            }
        }

        private mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("expected \(word)") }
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
            for offset in 0..<count where bytes[index + offset] != expected[offset] { throw error("expected \(word)") }
            index += count
        }

        private mutating func number() throws(SyntaxError) -> String {
            let start = index
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
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        private mutating func skipDigits() {
            while let byte = peek, byte >= 0x30, byte <= 0x39 { index += 1 }
        }

        /// A string literal at `index` (on its opening quote), decoded; refuses control characters, bad escapes,
        /// lone surrogates and invalid UTF-8.
        mutating func string() throws(SyntaxError) -> String {
            index += 1
            var scalars = String.UnicodeScalarView()
            var runStart = index
            func flush(_ reader: Reader, upTo end: Int) throws(SyntaxError) {
                guard runStart < end else { return }
                guard let text = String(validating: reader.bytes[runStart..<end], as: UTF8.self) else {
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
