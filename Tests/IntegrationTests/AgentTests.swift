import Foundation
import MQTT
import Synchronization
import TestSupport
import Testing

/// Agents (docs/behaviour.md §7) run by the real daemon as real processes: started in their own session with the tag, output
/// in the log, restarted with backoff, restarted on watchdog expiry, re-adopted across a daemon restart.
@Suite(.serialized) struct AgentTests {
    /// An agent that greets, then writes a line every 200 ms (so it would die of SIGPIPE if nobody held its pipe).
    static let ticker = #"exec = 'echo "hello from $DEVSTATUSD_AGENT"; while true; do echo tick; sleep 0.2; done'"#

    static func config(_ sections: String) -> String {
        "[mqtt]\nbaseTopic = \"home/monitoring\"\n\n" + sections
    }

    /// A name no earlier (possibly failed) run left processes behind for.
    static func uniqueName(_ base: String) -> String { "\(base)-\(UInt32.random(in: 0...UInt32.max))" }

    @Test func startsTheAgentThenRestartsItWithGrowingBackoffAndAnnouncesEachStart() async throws {
        let name = Self.uniqueName("ticker")
        defer { killAgents(named: name) }
        let broker = try await MosquittoBroker()
        let starts = try await TopicRecorder(broker, filter: "home/monitoring/startedprocess/#")
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config("[agent_\(name)]\n\(Self.ticker)\n"))
        let topic = "home/monitoring/startedprocess/\(name)"

