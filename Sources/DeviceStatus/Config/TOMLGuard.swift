/// Mistakes that the TOML library's parser (toml++ 3, inside TOMLKit) answers by aborting the process (a failed
/// `assert`) instead of with an error, found before it reads the text so that they are reported like any other
/// syntax error, with line and column. Found by fuzzing the configuration loader:
/// - a table header whose first key starts with neither a bare-key character nor a quote (`[@mqtt]`, `[é]`, `[`
///   followed by a line break or a comment);
/// - a control character (anything below U+0020 but tab, line feed and carriage return, or U+007F): TOML allows none,
///   not even in strings or comments, and some of them, in a table header, reach the same assertion;
/// - a date-time value whose `T` is followed by something other than the time's digits (`1979-05-27T@7:32:00Z`);
/// - a `}` closing an array or a `]` closing an inline table (`x = [1, }`).
///
/// Pure: a scan of the text that follows strings, comments, keys and the brackets of values just enough to know
/// where a table header can start (the first thing on a line, outside any string or value) and where a value is.
enum TOMLGuard {
    struct Problem: Equatable, Sendable {
        var line: Int
        var column: Int
        var message: String
    }

    static func firstProblem(in text: String) -> Problem? {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        var line = 1
        var lineStart = 0
        /// Only spaces and tabs so far on this line.
        var atLineStart = true
        /// Inside a table header: its brackets are not a value's.
        var inHeader = false
        /// Open brackets and braces of values, innermost last.
        var open: [Unicode.Scalar] = []
        var depth: Int { open.count }
        /// A key comes next (a line's start, after `{` or `,` in an inline table), not a value.
        var expectKey = true

        func problem(at position: Int, _ message: String) -> Problem {
            Problem(line: line, column: position - lineStart + 1, message: message)
        }
        func controlProblem(_ position: Int) -> Problem? {
            let value = scalars[position].value
            guard (value < 0x20 && value != 0x09 && value != 0x0A && value != 0x0D) || value == 0x7F else { return nil }
            let hex = String(value, radix: 16, uppercase: true)
            return problem(
                at: position,
                "control character U+\(String(repeating: "0", count: 4 - hex.count) + hex) (TOML allows only tab and "
                    + "line breaks)")
        }
        func starts(with text: String, at position: Int) -> Bool {
            let pattern = Array(text.unicodeScalars)
            return position + pattern.count <= scalars.count
                && scalars[position..<(position + pattern.count)].elementsEqual(pattern)
        }
        func newLine(after position: Int) {
            line += 1
            lineStart = position + 1
            atLineStart = true
            inHeader = false
            if open.isEmpty { expectKey = true }
        }
        /// `YYYY-MM-DD` then `T` or `t` at `position`, and what follows the `T`.
        func dateAndT(at position: Int) -> Int? {
            let shape = "dddd-dd-ddT".unicodeScalars
            guard position + shape.count <= scalars.count else { return nil }
            for (offset, expected) in shape.enumerated() {
                let actual = scalars[position + offset]
                switch expected {
                case "d": guard ("0"..."9").contains(actual) else { return nil }
                case "T": guard actual == "T" || actual == "t" else { return nil }
                default: guard actual == expected else { return nil }
                }
            }
            return position + shape.count
        }

        while index < scalars.count {
            if let found = controlProblem(index) { return found }
            let scalar = scalars[index]
            switch scalar {
            case "\n":
                newLine(after: index)
                index += 1
                continue
            case " ", "\t", "\r":
                index += 1
                continue
            case "#":
                // A comment: to the end of the line.
                index += 1
                while index < scalars.count, scalars[index] != "\n" {
                    if let found = controlProblem(index) { return found }
                    index += 1
                }
                continue
            case "\"", "'":
                // A string: skipped whole (a multi-line one across lines), escapes of basic strings included.
                let quote = String(scalar)
                let triple = starts(with: quote + quote + quote, at: index)
                index += triple ? 3 : 1
                while index < scalars.count {
                    if let found = controlProblem(index) { return found }
                    let current = scalars[index]
                    if triple, starts(with: quote + quote + quote, at: index) {
                        index += 3
                        break
                    }
                    if !triple, current == scalar || current == "\n" {
                        // An unterminated one-line string ends at the line break: the parser reports it.
                        if current == scalar { index += 1 }
                        break
                    }
                    if current == "\\", quote == "\"", index + 1 < scalars.count, scalars[index + 1] != "\n" {
                        index += 2
                        continue
                    }
                    if current == "\n" { newLine(after: index) }
                    index += 1
                }
                atLineStart = false
                continue
            case "[" where atLineStart && depth == 0:
                // A table header (or an array of tables): its first key must start like a key.
                inHeader = true
                atLineStart = false
                var next = index + (starts(with: "[[", at: index) ? 2 : 1)
                while next < scalars.count, scalars[next] == " " || scalars[next] == "\t" { next += 1 }
                guard next < scalars.count else { return nil }
                let first = scalars[next]
                if let found = controlProblem(next) { return found }
                guard isBareKeyCharacter(first) || first == "\"" || first == "'" || first == "]" else {
                    let shown = first == "\n" ? "a line break" : first == "\r" ? "a carriage return" : "'\(first)'"
                    return problem(
                        at: next,
                        "a table name starts with a letter, a digit, '_', '-' or a quote; found \(shown)")
                }
                index = next
                continue
            case "[", "{":
                if !inHeader {
                    open.append(scalar)
                    expectKey = scalar == "{"
                }
            case "]", "}":
                if !inHeader, let opener = open.last {
                    guard (opener == "[") == (scalar == "]") else {
                        return problem(
                            at: index, "'\(scalar)' closes \(opener == "[" ? "an array" : "an inline table")")
                    }
                    open.removeLast()
                    expectKey = false
                }
            case "=":
                expectKey = false
            case ",":
                if open.last == "{" { expectKey = true }
            case "0"..."9" where !expectKey && !inHeader:
                // A value's token starting here: a date-time must have the time's digits after its `T`.
                let previous = index > 0 ? scalars[index - 1] : " "
                if !isBareKeyCharacter(previous), previous != ".", previous != "+", previous != ":",
                    let next = dateAndT(at: index), next < scalars.count
                {
                    let after = scalars[next]
                    let ends: Set<Unicode.Scalar> = [" ", "\t", "\n", "\r", ",", "]", "}", "#"]
                    if !("0"..."9").contains(after), !ends.contains(after) {
                        return problem(at: next, "a date-time has the time's digits after 'T'")
                    }
                }
            default:
                break
            }
            atLineStart = false
            index += 1
        }
        return nil
    }

    private static func isBareKeyCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "A"..."Z", "a"..."z", "0"..."9", "_", "-": true
        default: false
        }
    }
}
