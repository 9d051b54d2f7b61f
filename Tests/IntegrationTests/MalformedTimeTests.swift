import Foundation
import MQTT
import TestSupport
import Testing

/// Times that used to stop the daemon (an overflow computing nanoseconds) or freeze a status (a `Time` far ahead).
@Suite(.serialized) struct MalformedTimeTests {
    static let crashingTimes = [
        "2262-04-12T00:00:00Z", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "1677-09-21T00:00:00Z",
    ]

    @Test func startsAndRestartsWithRetainedCrashingTimesOnStatusTopics() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        for (index, time) in Self.crashingTimes.enumerated() {
            try await client.publish(
                monTopic("t", "crash\(index)"), #"{"ClientID":"d:o:t:x","Time":"\#(time)","Action":"Connect"}"#,
                retain: true)
        }
        let good = mon("Connect", "2021-01-01T00:00:00.000Z", type: "t", id: "good")
        try await client.publish(monTopic("t", "good"), good, retain: true)
        await client.stop()
        let directory = try TemporaryDirectory(prefix: "devstatusd-crashtimes")
        for _ in 0..<2 {
            // Ready means the retained replay, crashing payloads included, has been judged.
            let daemon = try await Daemon(brokerURL: broker.url, directory: directory)
            #expect(try daemon.get("/t/good").text == good)
            for index in Self.crashingTimes.indices {
                #expect(try daemon.json("/t/crash\(index)")["Action"] as? String == "Never Connected")
            }
            let metrics = try daemon.get("/metrics").text
            #expect(metrics.contains(#"outcome="malformed"} \#(Self.crashingTimes.count)"#), "\(metrics)")
            #expect(await daemon.stop() == .exited(0))
        }
    }

    @Test func timeFarAheadIsMalformedAndLaterRealMessagesApply() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: "[status]\nmaxClockSkew = 60\n")
        let client = try await connectedClient(broker)
        let topic = monTopic("t", "future")
        try await client.publish(topic, mon("Disconnect", "2100-01-01T00:00:00.000Z", type: "t", id: "future"))
        let now = RFC3339Text.now()
        let real = mon("Connect", now, type: "t", id: "future")
        try await client.publish(topic, real)
        #expect(await eventually { (try? daemon.get("/t/future").text) == real })
        #expect(await eventually { daemon.log.contains("2100-01-01T00:00:00.000Z is") })
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}

/// The current time as IBM writes `Time`.
enum RFC3339Text {
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
