import Foundation
import MQTT
import TestSupport
import Testing

/// Presence conventions end to end: each project's documented payloads published to a real mosquitto, judged by
/// the real binary, served by every route, kept across a restart.
@Suite(.serialized) struct PresenceTests {
    struct Sample {
        let convention: String
        let topic: String
        let retained: Bool
        let bytes: [UInt8]
        var payload: String { String(decoding: bytes, as: UTF8.self) }
    }

    static let samples: [Sample] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/presence/samples.jsonl").path
        let text = try! String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let bytes =
                (object["payloadBase64"] as? String).map { Array(Data(base64Encoded: $0)!) }
                ?? Array((object["payload"] as! String).utf8)
            return Sample(
                convention: object["convention"] as! String, topic: object["topic"] as! String,
                retained: object["retained"] as! Bool, bytes: bytes)
        }
    }()

    /// The n-th sample of a convention (0-based), its EMQX topic moved off `$SYS`.
    static func sample(_ convention: String, _ index: Int) -> Sample {
        let found = samples.filter { $0.convention == convention }[index]
        return Sample(
            convention: found.convention,
            topic: found.topic.replacingOccurrences(of: "$SYS/brokers", with: Self.emqxPrefix),
            retained: found.retained, bytes: found.bytes)
    }

    static let emqxPrefix = "testsys/brokers"

    static let config = """
        [[presence]]
        preset = "tasmota"

        [[presence]]
        preset = "esphome"

        [[presence]]
        preset = "shelly"

        [[presence]]
        preset = "zigbee2mqtt"
        type = "z2m"

        [[presence]]
        preset = "homie"

        [[presence]]
        preset = "homie"
        prefix = "homie/5"
        type = "homie5"

        [[presence]]
        preset = "emqx"
        prefix = "\(emqxPrefix)"

        [[presence]]
        preset = "sparkplug"

        [[presence]]
        preset = "lwt"
        type = "sensor"
        topic = "devices/{id}/status"
        online = ["up"]
        offline = ["down"]
        sleeping = ["nap"]
        field = "state"
        """

    func status(_ daemon: Daemon, _ type: String, _ id: String) -> String? {
        let encoded = id.replacingOccurrences(of: "/", with: "%2F")
        return (try? daemon.json("/devices/\(type)/\(encoded)"))?["status"] as? String
    }

    func publish(_ client: MQTTClient, _ sample: Sample) async throws {
        try await client.publish(topic: sample.topic, payload: sample.bytes, qos: 1, retain: sample.retained)
    }

    @Test func judgesEachConventionsRetainedBirthAndServesItOnEveryRoute() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        for sample in [
            Self.sample("tasmota", 0), Self.sample("esphome", 0), Self.sample("shelly", 0),
            Self.sample("zigbee2mqtt", 0), Self.sample("zigbee2mqtt", 2), Self.sample("homie", 0),
            Self.sample("homie5", 0),
        ] {
            try await publish(client, sample)
        }
        try await client.publish("devices/s1/status", #"{"state":"up","battery":91}"#, retain: true)
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        // Ready means the retained replay is through: every status is known.
        #expect(status(daemon, "tasmota", "tasmota_5A1B2C") == "online")
        #expect(status(daemon, "esphome", "livingroom-sensor") == "online")
        #expect(status(daemon, "shelly", "shellyplug-s-C45BBE6B2A1F") == "online")
        #expect(status(daemon, "z2m", "kitchen/floor_light") == "online")
        #expect(status(daemon, "z2m", "0x00158d0001dc126a") == "offline")
        #expect(status(daemon, "homie", "super-car") == "online")
        #expect(status(daemon, "homie5", "weather-station") == "sleeping")
        #expect(status(daemon, "sensor", "s1") == "online")

        let view = try daemon.json("/devices/tasmota/tasmota_5A1B2C")
        #expect(view["source"] as? String == "tasmota" && view["statusPayload"] as? String == "Online")
        // The seed route answers an IBM-shaped object, the id with a `/` addressed as %2F.
        let seed = try daemon.json("/z2m/kitchen%2Ffloor_light")
        #expect(seed["ClientID"] as? String == "kitchen/floor_light" && seed["Action"] as? String == "Connect")
        #expect(seed["Source"] as? String == "zigbee2mqtt" && seed["Time"] is String)
        let asleep = try daemon.json("/homie5/weather-station")
        #expect(asleep["Action"] as? String == "Disconnect" && asleep["Reason"] as? String == "sleeping")
        let list = try daemon.json("/devices?limit=100")
        let counts = try #require(list["counts"] as? [String: Int])
        #expect(counts["sleeping"] == 1 && counts["online"] == 6 && counts["offline"] == 1)

        // Live: a Last Will, Homie's alert, a retained replay that agrees (no event) and one that disagrees.
        try await publish(client, Self.sample("tasmota", 1))
        try await publish(client, Self.sample("homie", 2))
        #expect(await eventually { status(daemon, "tasmota", "tasmota_5A1B2C") == "offline" })
        #expect(await eventually { (try? daemon.json("/devices/homie/super-car"))?["reason"] as? String == "alert" })
        let history = try daemon.json("/devices/tasmota/tasmota_5A1B2C/history")
        let transitions = try #require(history["transitions"] as? [[String: Any]])
        #expect(transitions.map { $0["to"] as? String } == ["offline", "online"])
        #expect(transitions.allSatisfy { $0["source"] as? String == "tasmota" })
        #expect((transitions.last?["reason"] as? String)?.contains("retained") == true)
        let z2mHistory = try daemon.json("/devices/z2m/kitchen%2Ffloor_light/history")
        #expect((z2mHistory["transitions"] as? [[String: Any]])?.count == 1)
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
        await broker.stop()
    }

    @Test func countsMalformedPayloadsOfEachKindAndNeverOverwritesAGoodStatus() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        let client = try await connectedClient(broker)
        let good: [Sample] = [
            Self.sample("tasmota", 0), Self.sample("esphome", 0), Self.sample("shelly", 0),
            Self.sample("zigbee2mqtt", 0), Self.sample("homie", 0), Self.sample("emqx", 0),
        ]
        for sample in good { try await publish(client, sample) }
        try await client.publish("devices/s1/status", #"{"state":"up"}"#)
        let events = try await EventStreamReader(port: daemon.port)
        #expect(await eventually { status(daemon, "emqx", "emqtt-8348fe27a87976ad4db3") == "online" })
        let bad: [(String, String)] = [
            ("tele/tasmota_5A1B2C/LWT", "online"), ("livingroom-sensor/status", "Offline"),
            ("shellies/shellyplug-s-C45BBE6B2A1F/online", "0"),
            ("zigbee2mqtt/kitchen/floor_light/availability", #"{"state":"offline""#),
            ("homie/super-car/$state", "gone"),
            ("\(Self.emqxPrefix)/n1/clients/emqtt-8348fe27a87976ad4db3/disconnected", #"{"clientid":"x"}"#),
            ("\(Self.emqxPrefix)/n1/clients/emqtt-8348fe27a87976ad4db3/disconnected", #"{"ts":"soon"}"#),
            ("devices/s1/status", #"{"state":"down"#), ("devices/s1/status", "down"),
        ]
        for (topic, payload) in bad { try await client.publish(topic, payload) }
        // An older EMQX disconnect is out of order; a sentinel published last ends the wait.
        try await client.publish(
            "\(Self.emqxPrefix)/n1/clients/emqtt-8348fe27a87976ad4db3/disconnected",
            #"{"clientid":"emqtt-8348fe27a87976ad4db3","ts":1625572200000,"reason":"tcp_closed"}"#)
        try await client.publish("devices/sentinel/status", #"{"state":"up"}"#)
        #expect(await eventually { status(daemon, "sensor", "sentinel") == "online" })
        for (type, id) in [
            ("tasmota", "tasmota_5A1B2C"), ("esphome", "livingroom-sensor"), ("shelly", "shellyplug-s-C45BBE6B2A1F"),
            ("z2m", "kitchen/floor_light"), ("homie", "super-car"), ("emqx", "emqtt-8348fe27a87976ad4db3"),
            ("sensor", "s1"),
        ] {
            #expect(status(daemon, type, id) == "online", "\(type)/\(id)")
        }
        let metrics = try daemon.get("/metrics").text
        for source in ["tasmota", "esphome", "shelly", "zigbee2mqtt", "homie"] {
            #expect(metrics.contains(#"devstatusd_source_messages_total{source="\#(source)",outcome="malformed"} 1"#))
        }
        #expect(metrics.contains(#"devstatusd_source_messages_total{source="emqx",outcome="malformed"} 2"#))
        #expect(metrics.contains(#"devstatusd_source_messages_total{source="lwt",outcome="malformed"} 2"#))
        #expect(metrics.contains(#"devstatusd_source_messages_total{source="emqx",outcome="out_of_order"} 1"#))
        // Then the real disconnect, with its ts: offline, reason kept, announced on /events.
        try await publish(client, Self.sample("emqx", 1))
        try await events.read(until: #""to":"offline""#)
        let event = try #require(events.events.last)
        #expect(event.data.contains(#""source":"emqx""#) && event.data.contains(#""reason":"tcp_closed""#))
        let seed = try daemon.json("/emqx/emqtt-8348fe27a87976ad4db3")
        #expect(seed["Action"] as? String == "Disconnect" && seed["Time"] as? String == "2021-07-06T11:50:13.873Z")
        events.close()
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func deliversOperationsWhenADeviceComesOnlineThroughAConvention() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        let client = try await connectedClient(broker)
        try await client.subscribe("cmnd/kitchen/#", qos: 1)
        let received = Task { () -> String? in
            for await batch in client.messageBatches {
                if let message = batch.first(where: { $0.topic == "cmnd/kitchen/POWER" }) {
                    return String(decoding: message.payload, as: UTF8.self)
                }
            }
            return nil
        }
        let created = try httpRequest(
            port: daemon.port, method: "POST", path: "/devices/z2m/kitchen%2Ffloor_light/operations",
            headers: [("Content-Type", "application/json")],
            body: Array(#"{"topic":"cmnd/kitchen/POWER","payload":"ON"}"#.utf8))
        #expect(created.status == 201)
        try await publish(client, Self.sample("zigbee2mqtt", 0))
        #expect(await received.value == "ON")
        #expect(
            await eventually {
                let list = try? daemon.json("/devices/z2m/kitchen%2Ffloor_light/operations")
                return (list?["operations"] as? [[String: Any]])?.first?["status"] as? String == "CONFIRMED"
            })
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func keepsEveryConventionsStatusAcrossARestart() async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-presence")
        do {
            let broker = try await MosquittoBroker()
            let daemon = try await Daemon(brokerURL: broker.url, config: Self.config, directory: directory)
            let client = try await connectedClient(broker)
            try await publish(client, Self.sample("homie5", 0))
            try await publish(client, Self.sample("zigbee2mqtt", 1))
            try await publish(client, Self.sample("shelly", 0))
            try await client.publish("devices/s1/status", #"{"state":"up"}"#)
            #expect(await eventually { status(daemon, "sensor", "s1") == "online" })
            #expect(status(daemon, "homie5", "weather-station") == "sleeping")
            await client.stop()
            #expect(await daemon.stop() == .exited(0))
            await broker.stop()
        }
        // A new broker without retained messages: what is served comes from the store.
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config, directory: directory)
        #expect(status(daemon, "homie5", "weather-station") == "sleeping")
        #expect(status(daemon, "z2m", "kitchen/floor_light") == "offline")
        #expect(status(daemon, "shelly", "shellyplug-s-C45BBE6B2A1F") == "online")
        #expect(status(daemon, "sensor", "s1") == "online")
        #expect((try daemon.json("/devices/shelly/shellyplug-s-C45BBE6B2A1F"))["source"] as? String == "shelly")
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func followsSparkplugBirthsAndDeathsGuardedByBdSeq() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        let client = try await connectedClient(broker)
        let node = ("Plant1", "Edge1")
        let device = ("Plant1", "Edge1/Sensor1")
        try await publish(client, Self.sample("sparkplug", 0))  // NBIRTH bdSeq 0
        try await publish(client, Self.sample("sparkplug", 4))  // DBIRTH
        #expect(await eventually { status(daemon, device.0, device.1) == "online" })
        #expect(status(daemon, node.0, node.1) == "online")
        let seed = try daemon.json("/Plant1/Edge1%2FSensor1")
        #expect(seed["Action"] as? String == "Connect" && seed["Source"] as? String == "sparkplug")
        #expect(seed["Time"] as? String == "2017-02-03T17:55:02.222Z")

        // The node reconnects (bdSeq 1); the Last Will of its former session (bdSeq 0) arrives late: stale.
        try await publish(client, Self.sample("sparkplug", 2))
        try await publish(client, Self.sample("sparkplug", 1))
        try await publish(client, Self.sample("sparkplug-malformed", 0))  // an NDEATH without bdSeq
        try await client.publish("devices/sentinel1/status", #"{"state":"up"}"#)
        #expect(await eventually { status(daemon, "sensor", "sentinel1") == "online" })
        #expect(status(daemon, node.0, node.1) == "online")
        #expect(status(daemon, device.0, device.1) == "online")
        let metrics = try daemon.get("/metrics").text
        #expect(metrics.contains(#"devstatusd_source_messages_total{source="sparkplug",outcome="stale"} 1"#))
        #expect(metrics.contains(#"devstatusd_source_messages_total{source="sparkplug",outcome="malformed"} 1"#))

        // The current session's death (bdSeq 1, as an Int64): the node and its device go offline.
        try await publish(client, Self.sample("sparkplug", 3))
        #expect(await eventually { status(daemon, device.0, device.1) == "offline" })
        #expect(status(daemon, node.0, node.1) == "offline")
        let deviceView = try daemon.json("/devices/Plant1/Edge1%2FSensor1")
        #expect((deviceView["reason"] as? String)?.contains("Edge1") == true)

        // A rebirth brings the node back, not its device: that waits for its DBIRTH.
        try await publish(client, Self.sample("sparkplug", 0))
        try await client.publish("devices/sentinel2/status", #"{"state":"up"}"#)
        #expect(await eventually { status(daemon, "sensor", "sentinel2") == "online" })
        #expect(status(daemon, node.0, node.1) == "online")
        #expect(status(daemon, device.0, device.1) == "offline")
        try await publish(client, Self.sample("sparkplug", 4))
        #expect(await eventually { status(daemon, device.0, device.1) == "online" })
        try await publish(client, Self.sample("sparkplug", 5))  // DDEATH
        #expect(await eventually { status(daemon, device.0, device.1) == "offline" })
        let history = try daemon.json("/devices/Plant1/Edge1%2FSensor1/history")
        #expect(
            (history["transitions"] as? [[String: Any]])?.map { $0["to"] as? String }
                == ["offline", "online", "offline", "online"])
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}
