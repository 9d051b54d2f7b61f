import Testing

@testable import DeviceStatus

/// Inputs on which the TOML library aborts the process (a failed assertion in toml++'s key parser, found by the
/// config fuzzer) are reported as syntax errors with line and column; valid TOML that merely looks alike is not.
@Suite struct TOMLGuardTests {
    @Test(arguments: [
        ("[@mqtt]\n", 1, 2, "found '@'"),
        ("[mqtt]\nport = 1\n[é]\n", 3, 2, "found 'é'"),
        ("[[ @]]\n", 1, 4, "found '@'"),
        ("[\n", 1, 2, "found a line break"),
        ("[ #comment\n", 1, 3, "found '#'"),
        ("[mqtt] # [\n[@]\n", 2, 2, "found '@'"),
        ("[\u{1}\u{7F}tp]\n", 1, 2, "control character U+0001"),
        ("[mqtt]\nclientid = \"a\u{1B}b\"\n", 2, 14, "control character U+001B"),
        ("# a comment \u{7F}\n", 1, 13, "control character U+007F"),
        ("[http]\nx = 1979-05-27T@7:32:00Z\n", 2, 16, "time's digits after 'T'"),
        ("[http]\nx = [1, 1979-05-27t:]\n", 2, 20, "time's digits after 'T'"),
        ("[http]\nx = { a = 2, b = 1979-05-27T-1:00 }\n", 2, 29, "time's digits after 'T'"),
        ("[http]\nx = [1, }\n", 2, 9, "'}' closes an array"),
        ("[http]\nx = { a = [1, [2, [ }]]] }\n", 2, 21, "'}' closes an array"),
        ("[http]\nx = [ { a = 1 ] ]\n", 2, 15, "']' closes an inline table"),
    ])
    func reportsWhatTheParserWouldAbortOn(text: String, line: Int, column: Int, message: String) throws {
        let problem = try #require(TOMLGuard.firstProblem(in: text))
        #expect(problem.line == line && problem.column == column, "\(problem)")
        #expect(problem.message.contains(message), "\(problem.message)")
    }

    @Test(arguments: [
        "[mqtt]\nserverAddress = \"tcp://localhost\"\n",
        "[[presence]]\npreset = \"tasmota\"\n",
        "[ \"quoted name\" ]\n[ 'literal' ]\n[a.b]\n[_x]\n[-y]\n[9]\n",
        // Lines that start with a bracket inside a value, a multi-line string or after a comment are no headers.
        "[status]\ntopics = [\n  [ ],\n  [\"a\"],\n  [ @ ],\n]\n",
        "[agent_x]\nexec = \"\"\"\n[@]\n\"\"\"\nname = '''\n[é]\n'''\n",
        "[mqtt]\nclientid = \"a \\\" [ b\" # ] [\n[http]\n",
        "[mqtt]\nclientid = \"tab\tis fine\"\r\n[http]\r\n",
        // A bare key may look like a date; a date-time's T followed by its digits, or by the end of the value.
        "[http]\n1979-05-27Tx = 1\nx = { 1979-05-27Tb = 1 }\ny = 1979-05-27T07:32:00Z\nz = [1979-05-27T]\n",
        "",
    ])
    func leavesEverythingElseToTheParser(text: String) {
        #expect(TOMLGuard.firstProblem(in: text) == nil)
    }

    @Test func theLoaderNamesLineAndColumnInsteadOfAborting() {
        guard case .failure(let errors) = ConfigLoader.parse(text: "[mqtt]\nport = 1\n[@mqtt]\n", fileName: "c.toml")
        else {
            Issue.record("accepted")
            return
        }
        #expect(
            errors.description
                == "c.toml:3:2: TOML syntax error: a table name starts with a letter, a digit, '_', '-' or a quote; "
                + "found '@'")
    }
}
