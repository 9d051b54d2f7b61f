/// A complete syntax check of TOML 1.0.0, run on the configuration text before the TOML library reads it.
///
/// Why it exists: the TOML library (toml++ 3.4.0, inside TOMLKit 0.6.0) checks many of its own expectations with C
/// `assert`, and those assertions stay on in our builds. On some malformed text (a table header starting with `@`, a
/// date with a letter inside a field, a `}` closing an array, ...) its parser does not report an error but ends the
/// whole process, so a typo in the configuration would stop `devstatusd` (and `--check-config`) with SIGABRT, and
/// under systemd restart it forever. Fuzzing kept finding new such inputs one class at a time, so instead of refusing
/// the known classes, this check follows the whole TOML 1.0.0 grammar and refuses every text that does not match it,
/// with the line, column, and (when there is one) the table and key. The library then only ever reads
/// syntactically valid TOML.
///
/// It is a validator, not a parser: it builds nothing and keeps only what an error message needs (the current table
/// header and key, as written). What the grammar cannot see is left to the library, which reports it as an error
/// without aborting: a key or table defined twice, a day that its month does not have (February 30).
///
/// Pure: no I/O. One function per grammar rule over a byte cursor on the UTF-8 text (which Swift's `String`
/// guarantees is valid, so every byte from 0x80 up belongs to a well-formed non-ASCII character, which TOML allows in
/// strings and comments).
enum TOMLGuard {
    struct Problem: Equatable, Sendable {
        var line: Int
        var column: Int
        /// The table header the problem is under, as written (`mqtt`, `device_a`, `a."b c"`), nil before any.
        var section: String?
        /// The key of the line's `key = value`, as written, nil for a header, comment or blank line.
        var key: String?
        var message: String
    }

    /// Arrays and inline tables nest at most this deep (the library allows 256; a config needs two or three).
    static let maximumNesting = 128

    /// nil when `text` is TOML 1.0.0 as far as its syntax goes, else the first place where it is not.
    static func firstProblem(in text: String) -> Problem? {
        var validator = Validator(bytes: Array(text.utf8))
        do {
            try validator.document()
            return nil
        } catch {
            let (line, column) = validator.lineAndColumn(of: error.position)
            return Problem(
                line: line, column: column, section: validator.section, key: validator.key, message: error.message)
        }
    }
}

/// Where the text stops matching the grammar, and what was expected there.
private struct SyntaxError: Error {
    var position: Int
    var message: String
}

private let tab: UInt8 = 0x09
private let lineFeed: UInt8 = 0x0A
private let carriageReturn: UInt8 = 0x0D
private let space: UInt8 = 0x20

