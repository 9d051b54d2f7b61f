import HTTP1
import Logging
import ServiceLifecycle
import Storage

/// The store, last to stop: on a graceful shutdown it writes the history still buffered, syncs everything
/// written so far to the disk (not only the page cache), and closes the database.
struct StoreService: Service {
    let store: LevelDB
    let history: HistoryLog
    let logger: Logger

    func run() async {
        let graceful = (try? await gracefulShutdown()) != nil
        history.flush()
        do {
            try store.write(WriteBatch(), sync: true)
        } catch {
            logger.error("could not flush the store", metadata: ["error": "\(error)"])
        }
        // Cancelled (the stop deadline passed): another part may still be writing, so the handle stays open;
        // the process ends right after and LevelDB's log replays whatever was not compacted.
        if graceful { store.close() }
        logger.info("stopped")
    }
}

/// The agents' supervisor thread, from start to stop. Agents keep running after a stop, for the next daemon
/// to adopt (the unit needs `KillMode=process`).
struct AgentService: Service {
    let supervisor: AgentSupervisor
    let publish: AgentSupervisor.Publish

    func run() async {
        supervisor.start(publish: publish)
        try? await gracefulShutdown()
        await supervisor.stop()
    }
}

/// The HTTP server, bound while the daemon was assembled; on a stop it refuses new connections and gives
/// in-flight requests 3 s of the daemon's 5 s stop deadline.
struct HTTPService: Service {
    let server: HTTPServer

    func run() async {
        try? await gracefulShutdown()
        await server.gracefulShutdown(gracePeriod: .seconds(3))
    }
}

/// Last to start, first to stop: says "ready" (systemd's `READY=1`) once every other part runs, and "stopping"
/// as soon as a stop begins.
struct ServingPhase: Service {
    let health: ServiceHealth
    let port: Int
    let logger: Logger

    func run() async {
        health.enter(.ready(port: port))
        try? await gracefulShutdown()
        logger.info("stopping")
        health.enter(.stopping)
    }
}
