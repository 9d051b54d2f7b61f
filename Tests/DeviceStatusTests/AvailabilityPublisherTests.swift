import Logging
import MQTT
import ServiceLifecycle
import ServiceLifecycleTestKit
import Storage
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// The publisher's rounds, pacing and memory, against a broker connection that records what it is given (and
/// refuses the topics a test names) and a real LevelDB, on a clock the test advances.
@Suite struct AvailabilityPublisherTests {
    final class RecordingConnection: MQTTPublishing, Sendable {
        let clock: ManualClock
        let refused = Mutex<Set<String>>([])
        private let log = Mutex<[(topic: String, payload: String, at: Duration)]>([])

        init(clock: ManualClock) { self.clock = clock }

        var isConnected: Bool { true }
        var published: [(topic: String, payload: String, at: Duration)] { log.withLock { $0 } }

        func publishNoWait(topic: String, payload: [UInt8], qos: UInt8, retain: Bool) {}

        func publish(
            topic: String, payload: [UInt8], qos: UInt8, retain: Bool, timeout: Duration?
        ) async throws(MQTTError) {
            if refused.withLock({ $0.contains(topic) }) { throw MQTTError.notConnected }
            #expect(qos == 1 && retain)
            let at = clock.now.offset
            log.withLock { $0.append((topic, String(decoding: payload, as: UTF8.self), at)) }
        }

        func subscribe(_ filter: String, qos: UInt8, timeout: Duration?) async throws(MQTTError) {}
        func unsubscribe(_ filter: String) {}
    }

    let paths = (0..<50).map { "t/d\($0)" }

    func publisher(
        _ connection: RecordingConnection, store: LevelDB, clock: ManualClock, pacing: AvailabilityPacing
    ) -> AvailabilityPublisher {
        let paths = paths
        return AvailabilityPublisher(
            plan: AvailabilityPlan(settings: AvailabilitySettings(publish: true), baseTopic: "b"), store: store,
            client: connection, state: { _ in .online }, everyDevice: { paths }, replayFinished: { true },
            pacing: pacing, clock: clock, logger: Logger(label: "test"))
    }

    @Test func publishesInAcknowledgedRoundsAndHoldsTheRateAfterTheBurst() async throws {
        let directory = try TemporaryDirectory(prefix: "availability-publisher")
        let store = try LevelDB(path: directory.file("db"))
        let clock = ManualClock()
        let connection = RecordingConnection(clock: clock)
        // Rounds of 10 devices (one message each), 100 messages/s: a burst of three rounds' worth (30 messages) passes
        // at once, then 100 ms per round.
        let publisher = publisher(
            connection, store: store, clock: clock,
            pacing: AvailabilityPacing(devicesPerRound: 10, messagesPerSecond: 100))
        let task = Task { try await publisher.run() }
        await clock.waitForSleepers(1)
        #expect(connection.published.count == 40)
        #expect(connection.published.allSatisfy { $0.at == .zero && $0.payload == "online" })
        clock.advance(by: .milliseconds(100))
        await clock.waitForSleepers(1)
        #expect(connection.published.count == 50)
        #expect(connection.published.suffix(10).allSatisfy { $0.at == .milliseconds(100) })
        #expect(Set(connection.published.map(\.topic)) == Set(paths.map { "b/availability/" + $0 }))
        task.cancel()
        _ = try? await task.value
        var remembered = 0
        try store.forEach(prefix: AvailabilityRecord.prefix) { _, _ in
            remembered += 1
            return true
        }
        #expect(remembered == 50)
        store.close()
    }

