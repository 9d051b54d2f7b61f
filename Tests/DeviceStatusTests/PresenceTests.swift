import Logging
import MQTT
import Storage
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

@Suite struct OrderingTests {
    @Test func timestampOrderingIgnoresOlderAndLetsOfflineWinTies() {
        #expect(TimestampOrdering.decide(stored: nil, incoming: .online, time: 5) == .accept)
        #expect(TimestampOrdering.decide(stored: (.online, 5), incoming: .offline, time: 4) == .ignoreOutOfOrder)
        #expect(TimestampOrdering.decide(stored: (.online, 5), incoming: .offline, time: 5) == .accept)
        #expect(TimestampOrdering.decide(stored: (.offline, 5), incoming: .online, time: 5) == .ignoreTieLost)
        #expect(TimestampOrdering.decide(stored: (.offline, 5), incoming: .offline, time: 5) == .unchanged)
        #expect(TimestampOrdering.decide(stored: (.offline, 5), incoming: .online, time: 6) == .accept)
    }

    @Test func arrivalOrderingChangesNothingWhenTheStatusAgrees() {
        #expect(ArrivalOrdering.decide(stored: .online, incoming: .online) == .unchanged)
        #expect(ArrivalOrdering.decide(stored: .online, incoming: .offline) == .accept)
        #expect(ArrivalOrdering.decide(stored: nil, incoming: .sleeping) == .accept)
        #expect(ArrivalOrdering.reason("Online", retained: true)?.contains("retained") == true)
        #expect(ArrivalOrdering.reason("Online", retained: false) == "Online")
        #expect(ArrivalOrdering.decide(stored: (.online, "ready"), incoming: .online, reason: "alert") == .restate)
        #expect(
            ArrivalOrdering.decide(stored: (.online, "ready (retained)"), incoming: .online, reason: "ready")
                == .unchanged)
        #expect(ArrivalOrdering.decide(stored: (.online, "ready"), incoming: .offline, reason: "lost") == .accept)
    }

    @Test func birthSequenceOrderingIgnoresADeathOfAnEarlierBirth() {
        let born = StoredPresence(source: .sparkplug, status: .online, time: 0, sequence: 7)
        #expect(BirthSequenceOrdering.decide(stored: born, incoming: .offline, sequence: 6) == .ignoreStale)
        #expect(BirthSequenceOrdering.decide(stored: born, incoming: .offline, sequence: 7) == .accept)
        #expect(BirthSequenceOrdering.decide(stored: nil, incoming: .offline, sequence: 7) == .ignoreStale)
        #expect(BirthSequenceOrdering.decide(stored: born, incoming: .online, sequence: 8) == .accept)
        #expect(BirthSequenceOrdering.decide(stored: born, incoming: .online, sequence: 7) == .unchanged)
        // Device births and deaths carry no sequence: arrival order.
        #expect(BirthSequenceOrdering.decide(stored: born, incoming: .offline, sequence: nil) == .accept)
    }
}

@Suite struct StatusRecordLayoutTests {
    @Test func readsRecordsWrittenByTheFormerLayout() {
        // action 2 (Disconnect), Time 1_000 ns little endian, then the payload.
        let legacy: [UInt8] = [2, 0xE8, 0x03, 0, 0, 0, 0, 0, 0] + Array("{\"a\":1}".utf8)
        let record = StatusRecord(encoded: legacy)
        #expect(record?.status == .offline && record?.source == .mon && record?.time == 1000)
        #expect(record.map { Array($0.payload) } == Array("{\"a\":1}".utf8))
        #expect(record?.reason == nil && record?.action == .disconnect)
    }

