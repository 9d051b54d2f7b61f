import Foundation
import TestSupport
import Testing

@testable import MQTT

/// The libmosquitto wrapper against a real mosquitto started per test.
@Suite struct MQTTClientTests {
    @Test func receivesMessagesOnSubscribedFiltersOnly() async throws {
        let broker = try await MosquittoBroker()
        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        try await subscriber.subscribe("home/+/temp", qos: 1, timeout: .seconds(5))
        let publisher = try await connectedClient(broker)
        try await publisher.publish("home/kitchen/temp", "21.5")
        try await publisher.publish("home/kitchen/humidity", "40")
        try await publisher.publish("home/hall/temp", "19")
        // Sentinel: a matching message published after them arrives after anything they delivered.
        try await publisher.publish("home/sentinel/temp", "end")
        #expect(await received.wait(for: 3))
        #expect(received.messages.map(\.topic) == ["home/kitchen/temp", "home/hall/temp", "home/sentinel/temp"])
        #expect(received.messages.map(\.text) == ["21.5", "19", "end"])
        #expect(received.messages.allSatisfy { $0.qos == 1 && !$0.retain })
        await publisher.stop()
        await subscriber.stop()
    }

    @Test func deliversABurstInOrderAndInBatches() async throws {
        let broker = try await MosquittoBroker()
        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        try await subscriber.subscribe("burst/#", timeout: .seconds(5))
        let publisher = try await connectedClient(broker)
        for index in 0..<5000 {
            publisher.publishNoWait(topic: "burst/\(index % 10)", payload: Array("\(index)".utf8), qos: 0)
        }
        try await publisher.publish("burst/end", "end", qos: 1)
        #expect(await received.wait(for: 5001))
        #expect(received.messages.prefix(5000).map(\.text) == (0..<5000).map { "\($0)" })
        #expect(received.batches < 5001, "messages arrive in batches, not one wake-up each")
        await publisher.stop()
        await subscriber.stop()
    }

    @Test(arguments: [UInt8(0), 1, 2])
    func publishCompletesAndTheMessageArrives(qos: UInt8) async throws {
        let broker = try await MosquittoBroker()
        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        try await subscriber.subscribe("q/#", qos: 2, timeout: .seconds(5))
        let publisher = try await connectedClient(broker)
        try await publisher.publish(topic: "q/\(qos)", payload: [1, 2, 3], qos: qos, timeout: .seconds(5))
        #expect(await received.wait(for: 1))
        #expect(received.messages.first == MQTTMessage(topic: "q/\(qos)", payload: [1, 2, 3], qos: qos))
        await publisher.stop()
        await subscriber.stop()
    }