        let first = try await agentPid(daemon, name)
        #expect(ProcessEntry.environ(first).contains("DEVSTATUSD_AGENT=\(name)"))
        let entry = try #require(ProcessEntry(pid: first))
        #expect(entry.processGroup == first && entry.session == first)  // setsid: own session and group
        #expect(entry.parent == daemon.process.pid)
        #expect(
            await eventually {
                daemon.log.contains("agent output agent=\(name) output=\"hello from \(name)\" stream=stdout")
            })
        #expect(await eventually { daemon.log.contains("agent output agent=\(name) output=tick stream=stdout") })
        #expect(await eventually { starts.texts(topic).count == 1 })
        let announced = try #require(starts.texts(topic).first.flatMap { Double($0) })
        #expect(abs(announced - Date().timeIntervalSince1970) < 10)

        // kill -9: restarted after 1 s, the whole old process group gone.
        let firstKill = ContinuousClock.now
        kill(first, SIGKILL)
        let second = try await agentPid(daemon, name, not: first)
        let firstDelay = ContinuousClock.now - firstKill
        // Not before its backoff. How long after depends on the machine's load: the exact schedule (1 s, then 2 s)
        // is pinned on a test clock by AgentSupervisorTests.restartsADeadAgentAfterOneThenTwoSecondsOfItsClock.
        #expect(firstDelay >= .milliseconds(900), "first restart after \(firstDelay)")
        #expect(try agentInfo(daemon, name)?["restarts"] as? Int == 1)
        #expect(ProcessEntry(pid: first) == nil)  // reaped, not a zombie
        #expect(await eventually { taggedProcesses(name).allSatisfy { $0.processGroup == second } })

        // A second quick death waits twice as long.
        let secondKill = ContinuousClock.now
        kill(second, SIGKILL)
        let third = try await agentPid(daemon, name, not: second)
        let secondDelay = ContinuousClock.now - secondKill
        #expect(secondDelay >= .milliseconds(1900), "second restart after \(secondDelay)")
        #expect(try agentInfo(daemon, name)?["restarts"] as? Int == 2)
        #expect(try daemon.get("/metrics").text.contains("agent=\"\(name)\"} 2"))

        #expect(await eventually { starts.texts(topic).count == 3 })
        #expect(taggedLeaders(name) == [third])
        #expect(zombieChildren(of: daemon.process.pid).isEmpty)
        #expect(await daemon.stop() == .exited(0))
        await starts.stop()
    }

    @Test func adoptsTheSameAgentAfterADaemonRestartAndNeverStartsItTwice() async throws {
        let name = Self.uniqueName("keeper")
        defer { killAgents(named: name) }
        let broker = try await MosquittoBroker()
        let starts = try await TopicRecorder(broker, filter: "home/monitoring/startedprocess/#")
        let config = Self.config("[agent_\(name)]\n\(Self.ticker)\n")
        let first = try await Daemon(brokerURL: broker.url, config: config)
        let pid = try await agentPid(first, name)
        #expect(await eventually { starts.texts("home/monitoring/startedprocess/\(name)").count == 1 })
        #expect(await first.stop() == .exited(0))

        // The agent outlives the daemon, and keeps writing with nobody reading without dying of SIGPIPE: three
        // more ticks written (its kernel write count grows) and still alive.
        let writtenAtStop = try #require(bytesWritten(by: pid))
        #expect(await eventually { (bytesWritten(by: pid) ?? 0) >= writtenAtStop + 3 * 5 })
        #expect(ProcessEntry(pid: pid)?.isAlive == true)

        let second = try await Daemon(brokerURL: broker.url, config: config, directory: first.directory)
        #expect(try await agentPid(second, name) == pid)
        // Adopting or starting is decided once, at start; the adoption logged, only the one process runs.
        #expect(await eventually { second.log.contains("agent adopted") })
        #expect(taggedLeaders(name) == [pid])
        #expect(try agentInfo(second, name)?["restarts"] as? Int == 0)
        #expect(try agentInfo(second, name)?["startedAt"] as? String != nil)
        #expect(second.log.contains("agent adopted"))
        // Its output, including what it wrote while no daemon ran, reaches the new daemon's log.
        #expect(await eventually { second.log.contains("agent output agent=\(name) output=tick stream=stdout") })
        #expect(starts.texts("home/monitoring/startedprocess/\(name)").count == 1)

        // Adopted, it is not the new daemon's child, yet its death is seen and it is restarted.
        kill(pid, SIGKILL)
        let replacement = try await agentPid(second, name, not: pid)
        #expect(try agentInfo(second, name)?["restarts"] as? Int == 1)
        #expect(taggedLeaders(name) == [replacement])
        #expect(zombieChildren(of: second.process.pid).isEmpty)
        #expect(await second.stop() == .exited(0))

        // Dead while no daemon ran: the next daemon starts a new one instead of trusting the pid file.
        killAgents(named: name)
        let third = try await Daemon(brokerURL: broker.url, config: config, directory: first.directory)
        let fresh = try await agentPid(third, name)
        #expect(fresh != replacement)
        #expect(taggedLeaders(name) == [fresh])
        #expect(await third.stop() == .exited(0))
        await starts.stop()
    }

    @Test func neverAdoptsAProcessWhoseTagOnlyLooksAlike() async throws {
        let name = Self.uniqueName("exact")
        defer { killAgents(named: name) }
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-agents")
        // A live process with the right start time, tagged with a longer name that starts with this one.
        let lookalike = try ChildProcess(
            executable: "/bin/sleep", arguments: ["60"], environment: ["DEVSTATUSD_AGENT": name + "x"],
            newSession: true)
        defer { lookalike.killAndReap() }
        let stat = try #require(ProcessEntry(pid: lookalike.pid))
        let agents = directory.file("data") + "/agents"
        try FileManager.default.createDirectory(atPath: agents, withIntermediateDirectories: true)
        try "pid=\(lookalike.pid)\nstarttime=\(stat.startTime)\nstarted=1\n"
            .write(toFile: agents + "/\(name).pid", atomically: true, encoding: .utf8)

        let daemon = try await Daemon(
            brokerURL: broker.url, config: Self.config("[agent_\(name)]\n\(Self.ticker)\n"), directory: directory)
        let pid = try await agentPid(daemon, name)
        #expect(pid != lookalike.pid)
        #expect(lookalike.isRunning)  // left alone
        #expect(taggedLeaders(name) == [pid])
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func restartsAnAgentWhoseWatchdogExpiresOnlyWhenRestartOnExpireIsSet() async throws {
        let restarting = Self.uniqueName("expiring")
        let keeping = Self.uniqueName("steady")
        defer {
            killAgents(named: restarting)
            killAgents(named: keeping)
        }
        let broker = try await MosquittoBroker()
        let starts = try await TopicRecorder(broker, filter: "home/monitoring/startedprocess/#")
        let config = Self.config(
            """
            [agent_\(restarting)]
            \(Self.ticker)
            watchTimeOut = 2
            watchTopics = "home/agents/\(restarting)/#"
            restartOnExpire = true

            [agent_\(keeping)]
            \(Self.ticker)
            watchTimeOut = 1
            watchTopics = "home/agents/\(keeping)/#"
            """)
        let daemon = try await Daemon(brokerURL: broker.url, config: config)
        let first = try await agentPid(daemon, restarting)
        let steady = try await agentPid(daemon, keeping)

        // Nothing arrives on its watch topics: expired after 2 s, SIGTERM, restarted 1 s later.
        let second = try await agentPid(daemon, restarting, not: first, timeout: .seconds(10))
        #expect(try agentInfo(daemon, restarting)?["restarts"] as? Int == 1)
        #expect(daemon.log.contains("watchdog expired"))
        #expect(try daemon.json("/devices/agent/\(restarting)")["status"] as? String == "expired")
        #expect(await eventually { starts.texts("home/monitoring/startedprocess/\(restarting)").count == 2 })

        // The agent without restartOnExpire expired too, a second earlier, and kept running: a restart of it
        // would have come (and been announced) before the other agent's.
        #expect(try daemon.json("/devices/agent/\(keeping)")["status"] as? String == "expired")
        #expect(try agentInfo(daemon, keeping)?["pid"] as? Int == Int(steady))
        #expect(try agentInfo(daemon, keeping)?["restarts"] as? Int == 0)
        #expect(starts.texts("home/monitoring/startedprocess/\(keeping)").count == 1)
        #expect(taggedLeaders(restarting) == [second])
        #expect(zombieChildren(of: daemon.process.pid).isEmpty)
        #expect(await daemon.stop() == .exited(0))
        await starts.stop()
    }
}

