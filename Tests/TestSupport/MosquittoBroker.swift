import Foundation
import Synchronization

/// A real `/usr/sbin/mosquitto` listening on 127.0.0.1 on a port of its own, with its config and log in
/// a temporary directory. Several brokers may run at once; every method is safe to call from async tests.
///
/// ```swift
/// let broker = try await MosquittoBroker()
/// defer { broker.kill() }          // or `await broker.stop()`
/// let url = broker.url             // "tcp://127.0.0.1:PORT"
/// ```
/// A broker still running at deinit is killed, so a failing test does not leak it.
public final class MosquittoBroker: Sendable {
    /// The mosquitto binary (Debian's `mosquitto` package).
    public static let executable = "/usr/sbin/mosquitto"

    private struct State {
        var port: Int
        var process: ChildProcess?
        /// Set by the first successful start; from then on the port is kept.
        var hasStarted = false
    }

    private let directory: TemporaryDirectory
    private let extraConfig: [String]
    private let state: Mutex<State>

    /// Creates the broker and, when `start` is true (the default), starts it and waits until it accepts
    /// connections.
    /// - Parameters:
    ///   - extraConfig: lines appended to the generated config (e.g. `"max_queued_messages 5000"`);
    ///     default none. The generated config has `listener PORT 127.0.0.1`, `allow_anonymous true`,
    ///     `user root`, `persistence false` and logs to ``logPath``.
    ///   - start: false only reserves a free port, for tests where the broker is down at first;
    ///     call ``start()`` later.
    public init(extraConfig: [String] = [], start: Bool = true) async throws {
        directory = try TemporaryDirectory(prefix: "mosquitto")
        self.extraConfig = extraConfig
        state = Mutex(State(port: try FreePort.next()))
        if start {
            try await self.start()
        }
    }

    /// The TCP port on 127.0.0.1. Stays the same across ``restart()``.
    public var port: Int { state.withLock { $0.port } }

    /// `tcp://127.0.0.1:PORT`.
    public var url: String { "tcp://127.0.0.1:\(port)" }

    /// The broker's log file.
    public var logPath: String { directory.file("mosquitto.log") }

    /// The broker's log so far, across restarts (plus anything it wrote to stdout/stderr), for diagnostics.
    public var log: String {
        let read = { (path: String) in
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return read(logPath) + read(directory.file("stdout.log"))
    }

    /// The broker's pid while it runs.
    public var pid: pid_t? { state.withLock { $0.process?.pid } }

    /// True while the broker process is alive.
    public var isRunning: Bool { state.withLock { $0.process?.isRunning ?? false } }

    /// Starts the broker (does nothing if it runs) and waits until it accepts TCP connections.
    ///
    /// If the first start loses its port to another process, it moves to a new free port; after a
    /// first successful start the port is kept (for ``restart()``), and a busy port is retried.
    /// Throws with the broker's log after 10 s, far more than mosquitto's ~10 ms start-up.
    public func start() async throws {
        if isRunning { return }
        let deadline = ContinuousClock.now + .seconds(10)
        let portIsFixed = state.withLock { $0.hasStarted }
        while true {
            let (process, port, offset) = try launch()
            switch await waitUntilReady(process: process, port: port, logOffset: offset, deadline: deadline) {
            case .ready:
                state.withLock { $0.hasStarted = true }
                return
            case .exited:
                if ContinuousClock.now >= deadline {
                    throw TestSupportError("mosquitto did not start on port \(port):\n\(log)")
                }
                if !portIsFixed, logSince(offset).contains("Address already in use") {
                    let newPort = try FreePort.next()
                    state.withLock { $0.port = newPort }
                } else {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            case .timedOut:
                process.killAndReap()
                throw TestSupportError("mosquitto on port \(port) did not accept connections within 10 s:\n\(log)")
            }
        }
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still running after 3 s (mosquitto stops in ms).
    public func stop() async {
        guard let process = state.withLock({ $0.process }) else { return }
        await process.stop(grace: .seconds(3))
        state.withLock { if $0.process === process { $0.process = nil } }
    }

    /// Kills the broker at once (SIGKILL), without waiting for a clean shutdown. Usable from `defer`.
    public func kill() {
        let process = state.withLock { state in
            defer { state.process = nil }
            return state.process
        }
        process?.killAndReap()
    }

    /// Stops the broker and starts it again on the same port (for reconnect tests).
    public func restart() async throws {
        await stop()
        try await start()
    }

    private enum Readiness { case ready, exited, timedOut }

    /// Writes the config and spawns mosquitto; returns the process, its port and the log size before it
    /// started (so readiness looks only at this start's lines).
    private func launch() throws -> (ChildProcess, Int, Int) {
        let port = state.withLock { $0.port }
        let config =
            [
                "listener \(port) 127.0.0.1",
                "allow_anonymous true",
                // As root, mosquitto otherwise drops to the `mosquitto` user and cannot read the temp dir.
                "user root",
                "persistence false",
                "log_dest file \(logPath)",
                "connection_messages true",
            ] + extraConfig
        let configPath = directory.file("mosquitto.conf")
        try (config.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let offset = (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int) ?? 0
        let process = try ChildProcess(
            executable: Self.executable,
            arguments: ["-c", configPath],
            outputPath: directory.file("stdout.log")
        )
        state.withLock { $0.process = process }
        return (process, port, offset)
    }

    /// Ready means: the process lives, its log says "running" since this start, and connect() succeeds.
    /// The log check keeps a stranger that won the port race from passing for our broker.
    private func waitUntilReady(
        process: ChildProcess, port: Int, logOffset: Int, deadline: ContinuousClock.Instant
    ) async -> Readiness {
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                state.withLock { if $0.process === process { $0.process = nil } }
                return .exited
            }
            if logSince(logOffset).contains(" running") {
                let fd = connectLoopback(port: port)
                if fd >= 0 {
                    close(fd)
                    return .ready
                }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return .timedOut
    }

    private func logSince(_ offset: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: logPath) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: UInt64(offset))
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }

    deinit {
        state.withLock { $0.process }?.killAndReap()
    }
}
