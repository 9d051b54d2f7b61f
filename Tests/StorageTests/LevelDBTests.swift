import Foundation
import Storage
import Synchronization
import TestSupport
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Every (key, value) under `prefix`, copied out of the iterator.
private func entries(_ db: LevelDB, prefix: [UInt8] = [], reverse: Bool = false) throws -> [[UInt8]] {
    var keys: [[UInt8]] = []
    try db.forEach(prefix: prefix, reverse: reverse) { key, _ in
        keys.append(Array(key))
        return true
    }
    return keys
}

@Suite struct LevelDBTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory(prefix: "storage-test") }

    private func open(_ name: String = "db", options: LevelDB.Options = .init()) throws -> LevelDB {
        try LevelDB(path: directory.file(name), options: options)
    }

    @Test func putGetDeleteRoundTrip() throws {
        let db = try open()
        #expect(try db.get(bytes("k")) == nil)
        try db.put(bytes("k"), bytes("v1"))
        #expect(try db.get(bytes("k")) == bytes("v1"))
        try db.put("k".utf8, "v2".utf8)  // any byte sequence works as key and value
        #expect(try db.get(bytes("k")) == bytes("v2"))
        try db.put(bytes("empty"), [])
        #expect(try db.get(bytes("empty")) == [])  // an empty value is not a missing one
        try db.delete(bytes("k"))
        #expect(try db.get(bytes("k")) == nil)
        try db.delete(bytes("never-there"))  // deleting a missing key is not an error
    }

    @Test func binaryKeysWithZeroBytesAreDistinct() throws {
        let db = try open()
        let keys: [[UInt8]] = [[0], [0, 0], [0, 1], [1, 0, 0xFF], [0xFF, 0]]
        for (index, key) in keys.enumerated() {
            try db.put(key, [0, UInt8(index), 0])
        }
        for (index, key) in keys.enumerated() {
            #expect(try db.get(key) == [0, UInt8(index), 0])
        }
        #expect(try db.get([0, 0, 0]) == nil)
        #expect(try db.get([]) == nil)
        #expect(try entries(db) == keys.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func batchAppliesInOrderAndOnlyWhenWritten() throws {
        let db = try open()
        try db.put(bytes("gone"), bytes("x"))
        var batch = WriteBatch()
        #expect(batch.isEmpty)
        batch.put(bytes("a"), bytes("1"))
        batch.put(bytes("b"), bytes("2"))
        batch.put(bytes("a"), bytes("3"))  // a later put of the same key wins
        batch.delete(bytes("gone"))
        batch.put(bytes("c"), bytes("4"))
        batch.delete(bytes("c"))
        #expect(batch.count == 6 && batch.byteCount == 13)
        #expect(try db.get(bytes("a")) == nil)  // nothing is visible before write
        #expect(try db.get(bytes("gone")) == bytes("x"))
        try db.write(batch)
        #expect(try db.get(bytes("a")) == bytes("3"))
        #expect(try db.get(bytes("b")) == bytes("2"))
        #expect(try db.get(bytes("c")) == nil)
        #expect(try db.get(bytes("gone")) == nil)
        batch.clear()
        #expect(batch.isEmpty && batch.count == 0 && batch.byteCount == 0)
        try db.write(batch)  // an empty batch is a no-op
    }

    @Test func batchCopiesAreIndependent() throws {
        let db = try open()
        var first = WriteBatch()
        first.put(bytes("a"), bytes("1"))
        var second = first
        second.put(bytes("b"), bytes("2"))
        first.clear()
        first.put(bytes("c"), bytes("3"))
        try db.write(second)
        #expect(try entries(db) == [bytes("a"), bytes("b")])
        try db.write(first)
        #expect(try entries(db) == [bytes("a"), bytes("b"), bytes("c")])
    }

    /// Readers never see half a batch: a scan is a snapshot, and a batch lands all at once.
    @Test func concurrentScansNeverSeeHalfABatch() async throws {
        let db = try open()
        let rounds = 2_000
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for round in 1...rounds {
                    var batch = WriteBatch()
                    let value = bytes(String(round))
                    for key in ["p/a", "p/b", "p/c"] { batch.put(bytes(key), value) }
                    try db.write(batch)
                }
                return 0
            }
            group.addTask {
                var torn = 0
                var last = 0
                while last < rounds {
                    var values: [[UInt8]] = []
                    try db.forEach(prefix: bytes("p/")) { _, value in
                        values.append(Array(value))
                        return true
                    }
                    if !values.isEmpty {
                        if values.count != 3 || Set(values).count != 1 { torn += 1 }
                        last = Int(String(decoding: values[0], as: UTF8.self)) ?? 0
                    }
                }
                return torn
            }
            var torn = 0
            for try await result in group { torn += result }
            #expect(torn == 0)
        }
    }

    @Test func prefixIterationIsOrderedAndBounded() throws {
        let db = try open()
        let keys: [[UInt8]] = [
            [0x00], [0x01], [0x01, 0x00], [0x01, 0x02], [0x01, 0xFF], [0x01, 0xFF, 0xFF], [0x02], [0x02, 0x00],
        ]
        for key in keys.shuffled() { try db.put(key, key) }
        #expect(
            try entries(db, prefix: [0x01]) == [
                [0x01], [0x01, 0x00], [0x01, 0x02], [0x01, 0xFF], [0x01, 0xFF, 0xFF],
            ])
        #expect(
            try entries(db, prefix: [0x01], reverse: true) == [
                [0x01, 0xFF, 0xFF], [0x01, 0xFF], [0x01, 0x02], [0x01, 0x00], [0x01],
            ])
        #expect(try entries(db, prefix: [0x01, 0xFF]) == [[0x01, 0xFF], [0x01, 0xFF, 0xFF]])
        #expect(try entries(db, prefix: [0x01, 0xFF], reverse: true) == [[0x01, 0xFF, 0xFF], [0x01, 0xFF]])
        #expect(try entries(db, prefix: [0x03]).isEmpty)
        #expect(try entries(db, prefix: [0x03], reverse: true).isEmpty)
        #expect(try entries(db, prefix: [0x01, 0x01]).isEmpty)
        #expect(try entries(db, prefix: [0x01, 0x01], reverse: true).isEmpty)
        #expect(try entries(db) == keys)
        #expect(try entries(db, reverse: true) == keys.reversed())
    }

    /// A prefix ending in 0xFF has no simple successor; iteration must still stop at its end.
    @Test func prefixOfAll0xFFBytesReachesTheLastKey() throws {
        let db = try open()
        let keys: [[UInt8]] = [[0xFE], [0xFE, 0xFF], [0xFF], [0xFF, 0x00], [0xFF, 0xFF], [0xFF, 0xFF, 0x01]]
        for key in keys { try db.put(key, []) }
        #expect(try entries(db, prefix: [0xFF]) == [[0xFF], [0xFF, 0x00], [0xFF, 0xFF], [0xFF, 0xFF, 0x01]])
        #expect(
            try entries(db, prefix: [0xFF], reverse: true) == [
                [0xFF, 0xFF, 0x01], [0xFF, 0xFF], [0xFF, 0x00], [0xFF],
            ])
        #expect(try entries(db, prefix: [0xFF, 0xFF], reverse: true) == [[0xFF, 0xFF, 0x01], [0xFF, 0xFF]])
        #expect(try entries(db, prefix: [0xFE], reverse: true) == [[0xFE, 0xFF], [0xFE]])
    }

    @Test func iterationStopsWhenBodyReturnsFalseOrThrows() throws {
        let db = try open()
        for i in 0..<10 { try db.put([UInt8(i)], [UInt8(i)]) }
        var seen: [UInt8] = []
        try db.forEach { key, value in
            seen.append(value[0])
            return key[0] < 3
        }
        #expect(seen == [0, 1, 2, 3])

        struct Stop: Error {}
        seen = []
        #expect(throws: Stop.self) {
            try db.forEach { key, _ in
                seen.append(key[0])
                if key[0] == 5 { throw Stop() }
                return true
            }
        }
        #expect(seen == [0, 1, 2, 3, 4, 5])
        try db.put([0x42], [])  // the database is still usable after a throwing body
    }

    @Test func dataPersistsAcrossReopen() throws {
        do {
            let db = try open()
            try db.put(bytes("plain"), bytes("1"))
            try db.put(bytes("synced"), bytes("2"), sync: true)
            var batch = WriteBatch()
            batch.put(bytes("batched"), bytes("3"))
            try db.write(batch, sync: true)
            try db.delete(bytes("plain"), sync: true)
            db.close()
        }
        let db = try open()
        #expect(try db.get(bytes("plain")) == nil)
        #expect(try db.get(bytes("synced")) == bytes("2"))
        #expect(try db.get(bytes("batched")) == bytes("3"))
    }

    @Test func releasingTheLastReferenceClosesTheDatabase() throws {
        do {
            let db = try open()
            try db.put(bytes("k"), bytes("v"))
        }
        let again = try open()  // would be .locked if deinit had not closed
        #expect(try again.get(bytes("k")) == bytes("v"))
    }

    @Test func secondOpenInSameProcessIsLocked() throws {
        let first = try open()
        #expect {
            _ = try open()
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.kind == .locked && error.path == directory.file("db")
                && error.description
                    == "data directory \(directory.file("db")) is locked by another devstatusd (LevelDB LOCK held)"
        }
        first.close()
        first.close()  // idempotent
        #expect(!first.isOpen)
        let second = try open()  // the lock is released by close
        try second.put(bytes("k"), bytes("v"))
    }

    /// LevelDB locks with fcntl(F_SETLK); another process holding that lock must be reported as `.locked`.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func openWhileAnotherProcessHoldsLockIsLocked() async throws {
        let path = directory.file("db")
        try open().close()  // create the database and its LOCK file
        let script = """
            import fcntl, sys, time
            f = open(sys.argv[1], 'a'); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print('locked', flush=True); time.sleep(30)
            """
        let holder = try ChildProcess(
            executable: "/usr/bin/python3", arguments: ["-c", script, path + "/LOCK"],
            outputPath: directory.file("holder.out"))
        defer { _ = holder.killAndReap() }
        #expect(await eventually { holder.output.contains("locked") })
        #expect {
            _ = try open()
        } throws: { error in
            (error as? StorageError)?.kind == .locked
        }
        _ = holder.killAndReap()
        #expect(try open().isOpen)
    }

    @Test func callsAfterCloseThrowClosed() throws {
        let db = try open()
        db.close()
        let isClosed: (any Error) -> Bool = { ($0 as? StorageError)?.kind == .closed }
        #expect(performing: { _ = try db.get(bytes("k")) }, throws: isClosed)
        #expect(performing: { try db.put(bytes("k"), bytes("v")) }, throws: isClosed)
        #expect(performing: { try db.delete(bytes("k")) }, throws: isClosed)
        #expect(performing: { try db.forEach { _, _ in true } }, throws: isClosed)
        var batch = WriteBatch()
        batch.put(bytes("k"), bytes("v"))
        #expect(performing: { try db.write(batch) }, throws: isClosed)
    }

    @Test func openWithoutCreateOnEmptyDirectoryIsNotFound() throws {
        #expect {
            _ = try open(options: .init(createIfMissing: false))
        } throws: { error in
            (error as? StorageError)?.kind == .notFound
        }
    }

    @Test func errorIfExistsRejectsExistingDatabase() throws {
        try open().close()
        #expect {
            _ = try open(options: .init(errorIfExists: true))
        } throws: { error in
            (error as? StorageError)?.kind == .invalidArgument
        }
    }

    @Test func damagedCurrentFileIsCorrupt() throws {
        try open().close()
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory.file("db/CURRENT")))
        #expect {
            _ = try open()
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.kind == .corrupt
                && error.description.hasPrefix("data directory \(directory.file("db")) is corrupt: Corruption")
        }
    }

    @Test func pathThatIsAFileIsAnIOError() throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory.file("file")))
        #expect {
            _ = try open("file")
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.kind == .io && !error.description.contains("\n")
        }
    }

    @Test(arguments: [
        ("IO error: lock /d/LOCK: Resource temporarily unavailable", StorageError.Kind.locked),
        ("IO error: lock /d/LOCK: already held by process", .locked),
        ("Corruption: CURRENT file does not end with newline", .corrupt),
        ("Invalid argument: /d: does not exist (create_if_missing is false)", .notFound),
        ("Invalid argument: /d: exists (error_if_exists is true)", .invalidArgument),
        ("IO error: /blocklist/LOCK: Permission denied", .io),
        ("NotFound: /d/000005.ldb", .notFound),
        ("Not implemented: x", .other),
    ])
    func classifiesLevelDBMessages(message: String, kind: StorageError.Kind) {
        #expect(StorageError(leveldbMessage: message, path: "/d").kind == kind)
    }
}