/// The grammar rules of TOML 1.0.0 (https://toml.io/en/v1.0.0, its ABNF), each a method that consumes what it
/// matches at `position` or throws.
private struct Validator {
    let bytes: [UInt8]
    var position = 0
    var section: String?
    var key: String?
    var nesting = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
        // A UTF-8 byte-order mark is not TOML, but editors write it and the library skips it: so do we.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
    }

    // MARK: Cursor

    func peek(_ offset: Int = 0) -> UInt8? {
        position + offset < bytes.count ? bytes[position + offset] : nil
    }

    func peekIs(_ byte: Character, _ offset: Int = 0) -> Bool {
        peek(offset) == byte.asciiValue
    }

    func starts(with literal: String) -> Bool {
        let pattern = Array(literal.utf8)
        return position + pattern.count <= bytes.count
            && bytes[position..<(position + pattern.count)].elementsEqual(pattern)
    }

    /// At LF or CRLF.
    var atLineBreak: Bool {
        peek() == lineFeed || (peek() == carriageReturn && peek(1) == lineFeed)
    }

    mutating func advance(_ count: Int = 1) {
        position += count
    }

    func fail(_ message: String, at errorPosition: Int? = nil) -> SyntaxError {
        SyntaxError(position: errorPosition ?? position, message: message)
    }

    /// `expected`, then what is at the cursor: "expected '=' after the key, found '@'".
    func unexpected(_ expected: String) -> SyntaxError {
        fail("\(expected), found \(describeCurrent())")
    }

    /// What is at the cursor, for a message: `'@'`, `'é'`, `a line break`, `the end of the file`.
    func describeCurrent() -> String {
        guard let byte = peek() else { return "the end of the file" }
        switch byte {
        case lineFeed: return "a line break"
        case carriageReturn: return "a carriage return"
        case tab: return "a tab"
        case _ where isControl(byte): return "control character \(codePoint(UInt32(byte)))"
        case _ where byte < 0x80: return "'\(Character(Unicode.Scalar(byte)))'"
        default:
            // The whole character this byte starts (the text is valid UTF-8).
            var end = position + 1
            while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
            return "'\(String(decoding: bytes[position..<end], as: UTF8.self))'"
        }
    }

    func lineAndColumn(of errorPosition: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        let start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        for byte in bytes[min(start, errorPosition)..<min(errorPosition, bytes.count)] {
            if byte == lineFeed {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    // MARK: Document, lines, whitespace, comments

    /// toml = expression *( newline expression )
    mutating func document() throws(SyntaxError) {
        while true {
            try expression()
            guard peek() != nil else { return }
            try newline()
        }
    }

    /// expression = ws [ comment ] / ws keyval ws [ comment ] / ws table ws [ comment ]
    mutating func expression() throws(SyntaxError) {
        key = nil
        whitespace()
        switch peek() {
        case nil, lineFeed, carriageReturn:
            break
        case UInt8(ascii: "#"):
            try comment()
        case UInt8(ascii: "["):
            try tableHeader()
            try endOfLine(after: "a table header")
        default:
            key = try keyValue()
            try endOfLine(after: "a value")
        }
    }

    /// ws [ comment ], then a line break or the end of the file: one key/value or header per line.
    mutating func endOfLine(after what: String) throws(SyntaxError) {
        whitespace()
        if peekIs("#") { try comment() }
        guard peek() == nil || peek() == lineFeed || peek() == carriageReturn else {
            throw fail(
                "expected the end of the line after \(what), found \(describeCurrent()) (one key = value or table "
                    + "header per line)")
        }
    }

    /// newline = %x0A / %x0D.0A
    mutating func newline() throws(SyntaxError) {
        if peek() == lineFeed {
            advance()
        } else if peek() == carriageReturn, peek(1) == lineFeed {
            advance(2)
        } else if peek() == carriageReturn {
            throw fail("a carriage return not followed by a line feed (TOML lines end with LF or CRLF)")
        } else {
            throw unexpected("expected a line break")
        }
    }

    /// ws = *( %x20 / %x09 )
    mutating func whitespace() {
        while let byte = peek(), byte == space || byte == tab { advance() }
    }

    /// comment = "#" *non-eol. A CR ends it only as part of a CRLF (checked by `newline`).
    mutating func comment() throws(SyntaxError) {
        advance()
        while let byte = peek(), byte != lineFeed {
            if byte == carriageReturn, peek(1) == lineFeed { return }
            try notControl(byte, in: "a comment")
            advance()
        }
    }

    /// ws-comment-newline = *( wschar / [ comment ] newline ): between the values of an array.
    mutating func whitespaceCommentsAndNewlines() throws(SyntaxError) {
        while let byte = peek() {
            switch byte {
            case space, tab: advance()
            case UInt8(ascii: "#"): try comment()
            case lineFeed, carriageReturn: try newline()
            default: return
            }
        }
    }

    /// TOML allows no control character anywhere but tab and the line breaks (not even in strings or comments).
    func notControl(_ byte: UInt8, in place: String) throws(SyntaxError) {
        guard isControl(byte) else { return }
        if byte == carriageReturn {
            throw fail("a carriage return not followed by a line feed in \(place)")
        }
        throw fail("control character \(codePoint(UInt32(byte))) in \(place) (TOML allows only tab and line breaks)")
    }

    // MARK: Tables and keys

    /// std-table = "[" ws key ws "]";  array-table = "[[" ws key ws "]]"
    mutating func tableHeader() throws(SyntaxError) {
        section = nil  // A problem in a header is in no table yet.
        let isArray = peekIs("[", 1)
        advance(isArray ? 2 : 1)
        whitespace()
        guard let first = peek(), isBareKeyByte(first) || first == UInt8(ascii: "\"") || first == UInt8(ascii: "'")
        else {
            throw unexpected("a table name starts with a letter, a digit, '_', '-' or a quote")
        }
        let name = try dottedKey()
        whitespace()
        guard peekIs("]"), !isArray || peekIs("]", 1) else {
            throw unexpected(
                isArray ? "expected ']]' to close the array-of-tables header" : "expected ']' to close the table header"
            )
        }
        advance(isArray ? 2 : 1)
        section = name
    }

    /// keyval = key keyval-sep val;  keyval-sep = ws "=" ws. Returns the key as written.
    mutating func keyValue() throws(SyntaxError) -> String {
        let name = try dottedKey()
        if key == nil { key = name }
        whitespace()
        guard peekIs("=") else { throw unexpected("expected '=' after the key") }
        advance()
        whitespace()
        try value()
        return name
    }

    /// key = simple-key / dotted-key;  dotted-key = simple-key 1*( ws "." ws simple-key ). Returns it as written,
    /// without the whitespace around the dots.
    mutating func dottedKey() throws(SyntaxError) -> String {
        var parts = [try simpleKey()]
        while true {
            let before = position
            whitespace()
            guard peekIs(".") else {
                position = before
                break
            }
            advance()
            whitespace()
            parts.append(try simpleKey())
        }
        return parts.joined(separator: ".")
    }

    /// simple-key = quoted-key / unquoted-key;  unquoted-key = 1*( ALPHA / DIGIT / "-" / "_" )
    mutating func simpleKey() throws(SyntaxError) -> String {
        let start = position
        switch peek() {
        case UInt8(ascii: "\""): try basicString()
        case UInt8(ascii: "'"): try literalString()
        case let byte? where isBareKeyByte(byte):
            while let byte = peek(), isBareKeyByte(byte) { advance() }
        default:
            throw unexpected("a key starts with a letter, a digit, '_', '-' or a quote")
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    // MARK: Values

    /// val = string / boolean / array / inline-table / date-time / float / integer
    mutating func value() throws(SyntaxError) {
        guard let byte = peek() else { throw unexpected("expected a value") }
        switch byte {
        case UInt8(ascii: "\""):
            if starts(with: "\"\"\"") { try multiLineBasicString() } else { try basicString() }
        case UInt8(ascii: "'"):
            if starts(with: "'''") { try multiLineLiteralString() } else { try literalString() }
        case UInt8(ascii: "T"), UInt8(ascii: "F"), UInt8(ascii: "I"), UInt8(ascii: "N"): try word("lowercase")
        case UInt8(ascii: "t"): try word("true")
        case UInt8(ascii: "f"): try word("false")
        case UInt8(ascii: "i"): try word("inf")
        case UInt8(ascii: "n"): try word("nan")
        case UInt8(ascii: "["): try array()
        case UInt8(ascii: "{"): try inlineTable()
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            advance()
            switch peek() {
            case UInt8(ascii: "i"): try word("inf")
            case UInt8(ascii: "n"): try word("nan")
            case let next? where isDigit(next): try decimalNumber()
            default: throw unexpected("expected a number, 'inf' or 'nan' after the sign")
            }
        case _ where isDigit(byte):
            if (0..<4).allSatisfy({ peek($0).map(isDigit) ?? false }), peekIs("-", 4) {
                try dateOrDateTime()
            } else if (0..<2).allSatisfy({ peek($0).map(isDigit) ?? false }), peekIs(":", 2) {
                try partialTime()
            } else if byte == UInt8(ascii: "0"), let prefix = peek(1), [UInt8(ascii: "x"), 0x6F, 0x62].contains(prefix)
            {
                try prefixedInteger()
            } else {
                try decimalNumber()
            }
        default:
            throw unexpected(
                "expected a value (a string, number, boolean, date-time, array or inline table)")
        }
    }

    /// boolean = true / false;  inf / nan: exactly these lowercase words (`lowercase` matches nothing: a capital).
    mutating func word(_ literal: String) throws(SyntaxError) {
        guard starts(with: literal) else {
            throw unexpected(
                "expected a value (a string, number, boolean, date-time, array or inline table; "
                    + "true, false, inf and nan are lowercase)")
        }
        advance(literal.utf8.count)
    }

    /// array = "[" ws-comment-newline [ array-values ] ws-comment-newline "]", a trailing comma allowed.
    mutating func array() throws(SyntaxError) {
        let start = position
        try enterNesting()
        advance()
        while true {
            try whitespaceCommentsAndNewlines()
            if peekIs("]") { break }
            if peek() == nil { throw fail("an array opened here is not closed with ']'", at: start) }
            try value()
            try whitespaceCommentsAndNewlines()
            if peekIs(",") {
                advance()
                continue
            }
            if peekIs("]") { break }
            if peek() == nil { throw fail("an array opened here is not closed with ']'", at: start) }
            throw unexpected("expected ',' or ']' after an array's value")
        }
        advance()
        nesting -= 1
    }

    /// inline-table = "{" ws [ keyval *( ws "," ws keyval ) ] ws "}": on one line, no trailing comma.
    mutating func inlineTable() throws(SyntaxError) {
        try enterNesting()
        advance()
        whitespace()
        if peekIs("}") {
            advance()
            nesting -= 1
            return
        }
        while true {
            if peek() == lineFeed || peek() == carriageReturn {
                throw fail("an inline table stays on one line: its closing '}' must come before the line break")
            }
            _ = try keyValue()
            whitespace()
            if peekIs(",") {
                advance()
                whitespace()
                if peekIs("}") { throw fail("an inline table has no comma after its last key = value") }
                continue
            }
            if peekIs("}") { break }
            if peek() == lineFeed || peek() == carriageReturn {
                throw fail("an inline table stays on one line: its closing '}' must come before the line break")
            }
            throw unexpected("expected ',' or '}' after an inline table's value")
        }
        advance()
        nesting -= 1
    }

    mutating func enterNesting() throws(SyntaxError) {
        nesting += 1
        guard nesting <= TOMLGuard.maximumNesting else {
            throw fail("arrays and inline tables nest at most \(TOMLGuard.maximumNesting) deep")
        }
    }

    // MARK: Numbers

    /// dec-int = [ "+" / "-" ] unsigned-dec-int;  float = float-int-part ( exp / frac [ exp ] ). The sign, if any,
    /// is consumed by `value`.
    mutating func decimalNumber() throws(SyntaxError) {
        if peekIs("0") {
            advance()
            if let next = peek(), isDigit(next) || next == UInt8(ascii: "_") {
                throw fail(
                    "a decimal number does not start with 0 (only 0 itself, or 0x, 0o, 0b numbers)", at: position - 1)
            }
        } else {
            try digits(isDigit, "a decimal")
        }
        if peekIs(".") {
            advance()
            try digits(isDigit, "a float's fraction (after '.')")
        }
        if peekIs("e") || peekIs("E") {
            advance()
            if peekIs("+") || peekIs("-") { advance() }
            try digits(isDigit, "a float's exponent")
        }
    }

    /// hex-int = "0x" HEXDIG *( HEXDIG / "_" HEXDIG ), and the same for "0o" (0-7) and "0b" (0-1); no sign.
    mutating func prefixedInteger() throws(SyntaxError) {
        advance()
        let prefix = peek()
        advance()
        switch prefix {
        case UInt8(ascii: "x"): try digits(isHexDigit, "a hexadecimal")
        case UInt8(ascii: "o"): try digits({ (0x30...0x37).contains($0) }, "an octal")
        default: try digits({ $0 == 0x30 || $0 == 0x31 }, "a binary")
        }
    }

    /// DIGIT *( DIGIT / "_" DIGIT ): at least one digit, an underscore only between two digits.
    mutating func digits(_ isValid: (UInt8) -> Bool, _ what: String) throws(SyntaxError) {
        guard let first = peek(), isValid(first) else { throw unexpected("expected \(what) digit") }
        advance()
        while let byte = peek() {
            if isValid(byte) {
                advance()
            } else if byte == UInt8(ascii: "_") {
                advance()
                guard let next = peek(), isValid(next) else {
                    throw unexpected("an underscore in a number stands between two digits; expected \(what) digit")
                }
            } else {
                return
            }
        }
    }

    // MARK: Dates and times

    /// local-date / local-date-time / offset-date-time: full-date [ time-delim partial-time [ time-offset ] ].
    /// A space is the delimiter when a digit follows it (else the date ends there).
    mutating func dateOrDateTime() throws(SyntaxError) {
        try digits(count: 4, of: "year")
        try separator("-", in: "a date (YYYY-MM-DD)")
        try twoDigits("month", 1...12)
        try separator("-", in: "a date (YYYY-MM-DD)")
        try twoDigits("day", 1...31)
        if peekIs("T") || peekIs("t") || (peekIs(" ") && (peek(1).map(isDigit) ?? false)) {
            advance()
            try partialTime()
            if peekIs("Z") || peekIs("z") {
                advance()
            } else if peekIs("+") || peekIs("-") {
                advance()
                try twoDigits("offset's hour", 0...23)
                try separator(":", in: "a time offset (+HH:MM)")
                try twoDigits("offset's minute", 0...59)
            }
        }
    }

    /// partial-time = time-hour ":" time-minute ":" time-second [ "." 1*DIGIT ]
    mutating func partialTime() throws(SyntaxError) {
        try twoDigits("hour", 0...23)
        try separator(":", in: "a time (HH:MM:SS)")
        try twoDigits("minute", 0...59)
        try separator(":", in: "a time (HH:MM:SS; TOML 1.0 requires the seconds)")
        // TOML's grammar allows a leap second (60); the TOML library does not (it reports an error), nor does tomllib.
        try twoDigits("second", 0...59)
        if peekIs(".") {
            advance()
            guard let first = peek(), isDigit(first) else {
                throw unexpected("expected a digit of the seconds' fraction after '.'")
            }
            while let byte = peek(), isDigit(byte) { advance() }
        }
    }

    mutating func digits(count: Int, of field: String) throws(SyntaxError) {
        for _ in 0..<count {
            guard let byte = peek(), isDigit(byte) else {
                throw unexpected("a date-time's \(field) has \(count) digits")
            }
            advance()
        }
    }

    mutating func twoDigits(_ field: String, _ range: ClosedRange<Int>) throws(SyntaxError) {
        let start = position
        try digits(count: 2, of: field)
        let number = Int(bytes[start] - 0x30) * 10 + Int(bytes[start + 1] - 0x30)
        guard range.contains(number) else {
            throw fail(
                "a date-time's \(field) is \(String(format2: number)), outside "
                    + "\(String(format2: range.lowerBound))-\(String(format2: range.upperBound))",
                at: start)
        }
    }

    mutating func separator(_ expected: Character, in what: String) throws(SyntaxError) {
        guard peekIs(expected) else { throw unexpected("expected '\(expected)' in \(what)") }
        advance()
    }

    // MARK: Strings

    /// basic-string = '"' *( basic-unescaped / escaped ) '"': on one line.
    mutating func basicString() throws(SyntaxError) {
        let start = position
        advance()
        while true {
            guard let byte = peek(), !atLineBreak else {
                throw fail("a string opened here is not closed with '\"' on its line", at: start)
            }
            switch byte {
            case UInt8(ascii: "\""):
                advance()
                return
            case UInt8(ascii: "\\"):
                try escape(multiLine: false)
            default:
                try notControl(byte, in: "a string")
                advance()
            }
        }
    }

    /// ml-basic-string = '"""' [ newline ] ml-basic-body '"""': one or two quotes may end the content.
    mutating func multiLineBasicString() throws(SyntaxError) {
        let start = position
        advance(3)
        while true {
            guard let byte = peek() else {
                throw fail("a multi-line string opened here is not closed with '\"\"\"'", at: start)
            }
            switch byte {
            case UInt8(ascii: "\""):
                if try closesMultiLine(quote: byte) { return }
            case UInt8(ascii: "\\"):
                try escape(multiLine: true)
            case lineFeed, carriageReturn:
                try newline()
            default:
                try notControl(byte, in: "a string")
                advance()
            }
        }
    }

    /// literal-string = "'" *literal-char "'": on one line, no escapes.
    mutating func literalString() throws(SyntaxError) {
        let start = position
        advance()
        while true {
            guard let byte = peek(), !atLineBreak else {
                throw fail("a literal string opened here is not closed with \"'\" on its line", at: start)
            }
            if byte == UInt8(ascii: "'") {
                advance()
                return
            }
            try notControl(byte, in: "a string")
            advance()
        }
    }

    /// ml-literal-string = "'''" [ newline ] ml-literal-body "'''"
    mutating func multiLineLiteralString() throws(SyntaxError) {
        let start = position
        advance(3)
        while true {
            guard let byte = peek() else {
                throw fail("a multi-line literal string opened here is not closed with \"'''\"", at: start)
            }
            switch byte {
            case UInt8(ascii: "'"):
                if try closesMultiLine(quote: byte) { return }
            case lineFeed, carriageReturn:
                try newline()
            default:
                try notControl(byte, in: "a string")
                advance()
            }
        }
    }

    /// At a quote inside a multi-line string: a run of one or two is content; three to five close it (the first one
    /// or two being content). Six or more leave a quote after the string, which the caller refuses.
    mutating func closesMultiLine(quote: UInt8) throws(SyntaxError) -> Bool {
        var run = 0
        while peek(run) == quote { run += 1 }
        advance(min(run, 5))
        return run >= 3
    }

    /// escaped = "\" ( '"' / "\" / "b" / "f" / "n" / "r" / "t" / "u" 4HEXDIG / "U" 8HEXDIG ); in a multi-line basic
    /// string also a line-ending backslash: "\" ws newline, then any whitespace and line breaks.
    mutating func escape(multiLine: Bool) throws(SyntaxError) {
        let start = position
        advance()
        guard let byte = peek() else { throw unexpected("expected an escape after '\\'") }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "r"), UInt8(ascii: "t"):
            advance()
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = byte == UInt8(ascii: "u") ? 4 : 8
            advance()
            var scalar: UInt32 = 0
            for _ in 0..<count {
                guard let digit = peek(), let value = hexValue(digit) else {
                    throw fail(
                        "'\\\(Character(Unicode.Scalar(byte)))' is followed by \(count) hexadecimal digits", at: start)
                }
                scalar = scalar &* 16 &+ value
                advance()
            }
            guard scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
                throw fail("an escape names \(codePoint(scalar)), which is not a Unicode scalar value", at: start)
            }
        case space, tab, lineFeed, carriageReturn:
            guard multiLine else { throw unknownEscape(at: start) }
            whitespace()
            guard peek() == lineFeed || peek() == carriageReturn else {
                throw fail("a '\\' ending a line of a multi-line string is followed only by spaces", at: start)
            }
            while let next = peek() {
                if next == space || next == tab {
                    advance()
                } else if next == lineFeed || next == carriageReturn {
                    try newline()
                } else {
                    break
                }
            }
        default:
            throw unknownEscape(at: start)
        }
    }

    func unknownEscape(at start: Int) -> SyntaxError {
        fail(
            "unknown escape \(describeCurrent()) after '\\' (TOML 1.0 has \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX "
                + "\\UXXXXXXXX)",
            at: start)
    }
}

// MARK: Character classes

private func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

private func isHexDigit(_ byte: UInt8) -> Bool { hexValue(byte) != nil }

private func hexValue(_ byte: UInt8) -> UInt32? {
    switch byte {
    case 0x30...0x39: UInt32(byte - 0x30)
    case 0x41...0x46: UInt32(byte - 0x41 + 10)
    case 0x61...0x66: UInt32(byte - 0x61 + 10)
    default: nil
    }
}

/// A-Z, a-z, 0-9, '-' and '_': the characters of a bare key.
private func isBareKeyByte(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, UInt8(ascii: "-"), UInt8(ascii: "_"): true
    default: false
    }
}

/// Below U+0020 but tab, or U+007F. Line feed counts: callers that allow one check it first.
private func isControl(_ byte: UInt8) -> Bool {
    (byte < 0x20 && byte != tab) || byte == 0x7F
}

private func codePoint(_ value: UInt32) -> String {
    let hex = String(value, radix: 16, uppercase: true)
    return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}

extension String {
    /// Two digits at least: 5 → "05".
    fileprivate init(format2 number: Int) {
        self = number < 10 ? "0\(number)" : "\(number)"
    }
}
