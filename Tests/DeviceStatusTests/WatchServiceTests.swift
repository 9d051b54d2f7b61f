import Logging
import MQTT
import ServiceLifecycleTestKit
import Storage
import TestSupport
import Testing

@testable import DeviceStatus

/// The watchdog service with an in-memory connection and a clock the test moves: expiry, the expire and status
/// topics, and what counts as activity, in milliseconds. Every wait is for an event (a publication, the service's
/// tasks asleep again).
@Suite(.timeLimit(.minutes(1))) struct WatchServiceTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let clock = ManualClock()
        let connection = InMemoryConnection()
        let service: WatchService
        /// The wall-clock time at the clock's start, in nanoseconds.
        let wallStart: Int64 = 1_700_000_000_000_000_000

        init() throws {
            directory = try TemporaryDirectory(prefix: "watch")
            let clock = clock
            let wallStart = wallStart
            let time = WatchClock(
                monotonic: { Int64(clock.now.offset / .nanoseconds(1)) + 1_000_000_000 },
                wall: { wallStart + Int64(clock.now.offset / .nanoseconds(1)) },
                sleep: { try await clock.sleep(for: $0) })
            let device = WatchedDevice(
                name: "esp04", kind: .device, watchTimeOut: 2, watchTopics: [try TopicFilter("home/esp04/sensors/#")])
            service = WatchService(
                devices: [device], baseTopic: "B", store: try LevelDB(path: directory.file("db")),
                events: DeviceEvents(), logger: Logger(label: "test"), time: time)
        }

        /// Moves the clock, then waits until both of the service's tasks (expiry timer, `B/up`) sleep again: every
        /// tick due by then has run.
        func advance(by duration: Duration) async {
            clock.advance(by: duration)
            await clock.waitForSleepers(2)
        }

        func live(_ topic: String) -> MQTTMessage { MQTTMessage(topic: topic, payload: Array("1".utf8)) }

        var expiries: [String] {
            connection.published.filter { $0.topic == "B/expire/esp04" }.map(\.payload)
        }
    }

    @Test func liveMessagesKeepADeviceAliveAndSilenceExpiresItUntilItSpeaksAgain() async throws {
        let fixture = try Fixture()
        try await testGracefulShutdown { shutdown in
            async let running: Void = fixture.service.run()
            await fixture.service.brokerConnected(fixture.connection)
            await fixture.clock.waitForSleepers(2)

            // Kept alive for 3 s, past its 2 s timeout, by a live message every half second; a lookalike prefix and
            // a retained message do not count.
            for _ in 0..<6 {
                await fixture.advance(by: .milliseconds(500))
                await fixture.service.consume([fixture.live("home/esp04/sensors/temp")])
            }
            #expect(fixture.expiries.isEmpty)
            await fixture.advance(by: .seconds(1))
            await fixture.service.consume([
                fixture.live("home/esp04/sensorsXYZ"),
                MQTTMessage(topic: "home/esp04/sensors/old", payload: Array("1".utf8), retain: true),
            ])

            // 2 s of silence since the last live message (those two were none): expired, with that message's time.
            await fixture.advance(by: .milliseconds(999))
            #expect(fixture.expiries.isEmpty)
            await fixture.advance(by: .milliseconds(1))
            #expect(fixture.expiries == ["\((fixture.wallStart + 3_000_000_000) / 1_000_000_000)"])
            let status = try #require(fixture.connection.published.last { $0.topic == "B/status/esp04" })
            #expect(status.payload.contains(#""status":"expired""#) && status.retain && status.qos == 1)

            // It speaks again: the expiry is cleared (empty, retained) and it is online.
            await fixture.service.consume([fixture.live("home/esp04/sensors/temp")])
            #expect(fixture.expiries.last == "")
            #expect(
                fixture.connection.published.last { $0.topic == "B/status/esp04" }?.payload
                    .contains(#""status":"online""#) == true)

            shutdown.triggerGracefulShutdown()
            await running
        }
    }

    @Test func theUpCounterCountsSecondsOfItsClock() async throws {
        let fixture = try Fixture()
        await testGracefulShutdown { shutdown in
            async let running: Void = fixture.service.run()
            await fixture.service.brokerConnected(fixture.connection)
            await fixture.clock.waitForSleepers(2)
            for _ in 0..<3 { await fixture.advance(by: .seconds(1)) }
            #expect(fixture.connection.published.filter { $0.topic == "B/up" }.map(\.payload) == ["1", "2", "3"])
            shutdown.triggerGracefulShutdown()
            await running
        }
    }
}
