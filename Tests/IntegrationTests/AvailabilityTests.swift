import Foundation
import MQTT
import TestSupport
import Testing

/// `[availability]` end to end: the real binary publishes retained availability topics and Home Assistant discovery
/// configs to a real mosquitto, clears them, and after a restart publishes only what changed while it was down.
@Suite(.serialized) struct AvailabilityTests {
    static let base = "home/monitoring"

    static func config(homeassistant: Bool = true, types: [String] = [], prefix: String = "homeassistant") -> String {
        """
        [availability]
        publish = true
        homeassistant = \(homeassistant)
        discoveryPrefix = "\(prefix)"
        types = [\(types.map { "\"\($0)\"" }.joined(separator: ", "))]

        [[presence]]
        preset = "zigbee2mqtt"
        type = "z2m"

        [[presence]]
        preset = "tasmota"
        """
    }

    static func availability(_ type: String, _ id: String) -> String { "\(base)/availability/\(type)/\(id)" }

    /// Waits until the retained value of `topic` (as a fresh subscriber sees it) is `value` (nil: no retained
    /// message).
    static func retained(_ broker: MosquittoBroker, _ topic: String, becomes value: String?) async -> Bool {
        await eventually(timeout: .seconds(15), poll: .milliseconds(100)) {
            (try? await retainedNow(broker, topic))?[topic] == value
        }
    }

