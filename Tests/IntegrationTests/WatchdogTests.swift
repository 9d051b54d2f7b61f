import Foundation
import MQTT
import Synchronization
import TestSupport
import Testing

/// Records every message a test client receives on `filter`.
final class Recorder: Sendable {
    let client: MQTTClient
    private let task: Task<Void, Never>
    /// A topic of this recorder's own, for ``sync()``.
    let syncTopic = "test/sync/\(UInt64.random(in: 0...UInt64.max))"

    init(_ broker: MosquittoBroker, filter: String) async throws {
        let client = try await connectedClient(broker)
        self.client = client
        let box = RecorderBox()
        task = Task {
            for await batch in client.messageBatches { box.append(batch) }
        }
        self.box = box
        try await client.subscribe(filter, qos: 1)
        try await client.subscribe(syncTopic, qos: 1)
    }

    /// Returns once everything the broker sent this recorder before now has arrived: the retained replay of its
    /// subscription, and every message the broker handled before this call. A marker published on a topic of
    /// the recorder's own comes back after all of them.
    func sync() async throws {
        let nonce = "\(UInt64.random(in: 0...UInt64.max))"
        try await client.publish(topic: syncTopic, payload: Array(nonce.utf8), qos: 1)
        let arrived = await eventually(timeout: .seconds(10)) {
            self.all.contains { $0.topic == self.syncTopic && $0.payload == Array(nonce.utf8) }
        }
        if !arrived { throw TestSupportError("sync marker on \(syncTopic) did not come back") }
    }

    private let box: RecorderBox

    var all: [MQTTMessage] { box.all }

    func last(_ topic: String) -> MQTTMessage? { all.last { $0.topic == topic } }
    /// The last non-empty message on `topic` (an empty retained publication clears a topic).
    func lastNonEmpty(_ topic: String) -> MQTTMessage? { all.last { $0.topic == topic && !$0.payload.isEmpty } }
    /// Messages published while subscribed, not the retained ones replayed at subscription.
    var live: [MQTTMessage] { all.filter { !$0.retain } }
    func texts(_ topic: String) -> [String] {
        all.filter { $0.topic == topic }.map { String(decoding: $0.payload, as: UTF8.self) }
    }

    func stop() async {
        task.cancel()
        await client.stop()
    }
}

final class RecorderBox: Sendable {
    private let messages = Mutex<[MQTTMessage]>([])
    func append(_ batch: [MQTTMessage]) { messages.withLock { $0 += batch } }
    var all: [MQTTMessage] { messages.withLock { $0 } }
}

/// The retained messages a fresh subscriber gets on `filter` right now (what `mosquitto_sub -W 1` lists).
func retainedNow(_ broker: MosquittoBroker, _ filter: String) async throws -> [String: String] {
    let recorder = try await Recorder(broker, filter: filter)
    try await recorder.sync()
    await recorder.stop()
    var result: [String: String] = [:]
    for message in recorder.all where message.retain {
        result[message.topic] = String(decoding: message.payload, as: UTF8.self)
    }
    return result
}

@Suite(.serialized) struct WatchdogTests {
    static let config = """
        [mqtt]
        baseTopic = "home/monitoring"

        [device_esp04]
        watchTimeOut = 2
        helloTopic = "home/esp04"
        watchTopics = "home/esp04/sensors/#"
        stateTopics = "home/esp04/actuators/#"

        [device_esp041]
        watchTimeOut = 60
        helloTopic = "home/esp041"
        watchTopics = ["home/esp041/sensors/#", "home/esp041/alive"]
        stateTopics = "home/esp041/actuators/#"
        """

