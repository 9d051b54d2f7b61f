import Foundation
import MQTT
import TestSupport
import Testing

/// devstatusd's first capability end to end: real mosquitto, the real binary, real LevelDB, real sockets.
@Suite(.serialized) struct StatusServiceTests {
    static let samples: [(topic: String, retained: Bool, payload: String)] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mon-samples.jsonl").path
        let text = try! String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let payload = try! JSONSerialization.data(withJSONObject: object["payload"]!)
            return (object["topic"] as! String, object["retained"] as! Bool, String(decoding: payload, as: UTF8.self))
        }
    }()

    @Test func answersFromTheRetainedReplayExactlyAsReceived() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        for sample in Self.samples where sample.retained {
            try await client.publish(sample.topic, sample.payload, retain: true)
        }
        let daemon = try await Daemon(brokerURL: broker.url)
        let connected = try daemon.get("/type1/ps1")
        #expect(connected.status == 200)
        #expect(connected.header("Content-Type") == "application/json")
        #expect(connected.text == Self.samples[0].payload)
        #expect(try daemon.get("/type2/ps2").text == Self.samples[2].payload)
        // A retained CloseCode 288 Disconnect is accepted.
        #expect(try daemon.get("/pstype/psbob").text == Self.samples[3].payload)
        // Never connected: the org is learned from the messages.
        let never = try daemon.json("/type9/nobody")
        #expect(never["ClientID"] as? String == "d:7gnple:type9:nobody")
        #expect(never["Action"] as? String == "Never Connected")
        #expect(await daemon.stop() == .exited(0))
        await client.stop()
    }

    @Test func followsLiveUpdatesAndRefusesOutOfOrderAndReusedClientID() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let topic = monTopic("type1", "live")
        let connect = mon("Connect", "2020-05-01T10:00:00.000Z", id: "live")
        try await client.publish(topic, connect)
        #expect(await eventually { (try? daemon.get("/type1/live").text) == connect })

        let disconnect = mon("Disconnect", "2020-05-01T10:05:00.000Z", id: "live", closeCode: 91)
        try await client.publish(topic, disconnect)
        #expect(await eventually { (try? daemon.get("/type1/live").text) == disconnect })

        // Older than what is stored: ignored.
        try await client.publish(topic, mon("Connect", "2020-05-01T09:00:00.000Z", id: "live"))
        // A live 288 Disconnect: ignored, even though it is newer.
        let newer = mon("Connect", "2020-05-01T11:00:00.000Z", id: "live")
        try await client.publish(topic, newer)
        #expect(await eventually { (try? daemon.get("/type1/live").text) == newer })
        try await client.publish(topic, mon("Disconnect", "2020-05-01T11:30:00.000Z", id: "live", closeCode: 288))
        // Equal times: Disconnect wins over Connect.
        let tie = mon("Disconnect", "2020-05-01T12:00:00.000Z", id: "tie", closeCode: 91)
        try await client.publish(monTopic("type1", "tie"), tie)
        try await client.publish(monTopic("type1", "tie"), mon("Connect", "2020-05-01T12:00:00.000Z", id: "tie"))
        // A marker published last: once it is visible, every message before it has been judged.
        let marker = mon("Connect", "2020-05-01T13:00:00.000Z", id: "marker")
        try await client.publish(monTopic("type1", "marker"), marker)
        #expect(await eventually { (try? daemon.get("/type1/marker").text) == marker })
        #expect(try daemon.get("/type1/live").text == newer)
        #expect(try daemon.get("/type1/tie").text == tie)
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func skipsMalformedPayloadsAndGoesOn() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let bad = [
            "not json", "{\"Action\":\"Connect\"}",
            "{\"Action\":\"Connect\",\"ClientID\":\"d:o:t:i\",\"Time\":\"soon\"}",
            "[1,2,3]", "{\"Action\":\"Connect\",", String(repeating: "x", count: 70_000),
        ]
        for (index, payload) in bad.enumerated() {
            try await client.publish(monTopic("type1", "bad\(index)"), payload)
        }
        let good = mon("Connect", "2021-01-01T00:00:00.000Z", id: "good")
        try await client.publish(monTopic("type1", "good"), good)
        #expect(await eventually { (try? daemon.get("/type1/good").text) == good })
        for index in bad.indices {
            #expect(try daemon.json("/type1/bad\(index)")["Action"] as? String == "Never Connected")
        }
        #expect(try daemon.get("/healthz").status == 200)
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
        #expect(daemon.log.contains("malformed"))
    }

    @Test func deletesTheStatusWhenTheRetainedMessageIsCleared() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let topic = monTopic("type1", "gone")
        let connect = mon("Connect", "2020-05-01T10:00:00.000Z", id: "gone")
        try await client.publish(topic, connect, retain: true)
        #expect(await eventually { (try? daemon.get("/type1/gone").text) == connect })
        try await client.publish(topic, "", retain: true)
        #expect(await eventually { (try? daemon.json("/type1/gone")["Action"] as? String) == "Never Connected" })
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func answersFromLevelDBOnTheFirstRequestAfterARestartWithTheBrokerDown() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-restart")
        var daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        let client = try await connectedClient(broker)
        let connect = mon("Connect", "2020-05-01T10:00:00.000Z", id: "kept")
        try await client.publish(monTopic("type1", "kept"), connect)
        #expect(await eventually { (try? daemon.get("/type1/kept").text) == connect })
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
        await broker.stop()

        daemon = try await Daemon(brokerURL: broker.url, directory: directory, waitForReady: false)
        #expect(await eventually { (try? daemon.get("/healthz").status) == 200 })
        // The port opens only after the store is loaded: the first answer is already right.
        #expect(try daemon.get("/type1/kept").text == connect)
        let ready = try daemon.get("/readyz")
        #expect(ready.status == 503)
        #expect(ready.text.contains("broker"))
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func aSecondDaemonOnTheSameDataDirectoryExitsWithCode2() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-lock")
        let first = try await Daemon(brokerURL: broker.url, directory: directory)
        let second = try await Daemon(brokerURL: broker.url, directory: directory, waitForReady: false)
        #expect(await second.process.waitForExit(timeout: .seconds(10)) == .exited(2))
        let lines = second.log.split(separator: "\n").filter { $0.contains("locked") }
        #expect(lines.count == 1, "\(second.log)")
        #expect(await first.stop() == .exited(0))
    }

    @Test func aTakenPortExitsWithCode1AndLeavesNothingRunning() async throws {
        let broker = try await MosquittoBroker()
        let first = try await Daemon(brokerURL: broker.url)
        let second = try await Daemon(brokerURL: broker.url, port: first.port, waitForReady: false)
        #expect(await second.process.waitForExit(timeout: .seconds(10)) == .exited(1))
        #expect(second.log.contains("cannot listen on"), "\(second.log)")
        // The start was refused before the broker link ran: the second daemon never connected or said online.
        #expect(!second.log.contains("connected to the MQTT broker"), "\(second.log)")
        // Its data directory was closed again: a daemon on it starts.
        let third = try await Daemon(brokerURL: broker.url, directory: second.directory)
        #expect(await third.stop() == .exited(0))
        #expect(await first.stop() == .exited(0))
    }

    @Test func loadsTwentyThousandRetainedDevicesWithNoneLost() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let count = 20_000
        for index in 0..<count {
            let payload = mon(
                "Disconnect", "2019-03-01T00:00:00.000Z", type: "bulk\(index % 10)", id: "d\(index)",
                closeCode: 91)
            client.publishNoWait(
                topic: monTopic("bulk\(index % 10)", "d\(index)"), payload: Array(payload.utf8), qos: 0, retain: true)
        }
        // Wait until the broker holds them all: a QoS 1 marker after the QoS 0 stream arrives last.
        try await client.publish(
            monTopic("bulk0", "zz-marker"), mon("Connect", "2019-03-01T00:00:00.000Z"), retain: true)
        await client.stop()
        let daemon = try await Daemon(brokerURL: broker.url)
        // /readyz is 200 only after the replay is through, so every device must answer now.
        var missing: [Int] = []
        let http = KeepAliveClient(port: daemon.port)
        let responses = try http.get((0..<count).map { "/bulk\($0 % 10)/d\($0)" })
        for (index, response) in responses.enumerated() where !response.text.contains("\"Disconnect\"") {
            missing.append(index)
        }
        #expect(
            missing.isEmpty,
            "missing \(missing.count), e.g. \(missing.prefix(5)); broker log: \(broker.log.suffix(500))")
        #expect(!broker.log.contains("being dropped"))
        #expect(await daemon.stop() == .exited(0))
    }
}
