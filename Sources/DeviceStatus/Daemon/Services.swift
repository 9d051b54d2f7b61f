import HTTP1
import Logging
import MQTT
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
        // On the disk queue, after every write queued there before (operation states, history).
        let (store, history) = (store, history)
        do {
            try await store.disk.run { () throws(StorageError) in
                history.flush()
                try store.write(WriteBatch(), sync: true)
            }
        } catch {
            logger.error("could not flush the store", metadata: ["error": "\(error)"])
        }
        // Cancelled (the stop deadline passed): another part may still be writing, so the handle stays open;
        // the process ends right after and LevelDB's log replays whatever was not compacted.
        if graceful { store.close() }
        logger.info("stopped")
    }
}

/// The agents' supervisor thread, from start to stop, and its `B/startedprocess/<name>` announcements (QoS 0,
/// not retained). Agents keep running after a stop, for the next daemon to adopt (the unit needs
/// `KillMode=process`).
struct AgentService: Service {
    let supervisor: AgentSupervisor
    let client: any MQTTPublishing
    /// How long an announcement waits for the first broker connection: a first connection takes milliseconds;
    /// a start announced more than 10 s late is old news.
    static var announcementPatience: Duration { .seconds(10) }

    func run() async {
        let (announcements, input) = AsyncStream.makeStream(of: (topic: String, payload: [UInt8]).self)
        supervisor.start { input.yield(($0, $1)) }
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await announcement in announcements { await announce(announcement.topic, announcement.payload) }
            }
            try? await gracefulShutdown()
            await supervisor.stop()
            // An announcement still waiting for a connection is dropped: the daemon is going away.
            input.finish()
            group.cancelAll()
        }
    }

    /// A start in the first moments after daemon start, before the broker connection is up, waits for it instead
    /// of being dropped (QoS 0 is not queued while offline).
    private func announce(_ topic: String, _ payload: [UInt8]) async {
        let deadline = ContinuousClock.now + Self.announcementPatience
        while !client.isConnected && ContinuousClock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
        }
        client.publishNoWait(topic: topic, payload: payload, qos: 0, retain: false)
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

/// What waits for the first retained replay (the fleet index, the history's writes) is released when the replay is
/// through (`Readiness.whenReplayFinished`) or, at the latest, `patience` after the start: a broker that is never
/// reached must not keep history in memory only. Then it waits for the stop (a service that returns stops the daemon).
struct ReplayHoldService: Service {
    let patience: Duration
    let release: @Sendable () -> Void

    func run() async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: patience) }
        release()
        try? await gracefulShutdown()
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