    @Test func roundTripsSourceStatusSequenceAndReason() throws {
        let record = StatusRecord(
            source: .homie, status: .sleeping, time: -5, sequence: 42, reason: "sleeping (retained)",
            payload: Array("sleeping".utf8))
        let decoded = try #require(StatusRecord(encoded: record.encoded))
        #expect(decoded.source == .homie && decoded.status == .sleeping && decoded.time == -5)
        #expect(decoded.sequence == 42 && decoded.reason == "sleeping (retained)")
        #expect(Array(decoded.payload) == Array("sleeping".utf8))
        // A payload without contiguous storage is written the same way.
        let lazy = StatusRecord(
            source: .homie, status: .sleeping, time: -5, sequence: 42, reason: "sleeping (retained)",
            payload: Array("sleeping".utf8).lazy.map { $0 })
        #expect(lazy.encoded == record.encoded)
        // A reason over 255 bytes is cut by characters, and its length byte says what was kept.
        let long = StatusRecord(
            source: .lwt, status: .online, time: 1, reason: String(repeating: "é", count: 200), payload: [7])
        let cut = try #require(StatusRecord(encoded: long.encoded))
        #expect(cut.reason == String(repeating: "é", count: 127) && Array(cut.payload) == [7])
        #expect(StatusRecord(encoded: [0x85, 1] + Array(repeating: 0, count: 20)) == nil)
        #expect(StatusRecord(encoded: [0x81, 1] + Array(repeating: 0, count: 16) + [9]) == nil)
    }
}

@Suite struct PresenceDecoderTests {
    func decoder(_ settings: PresenceSettings) -> any PresenceDecoder { settings.makeDecoder() }

    func observe(_ decoder: any PresenceDecoder, _ topic: String, _ payload: String) -> Decoded? {
        guard let match = decoder.match(topic: topic) else { return nil }
        return decoder.decode(match, payload: Array(payload.utf8), retained: false, context: DecodeContext(now: 0))
    }

    func status(_ decoded: Decoded?) -> PresenceStatus? {
        if case .observation(let observation)? = decoded, case .set(let status) = observation.status { return status }
        return nil
    }

    @Test func tasmotaReadsItsLastWill() {
        let tasmota = decoder(PresenceSettings(preset: .tasmota))
        #expect(tasmota.filters.map(\.text) == ["tele/+/LWT"])
        #expect(tasmota.match(topic: "tele/plug1/LWT")?.key == DeviceKey(type: "tasmota", id: "plug1"))
        #expect(status(observe(tasmota, "tele/plug1/LWT", "Online")) == .online)
        #expect(status(observe(tasmota, "tele/plug1/LWT", "Offline")) == .offline)
        guard case .malformed? = observe(tasmota, "tele/plug1/LWT", "online") else {
            Issue.record("a payload of another case is not Tasmota's")
            return
        }
        #expect(tasmota.match(topic: "tele/plug1/STATE") == nil)
    }

