import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// The agent supervisor with real processes and a clock the test moves: restart delays and the SIGKILL grace are
/// measured on that clock, so nothing here waits for them in real time. Every wait is for an event: a start
/// announced, a line logged.
@Suite(.timeLimit(.minutes(1))) struct AgentSupervisorTests {
    /// A clock that stands still until the test moves it.
    final class StillClock: Sendable {
        private let instant = Mutex(ContinuousClock.now)
        var now: ContinuousClock.Instant { instant.withLock { $0 } }
        func advance(by duration: Duration) { instant.withLock { $0 += duration } }
    }

    struct Fixture {
        let name = "agent-\(UInt32.random(in: 0...UInt32.max))"
        let directory: TemporaryDirectory
        let clock = StillClock()
        let log = LogRecorder()
        let events = DeviceEvents()
        let supervisor: AgentSupervisor
        /// Each start announcement with the test clock's time when it was made.
        let starts: AsyncStream<ContinuousClock.Instant>

        init(exec: String, restartOnExpire: Bool = false) throws {
            directory = try TemporaryDirectory(prefix: "agents")
            let device = WatchedDevice(name: name, kind: .agent, exec: exec, restartOnExpire: restartOnExpire)
            let clock = self.clock
            supervisor = AgentSupervisor(
                watched: [device], dataDirectory: directory.path, baseTopic: "B", logger: log.logger,
                terminationGrace: .seconds(5), clock: { clock.now })
            supervisor.observe(events)
            let (starts, input) = AsyncStream.makeStream(of: ContinuousClock.Instant.self)
            self.starts = starts
            let topic = "B/startedprocess/" + name
            supervisor.start { announced, _ in if announced == topic { input.yield(clock.now) } }
        }

        /// Moves the clock and has the supervisor look at it.
        func advance(by duration: Duration) {
            clock.advance(by: duration)
            supervisor.wake()
        }
    }

    @Test func restartsADeadAgentAfterOneThenTwoSecondsOfItsClock() async throws {
        let fixture = try Fixture(exec: "exit 3")
        var starts = fixture.starts.makeAsyncIterator()
        var log = fixture.log.entries.makeAsyncIterator()
        let t0 = try #require(await starts.next())

        let exit1 = try #require(await fixture.log.next(containing: "restarting it", in: &log))
        #expect(exit1.message.contains("exited with status 3"))
        #expect(exit1.metadata["in"] == "1.0 seconds")
        // 999 ms later it is still down; the next millisecond starts it. The start's time shows which it was.
        fixture.advance(by: .milliseconds(999))
        fixture.advance(by: .milliseconds(1))
        #expect(try #require(await starts.next()) - t0 == .seconds(1))
        #expect(await fixture.log.next(containing: "agent started", in: &log)?.metadata["restarts"] == "1")

        // A second quick death waits twice as long.
        let exit2 = try #require(await fixture.log.next(containing: "restarting it", in: &log))
        #expect(exit2.metadata["in"] == "2.0 seconds")
        fixture.advance(by: .seconds(1))
        fixture.advance(by: .seconds(1))
        #expect(try #require(await starts.next()) - t0 == .seconds(3))
        #expect(await fixture.log.next(containing: "agent started", in: &log)?.metadata["restarts"] == "2")
        await fixture.supervisor.stop()
    }

    @Test func aWatchdogExpiryTerminatesTheAgentAndKillsItAfterTheGrace() async throws {
        // Ignores SIGTERM: only the SIGKILL after the grace ends it.
        let fixture = try Fixture(exec: "trap '' TERM; echo up; while true; do sleep 0.05; done", restartOnExpire: true)
        defer { killAgents(fixture) }
        var starts = fixture.starts.makeAsyncIterator()
        var log = fixture.log.entries.makeAsyncIterator()
        let t0 = try #require(await starts.next())
        let up = try #require(await fixture.log.next(containing: "agent output", in: &log))
        #expect(up.metadata["output"] == "up")

        fixture.events.emit(
            DeviceEvent(
                key: DeviceKey(type: "agent", id: fixture.name), kind: .transition(from: .online, to: .expired),
                source: "watchdog", time: 0))
        _ = try #require(await fixture.log.next(containing: "watchdog expired; restarting it", in: &log))
        fixture.advance(by: .seconds(5))
        _ = try #require(await fixture.log.next(containing: "sending SIGKILL", in: &log))
        let exit = try #require(await fixture.log.next(containing: "restarting it", in: &log))
        #expect(exit.message.contains("killed by signal 9"))
        // Killed on request, after the grace: no crash.
        #expect(exit.level == .notice)
        fixture.advance(by: .seconds(1))
        #expect(try #require(await starts.next()) - t0 == .seconds(6))
        await fixture.supervisor.stop()
    }

    @Test func anExpiryOfAnAgentWithoutRestartOnExpireLeavesItRunning() async throws {
        let fixture = try Fixture(exec: "echo up; while true; do sleep 0.05; done")
        defer { killAgents(fixture) }
        var starts = fixture.starts.makeAsyncIterator()
        var log = fixture.log.entries.makeAsyncIterator()
        _ = try #require(await starts.next())
        let up = try #require(await fixture.log.next(containing: "agent output", in: &log))
        #expect(up.metadata["output"] == "up")
        let pid = try #require(fixture.supervisor.info(fixture.name)?.pid)
        fixture.events.emit(
            DeviceEvent(
                key: DeviceKey(type: "agent", id: fixture.name), kind: .transition(from: .online, to: .expired),
                source: "watchdog", time: 0))
        // Sentinel: stopping logs once everything before it was handled.
        await fixture.supervisor.stop()
        var messages: [String] = []
        while let entry = await log.next() {
            messages.append(entry.message)
            if entry.message.contains("agent supervision stopped") { break }
        }
        #expect(!messages.contains { $0.contains("watchdog expired") })
        #expect(kill(pid, 0) == 0)
    }

    @Test func logsAgentOutputAsAFieldWithStderrAtWarning() async throws {
        let fixture = try Fixture(
            exec: "echo 'status=ok count=3'; echo 'level=error broke' >&2; while true; do sleep 0.05; done")
        defer { killAgents(fixture) }
        var log = fixture.log.entries.makeAsyncIterator()
        var lines: [LogRecorder.Entry] = []
        while lines.count < 2, let entry = await fixture.log.next(containing: "agent output", in: &log) {
            lines.append(entry)
        }
        let stdout = try #require(lines.first { $0.metadata["stream"] == "stdout" })
        let stderr = try #require(lines.first { $0.metadata["stream"] == "stderr" })
        // The agent's text is one value: its own key=value words never become fields of the entry.
        #expect(stdout.message == "agent output" && stdout.level == .info)
        #expect(stdout.metadata == ["agent": fixture.name, "stream": "stdout", "output": "status=ok count=3"])
        #expect(stderr.level == .warning)
        #expect(stderr.metadata["output"] == "level=error broke")
        await fixture.supervisor.stop()
    }

    /// Ends what an agent left running (agents outlive their supervisor on purpose).
    func killAgents(_ fixture: Fixture) {
        if let pid = fixture.supervisor.info(fixture.name)?.pid { kill(-pid, SIGKILL) }
    }
}
