import HTTP1
import Testing

@testable import DeviceStatus

/// Strict parsing of `POST /devices/<type>/<id>/operations` bodies, and write access (docs/behaviour.md §4.3, §4.4).
@Suite struct OperationRequestTests {
    let device = DeviceKey(type: "type1", id: "ps1")

    func parse(_ text: String) throws(OperationRequest.Refusal) -> OperationDraft {
        try OperationRequest.parse(Array(text.utf8), for: device)
    }

    func refusal(_ text: String) -> OperationRequest.Refusal? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func appliesTheDefaultsAndBuildsTheCommandTopic() throws {
        let draft = try parse(#"{"command":"reboot","payload":{"delay":5}}"#)
        #expect(draft.topic == "iot-2/type/type1/id/ps1/cmd/reboot/fmt/json")
        #expect(draft.qos == 1)
        #expect(draft.retain == false)
        #expect(draft.ackTopic == nil)
        #expect(draft.ackTimeoutSeconds == 30)
        #expect(draft.ttlSeconds == nil)
    }

    @Test func keepsAJSONPayloadByteForByteAndAStringAsIs() throws {
        let raw = #"{ "b" : [1, 2.50, {"x":null}] ,"a":"é\u00e9"}"#
        let json = try parse(#"{"topic":"t/1","payload":"# + raw + "}")
        #expect(json.payload == .json(Array(raw.utf8)))
        let text = try parse(#"{"topic":"t/1","payload":"line\n\"quoted\" \u00e9"}"#)
        #expect(text.payload == .text("line\n\"quoted\" é"))
        #expect(text.payload.bytes == Array("line\n\"quoted\" é".utf8))
        #expect(try parse(#"{"topic":"t","payload":42}"#).payload == .json(Array("42".utf8)))
    }

    @Test func readsEveryMember() throws {
        let draft = try parse(
            #"{"topic":"a/b","payload":"x","qos":2,"retain":true,"ackTopic":"a/ack","ackTimeoutSeconds":5,"ttlSeconds":600}"#
        )
        #expect(
            draft
                == OperationDraft(
                    topic: "a/b", payload: .text("x"), qos: 2, retain: true, ackTopic: "a/ack", ackTimeoutSeconds: 5,
                    ttlSeconds: 600))
        // null means "not given" for optional members.
        #expect(try parse(#"{"topic":"a","payload":"x","ackTopic":null,"ttlSeconds":null}"#).ackTopic == nil)
    }

    @Test func namesTheUnknownField() {
        let refused = refusal(#"{"topic":"a","payload":"x","qoss":1}"#)
        #expect(refused?.field == "qoss")
        #expect(refused?.message.hasPrefix(#"unknown field "qoss""#) == true)
    }

    @Test(arguments: [
        (#"{"topic":"a","payload":"x","qos":"1"}"#, "qos"),
        (#"{"topic":"a","payload":"x","qos":1.5}"#, "qos"),
        (#"{"topic":"a","payload":"x","qos":3}"#, "qos"),
        (#"{"topic":"a","payload":"x","retain":1}"#, "retain"),
        (#"{"topic":"a","payload":"x","ackTopic":5}"#, "ackTopic"),
        (#"{"topic":"a","payload":"x","ackTopic":"a/#"}"#, "ackTopic"),
        (#"{"topic":"a","payload":"x","ackTimeoutSeconds":0}"#, "ackTimeoutSeconds"),
        (#"{"topic":"a","payload":"x","ttlSeconds":-1}"#, "ttlSeconds"),
        (#"{"topic":"a","payload":"x","ttlSeconds":1e-3}"#, "ttlSeconds"),
        (#"{"topic":["a"],"payload":"x"}"#, "topic"),
        (#"{"topic":"a/+/b","payload":"x"}"#, "topic"),
        (#"{"topic":"","payload":"x"}"#, "topic"),
        (#"{"command":"a/b","payload":"x"}"#, "command"),
        (#"{"topic":"a","command":"b","payload":"x"}"#, "command"),
        (#"{"payload":"x"}"#, "topic"),
        (#"{"topic":"a"}"#, "payload"),
    ])
    func refusesAWrongMemberNamingIt(body: String, field: String) {
        #expect(refusal(body)?.field == field)
    }

    @Test(arguments: [
        "", "null", "[1]", #""text""#, "{", #"{"topic":"a","payload":"x"} trailing"#, #"{"topic":"a","payload":tru}"#,
        #"{"topic":"a","payload":"x",}"#, #"{"topic":"a","topic":"b","payload":"x"}"#,
        "{\"topic\":\"a\u{01}\",\"payload\":1}",
        #"{"topic":"a","payload":"\ud800"}"#, #"{"topic":"a","payload":01}"#,
        "{\"topic\":\"a\",\"payload\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
    ])
    func refusesWhatIsNotOneStrictJSONObject(body: String) {
        let refused = refusal(body)
        #expect(refused != nil)
        #expect(refused?.message.hasPrefix("body is not a JSON object") == true)
    }

    @Test func takesIntegersWrittenAsJSONSchemaCountsThem() throws {
        let draft = try parse(#"{"topic":"t","payload":1,"qos":2.0,"ackTimeoutSeconds":86399.0,"ttlSeconds":3e1}"#)
        #expect(draft.qos == 2)
        #expect(draft.ackTimeoutSeconds == 86_399)
        #expect(draft.ttlSeconds == 30)
        #expect(try parse(#"{"topic":"t","payload":1,"ttlSeconds":1.50E+1}"#).ttlSeconds == 15)
        #expect(refusal(#"{"topic":"t","payload":1,"ttlSeconds":1.5}"#)?.message == "ttlSeconds must be an integer")
        #expect(refusal(#"{"topic":"t","payload":1,"ttlSeconds":1e-1}"#)?.message == "ttlSeconds must be an integer")
        #expect(refusal(#"{"topic":"t","payload":1,"ttlSeconds":1e40}"#)?.field == "ttlSeconds")
        #expect(refusal(#"{"topic":"t","payload":1,"qos":-0.0}"#) == nil)
    }

    /// libmosquitto refuses to publish such a topic ("Malformed UTF-8"): accepted, the operation would fail at every
    /// attempt.
    @Test(arguments: [#"a\u0001b"#, #"a\u0085b"#, #"a\u007fb"#, #"a\ufdd0b"#, #"a\uffffb"#, #"a\ud83f\udffeb"#])
    func refusesTopicsTheBrokerCannotTake(_ escaped: String) {
        #expect(refusal(#"{"topic":"\#(escaped)","payload":1}"#)?.field == "topic")
        #expect(refusal(#"{"command":"\#(escaped)","payload":1}"#)?.field == "command")
        #expect(refusal(#"{"topic":"t","ackTopic":"\#(escaped)","payload":1}"#)?.field == "ackTopic")
        #expect(
            (try? OperationRequest.parse(
                Array(#"{"command":"go","payload":1}"#.utf8), for: DeviceKey(type: "t\u{85}", id: "x")))
                == nil)
    }

    @Test func acceptsTopicsWithAnyOtherCharacter() throws {
        #expect(
            try parse(#"{"topic":"caf\u00e9/\u00a1/\ud83d\ude00/\ufdcf","payload":1}"#).topic == "café/¡/😀/\u{FDCF}")
    }

    @Test func refusesInvalidUTF8() {
        var body = Array(#"{"topic":"a","payload":"x"#.utf8)
        body += [0xFF, UInt8(ascii: "\""), UInt8(ascii: "}")]
        #expect(throws: OperationRequest.Refusal.self) { try OperationRequest.parse(body, for: device) }
    }

    // MARK: Write access

    func request(_ method: HTTPMethod, authorization: String? = nil, peer: PeerAddress?) -> HTTPRequest {
        var headers = HTTPHeaders()
        if let authorization { headers.add(name: "Authorization", value: authorization) }
        return HTTPRequest(method: method, target: "/x", pathSegments: ["x"], headers: headers, peer: peer)
    }

    let loopback = PeerAddress(ipv4: [127, 0, 0, 1], port: 5000)
    let remote = PeerAddress(ipv4: [192, 168, 1, 9], port: 5000)

    @Test func withoutATokenOnlyLoopbackPeersMayWrite() {
        let access = WriteAccess()
        #expect(access.refusal(for: request(.post, peer: loopback)) == nil)
        #expect(
            access.refusal(for: request(.post, peer: PeerAddress(ipv6: Array(repeating: 0, count: 15) + [1], port: 1)))
                == nil)
        #expect(access.refusal(for: request(.post, peer: remote))?.status == .forbidden)
        #expect(access.refusal(for: request(.post, peer: nil))?.status == .forbidden)
        // A bearer token does not open the door when none is configured.
        #expect(access.refusal(for: request(.post, authorization: "Bearer x", peer: remote))?.status == .forbidden)
    }

    @Test func withATokenEveryPeerNeedsIt() {
        let access = WriteAccess(token: "s3cret-token")
        #expect(access.refusal(for: request(.post, authorization: "Bearer s3cret-token", peer: remote)) == nil)
        #expect(access.refusal(for: request(.post, authorization: "bearer  s3cret-token", peer: remote)) == nil)
        for wrong in [
            nil, "Bearer s3cret-toke", "Bearer s3cret-token2", "Bearer S3CRET-TOKEN", "Basic s3cret-token", "Bearer",
        ] {
            let refused = access.refusal(for: request(.delete, authorization: wrong, peer: loopback))
            #expect(refused?.status == .unauthorized, "\(wrong ?? "none")")
            #expect(refused?.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        }
    }

    @Test func comparesTokensWholly() {
        #expect(WriteAccess.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!WriteAccess.constantTimeEqual(Array("abd".utf8), Array("abc".utf8)))
        #expect(!WriteAccess.constantTimeEqual(Array("ab".utf8), Array("abc".utf8)))
        #expect(!WriteAccess.constantTimeEqual(Array("abc\0".utf8), Array("abc".utf8)))
        #expect(!WriteAccess.constantTimeEqual([], Array("abc".utf8)))
    }
}
