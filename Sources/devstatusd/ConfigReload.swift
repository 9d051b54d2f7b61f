import DeviceStatus
import Logging

/// SIGHUP: re-reads the configuration (file, then command-line overrides, as at start) and hands it to the
/// running daemon. A configuration with errors is logged, line by line, and the running one stays.
/// Reloads run one at a time, in signal order.
actor ConfigReloader {
    private let daemon: Daemon
    private let systemd: SystemdService?
    private let logger: Logger
    private let logLevel: SharedLogLevel
    private let load: @Sendable () throws -> DaemonConfig

    init(
        daemon: Daemon, systemd: SystemdService?, logLevel: SharedLogLevel, logger: Logger,
        load: @escaping @Sendable () throws -> DaemonConfig
    ) {
        self.daemon = daemon
        self.systemd = systemd
        self.logLevel = logLevel
        self.logger = logger
        self.load = load
    }

    /// One reload; returns whether the new configuration was accepted.
    @discardableResult
    func reload() async -> Bool {
        logger.notice("SIGHUP: reloading the configuration")
        systemd?.reloading()
        let settings: DaemonConfig
        do {
            settings = try load()
        } catch {
            let message = (error as? CLIFailure)?.message ?? "\(error)"
            for line in message.split(separator: "\n") {
                logger.error("reload refused, the running configuration stays: \(line)")
            }
            systemd?.reloaded(failed: true)
            return false
        }
        var result = await daemon.reload(settings)
        // The log level is the process's: every logger follows it at once (`--log-level` still wins: it is in
        // `settings` already).
        let (before, after) = (logLevel.level, settings.log.level)
        if after != before {
            // Said at the more verbose of the two levels, so that the change itself is in the log.
            if after < before { logLevel.level = after }
            logger.notice("log level changed", metadata: ["from": "\(before)", "to": "\(after)"])
            logLevel.level = after
            result.applied.append("[log] level")
        }
        var metadata: Logger.Metadata = [:]
        if !result.applied.isEmpty { metadata["applied"] = "\(result.applied.joined(separator: ", "))" }
        if !result.needsRestart.isEmpty {
            metadata["needsRestart"] = "\(result.needsRestart.joined(separator: ", "))"
        }
        logger.notice("configuration reloaded", metadata: metadata)
        if !result.needsRestart.isEmpty {
            logger.warning(
                "some changed settings take effect at the next restart",
                metadata: ["settings": "\(result.needsRestart.joined(separator: ", "))"])
        }
        systemd?.reloaded(failed: false)
        return true
    }
}
