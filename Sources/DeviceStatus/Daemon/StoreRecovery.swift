import Logging
import ServiceLifecycle
import Storage

/// Brings a poisoned store back (see `LevelDB.failure`): after a failed write the handle refuses every write, so
/// that nothing is acknowledged that the next recovery could drop. This loop notices the failure, logs it, and
/// reopens the store (recovery, every record's checksum verified, a synced probe write) with a backoff from 1 s to
/// 30 s until that succeeds, e.g. once a full disk has room again; then `onRecovered` re-writes what was kept in
/// memory meanwhile. Reads are served throughout.
///
/// Why in-process rather than exiting for a restart: the statuses and operations in memory stay correct and are
/// answered while the disk is full, and a restart would not help (opening needs room too) but would stop answers.
final class StoreRecovery: Service {
    private let store: LevelDB
    private let logger: Logger
    private let onRecovered: @Sendable () async -> Void
    /// How often a healthy store is looked at: a failure is noticed within this.
    static let checkInterval: Duration = .seconds(1)
    static let maximumBackoff: Duration = .seconds(30)

    init(store: LevelDB, logger: Logger, onRecovered: @escaping @Sendable () async -> Void) {
        self.store = store
        self.logger = logger
        self.onRecovered = onRecovered
    }

    /// Runs until a graceful shutdown or cancellation.
    func run() async {
        await cancelWhenGracefulShutdown { await self.watch() }
    }

    private func watch() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.checkInterval)
            guard let failure = store.failure else { continue }
            logger.error(
                "store failed: writes refused (operations answer 503) until it is reopened and verified",
                metadata: ["error": "\(failure)"])
            var backoff = Self.checkInterval
            while !Task.isCancelled {
                do {
                    let store = store
                    try await store.disk.run { () throws(StorageError) in try store.reopen() }
                    break
                } catch {
                    logger.warning(
                        "store not reopened yet",
                        metadata: ["error": "\(error)", "retryInSeconds": "\(backoff.components.seconds)"])
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, Self.maximumBackoff)
            }
            guard !Task.isCancelled else { return }
            for line in store.recoveryLosses {
                logger.error("store recovery dropped data", metadata: ["leveldb": "\(line)"])
            }
            logger.notice("store reopened and verified; writes accepted again")
            await onRecovered()
        }
    }
}