    /// A topic level (a device name) may start with a combining mark, which makes `/` and the mark one Character:
    /// levels are split at every `/` all the same, and the key's type and id read back (the fuzzer's input stopped the
    /// daemon at `DeviceKey.type` when they were looked for as Characters).
    @Test func namesStartingWithACombiningMarkAreLevelsOfTheirOwn() {
        let esphome = decoder(PresenceSettings(preset: .esphome))
        let key = esphome.match(topic: "\u{0613}iv/status")?.key
        #expect(key == DeviceKey(type: "esphome", id: "\u{0613}iv"))
        #expect(key?.type == "esphome" && key?.id == "\u{0613}iv")
        let z2m = decoder(PresenceSettings(preset: .zigbee2mqtt))
        #expect(z2m.match(topic: "zigbee2mqtt/room/\u{301}lamp/availability")?.key.id == "room/\u{301}lamp")
        let tasmota = decoder(PresenceSettings(preset: .tasmota))
        #expect(tasmota.match(topic: "tele/\u{301}plug/LWT")?.key.id == "\u{301}plug")
        let stored = DeviceKey(storedPath: "t/\u{301}x/y")
        #expect(stored?.type == "t" && stored?.id == "\u{301}x/y")
        #expect(DeviceKey(path: "t/\u{301}x")?.id == "\u{301}x")
        #expect(DeviceKey(path: "t/\u{301}x/y") == nil)
        // The same through a `mon` status topic.
        let mon = try? StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))
        let monKey = mon?.device(inTopic: "iot-2/type/t/id/\u{301}x/mon")
        #expect(monKey?.type == "t" && monKey?.id == "\u{301}x")
    }

    @Test func zigbee2mqttNamesSpanSeveralLevelsAndPayloadsMayBeJSON() {
        let z2m = decoder(PresenceSettings(preset: .zigbee2mqtt))
        #expect(z2m.filters.count == LevelTemplateDecoder.maximumNameLevels)
        #expect(z2m.match(topic: "zigbee2mqtt/living room/lamp/availability")?.key.id == "living room/lamp")
        #expect(z2m.match(topic: "zigbee2mqtt/lamp/availability")?.key.id == "lamp")
        #expect(z2m.match(topic: "zigbee2mqtt/availability") == nil)
        #expect(z2m.match(topic: "zigbee2mqtt//lamp/availability") == nil)
        #expect(status(observe(z2m, "zigbee2mqtt/lamp/availability", #"{"state":"offline"}"#)) == .offline)
        #expect(status(observe(z2m, "zigbee2mqtt/lamp/availability", "online")) == .online)
        guard case .malformed? = observe(z2m, "zigbee2mqtt/lamp/availability", #"{"state":"online","#) else {
            Issue.record("broken JSON is malformed")
            return
        }
    }

    @Test func homieMapsItsLifecycleStates() {
        let homie = decoder(PresenceSettings(preset: .homie))
        #expect(status(observe(homie, "homie/dev/$state", "ready")) == .online)
        #expect(status(observe(homie, "homie/dev/$state", "init")) == .online)
        #expect(status(observe(homie, "homie/dev/$state", "lost")) == .offline)
        #expect(status(observe(homie, "homie/dev/$state", "sleeping")) == .sleeping)
        guard case .observation(let alert)? = observe(homie, "homie/dev/$state", "alert") else {
            Issue.record("alert is a Homie 3/4 state")
            return
        }
        #expect(alert.status == .set(.online) && alert.reason == "alert")
        let homie5 = decoder(PresenceSettings(preset: .homie, type: "h5", prefix: "homie/5"))
        #expect(homie5.match(topic: "homie/5/dev/$state")?.key == DeviceKey(type: "h5", id: "dev"))
        guard case .malformed? = observe(homie5, "homie/5/dev/$state", "alert") else {
            Issue.record("Homie 5 has no alert state")
            return
        }
    }

    @Test func genericLWTReadsAJSONField() {
        let lwt = decoder(
            PresenceSettings(
                preset: .lwt, type: "sensor", topic: "site/+/{id}/status", online: ["1", "up"], offline: ["0"],
                sleeping: ["zz"], field: "state"))
        #expect(lwt.match(topic: "site/a/s1/status")?.key == DeviceKey(type: "sensor", id: "s1"))
        #expect(status(observe(lwt, "site/a/s1/status", #"{"state":1}"#)) == .online)
        #expect(status(observe(lwt, "site/a/s1/status", #"{"state":"zz"}"#)) == .sleeping)
        guard case .malformed? = observe(lwt, "site/a/s1/status", #"{"other":1}"#) else {
            Issue.record("a missing field is malformed")
            return
        }
    }

    @Test func emqxOrdersByTsAndKeepsTheReason() {
        let emqx = EMQXDecoder(type: "emqx", prefix: "sys/brokers")
        let context = DecodeContext(now: 0, clockSkew: ClockSkewLimit(seconds: 3600))
        let match = emqx.match(topic: "sys/brokers/emqx@127.0.0.1/clients/c1/disconnected")
        #expect(match?.key == DeviceKey(type: "emqx", id: "c1"))
        let decoded = emqx.decode(
            match!, payload: Array(#"{"clientid":"c1","reason":"keepalive_timeout","ts":1000}"#.utf8), retained: false,
            context: context)
        guard case .observation(let observation) = decoded else {
            Issue.record("expected an observation")
            return
        }
        #expect(observation.status == .set(.offline) && observation.sourceTime == 1_000_000_000)
        #expect(observation.reason == "keepalive_timeout")
        for bad in [#"{"clientid":"c1"}"#, #"{"ts":"1"}"#, #"{"ts":99999999999999999}"#, #"{"ts":3600001000}"#] {
            guard case .malformed = emqx.decode(match!, payload: Array(bad.utf8), retained: false, context: context)
            else {
                Issue.record("\(bad) should be malformed")
                continue
            }
        }
    }
}

