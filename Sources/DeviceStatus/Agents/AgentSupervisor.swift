import CSysShims
import Foundation
import Logging
import MQTT
import Synchronization

/// Keeps every `[agent_<name>]` process running (docs/behaviour.md §7).
///
/// - Each agent runs `/bin/sh -c <exec>` in a session and process group of its own, with the daemon's
///   environment plus `DEVSTATUSD_AGENT=<name>` (systemd's `NOTIFY_SOCKET`, `LISTEN_*` and `WATCHDOG_*` are left
///   out: they speak for the daemon, not for its agents) and no other descriptor of the daemon's than stdout and
///   stderr. They go into FIFOs, `<dataDir>/agents/<name>.out` and `<name>.err`, whose lines the daemon logs as
///   `agent output agent=<name> stream=stdout|stderr output="<line>"` (stdout at info, stderr at warning).
///   A FIFO rather than an anonymous pipe, because agents outlive the daemon: the agent holds its end open for
///   reading and writing, so it never gets SIGPIPE while no daemon reads, its output waits in the pipe buffer
///   (raised to 1 MiB) and the next daemon reads it from the same path.
/// - One thread (`agents`) does everything: it `poll`s the FIFOs, a pidfd per agent (readable once the process
///   has exited, for children and adopted agents alike, so exits are seen at once and an idle supervisor costs
///   nothing), an eventfd for requests from other threads, and the nearest timer. An exited child is reaped with
///   `waitpid` on its exact pid (never `-1`, which would steal other code's children), then whatever is left of its
///   process group is killed, so a restart never runs beside a straggler. Without pidfds (Linux < 5.3) the same
///   thread checks every agent 4 times a second.
/// - A dead agent is started again after ``AgentBackoff``'s delay (1 s doubling to 60 s, reset after 60 s up); with
///   `restartOnExpire = true` its watchdog's expiry (a `watchdog` transition to `expired` on ``DeviceEvents``)
///   also restarts it: SIGTERM to its process group, SIGKILL after ``terminationGrace``.
/// - Every start publishes `B/startedprocess/<name>` (epoch seconds, QoS 0, not retained).
/// - Agents outlive the daemon (IotMonitor semantics): ``stop()`` leaves them running. Each start writes
///   `<dataDir>/agents/<name>.pid` (pid, `/proc/<pid>/stat` start time, wall-clock start), and the next daemon
///   adopts the process only if it is alive, started at that time (no pid reuse) and its `/proc/<pid>/environ`
///   holds exactly `DEVSTATUSD_AGENT=<name>`; otherwise it starts a new one. An agent is never started twice.
///
/// KillMode: systemd's default `KillMode=control-group` kills every process of the unit, agents included, when
/// the service stops or restarts; agents outlive a restart only with `KillMode=process` (systemd then signals the
/// daemon alone, and leaves the agents running in the unit's cgroup for the next daemon to adopt). The trade-off:
/// `systemctl stop` then leaves agents running too (stop them with `systemctl kill devstatusd`, or by their
/// process group).
public final class AgentSupervisor: Sendable {
    /// Where `B/startedprocess/<name>` goes: topic and payload, QoS 0, not retained.
    public typealias Publish = @Sendable (_ topic: String, _ payload: [UInt8]) -> Void

    /// One configured agent.
    public struct Agent: Sendable, Equatable {
        public var name: String
        /// The `/bin/sh -c` command line.
        public var command: String
        public var restartOnExpire: Bool
        /// The device its watchdog judges.
        public var key: DeviceKey

        public init(name: String, command: String, restartOnExpire: Bool = false, key: DeviceKey) {
            self.name = name
            self.command = command
            self.restartOnExpire = restartOnExpire
            self.key = key
        }
    }

