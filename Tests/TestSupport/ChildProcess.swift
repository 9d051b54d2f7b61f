import CSysShims
import Foundation
import Synchronization

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// `exit(code)`.
    case exited(Int32)
    /// Killed by `signal`.
    case signaled(Int32)

    init(waitStatus: Int32) {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        if waitStatus & 0x7F == 0 {
            self = .exited((waitStatus >> 8) & 0xFF)
        } else {
            self = .signaled(waitStatus & 0x7F)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited(\(code))"
        case .signaled(let signal): "signaled(\(signal))"
        }
    }
}

/// A child process spawned with `posix_spawn`, an empty signal mask and default signal dispositions
/// (`shim_spawn`), so it reacts to SIGTERM even when started from an async test (whose thread may block signals).
///
/// The process is reaped exactly once, by whichever of ``isRunning``, ``waitForExit(timeout:)`` or
/// ``terminate(_:)`` first sees it gone. A child still running at deinit gets SIGKILL and is reaped,
/// so a failing test does not leak processes.
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: pid_t
    /// Where stdout and stderr go, when captured.
    public let outputPath: String?
    private let status = Mutex<ExitStatus?>(nil)

    /// Spawns `executable` with `arguments` (argv[0] is the executable path).
    /// - Parameters:
    ///   - environment: variables added to (or replacing those of) this process's environment;
    ///     default none. With `inheritEnvironment: false` (default true) the child gets only these.
    ///   - outputPath: a file that receives both stdout and stderr (created or truncated);
    ///     default nil: the child inherits the test's stdout and stderr.
    ///   - newSession: run the child in a new session and process group (`setsid`); default false.
    public init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        inheritEnvironment: Bool = true,
        outputPath: String? = nil,
        newSession: Bool = false
    ) throws {
        var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        env.merge(environment) { _, new in new }
        var outFD: Int32 = -1
        if let outputPath {
            outFD = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard outFD >= 0 else { throw TestSupportError("cannot open \(outputPath): errno \(errno)") }
        }
        defer { if outFD >= 0 { close(outFD) } }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let pid = shim_spawn(executable, argv, envp, newSession ? 1 : 0, outFD)
        guard pid > 0 else {
            throw TestSupportError("cannot spawn \(executable): \(String(cString: strerror(-pid)))")
        }
        self.pid = pid
        self.outputPath = outputPath
    }

    /// The captured stdout and stderr so far ("" without an ``outputPath``).
    public var output: String {
        guard let outputPath, let data = FileManager.default.contents(atPath: outputPath) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// How the child ended, once it has been reaped.
    public var exitStatus: ExitStatus? {
        reap()
    }

    /// True while the child has not exited (reaps it when it has).
    public var isRunning: Bool {
        reap() == nil
    }

    /// Sends `signal` (default SIGTERM) unless the child has already been reaped.
    public func terminate(_ signal: Int32 = SIGTERM) {
        status.withLock { current in
            // Never signal a reaped pid: the kernel may have given it to another process.
            if current == nil { kill(pid, signal) }
        }
    }

    /// Waits up to `timeout` (default 10 s) for the child to exit; nil if it is still running.
    public func waitForExit(timeout: Duration = .seconds(10)) async -> ExitStatus? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let done = reap() { return done }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// SIGTERM, then SIGKILL if the child is still running after `grace` (default 3 s); returns how it ended.
    @discardableResult
    public func stop(grace: Duration = .seconds(3)) async -> ExitStatus {
        terminate(SIGTERM)
        if let done = await waitForExit(timeout: grace) { return done }
        return killAndReap()
    }

    /// SIGKILL and a blocking `waitpid`.
    @discardableResult
    public func killAndReap() -> ExitStatus {
        status.withLock { current in
            if let current { return current }
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            let done = ExitStatus(waitStatus: raw)
            current = done
            return done
        }
    }

    private func reap() -> ExitStatus? {
        status.withLock { current in
            if let current { return current }
            var raw: Int32 = 0
            let rc = waitpid(pid, &raw, WNOHANG)
            if rc < 0 && errno == ECHILD {
                // Reaped elsewhere: it is gone, but its status is lost.
                current = .exited(-1)
                return current
            }
            guard rc == pid else { return nil }
            let done = ExitStatus(waitStatus: raw)
            current = done
            return done
        }
    }

    deinit {
        killAndReap()
    }
}
