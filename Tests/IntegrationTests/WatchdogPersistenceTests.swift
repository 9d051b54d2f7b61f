import Foundation
import MQTT
import TestSupport
import Testing

/// Last activity, hello count and expired/alive survive a restart, a kill -9 included.
@Suite(.serialized) struct WatchdogPersistenceTests {
    static let config = """
        [mqtt]
        baseTopic = "home/monitoring"

        [device_quiet]
        watchTimeOut = 1
        watchTopics = "home/quiet/#"

        [device_chatty]
        watchTimeOut = 3600
        helloTopic = "home/chatty"
        watchTopics = "home/chatty/sensors/#"
        """

    @Test func expiredStaysExpiredAndAliveGetsAGracePeriodAfterAKill() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-watchpersist")
        let firstRun = try await Recorder(broker, filter: "home/monitoring/expire/#")
        var daemon = try await Daemon(brokerURL: broker.url, config: Self.config, directory: directory)
        let publisher = try await connectedClient(broker)
        try await publisher.publish("home/quiet/temp", "1")
        try await publisher.publish("home/chatty", "hello")
        try await publisher.publish("home/chatty", "hello")
        try await publisher.publish("home/chatty/sensors/t", "20")
        #expect(await eventually { (try? daemon.json("/devices/device/quiet")["status"] as? String) == "expired" })
        #expect(
            await eventually {
                ((try? daemon.json("/devices/device/chatty"))?["watchdog"] as? [String: Any])?["helloCount"] as? Int
                    == 2
            })
        let quietBefore = try daemon.json("/devices/device/quiet")
        let chattyBefore = try daemon.json("/devices/device/chatty")
        let quietLastSeen = try #require(quietBefore["lastSeen"] as? String)
        let chattyLastSeen = try #require(chattyBefore["lastSeen"] as? String)
        // What B/expire/quiet said: the last activity in epoch seconds. The status says expired a moment before the
        // broker has the QoS 1 publication: wait for it to arrive, then it is retained.
        #expect(await eventually { firstRun.lastNonEmpty("home/monitoring/expire/quiet") != nil })
        let expiry = String(
            decoding: try #require(firstRun.lastNonEmpty("home/monitoring/expire/quiet")).payload, as: UTF8.self)
        #expect(try await retainedNow(broker, "home/monitoring/expire/#")["home/monitoring/expire/quiet"] == expiry)
        await firstRun.stop()
        _ = daemon.process.killAndReap()

        let watcher = try await Recorder(broker, filter: "home/monitoring/expire/#")
        daemon = try await Daemon(brokerURL: broker.url, config: Self.config, directory: directory)
        let quiet = try daemon.json("/devices/device/quiet")
        #expect(quiet["status"] as? String == "expired")
        #expect(quiet["lastSeen"] as? String == quietLastSeen)
        let chatty = try daemon.json("/devices/device/chatty")
        #expect(chatty["status"] as? String == "online")
        #expect(chatty["lastSeen"] as? String == chattyLastSeen)
        let watchdog = try #require(chatty["watchdog"] as? [String: Any])
        #expect(watchdog["helloCount"] as? Int == 2)
        #expect(watchdog["expired"] as? Bool == false)
        // The expiry is announced again with the last activity, never the restart time.
        #expect(await eventually { watcher.live.contains { $0.topic == "home/monitoring/expire/quiet" } })
        #expect(watcher.texts("home/monitoring/expire/quiet").allSatisfy { $0 == expiry })
        // Until it speaks.
        try await publisher.publish("home/quiet/temp", "2")
        #expect(await eventually { (try? daemon.json("/devices/device/quiet")["status"] as? String) == "online" })
        await watcher.stop()
        await publisher.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}
