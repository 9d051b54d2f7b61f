import Logging
import MQTT
import Storage
import TestSupport
import Testing

@testable import DeviceStatus

@Suite struct StatusRegistryTests {
    let pattern = try! StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))

    func makeRegistry(_ directory: TemporaryDirectory, organization: String = "") throws -> (StatusRegistry, LevelDB) {
        let store = try LevelDB(path: directory.file("db"))
        let registry = StatusRegistry(
            store: store, table: DeviceTable(), patterns: [pattern], organization: organization,
            logger: Logger(label: "test"))
        return (registry, store)
    }

    func message(_ id: String, _ payload: [UInt8], retain: Bool = false) -> MQTTMessage {
        MQTTMessage(topic: "iot-2/type/type1/id/\(id)/mon", payload: payload, qos: 0, retain: retain)
    }

    @Test func appliesTheSamplesAndServesThemAsReceived() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        let samples = try Fixtures.monSamples()
        await registry.ingest(samples)
        let table = registry.table
        // ps1: the live Disconnect is newer than the retained Connect.
        #expect(table.record(forPath: "type1/ps1")?.action == .disconnect)
        #expect(table.record(forPath: "type1/ps1").map { Array($0.payload) } == samples[1].payload)
        #expect(table.record(forPath: "type2/ps2").map { Array($0.payload) } == samples[2].payload)
        // psbob: a retained CloseCode 288 Disconnect is accepted.
        #expect(table.record(forPath: "pstype/psbob")?.action == .disconnect)
        #expect(table.organizationForUnknownDevices == "7gnple")
        let counters = await registry.counters
        #expect(counters.accepted == 4 && counters.malformed == 0)
    }

    @Test func judgesSeveralMessagesForOneDeviceInOneBatchInOrder() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        let connect = Fixtures.mon("Connect", time: "2020-01-01T00:00:02.000Z")
        await registry.ingest([
            message("dev1", connect),
            message("dev1", Fixtures.mon("Disconnect", time: "2020-01-01T00:00:01.000Z")),
            message("dev1", Fixtures.mon("Disconnect", time: "2020-01-01T00:00:03.000Z", closeCode: 288)),
        ])
        #expect(registry.table.record(forPath: "type1/dev1").map { Array($0.payload) } == connect)
        let counters = await registry.counters
        #expect(counters.accepted == 1 && counters.outOfOrder == 1 && counters.clientIDReused == 1)
    }

    @Test func countsAndSkipsMalformedPayloadsAndGoesOn() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        let good = Fixtures.mon("Connect", time: "2020-01-01T00:00:02.000Z")
        await registry.ingest([
            message("dev1", Array("{oops".utf8)), message("dev2", Array("[]".utf8)), message("dev3", good),
        ])
        let counters = await registry.counters
        #expect(counters.malformed == 2 && counters.accepted == 1)
        #expect(registry.table.record(forPath: "type1/dev3") != nil)
        #expect(registry.table.count == 1)
    }

    @Test func deletesOnAnEmptyPayload() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory)
        await registry.ingest([message("dev1", Fixtures.mon("Connect", time: "2020-01-01T00:00:02.000Z"), retain: true)]
        )
        #expect(registry.table.count == 1)
        await registry.ingest([message("dev1", [], retain: true)])
        #expect(registry.table.count == 0)
    }

    @Test func storesTheDeviceCountWithEveryBatchWhileEarlierBatchesAreInFlight() async throws {
        let directory = try TemporaryDirectory()
        let (registry, store) = try makeRegistry(directory)
        func stored() throws -> Int? {
            try store.get(StatusRegistry.countKey).flatMap { Int(String(decoding: $0, as: UTF8.self)) }
        }
        let connect = { (second: Int) in Fixtures.mon("Connect", time: "2020-01-01T00:00:0\(second).000Z") }
        // Handed over without waiting: each batch is judged against the ones still being stored.
        await registry.consumeBatch([
            message("a", connect(1)), message("b", connect(1)), message("c", connect(1)),
            message("a", Fixtures.mon("Disconnect", time: "2020-01-01T00:00:02.000Z")),
        ])
        await registry.consumeBatch([
            message("b", []), message("d", connect(1)), message("d", []), message("e", connect(1)),
        ])
        await registry.consumeBatch([message("a", []), message("z", [])])
        await registry.drain()
        #expect(registry.table.count == 2)
        #expect(try stored() == 2)
        await registry.ingest([message("f", connect(1)), message("c", connect(2))])
        #expect(try stored() == 3)
    }

    @Test func persistsEveryAcceptedChangeAcrossARestart() async throws {
        let directory = try TemporaryDirectory()
        let connect = Fixtures.mon("Connect", time: "2020-01-01T00:00:02.000Z")
        do {
            let (registry, store) = try makeRegistry(directory)
            await registry.ingest([
                message("keep", connect), message("drop", connect),
                message(
                    "other", Fixtures.mon("Connect", time: "2020-01-01T00:00:02.000Z", clientID: "d:acme:type1:other")),
            ])
            await registry.ingest([message("drop", [])])
            store.close()
        }
        let (registry, _) = try makeRegistry(directory)
        #expect(try await registry.load() == 2)
        #expect(registry.table.record(forPath: "type1/keep").map { Array($0.payload) } == connect)
        #expect(registry.table.record(forPath: "type1/drop") == nil)
        #expect(registry.table.organizationForUnknownDevices == "acme")
    }

    @Test func aConfiguredOrganizationWinsOverTheLearnedOne() async throws {
        let directory = try TemporaryDirectory()
        let (registry, _) = try makeRegistry(directory, organization: "fixed")
        await registry.ingest(try Fixtures.monSamples())
        #expect(registry.table.organizationForUnknownDevices == "fixed")
        let body = String(decoding: SeedLookup.body(type: "t", id: "x", table: registry.table), as: UTF8.self)
        #expect(body == #"{"ClientID":"d:fixed:t:x","Action":"Never Connected"}"#)
    }
}