    @Test func expiresASilentDeviceAndClearsTheExpiryWhenItSpeaksAgain() async throws {
        let broker = try await MosquittoBroker()
        let publisher = try await connectedClient(broker)
        // A retained message from before the daemon started is a replay, not activity.
        try await publisher.publish("home/esp04/sensors/old", "21.5", retain: true)
        let watcher = try await Recorder(broker, filter: "home/monitoring/#")
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        let started = Date().timeIntervalSince1970

        // A live message is activity; a lookalike prefix is not. (How live messages keep a device alive past its
        // timeout, to the millisecond, WatchServiceTests pins with a clock of its own.)
        try await publisher.publish("home/esp04/sensors/temp", "22")
        #expect(watcher.lastNonEmpty("home/monitoring/expire/esp04") == nil)
        try await publisher.publish("home/esp04/sensorsXYZ", "1")
        let lastActivity = Date().timeIntervalSince1970
        #expect(await eventually(timeout: .seconds(6)) { watcher.lastNonEmpty("home/monitoring/expire/esp04") != nil })
        let expiry = try #require(watcher.lastNonEmpty("home/monitoring/expire/esp04"))
        let seconds = try #require(Double(String(decoding: expiry.payload, as: UTF8.self)))
        #expect(seconds >= started.rounded(.down) && seconds <= lastActivity + 1)
        #expect(try await retainedNow(broker, "home/monitoring/expire/#").keys.contains("home/monitoring/expire/esp04"))
        let status = try #require(watcher.texts("home/monitoring/status/esp04").last)
        #expect(status.contains("\"status\":\"expired\""))
        #expect(try daemon.json("/devices/device/esp04")["status"] as? String == "expired")

        try await publisher.publish("home/esp04/sensors/temp", "23")
        #expect(await eventually { watcher.texts("home/monitoring/status/esp04").last?.contains("\"online\"") == true })
        #expect(await eventually { (try? daemon.json("/devices/device/esp04")["status"] as? String) == "online" })
        #expect(try await retainedNow(broker, "home/monitoring/expire/#").isEmpty)

        // IotMonitor's list for JSON clients.
        let list =
            try JSONSerialization.jsonObject(
                with: Data(daemon.get("/", headers: [("Accept", "application/json")]).body))
            as? [[String: Any]]
        #expect(list?.map { $0["name"] as? String } == ["esp04", "esp041"])
        #expect(list?.first?["enabled"] as? Bool == true)
        #expect(list?.first?["expired"] as? Bool == false)
        #expect(await daemon.stop() == .exited(0))
        await watcher.stop()
        await publisher.stop()
    }

    @Test func clearsExpiriesLeftRetainedByAnEarlierRun() async throws {
        let broker = try await MosquittoBroker()
        let publisher = try await connectedClient(broker)
        try await publisher.publish("home/monitoring/expire/esp04", "1700000000", retain: true)
        try await publisher.publish("home/monitoring/expire/removedlongago", "1700000000", retain: true)
        await publisher.stop()
        // A timeout far longer than the test: esp04 must not expire (and publish a fresh expiry) meanwhile.
        let config = Self.config.replacingOccurrences(of: "watchTimeOut = 2\n", with: "watchTimeOut = 600\n")
        let daemon = try await Daemon(brokerURL: broker.url, config: config)
        // Every device starts in its grace period: nothing is expired right now.
        #expect(await eventually { (try? await retainedNow(broker, "home/monitoring/expire/#"))?.isEmpty == true })
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func publishesUpCounterAndDaemonOnlineOffline() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await Recorder(broker, filter: "home/monitoring/#")
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        #expect(await eventually(timeout: .seconds(5)) { watcher.texts("home/monitoring/up").count >= 2 })
        let counts = watcher.texts("home/monitoring/up").compactMap(Int.init)
        #expect(counts.first == 1 && counts == Array(1...counts.count))
        #expect(watcher.texts("home/monitoring/daemon").last == "online")
        #expect(await daemon.stop() == .exited(0))
        #expect(try await retainedNow(broker, "home/monitoring/daemon")["home/monitoring/daemon"] == "offline")
        await watcher.stop()
    }

    /// MQTT 5 (retain-as-published) lets the daemon see the RETAIN flag of live messages; 3.1.1 clears it.
    @Test func restoresOnlyTheDevicesOwnStatesWithTheirRetainFlagAcrossARestart() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-states")
        let config = Self.config.replacingOccurrences(of: "[mqtt]\n", with: "[mqtt]\nprotocol = \"5\"\n")
        var daemon = try await Daemon(brokerURL: broker.url, config: config, directory: directory)
        let publisher = try await connectedClient(broker)
        try await publisher.publish("home/esp04/actuators/led", "on", retain: true)
        try await publisher.publish("home/esp04/actuators/relay", "1")
        try await publisher.publish("home/esp041/actuators/led", "off", retain: true)
        try await publisher.publish("home/esp04/actuators/cleared", "x", retain: true)
        try await publisher.publish("home/esp04/actuators/cleared", "", retain: true)

