import Testing

@testable import DeviceStatus

@Suite struct MonPayloadTests {
    @Test func readsTheFieldsOfEverySample() throws {
        let samples = try Fixtures.monSamples()
        #expect(samples.count >= 4)
        for sample in samples {
            let payload = try MonPayload(parsing: sample.payload)
            #expect(payload.clientID.hasPrefix("d:7gnple:"))
        }
        let first = try MonPayload(parsing: samples[0].payload)
        #expect(first.action == .connect)
        #expect(first.time == RFC3339.parse("2018-01-02T16:51:10.558Z"))
        #expect(first.closeCode == nil)
        let reused = try MonPayload(parsing: samples[3].payload)
        #expect(reused.action == .disconnect)
        #expect(reused.closeCode == 288)
    }

    @Test(arguments: [
        ("", "empty"), ("{", "unterminated"), ("{\"Action\":\"Connect\",}", "trailing comma"),
        ("{\"Action\":\"Connect\"} x", "trailing data"), ("[1,2]", "array"), ("nul", "bad literal"),
        ("{\"Action\":'Connect'}", "single quotes"), ("{\"a\":01}", "leading zero"),
        ("{\"a\":\"\u{01}\"}", "control character"), ("{\"a\":\"\\x\"}", "bad escape"),
        ("{\"a\":1.}", "bad fraction"),
    ])
    func rejectsInvalidJSON(text: String, why: String) {
        #expect(throws: MalformedPayload.self, "\(why)") { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func rejectsMissingAction() {
        let text = #"{"ClientID":"d:o:t:i","Time":"2018-01-02T16:51:10.558Z"}"#
        #expect(throws: MalformedPayload.missingField("Action")) { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func rejectsMissingClientIDAndTime() {
        #expect(throws: MalformedPayload.missingField("ClientID")) {
            try MonPayload(parsing: Array(#"{"Action":"Connect","Time":"2018-01-02T16:51:10.558Z"}"#.utf8))
        }
        #expect(throws: MalformedPayload.missingField("Time")) {
            try MonPayload(parsing: Array(#"{"Action":"Connect","ClientID":"d:o:t:i"}"#.utf8))
        }
    }

    @Test func rejectsUnknownActionAndBadTimestamp() {
        #expect(throws: MalformedPayload.self) {
            try MonPayload(parsing: Fixtures.mon("Reconnect", time: "2018-01-02T16:51:10.558Z"))
        }
        #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Fixtures.mon("Connect", time: "yesterday")) }
        #expect(throws: MalformedPayload.self) {
            try MonPayload(parsing: Fixtures.mon("Connect", time: "2018-02-30T16:51:10Z"))
        }
    }

    @Test func rejectsNonIntegerCloseCode() {
        let text = #"{"Action":"Disconnect","ClientID":"d:o:t:i","Time":"2018-01-02T16:51:10Z","CloseCode":"288"}"#
        #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func rejectsPayloadsOver64KiB() {
        var text = #"{"Action":"Connect","ClientID":"d:o:t:i","Time":"2018-01-02T16:51:10Z","pad":""#
        text += String(repeating: "x", count: 64 * 1024) + "\"}"
        #expect(throws: MalformedPayload.tooLarge(text.utf8.count)) { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func rejectsDeepNestingWithoutCrashing() {
        let text = "{\"a\":" + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
        #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func decodesEscapedStrings() throws {
        let text =
            #"{"Action":"Connect","ClientID":"d:o\u0072g:t\/x:i","Time":"2018-01-02T16:51:10Z","n":[{"x":null}]}"#
        let payload = try MonPayload(parsing: Array(text.utf8))
        #expect(payload.clientID == "d:org:t/x:i")
    }

    @Test func readsEscapedMemberNamesLikePlainOnes() throws {
        let text = #"{"\u0041ction":"Disconnect","ClientID":"d:o:t:i","Ti\u006de":"2018-01-02T16:51:10Z"}"#
        let payload = try MonPayload(parsing: Array(text.utf8))
        #expect(payload.action == .disconnect && payload.time == RFC3339.parse("2018-01-02T16:51:10Z"))
    }

    /// The word-at-a-time string scan agrees with a byte-by-byte look at every position of the word, for every byte.
    @Test func flagsEveryByteThatNeedsALookWhereverItIsInTheWord() {
        let plain = Array(repeating: UInt8(ascii: "a"), count: 8)
        for position in 0..<8 {
            for byte in UInt8.min...UInt8.max {
                var bytes = plain
                bytes[position] = byte
                let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let expected = byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80
                #expect(StrictJSON.Reader.needsALook(word) == expected, "byte \(byte) at \(position)")
            }
        }
    }

    /// Strings longer than a word, with what ends or interrupts them at every offset, read as byte by byte.
    @Test func readsStringsAcrossWordBoundaries() throws {
        for length in 0..<20 {
            let body = String((0..<length).map { Character(UnicodeScalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
            for (inserted, expected) in [("", body), (#"\n"#, body + "\n"), ("é", body + "é")] {
                let text =
                    #"{"Action":"Connect","ClientID":"d:o:t:"# + body + inserted + #"","Time":"2018-01-02T16:51:10Z"}"#
                let payload = try MonPayload(parsing: Array(text.utf8))
                #expect(payload.clientID == "d:o:t:" + expected)
            }
            let control =
                #"{"Action":"Connect","ClientID":"d:o:t:"# + body + "\u{01}\",\"Time\":\"2018-01-02T16:51:10Z\"}"
            #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Array(control.utf8)) }
        }
    }

    /// One reader for every JSON from outside: a document a status topic refuses, an operation request refuses too.
    @Test(arguments: [
        #""x":"\ud800""#, #""x":"\q""#, "\"x\":\"a\u{01}\"", #""x":[1,]"#, #""x":01"#, #""x":tru"#,
        #""x":"\u12""#, #""x":{"y":1,}"#,
    ])
    func refusesMalformedMembersAsOperationRequestsDo(member: String) {
        let text = #"{"Action":"Connect","ClientID":"d:o:t:i","Time":"2018-01-02T16:51:10Z","# + member + "}"
        #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Array(text.utf8)) }
        #expect(throws: StrictJSON.SyntaxError.self) { try StrictJSON.members(of: Array(text.utf8)) }
    }
}

@Suite struct RFC3339Tests {
    @Test func parsesIBMTimestampsToNanoseconds() {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.parse("2018-01-02T16:51:10.558Z") == 1_514_911_870_558_000_000)
        #expect(RFC3339.parse("2018-01-02T17:51:10.558+01:00") == 1_514_911_870_558_000_000)
        #expect(RFC3339.parse("2018-01-02T16:51:10.558123456Z") == 1_514_911_870_558_123_456)
        #expect(RFC3339.parse("2016-02-29T00:00:00Z") != nil)
    }

    @Test func rejectsMalformedTimestamps() {
        for text in [
            "", "2018-01-02", "2018-01-02T16:51:10", "2018-13-02T16:51:10Z", "2017-02-29T00:00:00Z",
            "2018-01-02T16:51:10.Z", "2018-01-02T16:51:10Zjunk", "2018-1-02T16:51:10Z",
        ] {
            #expect(RFC3339.parse(text) == nil, "\(text)")
        }
    }

    @Test func formatsWithMilliseconds() {
        #expect(RFC3339.format(nanoseconds: 1_514_911_870_558_000_000) == "2018-01-02T16:51:10.558Z")
        #expect(RFC3339.format(nanoseconds: 0) == "1970-01-01T00:00:00.000Z")
    }
}
