import Logging
import MQTT
import ServiceLifecycleTestKit
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// The broker link against an in-memory connection and a manual clock: what it publishes, what it hands the
/// components, and when it says the retained replay is through. Every wait is for an event.
@Suite(.timeLimit(.minutes(1))) struct BrokerLinkTests {
    /// A component that records every batch and connection it is given, and publishes each batch's size.
    final class Recorder: BrokerComponent {
        let batches = Mutex<[[String]]>([])
        let connections = Mutex(0)
        /// How many connections the component had been told of when each batch arrived.
        let connectionsAtEachBatch = Mutex<[Int]>([])
        let (arrivals, arrivalInput) = AsyncStream.makeStream(of: [String].self)

        var subscriptions: [(filter: TopicFilter, qos: UInt8)] { [(try! TopicFilter("a/#"), 0)] }

        func consume(_ messages: [MQTTMessage]) async {
            let topics = messages.map(\.topic)
            batches.withLock { $0.append(topics) }
            connectionsAtEachBatch.withLock { $0.append(connections.withLock { $0 }) }
            arrivalInput.yield(topics)
        }

        func brokerConnected(_ client: any MQTTPublishing) async { connections.withLock { $0 += 1 } }
    }

    struct Fixture {
        let connection = InMemoryConnection()
        let clock = ManualClock()
        let readiness = Readiness()
        let recorder = Recorder()
        let link: BrokerLink<InMemoryConnection>

        init() throws {
            var config = ConfigLoader.defaults
            config.mqtt.baseTopic = "B"
            config.mqtt.clientid = "me"
            readiness.storeDidLoad()
            link = try BrokerLink(
                config: config, components: [recorder], readiness: readiness, logger: Logger(label: "test"),
                client: connection, clock: clock)
        }
    }

    /// The next publication on `topic`.
    func next(_ topic: String, in publications: inout AsyncStream<InMemoryConnection.Publication>.Iterator) async
        -> InMemoryConnection.Publication?
    {
        while let publication = await publications.next() {
            if publication.topic == topic { return publication }
        }
        return nil
    }

    /// A component that subscribes to `filters`, or takes every message.
    struct Listener: BrokerComponent {
        let filters: [String]
        var takesEveryMessage = false
        var subscriptions: [(filter: TopicFilter, qos: UInt8)] { filters.map { (try! TopicFilter($0), 0) } }
        func consume(_ messages: [MQTTMessage]) async {}
    }

    @Test func routesEachMessageOnceToTheComponentsWhoseFiltersMatchIt() {
        let router = ComponentRouter([
            Listener(filters: ["a/#"]), Listener(filters: ["b/+", "b/x"]),
            Listener(filters: [], takesEveryMessage: true),
        ])
        let messages = ["a/1", "b/x", "c/1", "a"].map { MQTTMessage(topic: $0, payload: []) }
        #expect(
            router.route(messages).map { $0.map(\.topic) } == [["a/1", "a"], ["b/x"], ["a/1", "b/x", "c/1", "a"]])
    }

    /// A component that skips other topics itself gets every batch as received.
    struct SelfFilteringListener: BrokerComponent {
        let filters: [String]
        var subscriptions: [(filter: TopicFilter, qos: UInt8)] { filters.map { (try! TopicFilter($0), 0) } }
        var skipsOtherTopics: Bool { true }
        func consume(_ messages: [MQTTMessage]) async {}
    }

    @Test func handsTheBatchAsReceivedToComponentsThatSkipOtherTopicsThemselves() {
        let messages = ["a/1", "b/x", "c/1", "a/2"].map { MQTTMessage(topic: $0, payload: []) }
        let router = ComponentRouter([
            SelfFilteringListener(filters: ["a/#"]), Listener(filters: ["b/+", "a/2"]), Listener(filters: []),
        ])
        #expect(
            router.route(messages).map { $0.map(\.topic) } == [["a/1", "b/x", "c/1", "a/2"], ["b/x", "a/2"], []])
    }

    @Test func subscribesToTheComponentsFiltersAndItsMarker() throws {
        let fixture = try Fixture()
        #expect(fixture.connection.subscriptions == ["a/#", "B/sync/me"])
    }

    @Test func saysOnlineAndRepeatsTheReplayMarkerUntilItComesBack() async throws {
        let fixture = try Fixture()
        try await testGracefulShutdown { shutdown in
            async let running: Void = fixture.link.run()
            var publications = fixture.connection.publications.makeAsyncIterator()
            fixture.connection.connect()
            let online = try #require(await next("B/daemon", in: &publications))
            #expect(online == .init(topic: "B/daemon", payload: "online", qos: 1, retain: true))
            let marker = try #require(await next("B/sync/me", in: &publications))
            // Not back yet: sent again after 2 s, with the same nonce.
            await fixture.clock.waitForSleepers(1)
            fixture.clock.advance(by: .seconds(2))
            #expect(await next("B/sync/me", in: &publications) == marker)
            #expect(fixture.readiness.notReadyReason == "receiving the broker's retained status messages")

            // Back, between two messages of the replay: the components get both and not the marker.
            fixture.connection.deliver([
                MQTTMessage(topic: "a/1", payload: []),
                MQTTMessage(topic: "B/sync/me", payload: Array(marker.payload.utf8)),
                MQTTMessage(topic: "a/2", payload: []),
            ])
            var arrivals = fixture.recorder.arrivals.makeAsyncIterator()
            #expect(await arrivals.next() == ["a/1", "a/2"])
            #expect(fixture.readiness.notReadyReason == nil)
            // The repetition ends at its next wake-up without publishing: the sleeper leaving is the sentinel.
            await fixture.clock.waitForSleepers(1)
            fixture.clock.advance(by: .seconds(2))
            await fixture.clock.waitForSleepers(0)
            #expect(fixture.connection.published.filter { $0.topic == "B/sync/me" }.count == 2)
            #expect(fixture.recorder.connections.withLock { $0 } == 1)

            shutdown.triggerGracefulShutdown()
            await running
        }
    }

    @Test func runsWhatWaitsForTheReplayOnceItIsThrough() {
        let readiness = Readiness()
        let runs = Mutex(0)
        readiness.whenReplayFinished { runs.withLock { $0 += 1 } }
        #expect(runs.withLock { $0 } == 0)
        readiness.replayDidFinish()
        #expect(runs.withLock { $0 } == 1)
        // Once only; asked after the replay, at once.
        readiness.replayDidFinish()
        #expect(runs.withLock { $0 } == 1)
        readiness.whenReplayFinished { runs.withLock { $0 += 10 } }
        #expect(runs.withLock { $0 } == 11)
    }

    @Test func aStaleMarkerDoesNotEndTheReplayAndAReconnectSendsANewOne() async throws {
        let fixture = try Fixture()
        try await testGracefulShutdown { shutdown in
            async let running: Void = fixture.link.run()
            var publications = fixture.connection.publications.makeAsyncIterator()
            fixture.connection.connect()
            let first = try #require(await next("B/sync/me", in: &publications))
            fixture.connection.disconnect()
            fixture.connection.connect()
            let second = try #require(await next("B/sync/me", in: &publications))
            #expect(second.payload != first.payload)
            // The first connection's marker arrives late: it proves nothing about the second subscription.
            fixture.connection.deliver([MQTTMessage(topic: "B/sync/me", payload: Array(first.payload.utf8))])
            fixture.connection.deliver([MQTTMessage(topic: "a/sentinel", payload: [])])
            var arrivals = fixture.recorder.arrivals.makeAsyncIterator()
            #expect(await arrivals.next() == [])
            #expect(await arrivals.next() == ["a/sentinel"])
            #expect(fixture.readiness.notReadyReason != nil)
            // Only the newest connection's marker repeats.
            await fixture.clock.waitForSleepers(2)
            fixture.clock.advance(by: .seconds(2))
            #expect(await next("B/sync/me", in: &publications) == second)
            await fixture.clock.waitForSleepers(1)
            #expect(fixture.recorder.connections.withLock { $0 } == 2)
            shutdown.triggerGracefulShutdown()
            await running
        }
    }

    /// The client's two streams are read by two tasks: a retained replay may be read before its connection's
    /// event. The components hear of the connection first (the watchdog clears stale expiries with its client).
    @Test func aBatchReadBeforeItsConnectionEventReachesComponentsAfterTheyWereTold() async throws {
        let fixture = try Fixture()
        await testGracefulShutdown { shutdown in
            async let running: Void = fixture.link.run()
            var arrivals = fixture.recorder.arrivals.makeAsyncIterator()
            fixture.connection.deliver([MQTTMessage(topic: "a/1", payload: [])])
            fixture.connection.connect()
            #expect(await arrivals.next() == ["a/1"])
            #expect(fixture.recorder.connectionsAtEachBatch.withLock { $0 } == [1])
            shutdown.triggerGracefulShutdown()
            await running
        }
    }

    @Test func aGracefulShutdownSaysOfflineThenStopsTheConnection() async throws {
        let fixture = try Fixture()
        try await testGracefulShutdown { shutdown in
            async let running: Void = fixture.link.run()
            var publications = fixture.connection.publications.makeAsyncIterator()
            fixture.connection.connect()
            _ = try #require(await next("B/sync/me", in: &publications))
            #expect(fixture.connection.isStarted)
            shutdown.triggerGracefulShutdown()
            await running
            #expect(
                fixture.connection.published.last == .init(topic: "B/daemon", payload: "offline", qos: 1, retain: true))
            #expect(fixture.connection.isStopped)
            // Nothing sleeps on the clock any more: the marker's repetition ended with the link.
            #expect(fixture.clock.sleeperCount == 0)
        }
    }
}
