import Foundation
import MQTT
import Synchronization
import TestSupport
import Testing

/// Pending operations end to end (docs/behaviour.md §4.3, §4.4): the real binary, a real mosquitto, real LevelDB, real sockets.
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

        /// Everything heard, sentinels included.
        var all: [MQTTMessage] { box.messages.withLock { $0 } }
        /// Everything heard but the sentinels (see `sentinel`).
        var received: [MQTTMessage] { all.filter { !$0.topic.hasPrefix("sentinel/") } }
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

    /// A sentinel for "nothing was sent": an operation for another device, online, on `sentinel/<n>` (which
    /// `listener` must hear), created now. The daemon sends on one connection in order, and marks an operation
    /// without ack topic CONFIRMED when the broker acknowledges it; so once the sentinel is CONFIRMED and heard,
    /// whatever the daemon had sent or had acknowledged before it has arrived too.
    func sentinel(
        _ daemon: Daemon, _ client: MQTTClient, _ clock: StatusClock, _ listener: Listener
    ) async throws {
        try await connect(client, clock, "sentinel", "s1")
        guard await eventually({ (try? daemon.json("/sentinel/s1"))?["Action"] as? String == "Connect" }) else {
            throw TestSupportError("the sentinel device never came online")
        }
        let topic = "sentinel/\(UInt32.random(in: 0...UInt32.max))"
        let created = try object(
            try post(daemon, "/devices/sentinel/s1/operations", #"{"topic":"\#(topic)","payload":"s"}"#))
        let id = try #require(created["id"] as? String)
        guard
            await eventually({
                listener.all.contains { $0.topic == topic }
                    && (try? daemon.json("/devices/sentinel/s1/operations/\(id)"))?["status"] as? String == "CONFIRMED"
            })
        else { throw TestSupportError("the sentinel operation was not delivered") }
    }

    @Test func queuedWhileOfflineThenDeliveredInOrderOnConnectWithPayloadsAsGiven() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url)
        let client = try await connectedClient(broker)
        let clock = StatusClock()
        try await disconnect(client, clock, "lamp", "l1")
        let listener = try await Listener(broker, filters: ["iot-2/type/lamp/id/l1/cmd/#", "lamps/l1/#", "sentinel/#"])

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
        try await sentinel(daemon, client, clock, listener)
        #expect(listener.received.isEmpty)
        #expect(try statuses(daemon, "lamp", "l1") == ["QUEUED", "QUEUED", "CANCELLED", "QUEUED"])

        try await connect(client, clock, "lamp", "l1")
        #expect(
            await eventually {
                (try? statuses(daemon, "lamp", "l1")) == ["CONFIRMED", "CONFIRMED", "CANCELLED", "CONFIRMED"]
            })
        #expect(await eventually { listener.received.count == 3 })
        #expect(
            listener.received.map(\.topic) == [
                "iot-2/type/lamp/id/l1/cmd/dim/fmt/json", "lamps/l1/say", "lamps/l1/last",
            ])
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
        let listener = try await Listener(broker, filters: ["valves/v1/#", "sentinel/#"])

        // Created while the device is online: sent at once.
        let created = try object(
            try post(
                daemon, "/devices/valve/v1/operations",
                #"{"topic":"valves/v1/open","payload":"1","ackTopic":"valves/v1/ack","ackTimeoutSeconds":20}"#))
        let id = try #require(created["id"] as? String)
        #expect(await eventually { listener.received.map(\.topic).contains("valves/v1/open") })
        // The broker's acknowledgement of the publish does not confirm it: the answer on the ack topic does.
        try await sentinel(daemon, client, clock, listener)
        #expect(try daemon.json("/devices/valve/v1/operations/\(id)")["status"] as? String == "SENDING")
        try await client.publish("valves/v1/ack", "opened")
        #expect(
            await eventually {
                (try? daemon.json("/devices/valve/v1/operations/\(id)"))?["status"] as? String == "CONFIRMED"
            })

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
        let listener = try await Listener(broker, filters: ["pumps/p1/#", "sentinel/#"])
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
            #expect(
                await eventually {
                    operation()?["status"] as? String == expected && operation()?["attempts"] as? Int == attempt
                })
            try await disconnect(client, clock, "pump", "p1")
        }
        #expect((operation()?["lastError"] as? String)?.contains("pumps/p1/ack") == true)
        // FAILED is final: coming online again sends nothing.
        try await connect(client, clock, "pump", "p1")
        try await sentinel(daemon, client, clock, listener)
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

/// Issue 5's benchmark (`scripts/bench-operations.sh`, only with OPS_BENCH=1): the create rate over HTTP with
/// keep-alive (wrk, 16 connections, 50,000 POSTs, each answered after a synced write), then 10,000 devices with 5
/// queued operations each come online at once → time until all 50,000 are CONFIRMED (QoS 1, no ack topic).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["OPS_BENCH"] != nil))
struct OperationBenchmark {
    static let devices = 10_000
    static let perDevice = 5
    static let wrkThreads = 2
    static let wrkConnections = 16