    /// The configured agents, in file order.
    public let agents: [Agent]
    /// `<dataDir>/agents`: pid files and output FIFOs.
    public let directory: String
    /// Between SIGTERM and SIGKILL when a watchdog expiry restarts an agent, default 5 s: time to flush and close
    /// cleanly, short enough that the agent is back within seconds.
    public let terminationGrace: Duration
    let backoff: AgentBackoff
    let baseTopic: String
    let logger: Logger
    let onRestart: (@Sendable (String) -> Void)?
    /// Where restart delays and the SIGKILL grace are measured; tests pass a clock they move and then ``wake()``.
    let clock: @Sendable () -> ContinuousClock.Instant
    let expiryRestarts: [DeviceKey: [String]]
    let shared = Mutex<Shared>(Shared())

    struct Shared {
        var info: [String: DeviceDirectory.AgentInfo] = [:]
        var requests: [Request] = []
        var wakeFD: Int32 = -1
        var phase: Phase = .idle
        var finished: [CheckedContinuation<Void, Never>] = []
    }

    enum Phase { case idle, running, stopped }

    enum Request: Equatable {
        case expired(String)
        /// Look at the clock again (a test moved it).
        case wake
        case stop
    }

    /// - Parameters:
    ///   - watched: the config's watched devices; its `[agent_*]` sections with an `exec` become agents.
    ///   - dataDirectory: `[storage] dataDir`; pid files and FIFOs go to its `agents` subdirectory.
    ///   - baseTopic: `[mqtt] baseTopic`, the B of `B/startedprocess/<name>`.
    ///   - terminationGrace: between SIGTERM and SIGKILL on a restart for expiry; default 5 s.
    ///   - backoff: the restart delays; default ``AgentBackoff/init(initialDelay:maximumDelay:stableUptime:)``'s.
    ///   - onRestart: called with the agent's name on every restart (not the first start, not an adoption), e.g.
    ///     `DaemonMetrics.agentRestarted`; default none.
    ///   - clock: what delays are measured on; default `ContinuousClock.now`.
    public init(
        watched: [WatchedDevice], dataDirectory: String, baseTopic: String, logger: Logger,
        terminationGrace: Duration = .seconds(5), backoff: AgentBackoff = AgentBackoff(),
        onRestart: (@Sendable (String) -> Void)? = nil,
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.clock = clock
        agents = watched.compactMap { device in
            guard device.kind == .agent, let exec = device.exec else { return nil }
            return Agent(
                name: device.name, command: exec, restartOnExpire: device.restartOnExpire,
                key: DeviceKey(type: device.type, id: device.id))
        }
        directory = (dataDirectory as NSString).appendingPathComponent("agents")
        self.baseTopic = baseTopic
        self.logger = logger
        self.terminationGrace = terminationGrace
        self.backoff = backoff
        self.onRestart = onRestart
        var expiry: [DeviceKey: [String]] = [:]
        for agent in agents where agent.restartOnExpire { expiry[agent.key, default: []].append(agent.name) }
        expiryRestarts = expiry
        shared.withLock { shared in
            for agent in agents { shared.info[agent.name] = .init(pid: nil, startedAt: nil, restarts: 0) }
        }
    }

    // MARK: Reading

    /// The agent's process now (pid nil while it is down), its start (wall-clock ns) and restart count; nil for a
    /// name that is not a configured agent. Fit for ``DeviceDirectory/init(table:watch:agents:operationCounts:)``.
    public func info(_ name: String) -> DeviceDirectory.AgentInfo? {
        shared.withLock { $0.info[name] }
    }

    /// Restarts of every agent since the daemon started (for `/metrics`).
    public var totalRestarts: Int {
        shared.withLock { $0.info.values.reduce(0) { $0 + $1.restarts } }
    }

    /// Restarts per agent name since the daemon started (for `/metrics`).
    public var restartCounts: [String: Int] {
        shared.withLock { $0.info.mapValues(\.restarts) }
    }

    // MARK: Lifecycle

    /// Restarts `restartOnExpire` agents when their watchdog expires.
    public func observe(_ events: DeviceEvents) {
        guard !expiryRestarts.isEmpty else { return }
        events.observe { [weak self] event in
            guard let self, event.source == "watchdog", case .transition(_, .expired) = event.kind,
                let names = self.expiryRestarts[event.key]
            else { return }
            for name in names { self.send(.expired(name)) }
        }
    }