    @Test func remembersOnlyWhatTheBrokerAcknowledgedAndPublishesTheRestAtTheNextLook() async throws {
        let directory = try TemporaryDirectory(prefix: "availability-publisher")
        let store = try LevelDB(path: directory.file("db"))
        let clock = ManualClock()
        let connection = RecordingConnection(clock: clock)
        connection.refused.withLock { $0 = ["b/availability/t/d7"] }
        let publisher = publisher(connection, store: store, clock: clock, pacing: AvailabilityPacing())
        let task = Task { try await publisher.run() }
        #expect(await eventually { connection.published.count == 49 })
        // Remembered once the round's acknowledgements are in (a moment after the broker saw the messages).
        #expect(await eventually { (try? store.get(AvailabilityRecord.key(path: "t/d8"))) != nil })
        #expect(try store.get(AvailabilityRecord.key(path: "t/d7")) == nil)

        // The broker takes it now; a reload looks at every device again: only the one not remembered goes out.
        connection.refused.withLock { $0 = [] }
        publisher.update(AvailabilityPlan(settings: AvailabilitySettings(publish: true), baseTopic: "b"))
        #expect(await eventually { connection.published.count == 50 })
        #expect(connection.published.last?.topic == "b/availability/t/d7")
        // A device event marks its device: nothing to publish for a value the broker holds already, so the sentinel
        // (a device of its own, marked after) is the next publication.
        publisher.mark(["t/d3", "t/new"])
        #expect(await eventually { connection.published.count == 51 })
        #expect(connection.published.last?.topic == "b/availability/t/new")
        task.cancel()
        _ = try? await task.value
        store.close()
    }

    /// A broker that acknowledges only when the test says so.
    final class HeldConnection: MQTTPublishing, Sendable {
        private struct State {
            var nextID = 0
            var waiting: [Int: CheckedContinuation<Void, any Error>] = [:]
            var acknowledged: [String] = []
        }
        private let state = Mutex(State())

        var isConnected: Bool { true }
        var waiting: Int { state.withLock { $0.waiting.count } }
        var acknowledged: [String] { state.withLock { $0.acknowledged } }

        /// Acknowledges every publication waiting now (later ones wait again).
        func acknowledgeWaiting() {
            let waiting = state.withLock { state in
                defer { state.waiting = [:] }
                return Array(state.waiting.values)
            }
            for continuation in waiting { continuation.resume() }
        }

        func publishNoWait(topic: String, payload: [UInt8], qos: UInt8, retain: Bool) {}

        func publish(
            topic: String, payload: [UInt8], qos: UInt8, retain: Bool, timeout: Duration?
        ) async throws(MQTTError) {
            let id = state.withLock { state in
                state.nextID += 1
                return state.nextID
            }
            do {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let cancelled = state.withLock { state in
                            if Task.isCancelled { return true }
                            state.waiting[id] = continuation
                            return false
                        }
                        if cancelled { continuation.resume(throwing: CancellationError()) }
                    }
                } onCancel: {
                    state.withLock { $0.waiting.removeValue(forKey: id) }?.resume(throwing: CancellationError())
                }
            } catch {
                throw MQTTError.notConnected
            }
            state.withLock { $0.acknowledged.append(topic) }
        }

        func subscribe(_ filter: String, qos: UInt8, timeout: Duration?) async throws(MQTTError) {}
        func unsubscribe(_ filter: String) {}
    }

    @Test func aCleanStopLetsTheRoundInFlightFinishAndRemembersIt() async throws {
        let directory = try TemporaryDirectory(prefix: "availability-publisher")
        let store = try LevelDB(path: directory.file("db"))
        let connection = HeldConnection()
        let paths = paths
        let publisher = AvailabilityPublisher(
            plan: AvailabilityPlan(settings: AvailabilitySettings(publish: true), baseTopic: "b"), store: store,
            client: connection, state: { _ in .online }, everyDevice: { paths }, replayFinished: { true },
            pacing: AvailabilityPacing(devicesPerRound: 10), logger: Logger(label: "test"))
        try await testGracefulShutdown { shutdown in
            async let running: Void = publisher.run()
            // The first round is in flight.
            #expect(await eventually { connection.waiting == 10 })
            shutdown.triggerGracefulShutdown()
            connection.acknowledgeWaiting()
            try await running
        }
        // That round is remembered; a round started before the stop was seen (if any) was not acknowledged and
        // is not; nothing after.
        var remembered = 0
        try store.forEach(prefix: AvailabilityRecord.prefix) { _, _ in
            remembered += 1
            return true
        }
        #expect(remembered == 10)
        #expect(connection.acknowledged.count == 10)
        store.close()
    }
}