    @Test func publishesRetainedAvailabilityAndDiscoveryForStatusTopicAndPresenceDevices() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config())
        // A status-topic (IBM mon) device connects, a Zigbee2MQTT device (a friendly name with '/') comes online.
        try await client.publish(monTopic("type1", "ps1"), mon("Connect", "2020-05-01T10:00:00.000Z"), retain: true)
        try await client.publish("zigbee2mqtt/kitchen/lamp/availability", "online", retain: true)
        #expect(await Self.retained(broker, Self.availability("type1", "ps1"), becomes: "online"))
        #expect(await Self.retained(broker, Self.availability("z2m", "kitchen/lamp"), becomes: "online"))

        // Home Assistant's view: one connectivity binary_sensor per device, its state from the availability topic.
        let configs = try await retainedNow(broker, "homeassistant/#")
        let monConfig = try #require(configs["homeassistant/binary_sensor/devstatusd_type1_ps1/config"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(monConfig.utf8)) as? [String: Any])
        #expect(json["name"] is NSNull)
        #expect(json["unique_id"] as? String == "devstatusd_type1_ps1")
        #expect(json["device_class"] as? String == "connectivity")
        #expect(json["state_topic"] as? String == Self.availability("type1", "ps1"))
        #expect(json["payload_on"] as? String == "online")
        #expect(json["payload_off"] as? String == "offline")
        #expect(json["availability_topic"] as? String == "\(Self.base)/daemon")
        #expect(json["payload_available"] as? String == "online")
        #expect(json["payload_not_available"] as? String == "offline")
        #expect(json["qos"] as? Int == 1)
        let device = try #require(json["device"] as? [String: Any])
        #expect(device["identifiers"] as? [String] == ["devstatusd_type1_ps1"])
        #expect(device["name"] as? String == "type1/ps1")
        #expect(device["model"] as? String == "type1")
        #expect((json["origin"] as? [String: Any])?["name"] as? String == "devstatusd")
        // The daemon's own availability topic says what payload_available expects.
        #expect(try await retainedNow(broker, "\(Self.base)/daemon")["\(Self.base)/daemon"] == "online")
        // The '/' of the friendly name cannot appear in the object id: replaced, with a hash to keep it distinct.
        let zigbee = try #require(
            configs.first { $0.key.hasPrefix("homeassistant/binary_sensor/devstatusd_z2m_kitchen_lamp_") })
        let zigbeeJSON = try #require(
            try JSONSerialization.jsonObject(with: Data(zigbee.value.utf8)) as? [String: Any])
        #expect(zigbeeJSON["state_topic"] as? String == Self.availability("z2m", "kitchen/lamp"))
        #expect(zigbee.key.split(separator: "/").count == 4)

        // Transitions: offline (mon Disconnect) and a Last Will.
        try await client.publish(
            monTopic("type1", "ps1"), mon("Disconnect", "2020-05-01T11:00:00.000Z", closeCode: 91), retain: true)
        try await client.publish("zigbee2mqtt/kitchen/lamp/availability", "offline", retain: true)
        #expect(await Self.retained(broker, Self.availability("type1", "ps1"), becomes: "offline"))
        #expect(await Self.retained(broker, Self.availability("z2m", "kitchen/lamp"), becomes: "offline"))

        // Deleted (the retained status cleared): both topics are cleared.
        try await client.publish(monTopic("type1", "ps1"), "", retain: true)
        #expect(await Self.retained(broker, Self.availability("type1", "ps1"), becomes: nil))
        #expect(
            await eventually(timeout: .seconds(15)) {
                (try? await retainedNow(broker, "homeassistant/#"))?[
                    "homeassistant/binary_sensor/devstatusd_type1_ps1/config"] == nil
            })
        #expect(try await retainedNow(broker, "homeassistant/#")[zigbee.key] != nil)
        // Counted once acknowledged (which may come a moment after a subscriber sees the topics cleared).
        #expect(
            await eventually {
                (try? daemon.get("/metrics").text)?.contains(
                    #"devstatusd_availability_publications_total{kind="cleared"} 2"#) == true
            })
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
        // Stopped: Home Assistant shows every entity unavailable (B/daemon offline, retained).
        #expect(try await retainedNow(broker, "\(Self.base)/daemon")["\(Self.base)/daemon"] == "offline")
    }

    @Test func typesLimitsBothPublications() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config(types: ["tasmota"]))
        let recorder = try await Recorder(broker, filter: "#")
        try await client.publish(monTopic("type1", "ps1"), mon("Connect", "2020-05-01T10:00:00.000Z"), retain: true)
        try await client.publish("zigbee2mqtt/lamp/availability", "online", retain: true)
        // The sentinel: a selected device's publication, caused after the others.
        try await client.publish("tele/plug1/LWT", "Online", retain: true)
        #expect(await eventually { recorder.last(Self.availability("tasmota", "plug1")) != nil })
        #expect(
            await eventually {
                recorder.last("homeassistant/binary_sensor/devstatusd_tasmota_plug1/config") != nil
            })
        let topics = Set(recorder.all.map(\.topic))
        #expect(!topics.contains { $0.hasPrefix("\(Self.base)/availability/type1/") })
        #expect(!topics.contains { $0.hasPrefix("\(Self.base)/availability/z2m/") })
        #expect(topics.filter { $0.hasPrefix("homeassistant/") }.count == 1)
        await recorder.stop()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func atStartPublishesOnlyWhatChangedWhileTheDaemonWasDown() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let directory = try TemporaryDirectory(prefix: "devstatusd-availability")
        var daemon = try await Daemon(brokerURL: broker.url, config: Self.config(), directory: directory)
        for id in ["changed", "same"] {
            try await client.publish(
                monTopic("type1", id), mon("Connect", "2020-05-01T10:00:00.000Z", id: id), retain: true)
        }
        for id in ["changed", "same"] {
            #expect(await Self.retained(broker, Self.availability("type1", id), becomes: "online"))
        }
        #expect(await daemon.stop() == .exited(0))

        // While the daemon is down: one device goes offline, the other stays as it was.
        try await client.publish(
            monTopic("type1", "changed"), mon("Disconnect", "2020-05-01T11:00:00.000Z", id: "changed", closeCode: 91),
            retain: true)
        let recorder = try await Recorder(broker, filter: "#")
        try await recorder.sync()
        daemon = try await Daemon(brokerURL: broker.url, config: Self.config(), directory: directory)
        #expect(
            await eventually(timeout: .seconds(15)) {
                recorder.live.contains {
                    $0.topic == Self.availability("type1", "changed") && $0.payload == Array("offline".utf8)
                }
            })
        // The sentinel: a device that speaks after the start; the daemon looks at devices in order, so when its
        // topic arrives, the start's look at "same" is done.
        try await client.publish(monTopic("type1", "late"), mon("Connect", "2020-05-01T12:00:00.000Z", id: "late"))
        #expect(await eventually { recorder.live.contains { $0.topic == Self.availability("type1", "late") } })
        #expect(!recorder.live.contains { $0.topic == Self.availability("type1", "same") })
        #expect(!recorder.live.contains { $0.topic == "homeassistant/binary_sensor/devstatusd_type1_same/config" })
        #expect(!recorder.live.contains { $0.topic == "homeassistant/binary_sensor/devstatusd_type1_changed/config" })
        #expect(recorder.live.contains { $0.topic == "homeassistant/binary_sensor/devstatusd_type1_late/config" })
        #expect(await eventually { daemon.log.contains("availability topics up to date") }, "\(daemon.log)")
        #expect(await daemon.stop() == .exited(0))

        // A changed discovery prefix: at the next start every config moves (old cleared, new published), the values
        // stay where they are.
        let moved = try await Recorder(broker, filter: "#")
        try await moved.sync()
        daemon = try await Daemon(brokerURL: broker.url, config: Self.config(prefix: "ha2"), directory: directory)
        #expect(
            await eventually(timeout: .seconds(15)) {
                moved.live.contains { $0.topic == "ha2/binary_sensor/devstatusd_type1_same/config" }
                    && moved.live.contains {
                        $0.topic == "homeassistant/binary_sensor/devstatusd_type1_same/config" && $0.payload.isEmpty
                    }
            })
        try await client.publish(monTopic("type1", "late2"), mon("Connect", "2020-05-01T12:00:00.000Z", id: "late2"))
        #expect(await eventually { moved.live.contains { $0.topic == Self.availability("type1", "late2") } })
        #expect(!moved.live.contains { $0.topic == Self.availability("type1", "same") })
        await moved.stop()
        await recorder.stop()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func aWatchedDeviceReadsOfflineUntilHeardFromThenOnline() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let config = """
            [availability]
            publish = true

            [device_esp04]
            watchTimeOut = 60
            watchTopics = "home/esp04/sensors/#"
            """
        let daemon = try await Daemon(brokerURL: broker.url, config: config)
        // In its grace period, never heard from: unknown, which reads offline.
        #expect(await Self.retained(broker, Self.availability("device", "esp04"), becomes: "offline"))
        try await client.publish("home/esp04/sensors/temperature", "21.5")
        #expect(await Self.retained(broker, Self.availability("device", "esp04"), becomes: "online"))
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func aReloadPublishesNewlySelectedTypesAndClearsDeselectedOnes() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let directory = try TemporaryDirectory(prefix: "devstatusd-availability-reload")
        let daemon = try await Daemon(
            brokerURL: broker.url, config: Self.config(types: ["type1"]), directory: directory)
        try await client.publish(
            monTopic("type1", "a"), mon("Connect", "2020-05-01T10:00:00.000Z", id: "a"), retain: true)
        try await client.publish(
            monTopic("type2", "b"), mon("Connect", "2020-05-01T10:00:00.000Z", type: "type2", id: "b"), retain: true)
        #expect(await Self.retained(broker, Self.availability("type1", "a"), becomes: "online"))

        try Self.config(types: ["type2"]).write(
            toFile: directory.file("config.toml"), atomically: true, encoding: .utf8)
        kill(daemon.process.pid, SIGHUP)
        #expect(await Self.retained(broker, Self.availability("type2", "b"), becomes: "online"))
        #expect(await Self.retained(broker, Self.availability("type1", "a"), becomes: nil))
        // The config is cleared right after the value (one device's publications go out in order).
        #expect(
            await eventually(timeout: .seconds(15), poll: .milliseconds(100)) {
                (try? await retainedNow(broker, "homeassistant/#")).map { Set($0.keys) } == [
                    "homeassistant/binary_sensor/devstatusd_type2_b/config"
                ]
            })
        #expect(
            await eventually { daemon.log.contains("configuration reloaded applied=[availability]") }, "\(daemon.log)")
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}