    /// Adopts or starts every agent and supervises them on a thread of its own. Does nothing without agents, or
    /// when already started.
    public func start(publish: @escaping Publish) {
        guard !agents.isEmpty else { return }
        let wakeFD = shim_eventfd()
        let go = shared.withLock { shared -> Bool in
            guard shared.phase == .idle, wakeFD >= 0 else { return false }
            shared.phase = .running
            shared.wakeFD = wakeFD
            return true
        }
        guard go else {
            if wakeFD >= 0 { close(wakeFD) }
            if wakeFD < 0 { logger.error("agents not started: eventfd failed", metadata: ["errno": "\(errno)"]) }
            return
        }
        let loop = SupervisorLoop(supervisor: self, wakeFD: wakeFD, publish: publish)
        let thread = Thread {
            _ = shim_set_thread_name("agents")
            loop.run()
        }
        thread.start()
    }

    /// Stops supervising and returns once the thread is done. Leaves every agent running, with its pid file, for
    /// the next daemon to adopt.
    public func stop() async {
        await withCheckedContinuation { continuation in
            let resumeNow = shared.withLock { shared -> Bool in
                guard shared.phase == .running else { return true }
                shared.finished.append(continuation)
                return false
            }
            if resumeNow {
                continuation.resume()
            } else {
                send(.stop)
            }
        }
    }

    func send(_ request: Request) {
        shared.withLock { shared in
            guard shared.phase == .running else { return }
            shared.requests.append(request)
            _ = shim_eventfd_signal(shared.wakeFD)
        }
    }

    /// `B/startedprocess/<name>`.
    func startedTopic(_ name: String) -> String { baseTopic + "/startedprocess/" + name }

    /// Has the supervisor thread look at the clock again: timers due by then run now.
    func wake() { send(.wake) }
}

/// The supervisor's thread: owns every agent's process, descriptors and timers. Touched by that thread only.
final class SupervisorLoop: @unchecked Sendable {
    /// Without pidfds, how often agents are checked: 4 Hz, so a death is noticed within 250 ms.
    static let fallbackPoll = 250
    /// Bytes read from one FIFO per wake-up, so one chatty agent cannot starve the others.
    static let readBudget = 1 << 20
    /// The longest line kept whole; an agent writing without newlines is logged in pieces this long.
    static let maxLine = 16 << 10
    /// The FIFO buffer: 1 MiB (Linux's default unprivileged maximum) holds an agent's output while no daemon runs.
    static let fifoSize: Int32 = 1 << 20
    /// systemd's protocol variables: they name the daemon, and an agent using them would speak for it.
    static let daemonOnlyVariables: Set<String> = [
        "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
    ]

    final class Slot {
        let agent: Agent
        var backoff: AgentBackoff
        var pid: Int32?
        var pidfd: Int32 = -1
        var isChild = false
        /// Whether the agent leads its process group (always, unless an adopted agent left it).
        var leadsGroup = true
        var startedAt: Int64?
        /// `/proc/<pid>/stat` field 22 of the running agent.
        var startTime: UInt64 = 0
        var killAt: ContinuousClock.Instant?
        /// The supervisor asked the agent to stop (an expiry's SIGTERM, and SIGKILL after the grace): its exit is
        /// no crash.
        var stopRequested = false
        var restartAt: ContinuousClock.Instant?
        var restarts = 0
        /// stdout, then stderr.
        let outputs = [Output(stream: .stdout), Output(stream: .stderr)]

        init(agent: Agent, backoff: AgentBackoff) {
            self.agent = agent
            self.backoff = backoff
        }
    }

    /// One of an agent's output FIFOs and its unfinished line.
    final class Output {
        enum Stream: String { case stdout, stderr }
        let stream: Stream
        var fifoPath: String?
        var fd: Int32 = -1
        var pending: [UInt8] = []

        init(stream: Stream) { self.stream = stream }