    /// wrk's Lua: thread k of n sends POSTs k, k+n, k+2n, … up to its share, to device `index % devices`.
    static let script = """
        local threads = {}
        function setup(thread)
          thread:set("id", #threads)
          table.insert(threads, thread)
        end
        function init(args)
          total = tonumber(args[1]); nthreads = tonumber(args[2]); devices = tonumber(args[3])
          quota = total / nthreads
          sent = 0; answered = 0; failures = 0
          body = '{"topic":"bench/cmd","payload":{"n":1},"qos":1}'
          headers = { ["Content-Type"] = "application/json" }
        end
        function request()
          -- wrk 4.1 calls thread 0's request() once to check the script and never sends the result.
          if id == 0 and not verified then verified = true; return wrk.format("GET", "/healthz") end
          if sent >= quota then return wrk.format("GET", "/healthz") end
          local index = id + sent * nthreads
          sent = sent + 1
          return wrk.format("POST", "/devices/bench/d" .. (index % devices) .. "/operations", headers, body)
        end
        function response(status, headers, body)
          -- 200s answer the /healthz fillers sent once this thread's POSTs are all out.
          if status == 201 then answered = answered + 1
          elseif status ~= 200 then answered = answered + 1; failures = failures + 1 end
          if answered >= quota then wrk.thread:stop() end
        end
        function done(summary, latency, requests)
          for _, thread in ipairs(threads) do
            io.write(string.format("wrk thread %d: %d answered, %d not 201\\n", thread:get("id"), thread:get("answered"), thread:get("failures")))
          end
          io.write(string.format("wrk p50 %.2f ms, p99 %.2f ms\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
        end
        """

    static func operationCount(_ port: Int, _ status: String) -> Int? {
        guard let metrics = try? httpGet(port: port, path: "/metrics").text else { return nil }
        // Label values are lowercase in /metrics (the JSON API says QUEUED).
        let prefix = "devstatusd_operations{status=\"\(status.lowercased())\"} "
        guard let line = metrics.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return Int(Double(line.dropFirst(prefix.count)) ?? -1)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    @Test func fiftyThousandOperationsCreatedThenDeliveredWhenTenThousandDevicesComeOnline() async throws {
        let total = Self.devices * Self.perDevice
        // Room for the burst of 10,000 Connects in the daemon's queue at the broker.
        let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 200000"])
        let directory = try TemporaryDirectory(prefix: "devstatusd-bench-ops")
        let port = try FreePort.next()
        let daemon = try ChildProcess(
            executable: Daemon.executable,
            arguments: [
                "--port", "\(port)", "--broker", broker.url, "--data-dir", directory.file("data"), "--log-level",
                "warning",
            ],
            environment: ["STATE_DIRECTORY": ""], outputPath: directory.file("daemon.log"))
        #expect(await eventually(timeout: .seconds(20)) { (try? httpGet(port: port, path: "/readyz").status) == 200 })

        // 1. Creation over HTTP with keep-alive.
        let scriptPath = directory.file("post.lua")
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        let wrk = try ChildProcess(
            executable: "/usr/bin/wrk",
            arguments: [
                "-t\(Self.wrkThreads)", "-c\(Self.wrkConnections)", "-d120s", "--latency", "-s", scriptPath,
                "http://127.0.0.1:\(port)", "--", "\(total)", "\(Self.wrkThreads)", "\(Self.devices)",
            ],
            outputPath: directory.file("wrk.out"))
        // wrk sleeps its whole -d even when every thread stopped: the end is when the daemon holds them all.
        let queued = await eventually(timeout: .seconds(120), poll: .milliseconds(20)) {
            Self.operationCount(port, "QUEUED") == total
        }
        let createElapsed = Self.seconds(ContinuousClock.now - started)
        wrk.terminate(SIGINT)
        _ = await wrk.waitForExit(timeout: .seconds(10))
        #expect(queued, "QUEUED: \(Self.operationCount(port, "QUEUED") ?? -1)\n\(wrk.output)")
        print(wrk.output.split(separator: "\n").filter { $0.hasPrefix("wrk ") }.joined(separator: "\n"))
        print(
            "create: \(total) operations (201 after a synced write) in \(String(format: "%.2f", createElapsed)) s = \(Int(Double(total) / createElapsed)) /s over \(Self.wrkConnections) keep-alive connections"
        )

        // 2. 10,000 devices come online at once.
        let publisher = try await connectedClient(broker)
        let connectStart = ContinuousClock.now
        for index in 0..<Self.devices {
            let id = "d\(index)"
            publisher.publishNoWait(
                topic: monTopic("bench", id),
                payload: Array(mon("Connect", "2024-03-01T10:00:00.000Z", type: "bench", id: id).utf8),
                qos: 0)
        }
        let published = Self.seconds(ContinuousClock.now - connectStart)
        let confirmed = await eventually(timeout: .seconds(120), poll: .milliseconds(50)) {
            Self.operationCount(port, "CONFIRMED") == total
        }
        let deliveryElapsed = Self.seconds(ContinuousClock.now - connectStart)
        #expect(confirmed, "CONFIRMED: \(Self.operationCount(port, "CONFIRMED") ?? -1)")
        print(
            "delivery: \(Self.devices) Connects published in \(String(format: "%.3f", published)) s; all \(total) operations CONFIRMED \(String(format: "%.2f", deliveryElapsed)) s after the first = \(Int(Double(total) / deliveryElapsed)) /s"
        )

        await publisher.stop()
        daemon.terminate()
        _ = await daemon.waitForExit(timeout: .seconds(10))
        await broker.stop()
    }
}
