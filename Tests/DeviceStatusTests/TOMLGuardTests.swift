import Foundation
import TestSupport
import Testing

@testable import DeviceStatus

/// The TOML 1.0.0 syntax check that runs before the TOML library (which aborts the process on some malformed text):
/// every form the grammar allows is accepted; every syntax error is refused with its line, column, table and key.
/// Python's `tomllib` agrees on every case here but the byte-order mark (scripts/toml-differential.py compares the two on
/// thousands of texts).
@Suite struct TOMLGuardTests {
    @Test(arguments: [
        // Comments, blank lines, whitespace, CRLF, no final line break, non-ASCII in comments.
        "",
        "\n\n  \t\n",
        "# only a comment",
        "a = 1 # comment é ✓\r\nb = 2\r\n",
        "\t a\t=\t1\t",
        // Keys: bare, quoted, literal, empty quoted, dotted with spaces, digits only, dashes.
        "bare_key-1 = 1\n\"quoted key é\" = 1\n'literal \"key\"' = 1\n\"\" = 1\n1234 = 1\n-_- = 1\n",
        "a . b. \"c\" .'d' = 1\nsite.\"google.com\" = true\n",
        // Basic strings with every escape; literal strings; empty strings.
        #"s = "tab\tquote\"backslash\\ \b\f\n\r \u00E9 \U0001F600 \uD7FF \uE000 \U0010FFFF""#,
        "s = \"\"\nt = ''\nu = 'C:\\Users\\no escapes \" here'\n",
        // Multi-line basic strings: first line break trimmed, line-ending backslash, quotes inside and at the end.
        "s = \"\"\"\nRoses\nare red\"\"\"\n",
        "s = \"\"\"one \\\n    two \\   \n\n   three\"\"\"\n",
        "s = \"\"\"\"quoted\"\"\"\"\nt = \"\"\"two\"\"\"\"\"\nu = \"\"\"a \"\" b\"\"\"\nv = \"\"\"\"\"\"\n",
        "s = \"\"\"line\r\nwindows \\\r\n  end\"\"\"\r\n",
        // Multi-line literal strings.
        "s = '''\nfirst\n  \\n stays '' two'''\nt = ''''one''''\nu = '''''two'''''\n",
        // Integers.
        "a = 0\nb = +99\nc = -17\nd = 1_000\ne = 5_349_221\nf = -0\ng = +0\n",
        "a = 0xDEADbeef\nb = 0xdead_beef\nc = 0o01234567\nd = 0o755\ne = 0b11010110\nf = 0b1_0\ng = 0x0\n",
        // Floats.
        "a = +1.0\nb = 3.1415\nc = -0.01\nd = 5e+22\ne = 1e06\nf = -2E-2\ng = 6.626e-34\nh = 224_617.445_991\n",
        "a = 0.0\nb = -0.0\nc = 0e0\nd = 1_0.0_1e1_0\ne = inf\nf = +inf\ng = -inf\nh = nan\ni = +nan\nj = -nan\n",
        // Booleans.
        "a = true\nb = false\n",
        // Offset and local date-times, local dates and times, with every delimiter and fraction.
        "a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00-07:00\nc = 1979-05-27T00:32:00.999999+07:00\n",
        "a = 1979-05-27 07:32:00Z\nb = 1979-05-27t07:32:00z\nc = 1979-05-27T07:32:00\nd = 1979-05-27 07:32:00.5\n",
        "a = 1979-05-27\nb = 07:32:00\nc = 00:32:00.999999\nd = 2000-12-31T23:59:59Z\ne = 1979-05-27 # date\n",
        // Arrays: empty, nested, mixed, multi-line with comments and trailing comma.
        "a = []\nb = [ 1, 2, 3 ]\nc = [ [ 1, 2 ], [\"a\", 'b'] ]\nd = [ 0.1, \"s\", 1979-05-27, { x = 1 } ]\n",
        "a = [\n  1, # one\n  # nothing\n  2,\n]\nb = [ # c\n]\nc = [\r\n 1\r\n ,2 ,\r\n]\n",
        // Inline tables: empty, nested, dotted keys, values spanning lines inside arrays.
        "a = {}\nb = { }\nc = { x = 1, y = \"2\", z.w = [1, 2] }\nd = { e = { f = 1 } }\ne = { x = [\n1,\n] }\n",
        // Table headers and arrays of tables, with whitespace, quotes and comments.
        "[table]\n[ a . b . \"c d\" ]\n[ 'e' ] # comment\n[[fruits]]\n[[ fruits ]]\nname = 1\n[[c.\"d\"]]\n",
        // A byte-order mark at the start (editors write one; the TOML library skips it).
        "\u{FEFF}a = 1\n",
    ])
    func acceptsEveryFormTheGrammarAllows(text: String) {
        #expect(TOMLGuard.firstProblem(in: text) == nil, "\(text)")
    }

