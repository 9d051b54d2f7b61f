import Foundation
import MQTT
import TestSupport
import Testing

/// docs/behaviour.md §4.2's fleet routes end to end: the real binary, a real mosquitto, real LevelDB, real sockets.
@Suite(.serialized) struct FleetTests {
    static func devices(_ object: [String: Any]) -> [[String: Any]] { object["devices"] as? [[String: Any]] ?? [] }

    @Test func listsAndPagesFiftyDevicesWithFiltersAndCounts() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        // 30 "meter" and 20 "valve" devices; every fifth one disconnected.
        var expected: [String] = []
        for index in 0..<50 {
            let type = index < 30 ? "meter" : "valve"
            let id = String(format: "n%02d", index)
            let action = index % 5 == 0 ? "Disconnect" : "Connect"
            try await client.publish(
                monTopic(type, id), mon(action, "2024-03-01T10:00:00.000Z", type: type, id: id), retain: true)
            expected.append("\(type)/\(id)")
        }
        #expect(await eventually { ((try? daemon.json("/devices"))?["total"] as? Int) == 50 })

        var paths: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try daemon.json("/devices?limit=7" + (cursor.map { "&cursor=\($0)" } ?? ""))
            let devices = Self.devices(page)
            #expect(devices.count == 7 || page["nextCursor"] is NSNull)
            paths += devices.map { "\($0["type"]!)/\($0["id"]!)" }
            cursor = page["nextCursor"] as? String
            pages += 1
        } while cursor != nil && pages < 20
        #expect(pages == 8)
        #expect(paths == expected.sorted())

        let all = try daemon.json("/devices")
        #expect(all["counts"] as? [String: Int] == ["online": 40, "offline": 10, "expired": 0, "unknown": 0])
        let first = try #require(Self.devices(all).first)
        #expect(first["status"] as? String == "offline")
        #expect(first["since"] as? String == "2024-03-01T10:00:00.000Z")
        #expect(first["lastSeen"] as? String == "2024-03-01T10:00:00.000Z")

        let offlineValves = try daemon.json("/devices?status=offline&type=valve")
        #expect(Self.devices(offlineValves).map { $0["id"] as? String } == ["n30", "n35", "n40", "n45"])
        #expect(offlineValves["total"] as? Int == 4)
        // Counts follow the type filter, not the status filter.
        #expect(offlineValves["counts"] as? [String: Int] == ["online": 16, "offline": 4, "expired": 0, "unknown": 0])

        let badLimit = try daemon.get("/devices?limit=0")
        #expect(badLimit.status == 400)
        #expect(badLimit.text.contains("limit"))
        // `sleeping` became a status with the presence conventions; any other word is still refused.
        let badStatus = try daemon.get("/devices?status=dozing")
        #expect(badStatus.status == 400)
        #expect(badStatus.text.contains("status"))
        #expect(try daemon.get("/devices?cursor=%21").status == 400)
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func keepsTheHistoryOfConnectDisconnectConnectAcrossARestart() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let topic = monTopic("type1", "hist")
        try await client.publish(topic, mon("Connect", "2024-03-01T10:00:00.000Z", id: "hist"))
        #expect(await eventually { (try? daemon.get("/type1/hist").text.contains("Connect")) == true })
        try await client.publish(topic, mon("Disconnect", "2024-03-01T10:05:00.000Z", id: "hist", closeCode: 91))
        #expect(await eventually { (try? daemon.get("/type1/hist").text.contains("Disconnect")) == true })
        try await client.publish(topic, mon("Connect", "2024-03-01T10:10:00.000Z", id: "hist"))
        func transitions(_ daemon: Daemon, _ query: String = "") throws -> [[String: Any]] {
            try daemon.json("/devices/type1/hist/history" + query)["transitions"] as? [[String: Any]] ?? []
        }
        #expect(await eventually { (try? transitions(daemon).count) == 3 })
        let entries = try transitions(daemon)
        #expect(entries.map { $0["from"] as? String } == ["offline", "online", "unknown"])
        #expect(entries.map { $0["to"] as? String } == ["online", "offline", "online"])
        #expect(entries.map { $0["reason"] as? String } == ["Connect", "Disconnect", "Connect"])
        #expect(entries.allSatisfy { $0["source"] as? String == "mon" && $0["time"] is String })
        #expect(try transitions(daemon, "?limit=1").count == 1)
        #expect(try daemon.get("/devices/type1/hist/history?limit=101").status == 400)
        #expect(try daemon.get("/devices/type1/nobody/history").status == 404)

        // Persisted: a new daemon on the same data directory has it.
        #expect(await daemon.stop() == .exited(0))
        let restarted = try await Daemon(brokerURL: broker.url, directory: daemon.directory)
        #expect(try transitions(restarted).map { $0["to"] as? String } == ["online", "offline", "online"])
        await client.stop()
        #expect(await restarted.stop() == .exited(0))
    }

    @Test func streamsTransitionsAndResumesWithLastEventID() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let topic = monTopic("type1", "sse")

        let first = try await EventStreamReader(port: daemon.port)
        #expect(first.head.contains("200"))
        #expect(first.head.lowercased().contains("content-type: text/event-stream"))
        try await client.publish(topic, mon("Connect", "2024-03-01T10:00:00.000Z", id: "sse"))
        try await first.read(until: #""to":"online""#)
        let connected = try #require(first.events.last)
        #expect(connected.event == "status")
        let data = try #require(
            try JSONSerialization.jsonObject(with: Data(connected.data.utf8)) as? [String: Any])
        #expect(data["type"] as? String == "type1" && data["id"] as? String == "sse")
        #expect(data["from"] as? String == "unknown" && data["source"] as? String == "mon")
        first.close()

        // Missed while away: the Disconnect and a Connect of another device.
        try await client.publish(topic, mon("Disconnect", "2024-03-01T10:05:00.000Z", id: "sse", closeCode: 91))
        try await client.publish(monTopic("type1", "other"), mon("Connect", "2024-03-01T10:06:00.000Z", id: "other"))
        #expect(await eventually { (try? daemon.get("/type1/other").text.contains("Connect")) == true })

        let resumed = try await EventStreamReader(port: daemon.port, lastEventID: "\(connected.id)")
        try await resumed.read(until: #""id":"other""#)
        #expect(resumed.events.map(\.id).allSatisfy { $0 > connected.id })
        #expect(resumed.events.count == 2)
        #expect(resumed.events.first?.data.contains(#""to":"offline""#) == true)
        // Then live.
        try await client.publish(topic, mon("Connect", "2024-03-01T10:10:00.000Z", id: "sse"))
        try await resumed.read(until: #""from":"offline","to":"online""#)
        #expect(resumed.events.count == 3)
        // The daemon stops promptly with a stream open.
        let started = ContinuousClock.now
        #expect(await daemon.stop() == .exited(0))
        #expect(ContinuousClock.now - started < .seconds(3))
        await client.stop()
    }

    /// A device known from its status topic and a watchdog: an event carries what its source said (`from`/`to`)
    /// and the device's overall status after it, which the watchdog holds at `expired` until it hears the device.
    @Test func eventsCarryTheOverallStatusWhenAnotherSignalHoldsTheDeviceDown() async throws {
        let broker = try await MosquittoBroker()
        let config = """
            [device_plug]
            type = "type1"
            id = "plug"
            watchTimeOut = 1
            watchTopics = "plugs/plug/#"
            """
        let daemon = try await Daemon(brokerURL: broker.url, config: config)
        let client = try await connectedClient(broker)
        let stream = try await EventStreamReader(port: daemon.port)
        func lastData() throws -> [String: String] {
            let text = try #require(stream.events.last?.data)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            return object.compactMapValues { $0 as? String }
        }

        // Silent past its grace period: the watchdog expires it.
        try await stream.read(until: #""to":"expired""#)
        let expired = try lastData()
        #expect(expired["source"] == "watchdog" && expired["status"] == "expired")
        // Its status topic says online: that is the event's `to`, but the device stays expired.
        try await client.publish(monTopic("type1", "plug"), mon("Connect", "2024-03-01T10:00:00.000Z", id: "plug"))
        try await stream.read(until: #""source":"mon""#)
        let connected = try lastData()
        #expect(connected["from"] == "unknown" && connected["to"] == "online")
        #expect(connected["status"] == "expired")
        #expect(try daemon.json("/devices/type1/plug")["status"] as? String == "expired")
        // A message on its watch topic: alive again, and now online overall.
        try await client.publish("plugs/plug/power", "on")
        try await stream.read(until: #""from":"expired","to":"online""#)
        let alive = try lastData()
        #expect(alive["source"] == "watchdog" && alive["status"] == "online")
        stream.close()
        #expect(await daemon.stop() == .exited(0))
        await client.stop()
    }

    @Test func searchesSortsAndRefusesUnknownOrBadParametersNamingThem() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        for (index, id) in ["alpha", "Beta", "gamma"].enumerated() {
            try await client.publish(
                monTopic("kind", id), mon("Connect", "2024-03-01T10:0\(index):00.000Z", type: "kind", id: id),
                retain: true)
        }
        try await client.publish(
            monTopic("other", "zeta"), mon("Connect", "2024-03-01T09:00:00.000Z", type: "other", id: "zeta"))
        #expect(await eventually { ((try? daemon.json("/devices"))?["total"] as? Int) == 4 })
        func ids(_ query: String) throws -> [String] {
            try Self.devices(daemon.json("/devices?" + query)).compactMap { $0["id"] as? String }
        }
        #expect(try ids("q=BET") == ["Beta"])
        // Key order is bytewise: upper case before lower case.
        #expect(try ids("q=D/") == ["Beta", "alpha", "gamma"])
        #expect(try ids("sort=lastSeen") == ["gamma", "Beta", "alpha", "zeta"])
        #expect(try ids("sort=since&type=kind&limit=2") == ["gamma", "Beta"])
        let types = try daemon.json("/devices?q=zeta")["types"] as? [String: Int]
        #expect(types == ["kind": 3, "other": 1])

        // A cursor continues its own order only.
        let first = try daemon.json("/devices?sort=lastSeen&limit=2")
        let cursor = try #require(first["nextCursor"] as? String)
        #expect(try ids("sort=lastSeen&limit=2&cursor=\(cursor)") == ["alpha", "zeta"])
        for (query, parameter) in [
            ("stauts=online", "stauts"), ("sort=name", "sort"), ("limit=5&limit=6", "limit"),
            ("cursor=\(cursor)", "cursor"), ("q=" + String(repeating: "x", count: 300), "q"), ("page=2", "page"),
        ] {
            let answer = try daemon.get("/devices?" + query)
            #expect(answer.status == 400, "\(query)")
            #expect(answer.text.contains(parameter), "\(query): \(answer.text)")
        }
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func servesTheDashboardAndItsAssetsFromTheDaemonAlone() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let page = try daemon.get("/", headers: [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")])
        #expect(page.status == 200)
        #expect(page.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(page.header("Content-Security-Policy")?.contains("script-src 'self'") == true)
        // Nothing from elsewhere: no absolute URL in the page, its script or its style.
        let script = try daemon.get("/dashboard.js")
        let style = try daemon.get("/dashboard.css")
        #expect(script.status == 200 && script.header("Content-Type")?.hasPrefix("text/javascript") == true)
        #expect(style.status == 200 && style.header("Content-Type")?.hasPrefix("text/css") == true)
        for text in [page.text, script.text, style.text] {
            #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"))
        }
        #expect(page.text.contains(#"<script src="/dashboard.js" defer></script>"#))
        #expect(script.text.contains("new EventSource('/events')") && !script.text.contains("innerHTML"))
        // JSON clients keep IotMonitor's list.
        #expect(try daemon.get("/").header("Content-Type")?.hasPrefix("application/json") == true)
        let ready = try daemon.json("/readyz")
        #expect(ready["status"] as? String == "ready" && ready["broker"] as? String == "connected")
        #expect(await daemon.stop() == .exited(0))
    }
}