@Suite struct PresenceRegistryTests {
    func makeRegistry(_ directory: TemporaryDirectory, events: DeviceEvents? = nil) throws -> (StatusRegistry, LevelDB)
    {
        let store = try LevelDB(path: directory.file("db"))
        let registry = StatusRegistry(
            store: store, table: DeviceTable(),
            patterns: [try StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))],
            presence: [
                PresenceSettings(preset: .tasmota).makeDecoder(), PresenceSettings(preset: .homie).makeDecoder(),
            ],
            organization: "", events: events, logger: Logger(label: "test"))
        return (registry, store)
    }

    func message(_ topic: String, _ payload: String, retain: Bool = false) -> MQTTMessage {
        MQTTMessage(topic: topic, payload: Array(payload.utf8), qos: 0, retain: retain)
    }

    @Test func aRetainedValueThatAgreesChangesNothingAndOneThatDisagreesIsMarked() async throws {
        let directory = try TemporaryDirectory()
        let events = DeviceEvents()
        let seen = Mutex<[DeviceEvent]>([])
        events.observe { event in seen.withLock { $0.append(event) } }
        let (registry, _) = try makeRegistry(directory, events: events)
        await registry.ingest([message("tele/plug/LWT", "Online")])
        let since = registry.table.record(forPath: "tasmota/plug")?.time
        await registry.ingest([message("tele/plug/LWT", "Online", retain: true)])
        #expect(registry.table.record(forPath: "tasmota/plug")?.time == since)
        #expect(seen.withLock { $0.count } == 1)
        await registry.ingest([message("tele/plug/LWT", "Offline", retain: true)])
        let last = try #require(seen.withLock { $0.last })
        #expect(last.kind == .transition(from: .online, to: .offline) && last.source == "tasmota")
        #expect(last.reason?.contains("retained") == true)
        let counters = await registry.counters
        #expect(counters.count(source: .tasmota, outcome: "unchanged") == 1)
        #expect(counters.count(source: .tasmota, outcome: "accepted") == 2)
    }

    @Test func anUnknownPayloadIsCountedAndNeverOverwritesAGoodStatus() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        await registry.ingest([message("homie/h1/$state", "ready"), message("homie/h1/$state", "READY?")])
        #expect(registry.table.record(forPath: "homie/h1")?.status == .online)
        #expect(await registry.counters.count(source: .homie, outcome: "malformed") == 1)
    }

    @Test func anEmptyPayloadDeletesOnlyThatSourcesStatus() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        await registry.ingest([message("homie/h1/$state", "sleeping")])
        #expect(registry.table.record(forPath: "homie/h1")?.status == .sleeping)
        await registry.ingest([message("homie/h1/$state", "")])
        #expect(registry.table.record(forPath: "homie/h1") == nil)
    }

    @Test func presenceStatusesSurviveARestartBesideFormerMonRecords() async throws {
        let directory = try TemporaryDirectory()
        do {
            let (registry, store) = try makeRegistry(directory)
            await registry.ingest([message("homie/h1/$state", "sleeping"), message("tele/p/LWT", "Online")])
            // A record as the former version wrote it (action 1 = Connect, Time, payload).
            try store.put(Array("s/type1/old".utf8), [1, 0, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8))
            store.close()
        }
        let (registry, _) = try makeRegistry(directory)
        #expect(try await registry.load() == 3)
        #expect(registry.table.record(forPath: "homie/h1")?.status == .sleeping)
        #expect(registry.table.record(forPath: "tasmota/p")?.source == .tasmota)
        #expect(registry.table.record(forPath: "type1/old")?.status == .online)
        let body = String(decoding: SeedLookup.body(type: "homie", id: "h1", table: registry.table), as: UTF8.self)
        #expect(body.contains(#""Action":"Disconnect""#) && body.contains(#""Reason":"sleeping""#))
        #expect(body.contains(#""ClientID":"h1""#) && body.contains(#""Source":"homie""#))
    }
}

