import Dispatch

/// Where a store's blocking work runs: one serial queue per open ``LevelDB`` (``LevelDB/disk``).
///
/// LevelDB's calls block their thread: a synced write waits for the disk (milliseconds, seconds on a slow card), a
/// scan of a million records takes a second, a reopen verifies every checksum. Run from an actor or a task, they
/// would hold one of the few threads of Swift's cooperative pool, and with it every task waiting for that thread.
/// `run` moves such work here and suspends its caller instead; `submit` queues work nobody waits for.
///
/// One serial queue: blocking calls on one store run one at a time, in the order they were queued (a synced write
/// queued after an unsynced one lands after it). Short unsynced writes and point reads may still be made where they
/// are needed: LevelDB is thread-safe, and they cost microseconds.
public final class DiskExecutor: Sendable {
    private let queue: DispatchQueue

    /// - Parameter label: the queue's name, as debuggers and `perf` show it.
    public init(label: String = "devstatusd.disk") {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    /// Runs `work` on the disk queue; the caller is suspended, its thread free, until `work` returns or throws.
    public func run<Value: Sendable, Failure: Error>(
        _ work: @escaping @Sendable () throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        let result: Result<Value, Failure> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result(catching: work)) }
        }
        return try result.get()
    }

    /// Queues `work` on the disk queue without waiting for it; `work` reports its own failures.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Waits until everything queued before this call has run (tests; flushing before close).
    public func drain() async {
        await run { () throws(Never) in () }
    }
}
