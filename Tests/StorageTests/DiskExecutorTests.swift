import Dispatch
import Storage
import Synchronization
import TestSupport
import Testing

@Suite struct DiskExecutorTests {
    struct Refused: Error, Equatable {}

    @Test func runsQueuedWorkInTheOrderItWasQueued() async throws {
        let disk = DiskExecutor(label: "test.disk")
        let seen = Mutex<[Int]>([])
        for i in 0..<100 {
            if i.isMultiple(of: 10) {
                let count = await disk.run { () throws(Never) in
                    seen.withLock { $0.append(i) }
                    return i
                }
                #expect(count == i)
            } else {
                disk.submit { seen.withLock { $0.append(i) } }
            }
        }
        await disk.drain()
        #expect(seen.withLock { $0 } == Array(0..<100))
    }

    @Test func passesTheWorksErrorToItsCaller() async {
        let disk = DiskExecutor(label: "test.disk")
        await #expect(throws: Refused()) {
            try await disk.run { () throws(Refused) -> Int in throw Refused() }
        }
    }

    /// More callers wait for a blocked disk than the cooperative pool has threads: were they blocking their
    /// threads (the former condition-variable wait), the pool would have none left and the last task never run.
    @Test(.timeLimit(.minutes(1))) func callersWaitingForABlockedDiskHoldNoThread() async {
        let disk = DiskExecutor(label: "test.disk")
        let gate = DispatchSemaphore(value: 0)
        disk.submit { gate.wait() }
        let waiting = (0..<64).map { i in Task { await disk.run { () throws(Never) in i } } }
        let other = await Task { (1...10).reduce(0, +) }.value
        #expect(other == 55)
        gate.signal()
        var results: [Int] = []
        for task in waiting { results.append(await task.value) }
        #expect(results == Array(0..<64))
    }

    @Test func aStoreHasOneDiskQueueForItsBlockingWork() async throws {
        let directory = try TemporaryDirectory(prefix: "disk-executor")
        let db = try LevelDB(path: directory.file("db"))
        defer { db.close() }
        db.disk.submit { try? db.put(Array("a".utf8), Array("1".utf8)) }
        let value = try await db.disk.run { () throws(StorageError) in try db.get(Array("a".utf8)) }
        #expect(value == Array("1".utf8))
    }
}
