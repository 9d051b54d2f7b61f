import Foundation
import MQTT
import TestSupport
import Testing

/// Receive throughput of MQTTClient against `mosquitto_sub` on the same broker (plain mosquitto_sub does
/// ~100 k msg/s on the development machine). Slow-ish, so only with MQTT_BENCH=1 (scripts/bench-mqtt.sh).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["MQTT_BENCH"] != nil))
struct MQTTBenchmarkTests {
    static let total = 100_000

    /// Starts `mosquitto_sub -C count` (default `total`).
    private func startMosquittoSub(
        _ broker: MosquittoBroker, filter: String, directory: TemporaryDirectory, count: Int = total
    )
        async throws
        -> ChildProcess
    {
        let id = "bench-sub-\(UInt32.random(in: 0...UInt32.max))"
        let process = try ChildProcess(
            executable: "/usr/bin/mosquitto_sub",
            arguments: [
                "-h", "127.0.0.1", "-p", "\(broker.port)", "-i", id, "-t", filter, "-q", "0", "-C", "\(count)",
            ],
            outputPath: directory.file("sub.out"))
        return process
    }

    private func rate(_ count: Int, _ elapsed: Duration) -> Int {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Int(Double(count) / seconds)
    }

    @Test func liveStreamOfHundredThousandMessages() async throws {
        // Room for the whole burst in the broker's per-client queue, so neither subscriber loses messages.
        let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 200000"])
        let directory = try TemporaryDirectory()
        let ours = try await connectedClient(broker)
        let received = Received(ours)
        try await ours.subscribe("bench/#", qos: 0, timeout: .seconds(5))
        // mosquitto_sub's subscription is in place once it prints a retained message (it flushes each message).
        let publisher = try await connectedClient(broker)
        try await publisher.publish("bench/ready", "ready", qos: 1, retain: true)
        let sub = try await startMosquittoSub(
            broker, filter: "bench/#", directory: directory, count: Self.total + 1)
        #expect(
            await eventually {
                (try? String(contentsOfFile: directory.file("sub.out"), encoding: .utf8))?.contains("ready") == true
            })
        // Ours subscribed before: it got the same message live.
        #expect(await received.wait(for: 1, timeout: .seconds(10)))

        let payload = Array(#"{"Action":"Connect","Time":"2018-01-02T16:51:10.558Z"}"#.utf8)
        let start = ContinuousClock.now
        for index in 0..<Self.total {
            publisher.publishNoWait(topic: "bench/\(index % 100)", payload: payload, qos: 0)
        }
        let oursDone = await received.wait(for: Self.total + 1, timeout: .seconds(60))
        let oursElapsed = ContinuousClock.now - start
        let subStatus = await sub.waitForExit(timeout: .seconds(60))
        let subElapsed = ContinuousClock.now - start
        let streamed = received.count - 1
        print(
            "live: MQTTClient \(streamed) msgs in \(oursElapsed) = \(rate(streamed, oursElapsed)) msg/s "
                + "(\(received.batches) batches); mosquitto_sub \(subStatus.map { "\($0)" } ?? "timeout") in \(subElapsed) "
                + "= \(rate(Self.total, subElapsed)) msg/s")
        #expect(oursDone)
        #expect(subStatus == .exited(0))
        await publisher.stop()
        await ours.stop()
        await broker.stop()
    }

    @Test func retainedReplayOfHundredThousandMessages() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory()
        let publisher = try await connectedClient(broker)
        for index in 0..<Self.total - 1 {
            publisher.publishNoWait(topic: "fleet/\(index)", payload: Array("\(index)".utf8), qos: 0, retain: true)
        }
        try await publisher.publish("fleet/\(Self.total - 1)", "last", qos: 1, retain: true)

        let subStart = ContinuousClock.now
        let sub = try await startMosquittoSub(broker, filter: "fleet/#", directory: directory)
        let subStatus = await sub.waitForExit(timeout: .seconds(60))
        let subElapsed = ContinuousClock.now - subStart

        let start = ContinuousClock.now
        let ours = try await connectedClient(broker)
        let received = Received(ours)
        try await ours.subscribe("fleet/#", qos: 0, timeout: .seconds(10))
        let oursDone = await received.wait(for: Self.total, timeout: .seconds(60))
        let oursElapsed = ContinuousClock.now - start
        print(
            "retained: MQTTClient \(received.count) msgs in \(oursElapsed) = \(rate(received.count, oursElapsed)) msg/s "
                + "(\(received.batches) batches, incl. connect); mosquitto_sub \(subStatus.map { "\($0)" } ?? "timeout") "
                + "in \(subElapsed) = \(rate(Self.total, subElapsed)) msg/s (incl. process start)")
        #expect(oursDone)
        #expect(subStatus == .exited(0))
        await publisher.stop()
        await ours.stop()
        await broker.stop()
    }
}
