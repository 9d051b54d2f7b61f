import MQTT
import Testing

@testable import DeviceStatus

@Suite struct StatusRulesTests {
    let t1 = RFC3339.parse("2018-01-02T16:51:10.558Z")!
    let t2 = RFC3339.parse("2018-01-02T16:52:14.296Z")!

    func payload(_ action: MonPayload.Action, _ time: Int64, closeCode: Int? = nil) -> MonPayload {
        var text = #"{"Action":"\#(action == .connect ? "Connect" : "Disconnect")","ClientID":"d:o:t:i","#
        text += #""Time":"\#(RFC3339.format(nanoseconds: time))""#
        if let closeCode { text += ",\"CloseCode\":\(closeCode)" }
        return try! MonPayload(parsing: Array((text + "}").utf8))
    }

    @Test func acceptsFirstStatusOfADevice() {
        #expect(StatusRules.decide(stored: nil, incoming: payload(.connect, t1), retained: true) == .accept)
    }

    @Test func acceptsNewerStatus() {
        #expect(
            StatusRules.decide(stored: (.connect, t1), incoming: payload(.disconnect, t2), retained: false) == .accept)
    }

    @Test func ignoresDisconnectOlderThanStoredConnect() {
        #expect(
            StatusRules.decide(stored: (.connect, t2), incoming: payload(.disconnect, t1), retained: false)
                == .ignoreOutOfOrder)
    }

    @Test func disconnectWinsATieWithConnect() {
        #expect(
            StatusRules.decide(stored: (.connect, t1), incoming: payload(.disconnect, t1), retained: false) == .accept)
        #expect(
            StatusRules.decide(stored: (.disconnect, t1), incoming: payload(.connect, t1), retained: false)
                == .ignoreTieLost)
    }

    @Test func treatsAReplayOfTheStoredStatusAsUnchanged() {
        #expect(
            StatusRules.decide(stored: (.connect, t1), incoming: payload(.connect, t1), retained: true) == .unchanged)
    }

    @Test func ignoresLiveDisconnectWithClientIDReused() {
        #expect(
            StatusRules.decide(
                stored: (.connect, t1), incoming: payload(.disconnect, t2, closeCode: 288), retained: false)
                == .ignoreClientIDReused)
        #expect(
            StatusRules.decide(stored: nil, incoming: payload(.disconnect, t2, closeCode: 288), retained: false)
                == .ignoreClientIDReused)
    }

    @Test func acceptsRetainedDisconnectWithClientIDReused() {
        #expect(
            StatusRules.decide(
                stored: (.connect, t1), incoming: payload(.disconnect, t2, closeCode: 288), retained: true)
                == .accept)
    }

    @Test func learnsTheOrganizationFromClientIDs() {
        #expect(StatusRules.organization(ofClientID: "d:7gnple:type1:ps1") == "7gnple")
        #expect(StatusRules.organization(ofClientID: "g:abc:gw:1") == "abc")
        #expect(StatusRules.organization(ofClientID: "plainclient") == nil)
        // The part before the first `:` is one character, however many bytes it takes.
        #expect(StatusRules.organization(ofClientID: "é:org:t:i") == "org")
        #expect(StatusRules.organization(ofClientID: "e\u{301}:org:t:i") == "org")
        #expect(StatusRules.organization(ofClientID: "dd:org:t:i") == nil)
        #expect(StatusRules.organization(ofClientID: ":org:t:i") == nil)
        #expect(StatusRules.organization(ofClientID: "d::t:i") == nil)
    }
}

@Suite struct StatusTopicPatternTests {
    let pattern = try! StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))

    @Test func extractsTypeAndIDFromTheTopic() {
        #expect(pattern.device(inTopic: "iot-2/type/type1/id/ps1/mon") == DeviceKey(type: "type1", id: "ps1"))
    }

    @Test func ignoresTopicsThatDoNotMatch() {
        #expect(pattern.device(inTopic: "iot-2/type/type1/id/ps1/mon/extra") == nil)
        #expect(pattern.device(inTopic: "iot-2/type/type1/id/ps1/evt") == nil)
        #expect(pattern.device(inTopic: "iot-2/type//id/ps1/mon") == nil)
    }

    @Test func refusesFiltersThatCannotNameADevice() {
        #expect(throws: StatusTopicPattern.ShapeError.self) { try StatusTopicPattern(TopicFilter("iot-2/#")) }
        #expect(throws: StatusTopicPattern.ShapeError.self) { try StatusTopicPattern(TopicFilter("a/type/x/id/+")) }
    }

    @Test func deviceKeysRoundTripTheirPath() {
        let key = DeviceKey(type: "type1", id: "ps1")
        #expect(key.type == "type1" && key.id == "ps1" && key.path == "type1/ps1")
        #expect(DeviceKey(path: "a/b/c") == nil)
        #expect(DeviceKey(path: "/b") == nil)
    }
}