    @Test(arguments: [
        // Headers.
        ("[@mqtt]\n", 1, 2, "a table name starts with a letter, a digit, '_', '-' or a quote, found '@'"),
        ("[mqtt]\nport = 1\n[é]\n", 3, 2, "found 'é'"),
        ("[[ @]]\n", 1, 4, "found '@'"),
        ("[\n", 1, 2, "found a line break"),
        ("[ #comment\n", 1, 3, "found '#'"),
        ("[]\n", 1, 2, "found ']'"),
        ("[a\n", 1, 3, "expected ']' to close the table header, found a line break"),
        ("[[a]\n", 1, 4, "expected ']]' to close the array-of-tables header"),
        ("[[a] ]\n", 1, 4, "expected ']]'"),
        ("[a]]\n", 1, 4, "expected the end of the line after a table header"),
        ("[a] b = 1\n", 1, 5, "expected the end of the line after a table header"),
        ("[a.]\n", 1, 4, "a key starts with"),
        ("[a b]\n", 1, 4, "expected ']'"),
        // Keys.
        ("= 1\n", 1, 1, "a key starts with a letter, a digit, '_', '-' or a quote, found '='"),
        ("a\n", 1, 2, "expected '=' after the key, found a line break"),
        ("a b = 1\n", 1, 3, "expected '=' after the key, found 'b'"),
        ("a. = 1\n", 1, 4, "a key starts with"),
        ("\"\"\"a\"\"\" = 1\n", 1, 3, "expected '=' after the key"),
        ("é = 1\n", 1, 1, "found 'é'"),
        ("a = 1 b = 2\n", 1, 7, "expected the end of the line after a value"),
        ("a =\n", 1, 4, "expected a value (a string, number, boolean, date-time, array or inline table), found a line"),
        // Control characters and line breaks.
        ("[\u{1}\u{7F}tp]\n", 1, 2, "control character U+0001"),
        ("[mqtt]\nclientid = \"a\u{1B}b\"\n", 2, 14, "control character U+001B in a string"),
        ("# a comment \u{7F}\n", 1, 13, "control character U+007F in a comment"),
        ("a = 1\rb = 2\n", 1, 6, "a carriage return not followed by a line feed"),
        ("a = '''x\ry'''\n", 1, 9, "a carriage return not followed by a line feed"),
        ("a = \"\"\"\u{0}\"\"\"\n", 1, 8, "control character U+0000 in a string"),
        // Strings.
        ("a = \"open\nb = 1\n", 1, 5, "a string opened here is not closed with '\"' on its line"),
        ("a = 'open\n", 1, 5, "a literal string opened here is not closed"),
        ("a = \"\"\"open\n\n", 1, 5, "a multi-line string opened here is not closed"),
        ("a = '''open\n", 1, 5, "a multi-line literal string opened here is not closed"),
        ("a = \"\\e\"\n", 1, 6, "unknown escape 'e' after '\\'"),
        ("a = \"\\x41\"\n", 1, 6, "unknown escape 'x'"),
        ("a = \"a\\ b\"\n", 1, 7, "unknown escape ' '"),
        ("a = \"\\u12\"\n", 1, 6, "'\\u' is followed by 4 hexadecimal digits"),
        ("a = \"\\UFFFFFFFF\"\n", 1, 6, "U+FFFFFFFF, which is not a Unicode scalar value"),
        ("a = \"\\uD800\"\n", 1, 6, "U+D800, which is not a Unicode scalar value"),
        ("a = \"\"\"a \\ b\"\"\"\n", 1, 10, "a '\\' ending a line of a multi-line string is followed only by spaces"),
        ("a = \"\"\"x\"\"\"\"\"\"\n", 1, 14, "expected the end of the line after a value, found '\"'"),
        // Integers.
        ("a = 012\n", 1, 5, "a decimal number does not start with 0"),
        ("a = 0_1\n", 1, 5, "does not start with 0"),
        ("a = 1__2\n", 1, 7, "an underscore in a number stands between two digits"),
        ("a = 1_\n", 1, 7, "an underscore in a number stands between two digits"),
        ("a = _1\n", 1, 5, "expected a value"),
        ("a = 0x\n", 1, 7, "expected a hexadecimal digit"),
        ("a = 0xG\n", 1, 7, "expected a hexadecimal digit, found 'G'"),
        ("a = 0o8\n", 1, 7, "expected an octal digit"),
        ("a = 0b2\n", 1, 7, "expected a binary digit"),
        ("a = 0X1F\n", 1, 6, "expected the end of the line after a value, found 'X'"),
        ("a = +0x1\n", 1, 7, "expected the end of the line after a value, found 'x'"),
        ("a = 1 2\n", 1, 7, "expected the end of the line after a value, found '2'"),
        ("a = +\n", 1, 6, "expected a number, 'inf' or 'nan' after the sign"),
        // Floats.
        ("a = 1.\n", 1, 7, "expected a float's fraction (after '.') digit"),
        ("a = .5\n", 1, 5, "expected a value"),
        ("a = 1.e5\n", 1, 7, "fraction"),
        ("a = 1e\n", 1, 7, "expected a float's exponent digit"),
        ("a = 1e+\n", 1, 8, "exponent"),
        ("a = 1._5\n", 1, 7, "fraction"),
        ("a = 1.5.3\n", 1, 8, "expected the end of the line after a value, found '.'"),
        ("a = 03.14\n", 1, 5, "does not start with 0"),
        ("a = Inf\n", 1, 5, "true, false, inf and nan are lowercase"),
        ("a = infinity\n", 1, 8, "expected the end of the line after a value, found 'i'"),
        ("a = -nAn\n", 1, 6, "lowercase"),
        // Booleans.
        ("a = True\n", 1, 5, "lowercase"),
        ("a = tru\n", 1, 5, "lowercase"),
        ("a = falsey\n", 1, 10, "expected the end of the line after a value, found 'y'"),
        // Dates and times.
        ("[http]\nx = 1979-05-2I 3]\n", 2, 14, "a date-time's day has 2 digits, found 'I'"),
        ("[http]\nx = 1979-05-27T@7:32:00Z\n", 2, 16, "a date-time's hour has 2 digits, found '@'"),
        ("x = 1979-05-27T\n", 1, 16, "a date-time's hour has 2 digits, found a line break"),
        ("x = 1979-5-27\n", 1, 11, "a date-time's month has 2 digits, found '-'"),
        ("x = 1979-13-01\n", 1, 10, "a date-time's month is 13, outside 01-12"),
        ("x = 1979-00-01\n", 1, 10, "month is 00"),
        ("x = 1979-01-32\n", 1, 13, "a date-time's day is 32, outside 01-31"),
        ("x = 1979-01-00\n", 1, 13, "day is 00"),
        ("x = 1979-05-27T24:00:00\n", 1, 16, "a date-time's hour is 24, outside 00-23"),
        ("x = 1979-05-27T07:60:00\n", 1, 19, "minute is 60"),
        ("x = 1979-05-27T07:32:61\n", 1, 22, "second is 61, outside 00-59"),
        ("x = 2000-12-31T23:59:60Z\n", 1, 22, "second is 60, outside 00-59"),
        ("x = 1979-05-27T07:32\n", 1, 21, "TOML 1.0 requires the seconds"),
        ("x = 07:32\n", 1, 10, "requires the seconds"),
        ("x = 1979-05-27T07:32:00.\n", 1, 25, "a digit of the seconds' fraction"),
        ("x = 1979-05-27T07:32:00+7:00\n", 1, 26, "a date-time's offset's hour has 2 digits"),
        ("x = 1979-05-27T07:32:00+07\n", 1, 27, "expected ':' in a time offset"),
        ("x = 1979-05-27T07:32:00+24:00\n", 1, 25, "offset's hour is 24"),
        ("x = 07:32:00Z\n", 1, 13, "expected the end of the line after a value, found 'Z'"),
        ("x = 1979-05-27 07\n", 1, 18, "expected ':' in a time"),
        ("x = 1979-05-27X07:32:00\n", 1, 15, "expected the end of the line after a value, found 'X'"),
        ("x = 1979-05-27T07:32:00 Z\n", 1, 25, "expected the end of the line after a value, found 'Z'"),
        // Arrays.
        (
            "[http]\nx = [1, }\n", 2, 9,
            "expected a value (a string, number, boolean, date-time, array or inline table), "
        ),
        ("[http]\nx = { a = [1, [2, [ }]]] }\n", 2, 21, "found '}'"),
        ("[http]\nx = [ { a = 1 ] ]\n", 2, 15, "expected ',' or '}' after an inline table's value, found ']'"),
        ("x = [1 2]\n", 1, 8, "expected ',' or ']' after an array's value, found '2'"),
        ("x = [,]\n", 1, 6, "expected a value"),
        ("x = [1,,]\n", 1, 8, "expected a value"),
        ("x = [1,\n2\n", 1, 5, "an array opened here is not closed with ']'"),
        ("x = [\n", 1, 5, "an array opened here is not closed"),
        // Inline tables.
        ("x = { a = 1, }\n", 1, 14, "an inline table has no comma after its last key = value"),
        ("x = { a = 1\n}\n", 1, 12, "an inline table stays on one line"),
        ("x = {\na = 1 }\n", 1, 6, "an inline table stays on one line"),
        ("x = { a = 1 b = 2 }\n", 1, 13, "expected ',' or '}' after an inline table's value, found 'b'"),
        ("x = { a }\n", 1, 9, "expected '=' after the key"),
        ("x = { , }\n", 1, 7, "a key starts with"),
        ("x = { a = 1 # no\n}\n", 1, 13, "expected ',' or '}' after an inline table's value, found '#'"),
        ("x = {\n", 1, 6, "an inline table stays on one line"),
    ])
    func refusesEverySyntaxErrorWithItsLineAndColumn(text: String, line: Int, column: Int, message: String) throws {
        let problem = try #require(TOMLGuard.firstProblem(in: text), "accepted: \(text)")
        #expect(problem.line == line && problem.column == column, "\(text): \(problem)")
        #expect(problem.message.contains(message), "\(text): \(problem.message)")
    }

