import Foundation
import Storage
import TestSupport
import Testing

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// What a failing disk, a full one and damaged files do to the store: no acknowledged write is lost, no byte that
/// fails its checksum is returned, and what recovery drops is said.
@Suite struct StorageFaultTests {
    @Test(.enabled(if: SmallFilesystem.unavailableReason == nil, "needs a tmpfs (root)"))
    func refusesEveryWriteAfterAFailedOneUntilReopenedAndVerified() throws {
        let disk = try SmallFilesystem(megabytes: 8)
        let path = disk.path + "/db"
        let value = [UInt8](repeating: 0x5A, count: 4096)
        var acknowledged: [Int] = []
        do {
            let db = try LevelDB(path: path, options: .init(paranoidChecks: true, writeBufferSize: 256 << 10))
            try disk.fill(keep: 512 << 10)
            var firstFailure: StorageError?
            for index in 0..<10_000 {
                do {
                    try db.put(bytes("k\(index)"), value + bytes("\(index)"), sync: true)
                    acknowledged.append(index)
                } catch {
                    firstFailure = error
                    break
                }
            }
            #expect(firstFailure?.kind == .io, "\(String(describing: firstFailure))")
            #expect(db.failure != nil)
            // Room again, but the handle stays poisoned: its log may end in a partial record.
            disk.free()
            #expect(throws: StorageError.self) { try db.put(bytes("after"), bytes("x"), sync: true) }
            do {
                try db.put(bytes("after"), bytes("x"))
            } catch {
                #expect(error.kind == .poisoned)
            }
            try db.reopen(probeBytes: 1 << 20)
            #expect(db.failure == nil)
            for index in acknowledged { #expect(try db.get(bytes("k\(index)")) == value + bytes("\(index)")) }
            try db.put(bytes("after"), bytes("x"), sync: true)
            db.close()
        }
        // What was acknowledged survives the next start too (it vanished before).
        let db = try LevelDB(path: path, options: .init(paranoidChecks: true))
        #expect(!acknowledged.isEmpty)
        for index in acknowledged { #expect(try db.get(bytes("k\(index)")) == value + bytes("\(index)")) }
        #expect(try db.get(bytes("after")) == bytes("x"))
        #expect(db.recoveryLosses.isEmpty, "\(db.recoveryLosses)")
    }

    @Test(.enabled(if: SmallFilesystem.unavailableReason == nil, "needs a tmpfs (root)"))
    func reopenFailsAndStaysPoisonedWhileTheDiskIsFull() throws {
        let disk = try SmallFilesystem(megabytes: 4)
        let db = try LevelDB(path: disk.path + "/db", options: .init(paranoidChecks: true, writeBufferSize: 64 << 10))
        try db.put(bytes("kept"), bytes("v"), sync: true)
        try disk.fill()
        #expect(throws: StorageError.self) {
            for index in 0..<10_000 { try db.put(bytes("k\(index)"), [UInt8](repeating: 1, count: 4096), sync: true) }
        }
        #expect(throws: StorageError.self) { try db.reopen(probeBytes: 1 << 20) }
        #expect(db.failure != nil)
        // Reads go on from the old handle.
        #expect(try db.get(bytes("kept")) == bytes("v"))
        disk.free()
        try db.reopen(probeBytes: 1 << 20)
        #expect(try db.get(bytes("kept")) == bytes("v"))
    }

    /// Flips 16 bytes at offsets across a table file, one copy of the database per offset: every read answers the
    /// value as written or throws `.corrupt`, never other bytes.
    @Test func checksumFailureInATableIsAnErrorNeverAlteredBytes() throws {
        let directory = try TemporaryDirectory(prefix: "storage-corrupt")
        let original = directory.file("db")
        // Incompressible values: Snappy stores them as literals, so a flipped byte decompresses into a changed value.
        func value(_ index: Int) -> [UInt8] {
            var state = UInt64(index) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (0..<64).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
        }
        do {
            let db = try LevelDB(path: original)
            for index in 0..<1000 { try db.put(bytes(String(format: "key%05d", index)), value(index)) }
        }
        // The next open turns the log into a table file.
        do { _ = try LevelDB(path: original) }
        let files = try FileManager.default.contentsOfDirectory(atPath: original)
        let table = try #require(files.first { $0.hasSuffix(".ldb") })
        let size = try #require(try FileManager.default.attributesOfItem(atPath: original + "/" + table)[.size] as? Int)
        var failures = 0
        for offset in stride(from: 0, to: size - 16, by: max(16, size / 24)) {
            let copy = directory.file("copy-\(offset)")
            try FileManager.default.copyItem(atPath: original, toPath: copy)
            let handle = try #require(FileHandle(forUpdatingAtPath: copy + "/" + table))
            try handle.seek(toOffset: UInt64(offset))
            let flipped = try #require(try handle.read(upToCount: 16)).map { ~$0 }
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: flipped)
            try handle.close()
            let db: LevelDB
            do {
                db = try LevelDB(path: copy, options: .init(paranoidChecks: true))
            } catch {
                #expect(error.kind == .corrupt, "offset \(offset): \(error)")
                failures += 1
                continue
            }
            var failed = false
            for index in 0..<1000 {
                do {
                    if let read = try db.get(bytes(String(format: "key%05d", index))) {
                        #expect(read == value(index), "offset \(offset): altered bytes answered for key \(index)")
                    }
                } catch {
                    #expect(error.kind == .corrupt, "offset \(offset): \(error)")
                    failed = true
                }
            }
            do {
                try db.forEach { key, found in
                    let index = Int(String(decoding: key.dropFirst(3), as: UTF8.self))!
                    #expect(Array(found) == value(index), "offset \(offset): altered bytes in a scan")
                    return true
                }
            } catch {
                #expect((error as? StorageError)?.kind == .corrupt, "offset \(offset): \(error)")
                failed = true
            }
            if failed {
                failures += 1
                #expect(db.failure?.kind == .corrupt, "a checksum failure poisons the handle")
            }
        }
        #expect(failures > 0)
    }

    @Test func recoveryThatDropsADamagedLogRecordSaysSo() throws {
        let directory = try TemporaryDirectory(prefix: "storage-log")
        let path = directory.file("db")
        do {
            let db = try LevelDB(path: path)
            for index in 0..<500 { try db.put(bytes("key\(index)"), [UInt8](repeating: 7, count: 100)) }
        }
        // The records are in the log only (closing does not write a table); damage one in the middle.
        let log = try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasSuffix(".log") })
        let handle = try #require(FileHandle(forUpdatingAtPath: path + "/" + log))
        try handle.seek(toOffset: 20_000)
        try handle.write(contentsOf: [UInt8](repeating: 0xFF, count: 16))
        try handle.close()
        #expect(throws: StorageError.self) { _ = try LevelDB(path: path, options: .init(paranoidChecks: true)) }
        let salvaged = try LevelDB(path: path, options: .init(paranoidChecks: false))
        #expect(salvaged.recoveryLosses.contains { $0.contains("dropping") }, "\(salvaged.recoveryLosses)")
    }
}