@Suite struct PresenceConfigTests {
    func parse(_ text: String) -> Result<DaemonConfig, ConfigErrors> {
        ConfigLoader.parse(text: text, fileName: "config.toml")
    }

    func errors(_ text: String) -> [String] {
        if case .failure(let errors) = parse(text) { return errors.errors.map(\.description) }
        Issue.record("expected errors")
        return []
    }

    @Test func readsPresenceBlocksWithTheirDefaults() throws {
        let config = try parse(
            """
            [[presence]]
            preset = "tasmota"

            [[presence]]
            preset = "lwt"
            type = "sensor"
            topic = "devices/{id}/status"
            online = ["up"]
            offline = ["down"]
            field = "state"
            """
        ).get()
        #expect(config.presence.count == 2)
        #expect(config.presence[0] == PresenceSettings(preset: .tasmota))
        #expect(config.presence[0].effectivePrefix == "tele" && config.presence[0].effectiveType == "tasmota")
        #expect(config.presence[1].topic == "devices/{id}/status" && config.presence[1].field == "state")
    }

    @Test func namesKeyAndLineOfEveryPresenceMistake() {
        let lines = errors(
            """
            [[presence]]
            preset = "tasmot"

            [[presence]]
            preset = "lwt"
            type = "x"
            topic = "devices/status"
            online = ["on"]
            offline = ["off"]

            [[presence]]
            preset = "esphome"
            prefix = "esp"

            [[presence]]
            preset = "shelly"
            online = ["yes"]

            [[presence]]
            preset = "homie"

            [[presence]]
            preset = "homie"
            prefix = "homie/5"
            """)
        #expect(lines.contains { $0.hasPrefix("config.toml:2: [presence#1] preset: unknown preset") })
        #expect(lines.contains { $0.hasPrefix("config.toml:7: [presence#2] topic: must contain {id}") })
        #expect(lines.contains { $0.hasPrefix("config.toml:13: [presence#3] prefix:") })
        #expect(lines.contains { $0.hasPrefix("config.toml:17: [presence#4] online: only") })
        #expect(lines.contains { $0.hasPrefix("config.toml:22: [presence#6] type: type 'homie' is already given") })
        #expect(lines.count == 5)
    }
}

@Suite struct SparkplugDecoderTests {
    let decoder = SparkplugDecoder(type: nil, prefix: "spBv1.0")
    let context = DecodeContext(now: 1_700_000_000_000_000_000, clockSkew: ClockSkewLimit(seconds: 3600))

    func payload(bdSeq: UInt64?, datatype: UInt32 = 8, timestamp: UInt64? = 1_486_144_502_122) throws -> [UInt8] {
        var message = Devstatusd_Sparkplug_Payload()
        if let timestamp { message.timestamp = timestamp }
        if let bdSeq {
            var metric = Devstatusd_Sparkplug_Payload.Metric()
            metric.name = "bdSeq"
            metric.datatype = datatype
            metric.longValue = bdSeq
            message.metrics = [metric]
        }
        return try message.serializedBytes()
    }

    func decode(_ topic: String, _ bytes: [UInt8]) -> Decoded? {
        decoder.match(topic: topic).map { decoder.decode($0, payload: bytes, retained: false, context: context) }
    }