    @Test func namesTheTableAndTheKeyOfTheLine() throws {
        let text = "top = 1\n[mqtt]\nport = 1\n[ device.\"esp 04\" ]\nwatchTopics = [\"a\",\n  \"b\" \"c\"]\n"
        let problem = try #require(TOMLGuard.firstProblem(in: text))
        #expect(problem.line == 6 && problem.column == 7)
        #expect(problem.section == "device.\"esp 04\"" && problem.key == "watchTopics")
        let inline = try #require(TOMLGuard.firstProblem(in: "[http]\nx = { a = 1, b.c = 0x }\n"))
        #expect(inline.section == "http" && inline.key == "x")
        let beforeAnyTable = try #require(TOMLGuard.firstProblem(in: "a.b = 1_\n"))
        #expect(beforeAnyTable.section == nil && beforeAnyTable.key == "a.b")
        let header = try #require(TOMLGuard.firstProblem(in: "[mqtt]\n[http\n"))
        #expect(header.section == nil && header.key == nil && header.line == 2)
    }

    @Test func nestingDeeperThanTheLimitIsRefusedNotOverflowed() throws {
        let depth = TOMLGuard.maximumNesting
        #expect(
            TOMLGuard.firstProblem(
                in: "a = " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth)) == nil)
        let deep = "a = " + String(repeating: "[{b=", count: 100_000)
        let problem = try #require(TOMLGuard.firstProblem(in: deep))
        #expect(problem.message.contains("nest at most \(depth) deep"), "\(problem.message)")
    }

    /// The inputs on which the TOML library aborted the process (Fuzz/seeds/ConfigFuzz/abort-*.toml, found by
    /// ConfigFuzz), refused by the loader with a line inside the text.
    @Test func everyInputThatAbortedTheLibraryIsASyntaxErrorWithALine() throws {
        let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/seeds/ConfigFuzz")
        let names = try FileManager.default.contentsOfDirectory(atPath: seeds.path).filter { $0.hasPrefix("abort-") }
        #expect(names.count >= 3)
        for name in names.sorted() {
            let text = try String(contentsOf: seeds.appendingPathComponent(name), encoding: .utf8)
            guard case .failure(let errors) = ConfigLoader.parse(text: text, fileName: name) else {
                Issue.record("\(name) accepted")
                continue
            }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            #expect(errors.errors.count == 1, "\(errors)")
            #expect(errors.errors.first.flatMap(\.line).map { (1...lines).contains($0) } == true, "\(errors)")
            #expect(errors.description.contains("TOML syntax error"), "\(errors)")
        }
    }

    @Test func theLoaderNamesLineColumnTableAndKey() throws {
        /// The loader's errors for `text`, which must be refused.
        func refusal(_ text: String) throws -> ConfigErrors {
            guard case .failure(let errors) = ConfigLoader.parse(text: text, fileName: "c.toml") else {
                throw TestSupportError("accepted: \(text)")
            }
            return errors
        }
        #expect(
            try refusal("[mqtt]\nport = 1\n[@mqtt]\n").description
                == "c.toml:3:2: TOML syntax error: a table name starts with a letter, a digit, '_', '-' or a quote, "
                + "found '@'")
        let keyErrors = try refusal("[http]\nx = 1979-05-2I 3]\n")
        #expect(
            keyErrors.description
                == "c.toml:2:14: [http] x: TOML syntax error: a date-time's day has 2 digits, found 'I'")
        #expect(keyErrors.errors.first?.key == "http.x")
    }
}
