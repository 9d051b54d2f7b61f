import Foundation
import MQTT
import Synchronization
import TestSupport
import Testing

/// Pending operations end to end (SPEC §4.3, §4.4): the real binary, a real mosquitto, real LevelDB, real sockets.
@Suite(.serialized) struct OperationTests {
    /// Every message a test client receives on its filters, in order.
    final class Listener: Sendable {
        let client: MQTTClient
        private let box: Box
        private let task: Task<Void, Never>

        final class Box: Sendable {
            let messages = Mutex<[MQTTMessage]>([])
        }

        init(_ broker: MosquittoBroker, filters: [String]) async throws {
            let client = try await connectedClient(broker)
            let box = Box()
            self.client = client
            self.box = box
            task = Task { for await batch in client.messageBatches { box.messages.withLock { $0 += batch } } }
            for filter in filters { try await client.subscribe(filter, qos: 1, timeout: .seconds(5)) }
        }

        var received: [MQTTMessage] { box.messages.withLock { $0 } }
        var texts: [String] { received.map { String(decoding: $0.payload, as: UTF8.self) } }

        func stop() async {
            task.cancel()
            await client.stop()
        }
    }

    /// Status messages need increasing `Time`s; each call is a second later.
    final class StatusClock: Sendable {
        private let second = Mutex(0)
        func next() -> String {
            let value = second.withLock { value -> Int in
                value += 1
                return value
            }
            return String(format: "2024-03-01T10:%02d:%02d.000Z", value / 60, value % 60)
        }
    }

