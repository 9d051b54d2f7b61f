import Logging
import MQTT
import Storage
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// `OperationDelivery` over a real LevelDB (and, for delivery, a real mosquitto): durable creation, cancellation,
/// start-up recovery, and sending in order when a device comes online.
@Suite(.serialized) struct OperationDeliveryTests {
    let lamp = DeviceKey(type: "lamp", id: "l1")

    /// Devices the test declares online.
    final class OnlineSet: Sendable {
        private let devices = Mutex<Set<DeviceKey>>([])
        func set(_ device: DeviceKey, online: Bool) {
            devices.withLock { devices in
                if online { devices.insert(device) } else { devices.remove(device) }
            }
        }
        func contains(_ device: DeviceKey) -> Bool { devices.withLock { $0.contains(device) } }
    }

    func makeDelivery(
        _ store: LevelDB, online: OnlineSet = OnlineSet(), events: DeviceEvents? = nil,
        settings: OperationSettings = .init()
    ) async throws -> OperationDelivery {
        let delivery = OperationDelivery(
            store: store, settings: settings, events: events, isOnline: { online.contains($0) },
            logger: Logger(label: "test"))
        try await delivery.load()
        return delivery
    }

    func draft(_ topic: String, ackTopic: String? = nil, ackTimeout: Int = 30, ttl: Int? = nil) -> OperationDraft {
        OperationDraft(
            topic: topic, payload: .json(Array(#"{"n": 1}"#.utf8)), ackTopic: ackTopic, ackTimeoutSeconds: ackTimeout,
            ttlSeconds: ttl)
    }

    @Test func storesEveryFieldAndReadsItBack() throws {
        let directory = try TemporaryDirectory()
        let database = try LevelDB(path: directory.file("db"))
        let store = OperationStore(database: database)
        let full = Operation(
            device: DeviceKey(type: "t y", id: "é"), sequence: 0xABC,
            draft: OperationDraft(
                topic: "a/b", payload: .json(Array("[1, {\"x\" : \"y\"}]".utf8)), qos: 2, retain: true,
                ackTopic: "a/ack", ackTimeoutSeconds: 7, ttlSeconds: 99),
            status: .queued, attempts: 2, createdAt: 1_700_000_000_123_456_789, updatedAt: 1_700_000_001_000_000_000,
            lastError: "no \"answer\"")
        let minimal = Operation(
            device: lamp, sequence: 1, draft: OperationDraft(topic: "x", payload: .text("on")), createdAt: 5)
        try store.apply([.store(full), .store(minimal)], sync: true)
        // A record nobody can read is skipped, not fatal.
        try database.put(Array("o/lamp/l1/zzzz".utf8), Array("{}".utf8))
        let (loaded, unreadable) = try store.loadAll()
        #expect(Set(loaded.map(\.sequence)) == [0xABC, 1])
        #expect(loaded.first { $0.sequence == 0xABC } == full)
        #expect(loaded.first { $0.sequence == 1 } == minimal)
        #expect(unreadable == 1)
        try store.apply([.remove(device: lamp, sequence: 1)], sync: false)
        #expect(try store.loadAll().operations.count == 1)
    }

    @Test func aCreatedOperationIsOnDiskWhenCreateReturns() async throws {
        let directory = try TemporaryDirectory()
        var ids: [String] = []
        do {
            let database = try LevelDB(path: directory.file("db"))
            let delivery = try await makeDelivery(database)
            // Concurrent creations share synced writes and keep their order per device.
            ids = try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask { _ = try await delivery.create(draft("t/\(index)"), for: lamp).get() }
                }
                try await group.waitForAll()
                return delivery.table.operations(for: lamp).map(\.id)
            }
            #expect(ids.count == 20)
            #expect(ids == ids.sorted())
            await delivery.stop()
            database.close()
        }
        let reopened = try LevelDB(path: directory.file("db"))
        let delivery = try await makeDelivery(reopened)
        #expect(delivery.table.operations(for: lamp).map(\.id) == ids)
        #expect(delivery.table.operations(for: lamp).allSatisfy { $0.status == .queued && $0.attempts == 0 })
        #expect(delivery.table.totals()[.queued] == 20)
        #expect(delivery.table.totals()[.failed] == 0)
    }

