import Foundation
import HTTP1
import Logging
import MQTT
import ServiceLifecycle
import Storage
import Synchronization

/// Why the daemon could not run, with the exit code the manual gives it.
public struct DaemonFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case badConfiguration, dataDirectory, listen }
    public let kind: Kind
    public let description: String

    /// 1 for configuration and listening problems, 2 for an unusable data directory.
    public var exitCode: Int32 { kind == .dataDirectory ? 2 : 1 }
}

/// The daemon's composition root. ``assemble(config:health:logger:)`` does everything that can refuse a start
/// (the data directory, the stored state, the broker settings, the HTTP port), in that order, closing what it
/// opened when a later step fails; it hands every component its dependencies in `init`. ``services`` then run
/// as one `ServiceGroup`: started in the order listed, stopped in reverse on a graceful shutdown (SIGTERM).
public final class Daemon: Sendable {
    /// The components, in start order: the store, the broker link, the watchdog, operation delivery, the availability
    /// publisher (`[availability]`; on a stop it finishes the round in flight, at most 1 s), the agents,
    /// the HTTP server, the event stream, and last the serving phase (what `/readyz`, the status line and systemd
    /// see). A graceful shutdown stops them in reverse: streams end, in-flight requests get 3 s, agents are left
    /// running for the next daemon to adopt, `B/daemon offline` is published, and the store is synced and closed.
    public let services: [any Service]
    /// What `/metrics` reports.
    public let metrics: DaemonMetrics
    /// Phase, status line and liveness probe for the service manager.
    public let health: ServiceHealth
    /// The HTTP port actually bound (the configured one, or the one the kernel chose for port 0).
    public let port: Int
    /// The fleet index: devices per status and per type (`counts()`, `typeCounts()`), and the pages of
    /// `GET /devices`. Kept from the device events; reading it costs no walk of the fleet.
    public let fleet: Fleet
    private let logger: Logger
    private let registry: StatusRegistry
    private let watch: WatchService
    private let link: BrokerLink<MQTTClient>
    private let accessLog: AccessLog
    private let availability: AvailabilityPublisher
    /// The configuration in effect: the start one with what reloads applied.
    private let running: Mutex<DaemonConfig>

    private init(
        services: [any Service], metrics: DaemonMetrics, health: ServiceHealth, port: Int, config: DaemonConfig,
        registry: StatusRegistry, watch: WatchService, link: BrokerLink<MQTTClient>, fleet: Fleet,
        accessLog: AccessLog, availability: AvailabilityPublisher, logger: Logger
    ) {
        self.services = services
        self.fleet = fleet
        self.metrics = metrics
        self.health = health
        self.port = port
        self.running = Mutex(config)
        self.registry = registry
        self.watch = watch
        self.link = link
        self.accessLog = accessLog
        self.availability = availability
        self.logger = logger
    }

    /// How long a graceful stop may take before what is left is cancelled: in-flight requests get 3 s of it,
    /// the broker and the store the rest.
    public static let stopDeadline: Duration = .seconds(5)

    /// How long the fleet index and the history's writes wait for the broker's first retained replay at most
    /// (a broker that is never reached must not keep history in memory only).
    static let heldForReplayAtMost: Duration = .seconds(60)

    /// The group that runs ``services`` followed by `extra` (e.g. the service manager's notifier, placed so that
    /// it stops before the daemon's own parts). A part that ends or fails stops the others gracefully.
    public func serviceGroup(adding extra: [any Service] = []) -> ServiceGroup {
        let all = services.dropLast() + extra + [services.last!]
        var configuration = ServiceGroupConfiguration(
            services: all.map {
                // Named by type: without a name the group describes each service with `"\($0)"`, which for a
                // struct reflects every stored property (with 100,000 `[device_*]` sections, seconds at start).
                .init(
                    service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "\(type(of: $0))")
            },
            logger: logger)
        configuration.maximumGracefulShutdownDuration = Self.stopDeadline
        return ServiceGroup(configuration: configuration)
    }