    @Test func namesNodesAndDevicesFromTheTopic() {
        #expect(
            decoder.filters.map(\.text).sorted() == [
                "spBv1.0/+/DBIRTH/+/+", "spBv1.0/+/DDEATH/+/+", "spBv1.0/+/NBIRTH/+", "spBv1.0/+/NDEATH/+",
            ])
        #expect(decoder.match(topic: "spBv1.0/G1/NBIRTH/E1")?.key == DeviceKey(type: "G1", id: "E1"))
        #expect(decoder.match(topic: "spBv1.0/G1/DDEATH/E1/D1")?.key == DeviceKey(type: "G1", id: "E1/D1"))
        #expect(decoder.match(topic: "spBv1.0/G1/NDATA/E1") == nil)
        #expect(decoder.match(topic: "spBv1.0/G1/NBIRTH/E1/D1") == nil)
        let typed = SparkplugDecoder(type: "plant", prefix: "spBv1.0")
        #expect(typed.match(topic: "spBv1.0/G1/NBIRTH/E1")?.key == DeviceKey(type: "plant", id: "E1"))
    }

    @Test func readsBdSeqAsUInt64OrInt64AndRefusesADeathWithoutIt() throws {
        guard case .observation(let birth)? = decode("spBv1.0/G/NBIRTH/E", try payload(bdSeq: 7)) else {
            Issue.record("expected an observation")
            return
        }
        #expect(birth.sequence == 7 && birth.status == .set(.online) && !birth.cascades)
        #expect(birth.sourceTime == 1_486_144_502_122_000_000)
        guard case .observation(let death)? = decode("spBv1.0/G/NDEATH/E", try payload(bdSeq: 7, datatype: 4)) else {
            Issue.record("expected an observation")
            return
        }
        #expect(death.sequence == 7 && death.status == .set(.offline) && death.cascades)
        guard case .malformed? = decode("spBv1.0/G/NDEATH/E", try payload(bdSeq: nil)) else {
            Issue.record("an NDEATH without bdSeq is malformed")
            return
        }
        guard case .malformed? = decode("spBv1.0/G/NBIRTH/E", [0xFF, 0xFF, 0xFF]) else {
            Issue.record("bytes that are no protobuf are malformed")
            return
        }
        // A timestamp far in the future (beyond maxClockSkew), or past what nanoseconds hold.
        for timestamp: UInt64 in [1_800_000_000_000, UInt64.max] {
            guard case .malformed? = decode("spBv1.0/G/NBIRTH/E", try payload(bdSeq: 1, timestamp: timestamp)) else {
                Issue.record("timestamp \(timestamp) should be malformed")
                continue
            }
        }
        // Device messages need no bdSeq.
        guard case .observation(let device)? = decode("spBv1.0/G/DBIRTH/E/D", try payload(bdSeq: nil)) else {
            Issue.record("expected an observation")
            return
        }
        #expect(device.sequence == nil && device.key.id == "E/D")
    }

    @Test func aNodeDeathTakesItsDevicesOfflineAndARebirthDoesNotBringThemBack() async throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let registry = StatusRegistry(
            store: store, table: DeviceTable(), patterns: [], presence: [decoder], organization: "",
            logger: Logger(label: "test"))
        func message(_ topic: String, _ bytes: [UInt8]) -> MQTTMessage {
            MQTTMessage(topic: topic, payload: bytes, qos: 0, retain: false)
        }
        await registry.ingest([
            message("spBv1.0/G/NBIRTH/E", try payload(bdSeq: 1)),
            message("spBv1.0/G/DBIRTH/E/D", try payload(bdSeq: nil)),
            message("spBv1.0/G/DBIRTH/E2/D", try payload(bdSeq: nil)),
        ])
        await registry.ingest([message("spBv1.0/G/NDEATH/E", try payload(bdSeq: 0))])
        #expect(registry.table.record(forPath: "G/E/D")?.status == .online)
        #expect(await registry.counters.count(source: .sparkplug, outcome: "stale") == 1)
        await registry.ingest([message("spBv1.0/G/NDEATH/E", try payload(bdSeq: 1))])
        #expect(registry.table.record(forPath: "G/E")?.status == .offline)
        #expect(registry.table.record(forPath: "G/E/D")?.status == .offline)
        #expect(registry.table.record(forPath: "G/E2/D")?.status == .online)
        await registry.ingest([message("spBv1.0/G/NBIRTH/E", try payload(bdSeq: 2))])
        #expect(registry.table.record(forPath: "G/E")?.status == .online)
        #expect(registry.table.record(forPath: "G/E/D")?.status == .offline)
    }
}
