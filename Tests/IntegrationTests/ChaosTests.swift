import Foundation
import MQTT
import TestSupport
import Testing

/// The fault suite (`make chaos`, part of `make test`): kill -9 during a status stream and right after
/// acknowledged operations, a broker killed and restarted, a full disk, a corrupted table file, and a corpus of
/// malformed payloads. Each test waits for states and answers, never for time.
@Suite(.serialized) struct ChaosTests {
    static let devices = 12
    static let messagesPerRound = 30

    /// The status of `device` at step `step` of the stream (Connect on even steps); `Time` grows with the step.
    /// Publishes devices d0…d299 of type `chaos` (live, step = device) and waits until the daemon answers the last.
    static func storeThreeHundredDevices(_ broker: MosquittoBroker, _ daemon: Daemon) async throws {
        let publisher = try await connectedClient(broker)
        for device in 0..<300 {
            try await publisher.publish(
                monTopic("chaos", "d\(device)"), payload(device: device, step: device), qos: 0)
        }
        let last = payload(device: 299, step: 299)
        try await publisher.publish(monTopic("chaos", "d299"), last)
        #expect(await eventually { (try? daemon.get("/chaos/d299").text) == last })
        await publisher.stop()
    }

    static func payload(device: Int, step: Int) -> String {
        let time = Date(timeIntervalSince1970: 1_700_000_000 + Double(step))
        let formatter = ISO8601DateFormatter()
        return mon(
            step % 2 == 0 ? "Connect" : "Disconnect", formatter.string(from: time), type: "chaos", id: "d\(device)",
            closeCode: step % 2 == 0 ? nil : 91)
    }

    /// The step of the stream a served answer is, or nil for anything that was never published.
    static func step(of text: String, device: Int, upTo last: Int) -> Int? {
        (0...last).last { payload(device: device, step: $0) == text }
    }

