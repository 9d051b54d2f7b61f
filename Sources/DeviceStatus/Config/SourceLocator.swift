/// Finds the line of a section or key in TOML source text, because TOMLKit's values carry no
/// source positions. It understands what can hide a `key =` look-alike: comments, basic and
/// literal strings (single- and multi-line), and arrays or inline tables spanning lines. Quoted
/// and dotted keys are unquoted and joined with `.`.
struct SourceLocator {
    /// Full dotted path (`mqtt`, `mqtt.keepAlive`) → the first line where it, or a key under it, appears.
    private var lines: [String: Int] = [:]

    init(_ text: String) {
        var scanner = Scanner(bytes: Array(text.utf8))
        scanner.run { path, line in
            for count in 1...path.count {
                let key = path[0..<count].joined(separator: ".")
                if lines[key] == nil { lines[key] = line }
            }
        }
    }

    /// The line of `section` (its header, or its first key when it has no header).
    func line(section: String) -> Int? { lines[section] }

    /// The line of `key` in `section`, else the section's line.
    func line(section: String, key: String) -> Int? { lines[section + "." + key] ?? lines[section] }

    /// The line of a key outside any section.
    func line(topLevelKey key: String) -> Int? { lines[key] }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }
        var current: UInt8 { bytes[index] }

        func peek(_ offset: Int) -> UInt8? {
            index + offset < bytes.count ? bytes[index + offset] : nil
        }

        mutating func run(_ record: ([String], Int) -> Void) {
            var table: [String] = []
            // `[[name]]` blocks: the n-th (from 1) is recorded as `name#n`, its keys under it.
            var arrayCounts: [String: Int] = [:]
            while !atEnd {
                skipBlanks()
                if atEnd { break }
                switch current {
                case ascii("\n"):
                    line += 1
                    index += 1
                case ascii("#"):
                    skipToEndOfLine()
                case ascii("["):
                    let headerLine = line
                    let isArray = peek(1) == ascii("[")
                    index += isArray ? 2 : 1
                    var path = keyPath()
                    if !path.isEmpty {
                        if isArray {
                            record(path, headerLine)
                            let joined = path.joined(separator: ".")
                            arrayCounts[joined, default: 0] += 1
                            path[path.count - 1] += "#\(arrayCounts[joined]!)"
                        }
                        table = path
                        record(path, headerLine)
                    }
                    skipToEndOfLine()
                default:
                    let keyLine = line
                    let path = keyPath()
                    if !path.isEmpty { record(table + path, keyLine) }
                    skipBlanks()
                    if !atEnd && current == ascii("=") {
                        index += 1
                        skipValue()
                    } else {
                        skipToEndOfLine()
                    }
                }
            }
        }

        mutating func skipBlanks() {
            while !atEnd && (current == ascii(" ") || current == ascii("\t") || current == ascii("\r")) { index += 1 }
        }

        /// Moves to the next newline without consuming it.
        mutating func skipToEndOfLine() {
            while !atEnd && current != ascii("\n") { index += 1 }
        }

        /// A dotted key of bare and quoted parts; stops before `=`, `]` or a newline.
        mutating func keyPath() -> [String] {
            var parts: [String] = []
            while true {
                skipBlanks()
                guard !atEnd else { break }
                let start = index
                switch current {
                case ascii("\""):
                    index += 1
                    var part: [UInt8] = []
                    while !atEnd && current != ascii("\"") && current != ascii("\n") {
                        if current == ascii("\\"), let next = peek(1) {
                            part.append(next)
                            index += 2
                        } else {
                            part.append(current)
                            index += 1
                        }
                    }
                    if !atEnd && current == ascii("\"") { index += 1 }
                    parts.append(String(decoding: part, as: UTF8.self))
                case ascii("'"):
                    index += 1
                    let partStart = index
                    while !atEnd && current != ascii("'") && current != ascii("\n") { index += 1 }
                    parts.append(String(decoding: bytes[partStart..<index], as: UTF8.self))
                    if !atEnd && current == ascii("'") { index += 1 }
                default:
                    while !atEnd && isBareKeyByte(current) { index += 1 }
                    if index > start { parts.append(String(decoding: bytes[start..<index], as: UTF8.self)) }
                }
                if index == start { break }
                skipBlanks()
                if !atEnd && current == ascii(".") {
                    index += 1
                } else {
                    break
                }
            }
            return parts
        }

        /// Skips a value up to the newline that ends it (not consumed), counting the lines inside.
        mutating func skipValue() {
            var depth = 0
            while !atEnd {
                switch current {
                case ascii("\""), ascii("'"):
                    skipString()
                    continue
                case ascii("["), ascii("{"):
                    depth += 1
                case ascii("]"), ascii("}"):
                    depth = max(0, depth - 1)
                case ascii("#"):
                    skipToEndOfLine()
                    continue
                case ascii("\n"):
                    if depth == 0 { return }
                    line += 1
                default:
                    break
                }
                index += 1
            }
        }

        /// Skips a basic or literal string, single- or multi-line, starting at its opening quote.
        mutating func skipString() {
            let quote = current
            let escapes = quote == ascii("\"")
            if peek(1) == quote && peek(2) == quote {
                index += 3
                while !atEnd {
                    if escapes && current == ascii("\\") {
                        if peek(1) == ascii("\n") { line += 1 }
                        index += 2
                        continue
                    }
                    if current == ascii("\n") { line += 1 }
                    if current == quote && peek(1) == quote && peek(2) == quote {
                        index += 3
                        // Up to two more quotes may belong to the content ("""a"""" ends with a quote).
                        var extra = 0
                        while extra < 2 && !atEnd && current == quote {
                            index += 1
                            extra += 1
                        }
                        return
                    }
                    index += 1
                }
                return
            }
            index += 1
            while !atEnd && current != quote && current != ascii("\n") {
                index += escapes && current == ascii("\\") ? 2 : 1
            }
            if !atEnd && current == quote { index += 1 }
        }

        func isBareKeyByte(_ byte: UInt8) -> Bool {
            switch byte {
            case ascii("A")...ascii("Z"), ascii("a")...ascii("z"), ascii("0")...ascii("9"), ascii("_"), ascii("-"): true
            default: false
            }
        }
    }
}

@inline(__always)
private func ascii(_ scalar: Unicode.Scalar) -> UInt8 { UInt8(ascii: scalar) }