    @Test func refusesBeyondThePerDeviceCap() async throws {
        let directory = try TemporaryDirectory()
        let delivery = try await makeDelivery(
            try LevelDB(path: directory.file("db")), settings: OperationSettings(maxQueuedPerDevice: 2))
        _ = try await delivery.create(draft("a"), for: lamp).get()
        _ = try await delivery.create(draft("b"), for: lamp).get()
        #expect(await delivery.create(draft("c"), for: lamp) == .failure(.deviceQueueFull(limit: 2)))
        _ = try await delivery.create(draft("c"), for: DeviceKey(type: "lamp", id: "l2")).get()
    }

    @Test func cancelsDurably() async throws {
        let directory = try TemporaryDirectory()
        let database = try LevelDB(path: directory.file("db"))
        let delivery = try await makeDelivery(database)
        let operation = try await delivery.create(draft("a"), for: lamp).get()
        let cancelled = try await delivery.cancel(device: lamp, id: operation.id).get()
        #expect(cancelled.status == .cancelled)
        #expect(await delivery.cancel(device: lamp, id: operation.id) == .failure(.notQueued(.cancelled)))
        #expect(await delivery.cancel(device: lamp, id: "0000000000000000") == .failure(.notFound))
        #expect(await delivery.cancel(device: lamp, id: "nonsense") == .failure(.notFound))
        #expect(try OperationStore(database: database).loadAll().operations.first?.status == .cancelled)
    }

    @Test func anOperationStoredSendingIsQueuedAgainWithOneAttemptAtLoad() async throws {
        let directory = try TemporaryDirectory()
        let database = try LevelDB(path: directory.file("db"))
        let store = OperationStore(database: database)
        let stuck = Operation(
            device: lamp, sequence: 10, draft: draft("a"), status: .sending, createdAt: wallClockNanoseconds())
        let stale = Operation(
            device: lamp, sequence: 11, draft: draft("b", ttl: 1), createdAt: wallClockNanoseconds() - 5_000_000_000)
        try store.apply([.store(stuck), .store(stale)], sync: true)
        let delivery = try await makeDelivery(database)
        let recovered = delivery.table.operation(for: lamp, id: stuck.id)
        #expect(recovered?.status == .queued)
        #expect(recovered?.attempts == 1)
        // A TTL that ran out while the daemon was down expires at load.
        #expect(delivery.table.operation(for: lamp, id: stale.id)?.status == .expired)
        // Both changes are stored.
        let stored = try store.loadAll().operations.sorted { $0.sequence < $1.sequence }
        #expect(stored.map(\.status) == [.queued, .expired])
        #expect(delivery.table.counts(for: lamp) == [.queued: 1, .expired: 1])
    }

    // MARK: With a broker