    /// Four rounds: publish a stream of statuses, kill -9 the daemon in the middle of it (once the answers show it
    /// is under way), restart. After each restart every answer is a status that was published, never older than
    /// what was answered before the kill; at the end every device shows the last status published.
    @Test func killNineDuringAStatusStreamNeverLosesOrInventsAStatus() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-chaos-stream")
        let publisher = try await connectedClient(broker)
        var answered = [Int](repeating: -1, count: Self.devices)
        var lastStep = -1
        for round in 0..<4 {
            let daemon = try await Daemon(brokerURL: broker.url, directory: directory)
            for device in 0..<Self.devices {
                let text = try daemon.get("/chaos/d\(device)").text
                if answered[device] < 0 { continue }
                let step = try #require(
                    Self.step(of: text, device: device, upTo: lastStep), "round \(round): d\(device) answered \(text)")
                #expect(
                    step >= answered[device], "round \(round): d\(device) went back from \(answered[device]) to \(step)"
                )
                answered[device] = step
            }
            let first = lastStep + 1
            lastStep += Self.messagesPerRound
            for step in first...lastStep {
                for device in 0..<Self.devices {
                    try await publisher.publish(
                        monTopic("chaos", "d\(device)"), Self.payload(device: device, step: step), qos: 0)
                }
                // Halfway through: wait until the daemon serves this step for the first device, then kill it while
                // the rest of the stream is still arriving.
                if step == first + Self.messagesPerRound / 2 {
                    #expect(
                        await eventually { (try? daemon.get("/chaos/d0").text) == Self.payload(device: 0, step: step) })
                    for device in 0..<Self.devices {
                        let text = try daemon.get("/chaos/d\(device)").text
                        if let served = Self.step(of: text, device: device, upTo: step) { answered[device] = served }
                    }
                    _ = daemon.process.killAndReap()
                }
            }
        }
        // The last round's end was published while no daemon ran (live messages are not kept by the broker): one
        // more status each, and every device converges on it.
        let daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        for device in 0..<Self.devices {
            let text = try daemon.get("/chaos/d\(device)").text
            let step = try #require(Self.step(of: text, device: device, upTo: lastStep))
            #expect(step >= answered[device])
        }
        lastStep += 1
        for device in 0..<Self.devices {
            try await publisher.publish(monTopic("chaos", "d\(device)"), Self.payload(device: device, step: lastStep))
        }
        for device in 0..<Self.devices {
            let final = Self.payload(device: device, step: lastStep)
            #expect(await eventually { (try? daemon.get("/chaos/d\(device)").text) == final })
        }
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    func post(_ daemon: Daemon, device: String, _ body: String) throws -> HTTPResponse {
        try httpRequest(
            port: daemon.port, method: "POST", path: "/devices/chaos/\(device)/operations",
            headers: [("Content-Type", "application/json")], body: Array(body.utf8))
    }

    /// Operations answered 201 are on disk: kill -9 right after the last 201, and every one is found.
    @Test func killNineRightAfter201sKeepsEveryAcknowledgedOperation() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-chaos-ops")
        for round in 0..<3 {
            let daemon = try await Daemon(
                brokerURL: broker.url, config: "[operations]\nmaxQueuedPerDevice = 1000\n", directory: directory)
            let created = try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        let response = try self.post(
                            daemon, device: "off\(index % 4)",
                            #"{"command":"c\#(round)-\#(index)","payload":{"n":\#(index)}}"#)
                        guard response.status == 201 else { return nil }
                        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                        return (object?["id"] as? String).map { "off\(index % 4)/\($0)" }
                    }
                }
                var ids: [String] = []
                for try await id in group { if let id { ids.append(id) } }
                return ids
            }
            _ = daemon.process.killAndReap()
            #expect(created.count == 40)
            let restarted = try await Daemon(
                brokerURL: broker.url, config: "[operations]\nmaxQueuedPerDevice = 1000\n", directory: directory)
            for id in created {
                let parts = id.split(separator: "/")
                let response = try restarted.get("/devices/chaos/\(parts[0])/operations/\(parts[1])")
                #expect(response.status == 200, "round \(round): \(id) lost after kill -9")
            }
            _ = restarted.process.killAndReap()
        }
    }

    /// The broker dies and comes back: answers go on from the store meanwhile, the daemon reconnects by itself
    /// and follows new messages.
    @Test func brokerKilledAndRestartedIsFollowedAgain() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        var publisher = try await connectedClient(broker)
        let before = Self.payload(device: 0, step: 0)
        try await publisher.publish(monTopic("chaos", "d0"), before)
        #expect(await eventually { (try? daemon.get("/chaos/d0").text) == before })
        await publisher.stop()
        broker.kill()
        #expect(await eventually { daemon.log.contains("lost the connection to the MQTT broker") })
        #expect(try daemon.get("/chaos/d0").text == before)
        try await broker.start()
        publisher = try await connectedClient(broker)
        // Retained, as status messages are: the broker kept no session, so the daemon learns it when it has
        // reconnected and subscribed again, whenever that is.
        let after = Self.payload(device: 0, step: 1)
        try await publisher.publish(monTopic("chaos", "d0"), after, retain: true)
        #expect(await eventually(timeout: .seconds(40)) { (try? daemon.get("/chaos/d0").text) == after })
        #expect(try daemon.get("/readyz").status == 200)
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    /// A full disk: operations answer 503 with the reason (never 201), statuses are still followed, and once
    /// there is room the store is reopened and verified by itself; after a kill -9 everything acknowledged and
    /// every status followed meanwhile is found.
    @Test(.enabled(if: SmallFilesystem.unavailableReason == nil, "needs a tmpfs (tests run as root)"))
    func fullDiskRefusesOperationsWith503AndRecoversWithoutLoss() async throws {
        let disk = try SmallFilesystem(megabytes: 48)
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-chaos-disk")
        let dataDirectory = disk.path + "/data"
        let config = "[operations]\nmaxQueuedPerDevice = 1000\n"
        var daemon = try await Daemon(
            brokerURL: broker.url, config: config, directory: directory, extraArguments: ["--data-dir", dataDirectory])
        let publisher = try await connectedClient(broker)
        var acknowledged: [String] = []
        func create(_ index: Int) throws -> HTTPResponse {
            let response = try post(daemon, device: "disk", #"{"command":"c\#(index)","payload":"\#(index)"}"#)
            if response.status == 201,
                let id = (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["id"]
                    as? String
            {
                acknowledged.append(id)
            }
            return response
        }
        #expect(try create(0).status == 201)
        try disk.fill()
        var index = 1
        var refused: HTTPResponse?
        while refused == nil && index < 1000 {
            let response = try create(index)
            if response.status != 201 { refused = response }
            index += 1
        }
        let refusal = try #require(refused)
        #expect(refusal.status == 503, "\(refusal.status) \(refusal.text)")
        #expect(refusal.text.contains("No space left"), "\(refusal.text)")
        #expect(try create(index).status == 503)
        #expect(await eventually { (try? daemon.get("/readyz"))?.text.contains("refuses writes") == true })
        // Statuses are still followed while nothing can be written.
        let during = Self.payload(device: 1, step: 5)
        try await publisher.publish(monTopic("chaos", "d1"), during)
        #expect(await eventually { (try? daemon.get("/chaos/d1").text) == during })
        disk.free()
        #expect(await eventually(timeout: .seconds(40)) { (try? create(10_000))?.status == 201 })
        #expect(daemon.log.contains("store reopened and verified"))
        #expect(await eventually { (try? daemon.get("/readyz").status) == 200 })
        _ = daemon.process.killAndReap()

        daemon = try await Daemon(
            brokerURL: broker.url, config: config, directory: directory, extraArguments: ["--data-dir", dataDirectory])
        for id in acknowledged {
            #expect(try daemon.get("/devices/chaos/disk/operations/\(id)").status == 200, "\(id) lost")
        }
        #expect(try daemon.get("/chaos/d1").text == during)
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    /// Bytes flipped in a table file: the daemon refuses to start (exit 2, "corrupt", what to do) or answers
    /// exactly what was stored; it never answers altered bytes.
    @Test func corruptedTableFileIsNeverServed() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-chaos-corrupt")
        var daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        // Live messages only: the broker keeps nothing that could repair the store behind the test's back.
        try await Self.storeThreeHundredDevices(broker, daemon)
        #expect(await daemon.stop() == .exited(0))
        // The next start turns LevelDB's log into a table file.
        daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        #expect(await daemon.stop() == .exited(0))
        let data = daemon.dataDirectory
        let table = try #require(
            try FileManager.default.contentsOfDirectory(atPath: data).first { $0.hasSuffix(".ldb") })
        let size = try #require(try FileManager.default.attributesOfItem(atPath: data + "/" + table)[.size] as? Int)
        var refusedStarts = 0
        for offset in stride(from: size / 10, to: size - 16, by: size / 5) {
            let copy = try TemporaryDirectory(prefix: "devstatusd-chaos-corrupt-copy")
            try FileManager.default.copyItem(atPath: data, toPath: copy.file("data"))
            let handle = try #require(FileHandle(forUpdatingAtPath: copy.file("data/") + table))
            try handle.seek(toOffset: UInt64(offset))
            let flipped = try #require(try handle.read(upToCount: 16)).map { ~$0 }
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: flipped)
            try handle.close()
            let damaged = try await Daemon(brokerURL: broker.url, directory: copy, waitForReady: false)
            let ready = await eventually(timeout: .seconds(20)) {
                !damaged.process.isRunning || (try? damaged.get("/readyz").status) == 200
            }
            #expect(ready)
            if !damaged.process.isRunning {
                #expect(damaged.process.exitStatus == .exited(2), "offset \(offset): \(damaged.log)")
                #expect(damaged.log.contains("corrupt"), "offset \(offset): \(damaged.log)")
                refusedStarts += 1
                continue
            }
            for device in 0..<300 {
                let text = try damaged.get("/chaos/d\(device)").text
                #expect(
                    text == Self.payload(device: device, step: device) || text.contains("Never Connected"),
                    "offset \(offset): altered bytes served for d\(device): \(text)")
            }
            #expect(await damaged.stop() == .exited(0))
        }
        #expect(refusedStarts > 0)
    }

    /// A damaged record in LevelDB's log (a torn write at a power loss): the daemon starts without it and says at
    /// error level what recovery dropped; every status it answers is one that was published.
    @Test func damagedLogRecordIsDroppedAndSaidAtStart() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-chaos-log")
        var daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        try await Self.storeThreeHundredDevices(broker, daemon)
        // Killed: what was written stays in LevelDB's log (the next open turns it into a table).
        _ = daemon.process.killAndReap()
        let data = daemon.dataDirectory
        let log = try #require(try FileManager.default.contentsOfDirectory(atPath: data).first { $0.hasSuffix(".log") })
        let size = try #require(try FileManager.default.attributesOfItem(atPath: data + "/" + log)[.size] as? Int)
        let handle = try #require(FileHandle(forUpdatingAtPath: data + "/" + log))
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: [UInt8](repeating: 0xA5, count: 16))
        try handle.close()
        daemon = try await Daemon(brokerURL: broker.url, directory: directory)
        #expect(daemon.log.contains("store recovery dropped data"), "\(daemon.log)")
        #expect(daemon.log.contains("dropping"))
        var answered = 0
        for device in 0..<300 {
            let text = try daemon.get("/chaos/d\(device)").text
            if text == Self.payload(device: device, step: device) {
                answered += 1
            } else {
                #expect(text.contains("Never Connected"), "d\(device): \(text)")
            }
        }
        #expect(answered > 0 && answered < 300)
        #expect(await daemon.stop() == .exited(0))
    }

    /// A corpus of malformed payloads on a status topic, the payloads that used to stop the daemon among them:
    /// each is counted and skipped, the good status stays, the daemon goes on.
    @Test func malformedCorpusIsCountedAndNeverOverwritesAGoodStatus() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let publisher = try await connectedClient(broker)
        let good = Self.payload(device: 0, step: 0)
        let topic = monTopic("chaos", "d0")
        try await publisher.publish(topic, good)
        #expect(await eventually { (try? daemon.get("/chaos/d0").text) == good })
        var corpus: [[UInt8]] = [
            "2262-04-12T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "1677-09-21T00:00:00Z",
            "2100-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00+99:00",
        ].map { Array(#"{"ClientID":"d:o:chaos:d0","Time":"\#($0)","Action":"Disconnect"}"#.utf8) }
        corpus += [
            "not json", "{", "[]", "null", "{\"Action\":\"Disconnect\"}",
            "{\"Action\":7,\"ClientID\":\"x\",\"Time\":\"t\"}",
            "{\"Action\":\"Disconnect\",\"ClientID\":\"x\",\"Time\":\"2024-01-01T00:00:00Z\",\"CloseCode\":1e999}",
            "{\"a\":" + String(repeating: "[", count: 100_000) + "}",
            "{\"Action\":\"Disconnect\",\"ClientID\":\"x\",\"Time\":\"2024-01-01T00:00:00Z\""
                + String(repeating: " ", count: 70_000) + "}",
        ].map { Array($0.utf8) }
        corpus.append([0xFF, 0xFE, 0x00, 0x7B])
        corpus.append(
            Array("{\"Action\":\"Disconnect\",\"ClientID\":\"\u{FFFD}".utf8) + [0xC3, 0x28]
                + Array("\",\"Time\":\"2024-01-01T00:00:00Z\"}".utf8))
        for payload in corpus {
            try await publisher.publish(topic: topic, payload: payload, qos: 1, retain: false)
        }
        // A sentinel published after the corpus: once it is served, every payload before it has been judged.
        let sentinel = Self.payload(device: 1, step: 1)
        try await publisher.publish(monTopic("chaos", "d1"), sentinel)
        #expect(await eventually { (try? daemon.get("/chaos/d1").text) == sentinel })
        #expect(try daemon.get("/chaos/d0").text == good)
        let metrics = try daemon.get("/metrics").text
        let malformed = metrics.split(separator: "\n").filter {
            $0.hasPrefix("devstatusd_messages_total") && $0.contains("malformed")
        }
        let total = malformed.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
        #expect(total == corpus.count, "\(malformed)")
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}
