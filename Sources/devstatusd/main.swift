import ArgumentParser
import DeviceStatus
import Foundation
import Logging
import ServiceLifecycle

/// `devstatusd [options]`: runs the daemon; `devstatusd check-config`: validates a config file.
struct DevStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devstatusd",
        abstract: "Knows whether each of your MQTT devices is connected, alive or gone, and acts on it.",
        version: "devstatusd \(DeviceStatusVersion.full)",
        subcommands: [CheckConfigCommand.self])

    @Option(name: [.short, .long], help: "Config file (default: ./config.toml if it exists, else built-in defaults).")
    var config: String?
    @Option(name: [.short, .long], help: "HTTP port (overrides [http] port).")
    var port: Int?
    @Option(help: "HTTP bind address (overrides [http] bind).")
    var host: String?
    @Option(help: "Broker URL, tcp:// mqtt:// ssl:// or mqtts:// (overrides [mqtt] serverAddress).")
    var broker: String?
    @Option(help: "Data directory (overrides [storage] dataDir; $STATE_DIRECTORY wins over both).")
    var dataDir: String?
    @Option(help: "trace, debug, info, notice, warning or error (overrides [log] level; default info).")
    var logLevel: String?

    func run() async throws { try await runDaemon() }

    func runDaemon() async throws {
        let flagLevel = try parsedLogLevel()
        let level = SharedLogLevel(flagLevel ?? .info)
        let destination = DaemonLogHandler.destination()
        LoggingSystem.bootstrap { DaemonLogHandler(label: $0, shared: level, destination: destination) }
        let logger = Logger(label: "devstatusd")

        let signals = await DaemonSignals.trap()
        let settings = try resolveSettings()
        level.level = settings.log.level
        let health = ServiceHealth()
        // Created before the daemon, so that it sees every phase.
        let systemd = SystemdNotifier.fromEnvironment().map {
            SystemdService(notifier: $0, health: health, logger: logger)
        }
        let stops = StopRequests()
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask {
                for await _ in signals.stop { await stops.request() }
            }
            let daemon: Daemon
            do {
                daemon = try await Daemon.assemble(config: settings, health: health, logger: logger)
            } catch let failure as DaemonFailure {
                throw CLIFailure(code: failure.exitCode, message: failure.description)
            }
            let command = self
            let reloader = ConfigReloader(daemon: daemon, systemd: systemd, logLevel: level, logger: logger) {
                try command.resolveSettings()
            }
            let reloads = ReloadService(signals: signals.reload, reloader: reloader)
            let group = daemon.serviceGroup(adding: (systemd.map { [$0] } ?? []) + [reloads])
            await stops.attach(group)
            do {
                try await group.run()
            } catch {
                throw CLIFailure(code: (error as? DaemonFailure)?.exitCode ?? 1, message: "\(error)")
            }
            tasks.cancelAll()
        }
    }

    /// `--log-level`, when given.
    func parsedLogLevel() throws -> Logger.Level? {
        guard let logLevel else { return nil }
        guard let level = LogSettings.level(named: logLevel) else {
            throw CLIFailure(
                code: 1,
                message: "--log-level: expected trace, debug, info, notice, warning or error, found '\(logLevel)'")
        }
        return level
    }

    /// The configuration file (docs/behaviour.md §1), then the command-line overrides, then `$STATE_DIRECTORY`: at start
    /// and again on every SIGHUP.
    func resolveSettings() throws -> DaemonConfig {
        var settings = try loadConfig(config)
        if let level = try parsedLogLevel() { settings.log.level = level }
        var overrideErrors: [String] = []
        if let port {
            if (0...65535).contains(port) {
                settings.http.port = port
            } else {
                overrideErrors.append("--port: \(port) is not a TCP port (0-65535)")
            }
        }
        if let host { settings.http.bind = host }
        if let broker {
            do {
                try settings.setBroker(broker)
            } catch {
                overrideErrors.append("--broker: \(error)")
            }
        }
        if !overrideErrors.isEmpty { throw CLIFailure(code: 1, message: overrideErrors.joined(separator: "\n")) }
        if let dataDir { settings.storage.dataDir = dataDir }
        if let stateDirectory = ProcessInfo.processInfo.environment["STATE_DIRECTORY"], !stateDirectory.isEmpty {
            // systemd's StateDirectory= may list several, colon-separated; the first is ours.
            settings.storage.dataDir = String(stateDirectory.split(separator: ":").first ?? "")
        }
        return settings
    }
}

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a config file; print every error with its key and line.")

    @ParentCommand var parent: DevStatusCommand

    func run() throws {
        let path = parent.config ?? "config.toml"
        switch ConfigLoader.load(path: path) {
        case .success(let settings):
            print("\(path): OK (\(settings.watched.count) watched devices)")
        case .failure(let errors):
            throw CLIFailure(code: 1, message: errors.errors.map(\.description).joined(separator: "\n"))
        }
    }
}

/// An error that ends the program with `code` after printing `message` (one line per problem) on stderr.
struct CLIFailure: Error {
    let code: Int32
    let message: String
}

/// The config file per docs/behaviour.md §1: the given one, else `./config.toml` if present, else built-in defaults.
func loadConfig(_ path: String?) throws -> DaemonConfig {
    let chosen = path ?? (FileManager.default.fileExists(atPath: "config.toml") ? "config.toml" : nil)
    guard let chosen else { return ConfigLoader.defaults }
    switch ConfigLoader.load(path: chosen) {
    case .success(let settings): return settings
    case .failure(let errors):
        throw CLIFailure(code: 1, message: errors.errors.map(\.description).joined(separator: "\n"))
    }
}

// Argument errors exit with 1 (docs/behaviour.md §1), not ArgumentParser's 64; help and version exit with 0.
do {
    var command = try DevStatusCommand.parseAsRoot()
    if let daemon = command as? DevStatusCommand {
        try await daemon.runDaemon()
    } else {
        try command.run()
    }
    exit(0)
} catch let failure as CLIFailure {
    FileHandle.standardError.write(Data((failure.message + "\n").utf8))
    exit(failure.code)
} catch {
    let code = DevStatusCommand.exitCode(for: error)
    let message = DevStatusCommand.fullMessage(for: error)
    if code == .success {
        print(message)
        exit(0)
    }
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(1)
}