    @Test func qos1PublishWaitsForThePubackOfAFrozenBroker() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.kill() }
        let client = try await connectedClient(broker)
        let pid = try #require(broker.pid)
        kill(pid, SIGSTOP)
        await #expect(throws: MQTTError.timedOut) {
            try await client.publish(topic: "frozen", payload: [1], qos: 1, timeout: .milliseconds(300))
        }
        kill(pid, SIGCONT)
        try await client.publish(topic: "frozen", payload: [2], qos: 1, timeout: .seconds(5))
        await client.stop()
    }

    @Test func cancellingAWaitingPublishThrowsCancelled() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.kill() }
        let client = try await connectedClient(broker)
        let pid = try #require(broker.pid)
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        let waiting = Task {
            try await client.publish(topic: "frozen", payload: [1], qos: 2)
        }
        #expect(await eventually { client.waitingForAcknowledgement == 1 })
        waiting.cancel()
        await #expect(throws: MQTTError.cancelled) { try await waiting.value }
    }

    @Test func retainedReplayIsFlaggedAndLiveMessagesAreNot() async throws {
        let broker = try await MosquittoBroker()
        let publisher = try await connectedClient(broker)
        try await publisher.publish("state/lamp", "on", retain: true)
        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        try await subscriber.subscribe("state/#", qos: 1, timeout: .seconds(5))
        #expect(await received.wait(for: 1))
        try await publisher.publish("state/lamp", "off", retain: true)
        #expect(await received.wait(for: 2))
        #expect(received.messages.map(\.retain) == [true, false])
        #expect(received.messages.map(\.text) == ["on", "off"])
        await publisher.stop()
        await subscriber.stop()
    }

    @Test func emptyPayloadArrivesEmptyAndDeletesTheRetainedMessage() async throws {
        let broker = try await MosquittoBroker()
        let publisher = try await connectedClient(broker)
        try await publisher.publish("gone", "x", retain: true)
        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        try await subscriber.subscribe("gone", qos: 1, timeout: .seconds(5))
        #expect(await received.wait(for: 1))
        try await publisher.publish(topic: "gone", payload: [], qos: 1, retain: true, timeout: .seconds(5))
        #expect(await received.wait(for: 2))
        #expect(received.messages.last == MQTTMessage(topic: "gone", payload: [], qos: 1, retain: false))

        let late = try await connectedClient(broker)
        let lateReceived = Received(late)
        try await late.subscribe("gone", qos: 1, timeout: .seconds(5))
        try await late.subscribe("marker", qos: 1, timeout: .seconds(5))
        try await publisher.publish("marker", "m")
        #expect(await lateReceived.wait(for: 1))
        #expect(lateReceived.messages.map(\.topic) == ["marker"], "no retained message left on 'gone'")
        await late.stop()
        await publisher.stop()
        await subscriber.stop()
    }

    @Test func connectsWhenTheBrokerComesUpAfterStart() async throws {
        let broker = try await MosquittoBroker(start: false)
        defer { broker.kill() }
        let attempts = LogRecorder()
        let client = try MQTTClient(
            configuration: MQTTConfiguration(broker: try BrokerURL(parsing: broker.url), clientID: "late-comer"),
            logger: attempts.logger)
        let received = Received(client)
        try client.setSubscriptions([("late/#", 1)])
        client.start()
        // The first attempt is refused (nothing listens yet) and the client says it retries.
        var log = attempts.entries.makeAsyncIterator()
        #expect(await attempts.next(containing: "retrying with backoff", in: &log) != nil)
        #expect(!client.isConnected)
        try await broker.start()
        // Backoff after ~0.5 s of failures is 1–2 s.
        #expect(await eventually(timeout: .seconds(10)) { client.isConnected })
        let publisher = try await connectedClient(broker)
        try await publisher.publish("late/x", "hello")
        #expect(await received.wait(for: 1))
        #expect(received.messages.first?.text == "hello")
        await publisher.stop()
        await client.stop()
    }

    @Test func reconnectsAfterABrokerRestartAndRenewsSubscriptions() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.kill() }
        let client = try makeClient(broker)
        let events = Task {
            var seen: [MQTTConnectionEvent] = []
            for await event in client.connectionEvents { seen.append(event) }
            return seen
        }
        let received = Received(client)
        try client.setSubscriptions([("renewed/#", 1), ("other", 0)])
        client.start()
        #expect(await eventually(timeout: .seconds(10)) { client.isConnected })
        #expect(client.reconnectCount == 0)

        try await broker.restart()
        #expect(await eventually(timeout: .seconds(15)) { client.reconnectCount == 1 && client.isConnected })
        let publisher = try await connectedClient(broker)
        // The renewal SUBSCRIBE is sent in on_connect; give its SUBACK a moment to come back.
        #expect(
            await eventually(timeout: .seconds(5)) {
                try? await publisher.publish("renewed/a", "after restart", qos: 1)
                return received.count > 0
            })
        #expect(received.messages.first?.text == "after restart")
        await publisher.stop()
        await client.stop()
        let seen = await events.value
        #expect(seen.first == .connected)
        #expect(seen.filter { $0 == .connected }.count == 2)
        #expect(seen.contains { if case .disconnected = $0 { true } else { false } })
    }

    @Test func stopReturnsPromptlyWhileTheBrokerIsDown() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.kill() }
        // A long first delay: once the connection is lost, the network thread sleeps 10 s before trying again.
        let client = try await connectedClient(broker) { $0.reconnectDelay = .seconds(10) }
        await broker.stop()
        #expect(await eventually { !client.isConnected })
        let start = ContinuousClock.now
        await client.stop()
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(2), "stop took \(elapsed)")
    }

    @Test func lastWillIsPublishedWhenTheConnectionDiesButNotOnCleanStop() async throws {
        let broker = try await MosquittoBroker()
        let observer = try await connectedClient(broker)
        let received = Received(observer)
        try await observer.subscribe("daemon/#", qos: 1, timeout: .seconds(5))

        let will = MQTTWill(topic: "daemon/state", payload: Array("offline".utf8), qos: 1, retain: true)
        let client = try await connectedClient(broker) { $0.will = will }
        client.simulateConnectionLoss()
        #expect(await received.wait(for: 1))
        #expect(received.on("daemon/state").map(\.text) == ["offline"])
        // …and the client comes back by itself.
        #expect(await eventually(timeout: .seconds(10)) { client.reconnectCount == 1 && client.isConnected })

        await client.stop()
        let marker = try await connectedClient(broker)
        try await marker.publish("daemon/marker", "m")
        #expect(await eventually { received.on("daemon/marker").count == 1 })
        #expect(received.on("daemon/state").count == 1, "a clean stop does not send the will")
        await marker.stop()
        await observer.stop()
    }

    @Test func publishingAtQoS0WithoutConnectionFailsFastAndQoS1Waits() async throws {
        let broker = try await MosquittoBroker(start: false)
        defer { broker.kill() }
        let client = try makeClient(broker)
        client.start()
        await #expect(throws: MQTTError.notConnected) {
            try await client.publish(topic: "x", payload: [1], qos: 0)
        }
        await #expect(throws: MQTTError.notConnected) {
            try await client.subscribe("x", timeout: .seconds(1))
        }
        // QoS 1 is queued by libmosquitto and sent once connected.
        let queued = Task {
            try await client.publish(topic: "queued", payload: [7], qos: 1, timeout: .seconds(15))
        }
        try await broker.start()
        try await queued.value
        #expect(client.isConnected)
        await client.stop()
    }

    @Test func stopEndsTheStreamsAndLaterCallsThrowStopped() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let received = Received(client)
        let events = Task { for await _ in client.connectionEvents {} }
        await client.stop()
        await received.finished()
        await events.value
        #expect(!client.isConnected)
        await #expect(throws: MQTTError.stopped) { try await client.publish(topic: "x", payload: [], qos: 1) }
        await #expect(throws: MQTTError.stopped) { try await client.subscribe("x") }
        client.publishNoWait(topic: "x", payload: [])
        await client.stop()  // a second stop does nothing
    }

    @Test func unsubscribesFiltersDroppedFromTheConfiguration() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let received = Received(client)
        try client.setSubscriptions([("a", 1), ("b", 1)])
        // Round trips through the client's own connection, so that what it sent before is processed.
        try await client.subscribe("sync1", qos: 1, timeout: .seconds(5))
        try client.setSubscriptions([("b", 1)])
        try await client.subscribe("sync2", qos: 1, timeout: .seconds(5))
        let publisher = try await connectedClient(broker)
        try await publisher.publish("a", "1")
        try await publisher.publish("b", "2")
        // Sentinel: "b" again, after "a".
        try await publisher.publish("b", "3")
        #expect(await received.wait(for: 2))
        #expect(received.messages.map(\.topic) == ["b", "b"])
        await publisher.stop()
        await client.stop()
    }

    /// A reload replaces the configured set; what `subscribe` added (operation ack topics) must survive it,
    /// until `unsubscribe`.
    @Test func keepsAddedFiltersAcrossConfigurationChangesUntilUnsubscribed() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker)
        let received = Received(client)
        try client.setSubscriptions([("configured", 1)])
        try await client.subscribe("added", qos: 1, timeout: .seconds(5))
        try client.setSubscriptions([("other", 1)])
        try await client.subscribe("sync1", qos: 1, timeout: .seconds(5))
        let publisher = try await connectedClient(broker)
        try await publisher.publish("configured", "1")
        try await publisher.publish("added", "2")
        // Sentinel: "added" again, after "configured".
        try await publisher.publish("added", "2b")
        #expect(await received.wait(for: 2))
        #expect(received.messages.map(\.topic) == ["added", "added"])

        client.unsubscribe("added")
        try await client.subscribe("sync2", qos: 1, timeout: .seconds(5))
        try await publisher.publish("added", "3")
        try await publisher.publish("other", "4")
        #expect(await received.wait(for: 3))
        #expect(received.messages.map(\.topic) == ["added", "added", "other"])
        await publisher.stop()
        await client.stop()
    }

    @Test func speaksMQTT5() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker) { $0.protocolVersion = .v5 }
        let received = Received(client)
        try await client.subscribe("v5/#", qos: 2, timeout: .seconds(5))
        try await client.publish("v5/x", "five", qos: 2)
        #expect(await received.wait(for: 1))
        #expect(received.messages.first?.text == "five")
        #expect(broker.log.contains("p5"), "the broker logged an MQTT 5 connection: \(broker.log)")
        await client.stop()
    }

    @Test func aFreshQoS0SubscriberReceivesTwentyThousandRetainedMessages() async throws {
        let broker = try await MosquittoBroker()
        let publisher = try await connectedClient(broker)
        let total = 20_000
        for index in 0..<total - 1 {
            publisher.publishNoWait(topic: "fleet/\(index)", payload: Array("\(index)".utf8), qos: 0, retain: true)
        }
        // The broker handles one connection's packets in order: this ack means all are stored.
        try await publisher.publish("fleet/\(total - 1)", "\(total - 1)", qos: 1, retain: true)

        let subscriber = try await connectedClient(broker)
        let received = Received(subscriber)
        let start = ContinuousClock.now
        try await subscriber.subscribe("fleet/#", qos: 0, timeout: .seconds(10))
        let complete = await received.wait(for: total, timeout: .seconds(30))
        let elapsed = ContinuousClock.now - start
        #expect(complete, "received \(received.count) of \(total); broker log:\n\(broker.log.suffix(2000))")
        #expect(Set(received.messages.map(\.topic)).count == total)
        #expect(received.messages.allSatisfy { $0.retain })
        print("retained replay: \(total) messages in \(elapsed), \(received.batches) batches")
        await publisher.stop()
        await subscriber.stop()
    }
}