    func post(
        _ daemon: Daemon, _ path: String, _ body: String, headers: [(String, String)] = []
    ) throws -> HTTPResponse {
        try httpRequest(
            port: daemon.port, method: "POST", path: path,
            headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
    }

    func delete(_ daemon: Daemon, _ path: String, headers: [(String, String)] = []) throws -> HTTPResponse {
        try httpRequest(port: daemon.port, method: "DELETE", path: path, headers: headers)
    }

    func object(_ response: HTTPResponse) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw TestSupportError("not a JSON object: \(response.text)")
        }
        return object
    }

    /// The statuses of a device's operations, oldest first.
    func statuses(_ daemon: Daemon, _ type: String, _ id: String) throws -> [String] {
        let list = try daemon.json("/devices/\(type)/\(id)/operations")
        return (list["operations"] as? [[String: Any]] ?? []).map { $0["status"] as? String ?? "?" }
    }

    func connect(_ client: MQTTClient, _ clock: StatusClock, _ type: String, _ id: String) async throws {
        try await client.publish(monTopic(type, id), mon("Connect", clock.next(), type: type, id: id), retain: true)
    }

    func disconnect(_ client: MQTTClient, _ clock: StatusClock, _ type: String, _ id: String) async throws {
        try await client.publish(
            monTopic(type, id), mon("Disconnect", clock.next(), type: type, id: id, closeCode: 91), retain: true)
    }

    @Test func queuedWhileOfflineThenDeliveredInOrderOnConnectWithPayloadsAsGiven() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let clock = StatusClock()
        try await disconnect(client, clock, "lamp", "l1")
        let listener = try await Listener(broker, filters: ["iot-2/type/lamp/id/l1/cmd/#", "lamps/l1/#"])

        let jsonPayload = #"{ "level" : 80,  "fade": [1, 2.50] }"#
        let base = "/devices/lamp/l1/operations"
        let first = try post(daemon, base, #"{"command":"dim","payload":"# + jsonPayload + "}")
        #expect(first.status == 201)
        let created = try object(first)
        #expect(created["status"] as? String == "QUEUED")
        #expect(created["attempts"] as? Int == 0)
        #expect(created["type"] as? String == "lamp" && created["deviceId"] as? String == "l1")
        #expect(created["topic"] as? String == "iot-2/type/lamp/id/l1/cmd/dim/fmt/json")
        #expect(created["qos"] as? Int == 1 && created["retain"] as? Bool == false)
        #expect((created["createdAt"] as? String)?.hasSuffix("Z") == true)
        let firstID = try #require(created["id"] as? String)
        #expect(first.header("Location") == "\(base)/\(firstID)")
        // The answer shows the payload as given, too.
        #expect(first.text.contains(#""payload":"# + jsonPayload))

        #expect(try post(daemon, base, #"{"topic":"lamps/l1/say","payload":"hello \"world\"","qos":0}"#).status == 201)
        let doomed = try object(try post(daemon, base, #"{"topic":"lamps/l1/never","payload":"no"}"#))
        #expect(try post(daemon, base, #"{"topic":"lamps/l1/last","payload":[true,null],"qos":2}"#).status == 201)
        let doomedID = try #require(doomed["id"] as? String)
        let cancelled = try delete(daemon, "\(base)/\(doomedID)")
        #expect(cancelled.status == 200)
        #expect(try object(cancelled)["status"] as? String == "CANCELLED")
        #expect(try delete(daemon, "\(base)/\(doomedID)").status == 409)
        #expect(try delete(daemon, "\(base)/00000000000000ff").status == 404)

        // Offline: nothing is sent.
        try await Task.sleep(for: .milliseconds(500))
        #expect(listener.received.isEmpty)
        #expect(try statuses(daemon, "lamp", "l1") == ["QUEUED", "QUEUED", "CANCELLED", "QUEUED"])

        try await connect(client, clock, "lamp", "l1")
        #expect(await eventually { (try? statuses(daemon, "lamp", "l1")) == ["CONFIRMED", "CONFIRMED", "CANCELLED", "CONFIRMED"] })
        #expect(await eventually { listener.received.count == 3 })
        #expect(listener.received.map(\.topic) == ["iot-2/type/lamp/id/l1/cmd/dim/fmt/json", "lamps/l1/say", "lamps/l1/last"])
        #expect(listener.texts == [jsonPayload, #"hello "world""#, "[true,null]"])

        let one = try daemon.json("\(base)/\(firstID)")
        #expect(one["status"] as? String == "CONFIRMED")
        #expect(one["attempts"] as? Int == 0)
        #expect(try delete(daemon, "\(base)/\(firstID)").status == 409)
        #expect(try daemon.get("\(base)/nothere").status == 404)
        let list = try daemon.json(base)
        let counts = list["counts"] as? [String: Int]
        #expect(counts?["CONFIRMED"] == 3 && counts?["CANCELLED"] == 1 && counts?["QUEUED"] == 0)
        #expect(try daemon.json("/devices/lamp/nobody/operations")["operations"] as? [Any] != nil)

        await listener.stop()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func anAckTopicOperationIsConfirmedByTheDevicesAnswer() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let clock = StatusClock()
        try await connect(client, clock, "valve", "v1")
        #expect(await eventually { (try? daemon.json("/valve/v1"))?["Action"] as? String == "Connect" })
        let listener = try await Listener(broker, filters: ["valves/v1/#"])

        // Created while the device is online: sent at once.
        let created = try object(
            try post(
                daemon, "/devices/valve/v1/operations",
                #"{"topic":"valves/v1/open","payload":"1","ackTopic":"valves/v1/ack","ackTimeoutSeconds":20}"#))
        let id = try #require(created["id"] as? String)
        #expect(await eventually { listener.received.map(\.topic).contains("valves/v1/open") })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try daemon.json("/devices/valve/v1/operations/\(id)")["status"] as? String == "SENDING")
        try await client.publish("valves/v1/ack", "opened")
        #expect(await eventually { (try? daemon.json("/devices/valve/v1/operations/\(id)"))?["status"] as? String == "CONFIRMED" })

        await listener.stop()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func threeUnansweredAttemptsAcrossOnlineTransitionsEndFailed() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let clock = StatusClock()
        try await disconnect(client, clock, "pump", "p1")
        let listener = try await Listener(broker, filters: ["pumps/p1/#"])
        let created = try object(
            try post(
                daemon, "/devices/pump/p1/operations",
                #"{"topic":"pumps/p1/run","payload":"go","ackTopic":"pumps/p1/ack","ackTimeoutSeconds":1}"#))
        let path = "/devices/pump/p1/operations/\(try #require(created["id"] as? String))"
        func operation() -> [String: Any]? { try? daemon.json(path) }

        for attempt in 1...3 {
            try await connect(client, clock, "pump", "p1")
            #expect(await eventually { listener.received.count == attempt })
            let expected = attempt < 3 ? "QUEUED" : "FAILED"
            #expect(await eventually { operation()?["status"] as? String == expected && operation()?["attempts"] as? Int == attempt })
            try await disconnect(client, clock, "pump", "p1")
        }
        #expect((operation()?["lastError"] as? String)?.contains("pumps/p1/ack") == true)
        // FAILED is final: coming online again sends nothing.
        try await connect(client, clock, "pump", "p1")
        try await Task.sleep(for: .milliseconds(500))
        #expect(listener.received.count == 3)

        await listener.stop()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func anOperationAnswered201SurvivesKillNine() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let response = try post(daemon, "/devices/door/d1/operations", #"{"command":"lock","payload":{"at":"now"}}"#)
        daemon.process.terminate(SIGKILL)
        #expect(response.status == 201)
        let id = try #require(try object(response)["id"] as? String)
        _ = await daemon.process.waitForExit()

        let restarted = try await Daemon(brokerURL: broker.url, directory: daemon.directory)
        let stored = try restarted.json("/devices/door/d1/operations/\(id)")
        #expect(stored["status"] as? String == "QUEUED")
        #expect(try restarted.get("/devices/door/d1/operations/\(id)").text.contains(#""payload":{"at":"now"}"#))
        #expect(await restarted.stop() == .exited(0))
    }

    @Test func refusesBadBodiesTooLargeBodiesAndAFullQueue() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: "[operations]\nmaxQueuedPerDevice = 2\n")
        let base = "/devices/fan/f1/operations"

        let unknown = try post(daemon, base, #"{"topic":"a","payload":1,"priority":9}"#)
        #expect(unknown.status == 400)
        #expect(try object(unknown)["field"] as? String == "priority")
        let wrongType = try post(daemon, base, #"{"topic":"a","payload":1,"qos":"high"}"#)
        #expect(wrongType.status == 400)
        #expect(try object(wrongType)["field"] as? String == "qos")
        #expect(try post(daemon, base, #"{"topic":"a","payload":1"#).status == 400)
        #expect(try post(daemon, base, "").status == 400)

        // 64 KiB is the server's body limit: one byte more is 413.
        let padding = String(repeating: "x", count: 65_536 - #"{"topic":"a","payload":""}"#.utf8.count)
        let atLimit = #"{"topic":"a","payload":""# + padding + #""}"#
        #expect(atLimit.utf8.count == 65_536)
        #expect(try post(daemon, base, atLimit).status == 201)
        let overLimit = #"{"topic":"a","payload":"x"# + padding + #""}"#
        #expect(try post(daemon, base, overLimit).status == 413)

        #expect(try post(daemon, base, #"{"topic":"a","payload":2}"#).status == 201)
        let full = try post(daemon, base, #"{"topic":"a","payload":3}"#)
        #expect(full.status == 429)
        #expect(full.text.contains("maxQueuedPerDevice"))
        // Another device has its own cap.
        #expect(try post(daemon, "/devices/fan/f2/operations", #"{"topic":"a","payload":3}"#).status == 201)
        #expect(try statuses(daemon, "fan", "f1") == ["QUEUED", "QUEUED"])
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func aConfiguredTokenIsRequiredForWrites() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: "[http]\ntoken = \"let-me-in\"\n")
        let base = "/devices/fan/f1/operations"
        let body = #"{"topic":"a","payload":1}"#

        let missing = try post(daemon, base, body)
        #expect(missing.status == 401)
        #expect(missing.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(try post(daemon, base, body, headers: [("Authorization", "Bearer let-me-i")]).status == 401)
        let created = try post(daemon, base, body, headers: [("Authorization", "Bearer let-me-in")])
        #expect(created.status == 201)
        let id = try #require(try object(created)["id"] as? String)
        #expect(try delete(daemon, "\(base)/\(id)").status == 401)
        #expect(try delete(daemon, "\(base)/\(id)", headers: [("Authorization", "Bearer let-me-in")]).status == 200)
        // Reads stay open.
        #expect(try daemon.get(base).status == 200)
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func withoutATokenOnlyLoopbackClientsMayWrite() async throws {
        guard let address = Self.nonLoopbackAddress() else { return }
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: "[http]\nbind = \"0.0.0.0\"\n")
        let body = #"{"topic":"a","payload":1}"#
        // Through the machine's own non-loopback address, the peer is not loopback.
        let remote = try ChildProcess(
            executable: "/usr/bin/curl",
            arguments: [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                "--data-binary", body, "http://\(address):\(daemon.port)/devices/fan/f1/operations",
            ],
            outputPath: daemon.directory.file("curl.out"))
        _ = await remote.waitForExit()
        #expect(remote.output == "403")
        #expect(try post(daemon, "/devices/fan/f1/operations", body).status == 201)
        #expect(await daemon.stop() == .exited(0))
    }

    /// The first IPv4 address of this machine that is not loopback (none in some sandboxes).
    static func nonLoopbackAddress() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else {
                continue
            }
            let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var copy = ipv4
            guard inet_ntop(AF_INET, &copy, &buffer, socklen_t(buffer.count)) != nil else { continue }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") { return text }
        }
        return nil
    }
}