    @Test func sendsQueuedOperationsInOrderWhenTheDeviceComesOnlineAndWaitsForAnAckTopic() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory()
        let online = OnlineSet()
        let events = DeviceEvents()
        let delivery = try await makeDelivery(try LevelDB(path: directory.file("db")), online: online, events: events)
        let delivering = Task { await delivery.run() }
        let client = try MQTTClient(
            configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "daemon-under-test"),
            logger: Logger(label: "test"))
        client.start()
        #expect(await eventually(timeout: .seconds(10)) { client.isConnected })
        let ingest = Task { for await batch in client.messageBatches { await delivery.consume(batch) } }
        await delivery.brokerConnected(client)

        let device = try MQTTClient(
            configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "lamp"),
            logger: Logger(label: "test"))
        device.start()
        #expect(await eventually(timeout: .seconds(10)) { device.isConnected })
        try await device.subscribe("lamp/cmd/#", qos: 1, timeout: .seconds(5))
        let received = Mutex<[String]>([])
        let sentinels = Mutex<[String]>([])
        let listener = Task {
            for await batch in device.messageBatches {
                received.withLock { $0 += batch.map(\.topic).filter { !$0.hasPrefix("lamp/cmd/sentinel") } }
                sentinels.withLock { $0 += batch.map(\.topic).filter { $0.hasPrefix("lamp/cmd/sentinel") } }
            }
        }
        // An operation for another device, online, without ack topic: delivery sends on one connection in order
        // and confirms it on the broker's acknowledgement, so once it is heard and confirmed, whatever was sent or
        // acknowledged before it has been too.
        let sentinelDevice = DeviceKey(type: "lamp", id: "sentinel")
        online.set(sentinelDevice, online: true)
        let sentinel: @Sendable () async throws -> Void = {
            let topic = "lamp/cmd/sentinel/\(UInt32.random(in: 0...UInt32.max))"
            let operation = try await delivery.create(
                OperationDraft(topic: topic, payload: .text("s")), for: sentinelDevice
            ).get()
            let heard = await eventually {
                sentinels.withLock { $0.contains(topic) }
                    && delivery.table.operation(for: sentinelDevice, id: operation.id)?.status == .confirmed
            }
            if !heard { throw TestSupportError("the sentinel operation was not delivered") }
        }

        // An answer left retained from long ago: replayed when delivery subscribes to the ack topic, and ignored.
        try await device.publish(topic: "lamp/ack", payload: Array("old".utf8), qos: 1, retain: true)
        let first = try await delivery.create(draft("lamp/cmd/1"), for: lamp).get()
        let second = try await delivery.create(draft("lamp/cmd/2", ackTopic: "lamp/ack", ackTimeout: 10), for: lamp)
            .get()
        let third = try await delivery.create(draft("lamp/cmd/3"), for: lamp).get()
        // Offline: nothing goes out. Sentinel: an operation for an online device, sent after anything lamp's.
        try await sentinel()
        #expect(received.withLock { $0 }.isEmpty)

        online.set(lamp, online: true)
        events.emit(DeviceEvent(key: lamp, kind: .transition(from: .offline, to: .online), source: "mon", time: 0))
        #expect(await eventually { received.withLock { $0 } == ["lamp/cmd/1", "lamp/cmd/2"] })
        #expect(delivery.table.operation(for: lamp, id: first.id)?.status == .confirmed)
        // The second waits for its answer; the third waits behind it.
        #expect(delivery.table.operation(for: lamp, id: second.id)?.status == .sending)
        #expect(delivery.table.operation(for: lamp, id: third.id)?.status == .queued)
        // The broker's acknowledgement of the second did not confirm it: a later acknowledged one is confirmed.
        try await sentinel()
        #expect(delivery.table.operation(for: lamp, id: second.id)?.status == .sending)
        try await device.publish(topic: "lamp/ack", payload: Array("done".utf8), qos: 1)
        #expect(await eventually { delivery.table.operation(for: lamp, id: third.id)?.status == .confirmed })
        #expect(delivery.table.operation(for: lamp, id: second.id)?.status == .confirmed)
        // The broker's acknowledgement (which confirmed the third) may come before the device has read it.
        #expect(await eventually { received.withLock { $0 } == ["lamp/cmd/1", "lamp/cmd/2", "lamp/cmd/3"] })
        // Nothing waits on the ack topic any more: unsubscribed, not renewed on reconnects.
        #expect(await eventually { !client.addedSubscriptions.contains("lamp/ack") })
        // The next operation that needs it subscribes again, and its answer confirms it.
        let fourth = try await delivery.create(draft("lamp/cmd/4", ackTopic: "lamp/ack", ackTimeout: 10), for: lamp)
            .get()
        #expect(await eventually { received.withLock { $0 }.last == "lamp/cmd/4" })
        #expect(client.addedSubscriptions.contains("lamp/ack"))
        try await device.publish(topic: "lamp/ack", payload: Array("done".utf8), qos: 1)
        #expect(await eventually { delivery.table.operation(for: lamp, id: fourth.id)?.status == .confirmed })
        #expect(await eventually { client.addedSubscriptions.isEmpty })

        listener.cancel()
        ingest.cancel()
        await device.stop()
        await client.stop()
        await delivery.stop()
        await delivering.value
        await broker.stop()
    }
}
