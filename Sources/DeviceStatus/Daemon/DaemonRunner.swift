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

    public init(config: DaemonConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Asks a running `run()` to stop gracefully. Safe from any thread, any number of times.
    public func requestShutdown() { shutdown.fire() }

    public func run() async throws(DaemonFailure) {
        let store = try openStore()
        defer { store.close() }
        let table = DeviceTable()
        let readiness = Readiness()
        let patterns = config.status.topics.compactMap { try? StatusTopicPattern($0) }
        let events = DeviceEvents()
        let registry = StatusRegistry(
            store: store, table: table, patterns: patterns, organization: config.status.org, events: events,
            logger: logger)
        do {
            let started = ContinuousClock.now
            let count = try await registry.load()
            let elapsed = (ContinuousClock.now - started) / .milliseconds(1)
            logger.info("store loaded", metadata: ["devices": "\(count)", "milliseconds": "\(Int(elapsed))"])
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: "data directory \(config.storage.dataDir): \(error)")
        }
        readiness.storeDidLoad()

        let api = StatusAPI(table: table, readiness: readiness)
        let server = HTTPServer(configuration: config.http.serverConfiguration, responder: api.router, logger: logger)
        let boundPort: Int
        do {
            boundPort = try server.start()
        } catch {
            throw DaemonFailure(
                kind: .listen, description: "cannot listen on \(config.http.bind):\(config.http.port): \(error)")
        }
        _ = boundPort

        let link = BrokerLink(config: config, components: [registry], readiness: readiness, logger: logger)
        let client: MQTTClient
        do {
            client = try link.makeClient()
        } catch {
            server.shutdown(gracePeriod: .seconds(1))
            throw DaemonFailure(kind: .badConfiguration, description: "\(error)")
        }
        client.start()
        let tasks = link.startTasks(client: client)

        await shutdown.wait()
        logger.info("stopping")
        server.shutdown(gracePeriod: .seconds(3))
        await link.stop(client: client, tasks: tasks)
        logger.info("stopped")
    }

    private func openStore() throws(DaemonFailure) -> LevelDB {
        let path = config.storage.dataDir
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw DaemonFailure(kind: .dataDirectory, description: "data directory \(path) cannot be created: \(error.localizedDescription)")
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