        /// `<name>.out` and `<name>.err`.
        var suffix: String { stream == .stdout ? ".out" : ".err" }
    }

    typealias Agent = AgentSupervisor.Agent
    let supervisor: AgentSupervisor
    let wakeFD: Int32
    let publish: AgentSupervisor.Publish
    let slots: [Slot]
    var logger: Logger { supervisor.logger }
    var pidfdsWork = true
    var buffer = [UInt8](repeating: 0, count: 64 << 10)

    init(supervisor: AgentSupervisor, wakeFD: Int32, publish: @escaping AgentSupervisor.Publish) {
        self.supervisor = supervisor
        self.wakeFD = wakeFD
        self.publish = publish
        slots = supervisor.agents.map { Slot(agent: $0, backoff: supervisor.backoff) }
    }

    func run() {
        do {
            try FileManager.default.createDirectory(
                atPath: supervisor.directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            logger.error(
                "agent directory cannot be created; agents run without pid files and cannot be re-adopted",
                metadata: ["path": "\(supervisor.directory)", "error": "\(error.localizedDescription)"])
        }
        let now = supervisor.clock()
        for slot in slots {
            for output in slot.outputs { openOutput(slot, output) }
            if !adopt(slot, now: now) { spawn(slot, now: now) }
        }
        reportUnconfiguredAgents()
        publishInfo()
        loop()
        for slot in slots {
            for output in slot.outputs where output.fd >= 0 {
                drainOutput(slot, output)
                flushPending(slot, output)
                close(output.fd)
            }
            if slot.pidfd >= 0 { close(slot.pidfd) }
        }
        let waiters = supervisor.shared.withLock { shared in
            shared.phase = .stopped
            close(shared.wakeFD)
            shared.wakeFD = -1
            defer { shared.finished = [] }
            return shared.finished
        }
        logger.info("agent supervision stopped; agents keep running", metadata: ["agents": "\(slots.count)"])
        for waiter in waiters { waiter.resume() }
    }

    private func loop() {
        while true {
            var fds: [pollfd] = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            for slot in slots {
                fds.append(pollfd(fd: slot.pidfd, events: Int16(POLLIN), revents: 0))  // -1 is ignored by poll
                for output in slot.outputs { fds.append(pollfd(fd: output.fd, events: Int16(POLLIN), revents: 0)) }
            }
            let rc = poll(&fds, nfds_t(fds.count), timeoutMilliseconds(now: supervisor.clock()))
            if rc < 0 && errno != EINTR {
                logger.error("agent supervision poll failed", metadata: ["errno": "\(errno)"])
                usleep(100_000)
            }
            if fds[0].revents != 0 { _ = shim_eventfd_drain(wakeFD) }
            let requests = supervisor.shared.withLock { shared in
                defer { shared.requests = [] }
                return shared.requests
            }
            let now = supervisor.clock()
            for (index, slot) in slots.enumerated() {
                for (number, output) in slot.outputs.enumerated() where fds[2 + 3 * index + number].revents != 0 {
                    drainOutput(slot, output)
                }
                let exitedSignal = fds[1 + 3 * index].revents != 0
                if slot.pid != nil && (exitedSignal || slot.pidfd < 0) {
                    checkExit(slot, pidfdReadable: exitedSignal, now: now)
                }
            }
            for request in requests {
                if case .expired(let name) = request, let slot = slots.first(where: { $0.agent.name == name }) {
                    terminateForExpiry(slot, now: now)
                }
            }
            if requests.contains(.stop) { return }
            for slot in slots { runTimers(slot, now: now) }
            publishInfo()
        }
    }

    private func timeoutMilliseconds(now: ContinuousClock.Instant) -> Int32 {
        let timers = slots.flatMap { [$0.killAt, $0.restartAt].compactMap { $0 } }
        var timeout: Int32 = -1
        if let next = timers.min() {
            let milliseconds = max(0, (next - now) / .milliseconds(1))
            timeout = Int32(min(milliseconds.rounded(.up), 60_000))
        }
        if slots.contains(where: { $0.pid != nil && $0.pidfd < 0 }) {
            timeout = timeout < 0 ? Int32(Self.fallbackPoll) : min(timeout, Int32(Self.fallbackPoll))
        }
        return timeout
    }

    private func publishInfo() {
        let snapshot = slots.map {
            ($0.agent.name, DeviceDirectory.AgentInfo(pid: $0.pid, startedAt: $0.startedAt, restarts: $0.restarts))
        }
        supervisor.shared.withLock { shared in
            for (name, info) in snapshot { shared.info[name] = info }
        }
    }

    // MARK: Starting and adopting

    private func pidPath(_ slot: Slot) -> String {
        (supervisor.directory as NSString).appendingPathComponent(slot.agent.name + ".pid")
    }

    /// Adopts the process `<name>.pid` names if it is exactly this agent; removes a pid file that names anything else.
    private func adopt(_ slot: Slot, now: ContinuousClock.Instant) -> Bool {
        let path = pidPath(slot)
        guard let bytes = ProcFS.readAll(path) else { return false }
        guard let file = AgentIdentity.PidFile(parsing: String(decoding: bytes, as: UTF8.self)) else {
            logger.warning("agent pid file unreadable; starting the agent", metadata: ["path": "\(path)"])
            unlink(path)
            return false
        }
        // The pidfd first: if the checks below pass, it is known to refer to the process they checked.
        let pidfd = shim_pidfd_open(file.pid)
        let stat = ProcFS.stat(file.pid)
        let verdict = AgentIdentity.verdict(
            pidFile: file, stat: stat, environ: ProcFS.environ(file.pid), name: slot.agent.name)
        guard verdict == .adopt, let stat, pidfd >= 0 || pidfd == -ENOSYS else {
            if pidfd >= 0 { close(pidfd) }
            logger.info(
                "agent from the last run is not running; starting it",
                metadata: ["agent": "\(slot.agent.name)", "pid": "\(file.pid)", "check": "\(verdict)"])
            unlink(path)
            return false
        }
        slot.pid = file.pid
        slot.pidfd = max(pidfd, -1)
        pidfdsWork = pidfd >= 0
        slot.isChild = false
        slot.leadsGroup = stat.processGroup == file.pid
        slot.startedAt = file.startedAt
        slot.startTime = file.startTime
        // The run began before this daemon: backdate it so 60 s of uptime still resets the backoff.
        let age = max(0, wallClockNanoseconds() - file.startedAt)
        slot.backoff.started(at: now - .nanoseconds(age))
        logger.notice(
            "agent adopted from the last run",
            metadata: ["agent": "\(slot.agent.name)", "pid": "\(file.pid)"])
        return true
    }

    /// Names agents that a pid file shows still running but the configuration no longer lists: nobody supervises
    /// them now, and a person has to decide whether to stop them.
    private func reportUnconfiguredAgents() {
        let configured = Set(slots.map { $0.agent.name + ".pid" })
        let files = (try? FileManager.default.contentsOfDirectory(atPath: supervisor.directory)) ?? []
        for file in files where file.hasSuffix(".pid") && !configured.contains(file) {
            let path = (supervisor.directory as NSString).appendingPathComponent(file)
            let name = String(file.dropLast(4))
            guard let bytes = ProcFS.readAll(path),
                let pidFile = AgentIdentity.PidFile(parsing: String(decoding: bytes, as: UTF8.self)),
                AgentIdentity.verdict(
                    pidFile: pidFile, stat: ProcFS.stat(pidFile.pid), environ: ProcFS.environ(pidFile.pid), name: name)
                    == .adopt
            else {
                unlink(path)
                continue
            }
            logger.warning(
                "agent no longer configured is still running; not supervised (stop its process group to end it)",
                metadata: ["agent": "\(name)", "pid": "\(pidFile.pid)", "pidFile": "\(path)"])
        }
    }

    /// Creates `<name>.out` (or `.err`) as a FIFO if needed and opens the daemon's end (read and write, non-blocking: holding a
    /// writer keeps poll from reporting hang-up while no agent runs).
    private func openOutput(_ slot: Slot, _ output: Output) {
        let path = (supervisor.directory as NSString).appendingPathComponent(slot.agent.name + output.suffix)
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFIFO { unlink(path) }
        if mkfifo(path, 0o600) != 0 && errno != EEXIST {
            logger.warning(
                "agent output FIFO cannot be created; the agent writes to the daemon's stderr",
                metadata: ["agent": "\(slot.agent.name)", "path": "\(path)", "errno": "\(errno)"])
            return
        }
        let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            logger.warning(
                "agent output FIFO cannot be opened; the agent writes to the daemon's stderr",
                metadata: ["agent": "\(slot.agent.name)", "path": "\(path)", "errno": "\(errno)"])
            return
        }
        _ = shim_set_pipe_size(fd, Self.fifoSize)
        output.fifoPath = path
        output.fd = fd
    }