    /// Builds the daemon from `config`: opens and loads the store, the operations, the broker client's settings,
    /// then binds the HTTP port. Nothing runs yet but the HTTP server's loops (which answer `/readyz` with 503
    /// until the retained replay is through).
    /// - Throws: ``DaemonFailure``; whatever was opened before the failure is closed again.
    public static func assemble(
        config: DaemonConfig, health: ServiceHealth = ServiceHealth(), logger: Logger
    ) async throws(DaemonFailure) -> Daemon {
        logger.debug(
            "configuration",
            metadata: [
                "broker": "\(config.mqtt.serverAddress)", "http": "\(config.http.bind):\(config.http.port)",
                "dataDir": "\(config.storage.dataDir)", "watched": "\(config.watched.count)",
                "statusTopics": "\(config.status.topics.map(\.text).joined(separator: ","))",
            ])
        let store = try openStore(config.storage.dataDir, logger: logger)
        do {
            return try await assemble(config: config, store: store, health: health, logger: logger)
        } catch {
            store.close()
            throw error
        }
    }

    private static func assemble(
        config: DaemonConfig, store: LevelDB, health: ServiceHealth, logger: Logger
    ) async throws(DaemonFailure) -> Daemon {
        let metrics = DaemonMetrics()
        let table = DeviceTable()
        let readiness = Readiness()
        let events = DeviceEvents()
        let patterns = config.status.topics.compactMap { try? StatusTopicPattern($0) }
        let registry = StatusRegistry(
            store: store, table: table, patterns: patterns, presence: presenceDecoders(config),
            organization: config.status.org, events: events,
            logger: logger, onStoreWrite: { [metrics] in metrics.recordStoreWrite($0) },
            clockSkew: ClockSkewLimit(seconds: config.status.maxClockSkew))
        do {
            let started = ContinuousClock.now
            let count = try await registry.load()
            let elapsed = (ContinuousClock.now - started) / .milliseconds(1)
            logger.info("store loaded", metadata: ["devices": "\(count)", "milliseconds": "\(Int(elapsed))"])
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: Self.corruptHint("\(error)"))
        }
        readiness.storeDidLoad()
        readiness.watchStore { store.failure.map { "\($0.message)" } }
        // Status transitions: kept per device (history); streamed (GET /events) once the watchdog is made, below.
        let history = HistoryLog(store: store, logger: logger)
        history.observe(events)
        TransitionLog.observe(events, logger: logger)
        metrics.observe(events)
        metrics.sample(storeDirectory: config.storage.dataDir)
        let watch = WatchService(
            devices: config.watched, baseTopic: config.mqtt.baseTopic, store: store, events: events, logger: logger)
        // Each event with the device's overall status once it applied (status topic and watchdog together). Only a
        // watched device has a second signal: for any other the event's own `to` is its status (nil says so), and a
        // retained replay of a fleet of status topics pays one look in the (often empty) watchdog snapshot each.
        let eventStream = StatusEventStream(overallStatus: { [snapshot = watch.snapshot] key in
            guard let watched = snapshot.info(forPath: key.path) else { return nil }
            return DeviceDirectory.judge(record: table.record(for: key), watch: watched)?.state
        })
        eventStream.observe(events)
        let operations = OperationDelivery(
            store: store, settings: config.operations, events: events,
            isOnline: { [snapshot = watch.snapshot] key in
                DeviceDirectory.judge(record: table.record(for: key), watch: snapshot.info(forPath: key.path))?
                    .state == .online
            }, logger: logger)
        do {
            try await operations.load()
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: Self.corruptHint("\(error)"))
        }
        let link: BrokerLink<MQTTClient>
        do {
            link = try BrokerLink(
                config: config, components: [registry, watch, operations], readiness: readiness, logger: logger)
        } catch {
            throw DaemonFailure(kind: .badConfiguration, description: "\(error)")
        }
        let agents = AgentSupervisor(
            watched: config.watched, dataDirectory: config.storage.dataDir, baseTopic: config.mqtt.baseTopic,
            logger: logger, onRestart: { [metrics] in metrics.agentRestarted($0) })
        for agent in agents.agents { metrics.registerAgent(agent.name) }
        agents.observe(events)
        let directory = DeviceDirectory(
            table: table, watch: watch.snapshot, agents: { agents.info($0) },
            operationCounts: { key in
                let counts = operations.table.counts(for: key)
                return OperationStatus.allCases.map { ($0.rawValue, counts[$0] ?? 0) }
            })
        // The fleet index: counts and pages of GET /devices, kept from the device events.
        let fleet = Fleet(directory: directory)
        fleet.observe(events)
        fleet.rebuildInBackground()
        // The retained replay at start announces every device it brings: the fleet index and the history's writes
        // follow once it is through, rather than taking CPU from it (what /readyz waits for is the statuses). At most
        // `heldForReplayAtMost` after the start (`ReplayHoldService`): without a broker, history (the watchdog's) is
        // written all the same.
        fleet.hold()
        history.hold()
        let releaseHeld: @Sendable () -> Void = {
            fleet.release()
            history.release()
        }
        readiness.whenReplayFinished(releaseHeld)
        // [availability]: B/availability/<type>/<id> and Home Assistant discovery, from the same judgements.
        let availability = AvailabilityPublisher(
            plan: AvailabilityPlan(settings: config.availability, baseTopic: config.mqtt.baseTopic), store: store,
            client: link.client, state: { directory.judgement(forPath: $0)?.state },
            everyDevice: {
                var paths: [String] = []
                directory.forEachJudgement { path, _ in paths.append(path) }
                return paths
            },
            replayFinished: { readiness.replayFinished }, logger: logger)
        availability.observe(events)
        metrics.sample(availability: availability)
        // Devices by overall status (status topic and watchdog together) for the status line and /metrics: from the
        // fleet index, kept from the transitions; only before its first build (the first moments after a start)
        // from a walk.
        let countsByState: @Sendable () -> [DeviceState: Int] = {
            fleet.countsIfBuilt() ?? directory.countsByState()
        }
        health.attach(registry: registry, readiness: readiness, client: link.client, devices: countsByState)
        metrics.sample(registry: registry, devices: countsByState)
        metrics.addSampler { [metrics] in
            metrics.setOperations(
                Dictionary(uniqueKeysWithValues: operations.table.totals().map { ($0.key.rawValue, $0.value) }))
        }
        metrics.sample(client: link.client)

        let api = StatusAPI(
            directory: directory, readiness: readiness,
            operations: OperationRoutes(delivery: operations),
            fleet: FleetRoutes(directory: directory, fleet: fleet, history: history, events: eventStream),
            access: WriteAccess(token: config.http.token))
        var router = api.router
        router.addMetricsRoute(metrics)
        let accessLog = AccessLog(enabled: config.log.access, logger: logger)
        let server = HTTPServer(
            configuration: config.http.server, responder: router, logger: logger,
            onResponse: { [metrics] in
                metrics.record($0)
                accessLog.record($0)
            })
        metrics.sample(watchTraffic: watch.traffic)
        metrics.sample(server: server, eventStreams: eventStream)
        // Bound last: a port that is taken fails the start before anything else runs.
        let port: Int
        do {
            port = try server.start()
        } catch {
            // The error names the address itself: "cannot listen on 127.0.0.1:5000: address already in use (…)".
            throw DaemonFailure(kind: .listen, description: "\(error)")
        }

        let services: [any Service] = [
            StoreService(store: store, history: history, logger: logger),
            StoreRecovery(store: store, logger: logger) { [logger] in
                let statuses = await registry.storeUnsaved()
                await watch.storeAll()
                await operations.storeRecovered()
                logger.notice("stored what changed while the store was down", metadata: ["statuses": "\(statuses)"])
            },
            link,
            watch,
            operations,
            availability,
            AgentService(supervisor: agents, client: link.client),
            HTTPService(server: server),
            eventStream,
            ReplayHoldService(patience: Self.heldForReplayAtMost, release: releaseHeld),
            ServingPhase(health: health, port: port, logger: logger),
        ]
        return Daemon(
            services: services, metrics: metrics, health: health, port: port, config: config, registry: registry,
            watch: watch, link: link, fleet: fleet, accessLog: accessLog, availability: availability, logger: logger)
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

    /// Applies a re-read configuration (SIGHUP) to the running daemon without losing any status: `[status] org`
    /// and the `[device_*]` sections (added, removed, changed; subscriptions follow); every other change is
    /// reported in `needsRestart` (and keeps being reported by later reloads until a restart).
    public func reload(_ newConfig: DaemonConfig) async -> ReloadResult {
        let running = self.running.withLock { $0 }
        var result = ReloadResult()
        var effective = running
        // Watched devices: a device keeping its name keeps its watchdog; subscriptions follow the new set.
        // Agents' processes are not touched by a reload: an [agent_*] whose exec changed waits for a restart.
        let devicesOf = { (config: DaemonConfig) in config.watched.filter { $0.kind == .device } }
        let agentsOf = { (config: DaemonConfig) in config.watched.filter { $0.kind == .agent } }
        if devicesOf(newConfig) != devicesOf(running) {
            let watched = devicesOf(newConfig) + agentsOf(running)
            let change = await watch.reconfigure(devices: watched)
            link.refreshRouting()
            do {
                try link.client.setSubscriptions(link.subscriptions)
            } catch {
                logger.error("could not update subscriptions after reload", metadata: ["error": "\(error)"])
            }
            effective.watched = watched
            // Devices added, removed or joined to another key: judged again in the fleet index and for availability.
            for device in running.watched + watched { fleet.markChanged(device.type + "/" + device.id) }
            availability.mark((running.watched + watched).map { $0.type + "/" + $0.id })
            result.applied.append("[device_*]")
            logger.notice(
                "watched devices reloaded",
                metadata: [
                    "added": "\(change.added.joined(separator: ","))",
                    "removed": "\(change.removed.joined(separator: ","))",
                ])
        }
        if newConfig.status.org != running.status.org {
            await registry.setConfiguredOrganization(newConfig.status.org)
            effective.status.org = newConfig.status.org
            result.applied.append("[status] org")
        }
        if newConfig.status.maxClockSkew != running.status.maxClockSkew {
            await registry.setClockSkew(ClockSkewLimit(seconds: newConfig.status.maxClockSkew))
            effective.status.maxClockSkew = newConfig.status.maxClockSkew
            result.applied.append("[status] maxClockSkew")
        }
        if newConfig.availability != running.availability {
            availability.update(AvailabilityPlan(settings: newConfig.availability, baseTopic: running.mqtt.baseTopic))
            effective.availability = newConfig.availability
            result.applied.append("[availability]")
        }
        if newConfig.log.access != running.log.access {
            accessLog.isEnabled = newConfig.log.access
            effective.log.access = newConfig.log.access
            result.applied.append("[log] access")
        }
        // [log] level is the process's (the log handler's): main applies it.
        effective.log.level = newConfig.log.level
        let pending: [(String, Bool)] = [
            ("[mqtt]", newConfig.mqtt != running.mqtt),
            ("[http]", newConfig.http != running.http),
            ("[status] topics", newConfig.status.topics != running.status.topics),
            ("[[presence]]", newConfig.presence != running.presence),
            ("[status] org", newConfig.status.org != effective.status.org),
            ("[status] maxClockSkew", newConfig.status.maxClockSkew != effective.status.maxClockSkew),
            ("[storage]", newConfig.storage != running.storage),
            ("[operations]", newConfig.operations != running.operations),
            ("[agent_*]", agentsOf(newConfig) != agentsOf(effective)),
        ]
        result.needsRestart = pending.filter(\.1).map(\.0)
        let settled = effective
        self.running.withLock { $0 = settled }
        return result
    }

    /// The decoders of the `[[presence]]` blocks, in file order (the status topics' own comes from `[status]`).
    static func presenceDecoders(_ config: DaemonConfig) -> [any PresenceDecoder] {
        config.presence.map { $0.makeDecoder() }
    }

    private static func openStore(_ path: String, logger: Logger) throws(DaemonFailure) -> LevelDB {
        if let problem = DataDirectory.create(path) {
            throw DaemonFailure(kind: .dataDirectory, description: problem)
        }
        // Paranoid: recovery stops at a damaged log record instead of dropping it and what follows in silence;
        // every read verifies its block's checksum (a damaged table answers an error, never altered bytes).
        let options = LevelDB.Options(paranoidChecks: true, verifyChecksums: true)
        let store: LevelDB
        do {
            store = try LevelDB(path: path, options: options)
        } catch let error where error.kind == .corrupt {
            // A damaged log record (a torn write at a power loss, a bad sector): LevelDB's ordinary recovery drops it,
            // and its LOG says what it dropped; that loss is logged here, and the store is opened paranoid again.
            logger.error("store recovery found damaged data; recovering without it", metadata: ["error": "\(error)"])
            do {
                let salvaged = try LevelDB(path: path, options: LevelDB.Options(paranoidChecks: false))
                for line in salvaged.recoveryLosses {
                    logger.error("store recovery dropped data", metadata: ["leveldb": "\(line)"])
                }
                salvaged.close()
                store = try LevelDB(path: path, options: options)
            } catch {
                throw DaemonFailure(kind: .dataDirectory, description: Self.corruptHint(error.description))
            }
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: error.description)
        }
        for line in store.recoveryLosses {
            logger.error("store recovery dropped data", metadata: ["leveldb": "\(line)"])
        }
        return store
    }

    /// What a person can do about a corrupt store.
    static func corruptHint(_ description: String) -> String {
        description
            + " (to start afresh, move the data directory aside: statuses come back from the broker's retained"
            + " messages; pending operations, history and watchdog state are lost; or restore a backup)"
    }
}
