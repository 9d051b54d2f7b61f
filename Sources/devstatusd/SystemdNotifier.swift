import CSysShims
import DeviceStatus
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// sd_notify(3) without libsystemd: each message is one datagram of `KEY=value` lines sent to the
/// `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
struct SystemdNotifier: Sendable {
    /// `$NOTIFY_SOCKET` as systemd gave it.
    let socketPath: String
    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (sd_watchdog_enabled(3)), nil when the
    /// watchdog is off or `$WATCHDOG_PID` names another process.
    let watchdogInterval: Duration?

    /// The notifier systemd asked for, or nil when `$NOTIFY_SOCKET` is unset (not started by systemd with
    /// `Type=notify`). With `unsetEnvironment` (default true) the variables are removed from the environment,
    /// as sd_notify's `unset_environment` does, so agents started later cannot speak for the daemon.
    static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, unsetEnvironment: Bool = true
    ) -> SystemdNotifier? {
        defer {
            if unsetEnvironment {
                for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) }
            }
        }
        guard let socketPath = environment["NOTIFY_SOCKET"], !socketPath.isEmpty else { return nil }
        var interval: Duration?
        if let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 {
            let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
            if forUs { interval = .microseconds(microseconds / 2) }
        }
        return SystemdNotifier(socketPath: socketPath, watchdogInterval: interval)
    }

    /// Sends `fields` (e.g. `["READY=1", "STATUS=serving"]`) as one datagram. Returns false when the socket
    /// is unusable; notifications are advisory, so callers log at most.
    @discardableResult
    func notify(_ fields: [String]) -> Bool {
        var path = Array(socketPath.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        // Only filesystem and abstract sockets; newer systemd also speaks vsock, which no unit here uses.
        guard abstract || path.first == UInt8(ascii: "/") else { return false }
        if abstract { path[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A path needs its NUL terminator in sun_path; an abstract name is measured by the length alone.
        guard path.count + (abstract ? 0 : 1) <= capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let length = socklen_t(
            MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (abstract ? 0 : 1))

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let message = Array(fields.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(fd, message, message.count, Int32(MSG_NOSIGNAL), socketAddress, length)
            }
        }
        return sent == message.count
    }

    /// `MONOTONIC_USEC=` as `RELOADING=1` carries it (systemd ≥ 253 checks it for `Type=notify-reload`).
    static func monotonicField() -> String {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return "MONOTONIC_USEC=\(UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000)"
    }
}

/// The daemon's conversation with systemd: `READY=1` when `ServiceHealth` says the store is loaded and the port
/// bound; `STATUS=` whenever the one-line summary changes; `WATCHDOG=1` every `WATCHDOG_USEC/2` while the
/// registry actor answers; `RELOADING=1` … `READY=1` around a reload; `STOPPING=1` on stop. Follows the
/// daemon's phases from its creation; the periodic part runs in ``run()``.
final class SystemdService: Service {
    let notifier: SystemdNotifier
    private let health: ServiceHealth
    private let logger: Logger
    private struct State {
        var lastStatus = ""
        var lastReloadFailed = false
    }
    private let state = Mutex(State())
    /// Yields once the daemon is ready: the periodic part starts then.
    private let ready: AsyncStream<Void>
    private let readyInput: AsyncStream<Void>.Continuation

    /// `STATUS=` is refreshed at least this often without a watchdog: often enough for `systemctl status`
    /// to look current, rare enough to cost nothing.
    static let statusRefresh: Duration = .seconds(5)

    /// Create it before the daemon starts, so that no phase change is missed.
    init(notifier: SystemdNotifier, health: ServiceHealth, logger: Logger) {
        self.notifier = notifier
        self.health = health
        self.logger = logger
        (ready, readyInput) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        if let interval = notifier.watchdogInterval {
            logger.debug("systemd watchdog enabled", metadata: ["interval": "\(interval)"])
        }
        health.observe { [self] phase in
            switch phase {
            case .starting: break
            case .ready:
                send(["READY=1", "STATUS=" + statusLine()])
                readyInput.yield()
            case .stopping:
                readyInput.finish()
                send(["STOPPING=1", "STATUS=stopping"])
            }
        }
    }

    /// Before a configuration reload.
    func reloading() {
        send(["RELOADING=1", SystemdNotifier.monotonicField(), "STATUS=reloading the configuration"])
    }

    /// After a reload attempt; `failed` keeps a note in the status line until a reload succeeds.
    func reloaded(failed: Bool) {
        state.withLock { $0.lastReloadFailed = failed }
        send(["READY=1", "STATUS=" + statusLine()])
    }

    private func statusLine() -> String {
        let line = health.summary()
        let failed = state.withLock { $0.lastReloadFailed }
        return failed ? line + "; last reload failed, see the log" : line
    }

    private func send(_ fields: [String]) {
        if let status = fields.first(where: { $0.hasPrefix("STATUS=") }) {
            state.withLock { $0.lastStatus = status }
        }
        if !notifier.notify(fields) {
            logger.warning(
                "cannot notify systemd", metadata: ["socket": "\(notifier.socketPath)", "errno": "\(errno)"])
        }
    }

    /// From `READY=1` until the stop begins: the watchdog ping (while the registry answers) and the status line
    /// when it changed (and once at the start).
    func run() async {
        var readiness = ready.makeAsyncIterator()
        guard await readiness.next() != nil else { return }
        let watchdog = notifier.watchdogInterval
        let period = watchdog.map { min($0, Self.statusRefresh) } ?? Self.statusRefresh
        try? await cancelWhenGracefulShutdown { [self] in
            // The first round restates the status line, so each round is visible from the start.
            var firstRound = true
            while !Task.isCancelled {
                var fields: [String] = []
                if let watchdog {
                    // Half the ping period: an answer any later would leave systemd too little margin.
                    if await health.registryResponds(within: watchdog / 2) {
                        fields.append("WATCHDOG=1")
                    } else {
                        logger.error("status registry did not answer in time; withholding the systemd watchdog ping")
                    }
                }
                let status = "STATUS=" + statusLine()
                if firstRound || status != state.withLock({ $0.lastStatus }) { fields.append(status) }
                firstRound = false
                if !fields.isEmpty, health.phase != .stopping { send(fields) }
                try await Task.sleep(for: period)
            }
        }
    }
}