        // The daemon receives the hello after the states above (one publisher, one subscriber, QoS 0: in order).
        // Hello: only esp04's own states come back (not esp041's, whose topics merely share a prefix).
        let watcher = try await Recorder(broker, filter: "home/+/actuators/#")
        try await publisher.publish("home/esp04", "hello")
        #expect(
            await eventually {
                Set(watcher.live.map(\.topic)) == ["home/esp04/actuators/led", "home/esp04/actuators/relay"]
            })
        // Sentinel: esp041's own hello, handled after esp04's, restores esp041's state; whatever esp04's hello
        // restored has arrived before it.
        try await publisher.publish("home/esp041", "hello")
        #expect(await eventually { watcher.live.contains { $0.topic == "home/esp041/actuators/led" } })
        #expect(watcher.live.filter { $0.topic.hasPrefix("home/esp041") }.count == 1)
        #expect(!watcher.live.contains { $0.topic.hasSuffix("cleared") })
        #expect(watcher.live.filter { $0.topic == "home/esp04/actuators/led" }.map(\.payload) == [Array("on".utf8)])
        await watcher.stop()
        #expect(
            try daemon.json("/devices/device/esp04")["watchdog"].flatMap {
                ($0 as? [String: Any])?["helloCount"] as? Int
            } == 1)
        #expect(await daemon.stop() == .exited(0))

        // The broker forgets everything (no persistence); the daemon restores states at start, retain flags kept.
        try await broker.restart()
        await publisher.stop()
        daemon = try await Daemon(brokerURL: broker.url, config: config, directory: directory)
        #expect(
            await eventually {
                (try? await retainedNow(broker, "home/+/actuators/#")) == [
                    "home/esp04/actuators/led": "on", "home/esp041/actuators/led": "off",
                ]
            })
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func acceptsAnUnchangedIotMonitorConfig() async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/iotmonitor-config.toml").path
        let check = try ChildProcess(executable: Daemon.executable, arguments: ["check-config", "-c", fixture])
        #expect(await check.waitForExit(timeout: .seconds(10)) == .exited(0))
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(
            brokerURL: broker.url, config: try String(contentsOfFile: fixture, encoding: .utf8))
        let list =
            try JSONSerialization.jsonObject(
                with: Data(daemon.get("/", headers: [("Accept", "application/json")]).body))
            as? [[String: Any]]
        #expect(list?.compactMap { $0["name"] as? String } == ["esp04", "doorbell", "ledboxdaemon"])
        #expect(await daemon.stop() == .exited(0))
    }
}

@Suite(.serialized) struct ReloadTests {
    @Test func aReloadAddsAWatchedDeviceAndKeepsTheOthersState() async throws {
        let broker = try await MosquittoBroker()
        let first = """
            [device_esp04]
            watchTimeOut = 60
            watchTopics = "home/esp04/sensors/#"
            """
        let daemon = try await Daemon(brokerURL: broker.url, config: first)
        let publisher = try await connectedClient(broker)
        try await publisher.publish("home/esp04/sensors/t", "1")
        #expect(await eventually { (try? daemon.json("/devices/device/esp04")["status"] as? String) == "online" })

        let second =
            first + """

                [device_garage]
                watchTimeOut = 60
                watchTopics = ["home/garage/#"]
                """
        try second.write(toFile: daemon.directory.file("config.toml"), atomically: true, encoding: .utf8)
        daemon.process.terminate(SIGHUP)
        #expect(await eventually { (try? daemon.get("/devices/device/garage").status) == 200 })
        // The new device's topics are subscribed: a message makes it online. The reload sends the subscription without
        // waiting for the broker's acknowledgement, so a message published before it is in place is not delivered
        // (a fresh clone's CI run lost the only one): published again until the device is online.
        #expect(
            await eventually {
                try? await publisher.publish("home/garage/door", "open")
                return (try? daemon.json("/devices/device/garage")["status"] as? String) == "online"
            })
        // The existing device kept its state.
        #expect(try daemon.json("/devices/device/esp04")["status"] as? String == "online")

        // A broken config is refused; the daemon goes on with the one it has.
        try "[device_x]\nwatchTimeOut = \"soon\"\n".write(
            toFile: daemon.directory.file("config.toml"), atomically: true, encoding: .utf8)
        daemon.process.terminate(SIGHUP)
        #expect(await eventually { daemon.log.contains("reload refused") && daemon.log.contains("watchTimeOut") })
        #expect(daemon.process.isRunning)
        #expect(try daemon.get("/devices/device/garage").status == 200)
        #expect(daemon.log.contains("watchTimeOut"))
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}