    private func spawn(_ slot: Slot, now: ContinuousClock.Instant) {
        let name = slot.agent.name
        var environment = ProcessInfo.processInfo.environment
        for variable in Self.daemonOnlyVariables { environment[variable] = nil }
        environment[AgentIdentity.tagVariable] = name
        let words: [String] = ["/bin/sh", "-c", slot.agent.command]
        let argv = words.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0.key + "=" + $0.value) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // The agent's own end of the FIFO, for reading too, so it never gets SIGPIPE while no daemon reads.
        let childFD = slot.outputs[0].fifoPath.map { open($0, O_RDWR | O_CLOEXEC) } ?? -1
        let childErrorFD = slot.outputs[1].fifoPath.map { open($0, O_RDWR | O_CLOEXEC) } ?? -1
        let pid = shim_spawn_detached("/bin/sh", argv, envp, childFD, childErrorFD)
        if childFD >= 0 { close(childFD) }
        if childErrorFD >= 0 { close(childErrorFD) }
        guard pid > 0 else {
            let delay = slot.backoff.exited(at: now)
            slot.restartAt = now + delay
            logger.error(
                "agent cannot be started",
                metadata: [
                    "agent": "\(name)", "error": "\(String(cString: strerror(-pid)))", "retryIn": "\(delay)",
                ])
            return
        }
        let startedAt = wallClockNanoseconds()
        slot.pid = pid
        slot.isChild = true
        slot.leadsGroup = true
        slot.startedAt = startedAt
        slot.backoff.started(at: now)
        let pidfd = shim_pidfd_open(pid)
        slot.pidfd = max(pidfd, -1)
        if pidfd < 0 && pidfdsWork {
            pidfdsWork = false
            logger.notice("pidfd_open unavailable; checking agents 4 times a second", metadata: ["errno": "\(-pidfd)"])
        }
        // posix_spawn returns after the exec, and the child cannot vanish before it is reaped: its stat is there.
        let startTime = ProcFS.stat(pid)?.startTime ?? 0
        slot.startTime = startTime
        writePidFile(slot, AgentIdentity.PidFile(pid: pid, startTime: startTime, startedAt: startedAt))
        publish(supervisor.startedTopic(name), Array("\(startedAt / 1_000_000_000)".utf8))
        logger.info("agent started", metadata: ["agent": "\(name)", "pid": "\(pid)", "restarts": "\(slot.restarts)"])
    }

    private func writePidFile(_ slot: Slot, _ file: AgentIdentity.PidFile) {
        let path = pidPath(slot)
        let temporary = path + ".tmp"
        do {
            try file.text.write(toFile: temporary, atomically: false, encoding: .utf8)
            guard rename(temporary, path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        } catch {
            logger.error(
                "agent pid file cannot be written; a daemon restart will not adopt this agent",
                metadata: ["agent": "\(slot.agent.name)", "path": "\(path)", "error": "\(error)"])
        }
    }

    // MARK: Exits, expiry, timers

    private func checkExit(_ slot: Slot, pidfdReadable: Bool, now: ContinuousClock.Instant) {
        guard let pid = slot.pid else { return }
        var how = "exited"
        if slot.isChild {
            var status: Int32 = 0
            var rc: Int32
            repeat { rc = waitpid(pid, &status, WNOHANG) } while rc < 0 && errno == EINTR
            if rc == 0 { return }
            if rc == pid {
                // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
                how =
                    status & 0x7F == 0
                    ? "exited with status \((status >> 8) & 0xFF)" : "killed by signal \(status & 0x7F)"
            }
        } else if !pidfdReadable {
            // No pidfd: an adopted agent is gone when /proc no longer shows it, alive, started at the same time.
            if let stat = ProcFS.stat(pid), !stat.hasExited, stat.startTime == slot.startTime { return }
        }
        let requested = slot.stopRequested
        slot.stopRequested = false
        // The process group outlives its leader: kill what is left so the restart runs alone.
        if slot.leadsGroup { kill(-pid, SIGKILL) }
        if slot.pidfd >= 0 { close(slot.pidfd) }
        slot.pidfd = -1
        slot.pid = nil
        slot.startedAt = nil
        slot.killAt = nil
        unlink(pidPath(slot))
        let delay = slot.backoff.exited(at: now)
        slot.restartAt = now + delay
        logger.log(
            level: requested ? .notice : .warning, "agent \(how); restarting it",
            metadata: ["agent": "\(slot.agent.name)", "pid": "\(pid)", "in": "\(delay)"])
    }

    private func terminateForExpiry(_ slot: Slot, now: ContinuousClock.Instant) {
        guard let pid = slot.pid, slot.killAt == nil else { return }
        logger.notice(
            "agent's watchdog expired; restarting it (restartOnExpire)",
            metadata: ["agent": "\(slot.agent.name)", "pid": "\(pid)"])
        kill(slot.leadsGroup ? -pid : pid, SIGTERM)
        slot.stopRequested = true
        slot.killAt = now + supervisor.terminationGrace
    }

    private func runTimers(_ slot: Slot, now: ContinuousClock.Instant) {
        if let killAt = slot.killAt, killAt <= now, let pid = slot.pid {
            logger.warning(
                "agent still running after SIGTERM; sending SIGKILL",
                metadata: ["agent": "\(slot.agent.name)", "pid": "\(pid)"])
            kill(slot.leadsGroup ? -pid : pid, SIGKILL)
            slot.killAt = nil
        }
        if let restartAt = slot.restartAt, restartAt <= now, slot.pid == nil {
            slot.restartAt = nil
            slot.restarts += 1
            supervisor.onRestart?(slot.agent.name)
            spawn(slot, now: now)
        }
    }

    // MARK: Output

    private func drainOutput(_ slot: Slot, _ output: Output) {
        var total = 0
        while total < Self.readBudget {
            let count = buffer.withUnsafeMutableBytes { read(output.fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            total += count
            var start = 0
            for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                output.pending += buffer[start..<index]
                emit(slot, output)
                start = index + 1
            }
            output.pending += buffer[start..<count]
            while output.pending.count >= Self.maxLine {
                let rest = Array(output.pending[Self.maxLine...])
                output.pending.removeSubrange(Self.maxLine...)
                emit(slot, output)
                output.pending = rest
            }
        }
    }

    private func flushPending(_ slot: Slot, _ output: Output) {
        if !output.pending.isEmpty { emit(slot, output) }
    }

    /// `agent output agent=<name> stream=stdout output="<line>"` at info; stderr lines at warning. The line is a
    /// metadata value, so a log reader never takes `key=value` text an agent prints for the daemon's own fields.
    private func emit(_ slot: Slot, _ output: Output) {
        var line = output.pending
        output.pending.removeAll(keepingCapacity: true)
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        logger.log(
            level: output.stream == .stderr ? .warning : .info, "agent output",
            metadata: [
                "agent": "\(slot.agent.name)", "stream": "\(output.stream.rawValue)",
                "output": "\(String(decoding: line, as: UTF8.self))",
            ])
    }
}
