import Foundation
import HTTP1
import Logging
import MQTT
import Storage
import Synchronization

/// Why the daemon could not run, with the exit code SPEC §1 gives it.
public struct DaemonFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case badConfiguration, dataDirectory, listen }
    public let kind: Kind
    public let description: String

    /// 1 for configuration and listening problems, 2 for an unusable data directory.
    public var exitCode: Int32 { kind == .dataDirectory ? 2 : 1 }
}

/// The running daemon: opens the store, loads it, opens the HTTP port, connects to the broker, ingests until asked
/// to stop, then stops in reverse order.
public final class DaemonRunner: Sendable {
    private let config: DaemonConfig
    private let logger: Logger
    private let shutdown = ShutdownSignal()
    /// What `/metrics` reports; parts of the daemon report into it.
    public let metrics = DaemonMetrics()
    /// Phase, status line and liveness probe for the service manager (sd_notify in `devstatusd`).
    public let health = ServiceHealth()
    private let live: Mutex<LiveState>

    public init(config: DaemonConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        self.live = Mutex(LiveState(config: config))
    }

    /// Asks a running `run()` to stop gracefully. Safe from any thread, any number of times.
    public func requestShutdown() { shutdown.fire() }

    public func run() async throws(DaemonFailure) {
        logger.debug(
            "configuration",
            metadata: [
                "broker": "\(config.mqtt.serverAddress)", "http": "\(config.http.bind):\(config.http.port)",
                "dataDir": "\(config.storage.dataDir)", "watched": "\(config.watched.count)",
                "statusTopics": "\(config.status.topics.map(\.text).joined(separator: ","))",
            ])
        let store = try openStore()
        defer { store.close() }
        let table = DeviceTable()
        let readiness = Readiness()
        let patterns = config.status.topics.compactMap { try? StatusTopicPattern($0) }
        let events = DeviceEvents()
        let registry = StatusRegistry(
            store: store, table: table, patterns: patterns, organization: config.status.org, events: events,
            logger: logger, onStoreWrite: { [metrics] in metrics.recordStoreWrite($0) },
            clockSkew: ClockSkewLimit(seconds: config.status.maxClockSkew))
        do {
            let started = ContinuousClock.now
            let count = try await registry.load()
            let elapsed = (ContinuousClock.now - started) / .milliseconds(1)
            logger.info("store loaded", metadata: ["devices": "\(count)", "milliseconds": "\(Int(elapsed))"])
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: "\(error)")
        }
        readiness.storeDidLoad()
        // Status transitions: kept per device (history) and streamed (GET /events).
        let history = HistoryLog(store: store, logger: logger)
        history.observe(events)
        let eventStream = StatusEventStream()
        eventStream.observe(events)
        eventStream.start()
        live.withLock { $0.registry = registry }
        let watch = WatchService(
            devices: config.watched, baseTopic: config.mqtt.baseTopic, store: store, events: events, logger: logger)
        let directory = DeviceDirectory(table: table, watch: watch.snapshot)
        // Devices by overall status (status topic and watchdog together) for the status line and /metrics.
        health.attach(registry: registry, readiness: readiness, devices: { directory.countsByState() })
        metrics.sample(registry: registry, devices: { directory.countsByState() })
        let agents = AgentSupervisor(
            watched: config.watched, dataDirectory: config.storage.dataDir, baseTopic: config.mqtt.baseTopic,
            logger: logger, onRestart: { [metrics] in metrics.agentRestarted($0) })
        for agent in agents.agents { metrics.registerAgent(agent.name) }
        agents.observe(events)
        directory.setAgentProvider { agents.info($0) }
        let operations = OperationDelivery(
            store: store, settings: config.operations, events: events,
            isOnline: { directory.judgement(for: $0)?.state == .online }, logger: logger)
        do {
            try await operations.load()
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: "\(error)")
        }
        directory.setOperationCountsProvider { key in
            let counts = operations.table.counts(for: key)
            return OperationStatus.allCases.map { ($0.rawValue, counts[$0] ?? 0) }
        }
        metrics.addSampler { [metrics] in
            metrics.setOperations(
                Dictionary(uniqueKeysWithValues: operations.table.totals().map { ($0.key.rawValue, $0.value) }))
        }

        let api = StatusAPI(
            directory: directory, readiness: readiness,
            operations: OperationRoutes(delivery: operations, access: WriteAccess(token: config.http.token)),
            fleet: FleetRoutes(directory: directory, history: history, events: eventStream))
        var router = api.router
        router.addMetricsRoute(metrics)
        let server = HTTPServer(
            configuration: config.http.server, responder: router, logger: logger,
            onResponse: { [metrics] in metrics.record($0) })
        let boundPort: Int
        do {
            boundPort = try server.start()
        } catch {
            throw DaemonFailure(
                kind: .listen, description: "cannot listen on \(config.http.bind):\(config.http.port): \(error)")
        }
        _ = boundPort

        let link = BrokerLink(
            config: config, components: [registry, watch, operations], readiness: readiness, logger: logger)
        let client: MQTTClient
        do {
            client = try link.makeClient()
        } catch {
            server.shutdown(gracePeriod: .seconds(1))
            throw DaemonFailure(kind: .badConfiguration, description: "\(error)")
        }
        client.start()
        let tasks = link.startTasks(client: client)
        await watch.start()
        agents.start(publish: AgentSupervisor.publisher(client))
        live.withLock {
            $0.watch = watch
            $0.link = link
            $0.client = client
        }

        metrics.sample(client: client)
        health.attach(client: client)
        health.enter(.ready(port: boundPort))

        await shutdown.wait()
        logger.info("stopping")
        health.enter(.stopping)
        // Event streams never end by themselves: end them now rather than at the end of the grace period.
        eventStream.stop()
        // In-flight requests get 3 s of the 5 s a stop may take; the rest is for the broker and the store.
        await server.gracefulShutdown(gracePeriod: .seconds(3))
        // Agents keep running for the next daemon to adopt (SPEC §7; the unit needs KillMode=process).
        await agents.stop()
        await operations.stop()
        await watch.stop()
        await link.stop(client: client, tasks: tasks)
        history.flush()
        // Everything written so far reaches the disk, not only the page cache.
        do {
            try store.write(WriteBatch(), sync: true)
        } catch {
            logger.error("could not flush the store", metadata: ["error": "\(error)"])
        }
        logger.info("stopped")
    }

    /// What a configuration reload changed, and what waits for a restart.
    public struct ReloadResult: Sendable, Equatable {
        /// Settings now in effect, e.g. `"[status] org"`.
        public var applied: [String] = []
        /// Settings that differ from the running ones but take effect at the next start, e.g. `"[mqtt]"`.
        public var needsRestart: [String] = []

        public init(applied: [String] = [], needsRestart: [String] = []) {
            self.applied = applied
            self.needsRestart = needsRestart
        }
    }

    private struct LiveState {
        /// The configuration in effect: the start one with what reloads applied.
        var config: DaemonConfig
        var registry: StatusRegistry?
        var watch: WatchService?
        var link: BrokerLink?
        var client: MQTTClient?
    }

    /// Applies a re-read configuration (SIGHUP) to the running daemon without losing any status: `[status] org`
    /// and the `[device_*]` sections (added, removed, changed; subscriptions follow); every other change is
    /// reported in `needsRestart` (and keeps being reported by later reloads until a restart).
    public func reload(_ newConfig: DaemonConfig) async -> ReloadResult {
        let (running, registry, watch, link, client) = live.withLock {
            ($0.config, $0.registry, $0.watch, $0.link, $0.client)
        }
        var result = ReloadResult()
        var effective = running
        // Watched devices: a device keeping its name keeps its watchdog; subscriptions follow the new set.
        // Agents' processes are not touched by a reload: an [agent_*] whose exec changed waits for a restart.
        let devicesOf = { (config: DaemonConfig) in config.watched.filter { $0.kind == .device } }
        let agentsOf = { (config: DaemonConfig) in config.watched.filter { $0.kind == .agent } }
        if devicesOf(newConfig) != devicesOf(running), let watch, let link, let client {
            let watched = devicesOf(newConfig) + agentsOf(running)
            let change = await watch.reconfigure(devices: watched)
            do {
                try client.setSubscriptions(link.subscriptions)
            } catch {
                logger.error("could not update subscriptions after reload", metadata: ["error": "\(error)"])
            }
            effective.watched = watched
            result.applied.append("[device_*]")
            logger.notice(
                "watched devices reloaded",
                metadata: [
                    "added": "\(change.added.joined(separator: ","))",
                    "removed": "\(change.removed.joined(separator: ","))",
                ])
        }
        if newConfig.status.org != running.status.org, let registry {
            await registry.setConfiguredOrganization(newConfig.status.org)
            effective.status.org = newConfig.status.org
            result.applied.append("[status] org")
        }
        if newConfig.status.maxClockSkew != running.status.maxClockSkew, let registry {
            await registry.setClockSkew(ClockSkewLimit(seconds: newConfig.status.maxClockSkew))
            effective.status.maxClockSkew = newConfig.status.maxClockSkew
            result.applied.append("[status] maxClockSkew")
        }
        let pending: [(String, Bool)] = [
            ("[mqtt]", newConfig.mqtt != running.mqtt),
            ("[http]", newConfig.http != running.http),
            ("[status] topics", newConfig.status.topics != running.status.topics),
            ("[status] org", newConfig.status.org != effective.status.org),
            ("[status] maxClockSkew", newConfig.status.maxClockSkew != effective.status.maxClockSkew),
            ("[storage]", newConfig.storage != running.storage),
            ("[operations]", newConfig.operations != running.operations),
            ("[agent_*]", agentsOf(newConfig) != agentsOf(effective)),
        ]
        result.needsRestart = pending.filter(\.1).map(\.0)
        let settled = effective
        live.withLock { $0.config = settled }
        return result
    }

    private func openStore() throws(DaemonFailure) -> LevelDB {
        let path = config.storage.dataDir
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw DaemonFailure(
                kind: .dataDirectory,
                description: "data directory \(path) cannot be created: \(error.localizedDescription)")
        }
        do {
            return try LevelDB(path: path)
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: error.description)
        }
    }
}

/// A one-shot "stop now" that any thread can fire and one task awaits.
final class ShutdownSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