// MARK: Helpers

/// The `agent` object of `GET /devices/agent/<name>`.
func agentInfo(_ daemon: Daemon, _ name: String) throws -> [String: Any]? {
    try daemon.json("/devices/agent/\(name)")["agent"] as? [String: Any]
}

/// What the process has written so far (`wchar` of `/proc/<pid>/io`), nil once it is gone.
func bytesWritten(by pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
        return Int(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// Waits for the agent to have a pid (other than `previous`) and returns it.
func agentPid(_ daemon: Daemon, _ name: String, not previous: pid_t? = nil, timeout: Duration = .seconds(5))
    async throws -> pid_t
{
    var found: pid_t?
    _ = await eventually(timeout: timeout) {
        guard let pid = (try? agentInfo(daemon, name))?["pid"] as? Int, pid_t(pid) != previous else { return false }
        found = pid_t(pid)
        return true
    }
    guard let found else {
        throw TestSupportError("agent \(name) has no new pid after \(timeout); log:\n\(daemon.log)")
    }
    return found
}

/// One `/proc/<pid>/stat` line.
struct ProcessEntry: Equatable {
    let pid: pid_t
    let state: Character
    let parent: pid_t
    let processGroup: pid_t
    let session: pid_t
    let startTime: UInt64

    init?(pid: pid_t) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count >= 20, let state = fields[0].first, let parent = pid_t(fields[1]),
            let group = pid_t(fields[2]), let session = pid_t(fields[3]), let start = UInt64(fields[19])
        else { return nil }
        self.pid = pid
        self.state = state
        self.parent = parent
        self.processGroup = group
        self.session = session
        self.startTime = start
    }

    var isAlive: Bool { state != "Z" && state != "X" }

    static func environ(_ pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    static var all: [ProcessEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { pid_t($0) }.compactMap { ProcessEntry(pid: $0) }
    }
}

/// Live processes whose environment holds exactly `DEVSTATUSD_AGENT=<name>` (the agent and its children).
func taggedProcesses(_ name: String) -> [ProcessEntry] {
    ProcessEntry.all.filter { $0.isAlive && ProcessEntry.environ($0.pid).contains("DEVSTATUSD_AGENT=\(name)") }
}

/// The tagged processes that lead their process group: one per running agent.
func taggedLeaders(_ name: String) -> [pid_t] {
    taggedProcesses(name).filter { $0.processGroup == $0.pid }.map(\.pid)
}

/// Zombies whose parent is `parent`: children it failed to reap.
func zombieChildren(of parent: pid_t) -> [pid_t] {
    ProcessEntry.all.filter { $0.parent == parent && !$0.isAlive }.map(\.pid)
}

/// Kills every process group an agent of this name runs in, so nothing leaks into other tests.
func killAgents(named name: String) {
    for entry in taggedProcesses(name) {
        kill(-entry.processGroup, SIGKILL)
        kill(entry.pid, SIGKILL)
    }
}

/// Records what a test client receives on `filter`.
final class TopicRecorder: Sendable {
    final class Messages: Sendable {
        let list = Mutex<[MQTTMessage]>([])
    }

    let client: MQTTClient
    private let messages = Messages()
    private let task: Task<Void, Never>

    init(_ broker: MosquittoBroker, filter: String) async throws {
        let client = try await connectedClient(broker)
        self.client = client
        let messages = messages
        task = Task {
            for await batch in client.messageBatches { messages.list.withLock { $0 += batch } }
        }
        try await client.subscribe(filter, qos: 1)
    }

    func texts(_ topic: String) -> [String] {
        messages.list.withLock { $0.filter { $0.topic == topic }.map { String(decoding: $0.payload, as: UTF8.self) } }
    }

    func stop() async {
        task.cancel()
        await client.stop()
    }
}
