import Logging
import Storage
import TestSupport
import Testing

@testable import DeviceStatus

@Suite struct HistoryLogTests {
    static let key = DeviceKey(type: "type1", id: "ps1")
    static let baseTime: Int64 = 1_700_000_000_000_000_000

    static func transition(
        _ from: DeviceState, _ to: DeviceState, at offset: Int64, key: DeviceKey = key, source: String = "mon",
        reason: String? = "Connect"
    ) -> DeviceEvent {
        DeviceEvent(
            key: key, kind: .transition(from: from, to: to), source: source, reason: reason, time: baseTime + offset)
    }

    /// Every stored key of the device.
    static func storedCount(_ store: LevelDB, _ key: DeviceKey) throws -> Int {
        var count = 0
        try store.forEach(prefix: HistoryLog.devicePrefix(key.path)) { _, _ in
            count += 1
            return true
        }
        return count
    }

    @Test func returnsTransitionsNewestFirstAndIgnoresHellos() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        let events = DeviceEvents()
        log.observe(events)
        events.emit(Self.transition(.unknown, .online, at: 1))
        events.emit(DeviceEvent(key: Self.key, kind: .hello, source: "hello", time: Self.baseTime + 2))
        events.emit(Self.transition(.online, .offline, at: 3, reason: "Disconnect"))
        events.emit(Self.transition(.online, .expired, at: 4, source: "watchdog", reason: nil))
        events.emit(Self.transition(.unknown, .online, at: 5, key: DeviceKey(type: "type1", id: "ps10")))
        let entries = try log.entries(for: Self.key)
        #expect(entries.map(\.time) == [4, 3, 1].map { Self.baseTime + $0 })
        #expect(entries.map(\.to) == [.expired, .offline, .online])
        #expect(entries[0].source == "watchdog" && entries[0].reason == nil)
        #expect(entries[1].reason == "Disconnect")
        #expect(
            entries[0].json
                == #"{"time":"2023-11-14T22:13:20.000Z","from":"online","to":"expired","source":"watchdog","reason":null}"#
        )
        #expect(try log.entries(for: Self.key, limit: 2).count == 2)
        #expect(try log.entries(for: DeviceKey(type: "type1", id: "ps10")).count == 1)
        #expect(!log.hasEntries(for: DeviceKey(type: "type1", id: "nobody")))
    }

    @Test func keepsTransitionsOfTheSameInstantApart() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        // A status batch holding a Connect and a Disconnect of one device announces both at the same time.
        log.record(Self.transition(.offline, .online, at: 7))
        log.record(Self.transition(.online, .offline, at: 7, reason: "Disconnect"))
        log.flush()
        let entries = try log.entries(for: Self.key)
        #expect(entries.map(\.to) == [.offline, .online])
    }

    @Test func persistsAcrossReopening() throws {
        let directory = try TemporaryDirectory()
        do {
            let store = try LevelDB(path: directory.file("db"))
            let log = HistoryLog(store: store, logger: Logger(label: "test"))
            log.record(Self.transition(.unknown, .online, at: 1))
            log.record(Self.transition(.online, .offline, at: 2, reason: "Disconnect"))
            log.flush()
            store.close()
        }
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        let entries = try log.entries(for: Self.key)
        #expect(entries.map(\.to) == [.offline, .online])
        #expect(entries.map(\.reason) == ["Disconnect", "Connect"])
    }

    @Test func keepsAtMostAHundredPerDeviceAndTrimsCheaply() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        let other = DeviceKey(type: "type1", id: "other")
        log.record(Self.transition(.unknown, .online, at: 0, key: other))
        for index in 1...350 {
            log.record(
                Self.transition(
                    index % 2 == 0 ? .online : .offline, index % 2 == 0 ? .offline : .online, at: Int64(index)))
            // Several writes, as the writer queue would make them.
            if index % 5 == 0 { log.flush() }
        }
        log.flush()
        let stored = try Self.storedCount(store, Self.key)
        #expect(stored >= HistoryLog.maximumPerDevice)
        #expect(stored < HistoryLog.maximumPerDevice + HistoryLog.pruneInterval)
        let entries = try log.entries(for: Self.key)
        #expect(entries.count == HistoryLog.maximumPerDevice)
        #expect(entries.first?.time == Self.baseTime + 350)
        #expect(entries.last?.time == Self.baseTime + 251)
        // Another device is untouched by the trimming.
        #expect(try log.entries(for: other).count == 1)
    }

    /// 130 entries of `key` written by hand, as an untrimmed earlier run could leave them.
    static func storeUntrimmedEntries(in store: LevelDB) throws {
        var batch = WriteBatch()
        for index in 0..<130 {
            let entry = HistoryEntry(
                time: Self.baseTime + Int64(index), from: .online, to: .offline, source: "mon", reason: nil)
            batch.put(HistoryLog.key(path: Self.key.path, entry: entry), HistoryLog.encode(entry))
        }
        try store.write(batch)
    }

    @Test func trimsADeviceOnItsFirstWriteAfterARestart() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        try Self.storeUntrimmedEntries(in: store)
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        log.record(Self.transition(.offline, .online, at: 1000))
        log.flush()
        #expect(try Self.storedCount(store, Self.key) == HistoryLog.maximumPerDevice)
        #expect(try log.entries(for: Self.key).first?.time == Self.baseTime + 1000)
    }

    @Test func holdsWritesUntilReleasedAndAnswersFromTheBufferMeanwhile() async throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        try Self.storeUntrimmedEntries(in: store)
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        log.hold()
        log.record(Self.transition(.offline, .online, at: 1000))
        for index in 0..<(HistoryLog.flushChunk + 10) {
            log.record(
                Self.transition(.unknown, .offline, at: Int64(index), key: DeviceKey(type: "bulk", id: "d\(index)")))
        }
        // Whatever the disk queue had to do is done: nothing was written, and every entry is answered.
        await store.disk.drain()
        #expect(try Self.storedCount(store, Self.key) == 130)
        #expect(try Self.storedCount(store, DeviceKey(type: "bulk", id: "d0")) == 0)
        #expect(try log.entries(for: Self.key).count == HistoryLog.maximumPerDevice)
        #expect(try log.entries(for: Self.key).first?.time == Self.baseTime + 1000)
        #expect(try log.entries(for: DeviceKey(type: "bulk", id: "d7")).count == 1)
        // Released: written in chunks by the disk queue, the device trimmed on its first write.
        log.release()
        #expect(
            await eventually {
                (try? Self.storedCount(store, DeviceKey(type: "bulk", id: "d\(HistoryLog.flushChunk + 9)"))) == 1
            })
        await store.disk.drain()
        #expect(try Self.storedCount(store, Self.key) == HistoryLog.maximumPerDevice)
        #expect(try log.entries(for: Self.key).first?.time == Self.baseTime + 1000)
        #expect(try log.entries(for: DeviceKey(type: "bulk", id: "d7")).count == 1)
    }

    @Test func flushWritesEverythingEvenWhileHeld() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        log.hold()
        for index in 0..<(HistoryLog.flushChunk + 10) {
            log.record(
                Self.transition(.unknown, .offline, at: Int64(index), key: DeviceKey(type: "bulk", id: "d\(index)")))
        }
        // As at a stop: everything buffered is written.
        log.flush()
        #expect(try Self.storedCount(store, DeviceKey(type: "bulk", id: "d0")) == 1)
        #expect(try Self.storedCount(store, DeviceKey(type: "bulk", id: "d\(HistoryLog.flushChunk + 9)")) == 1)
    }

    @Test func readsHistoryWrittenWithTheFormerStatusSourceNameAsMon() throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        // As versions before presence conventions wrote it: the status topics' source named "status".
        var batch = WriteBatch()
        for (index, source) in ["status", "watchdog"].enumerated() {
            let entry = HistoryEntry(
                time: Self.baseTime + Int64(index), from: .offline, to: .online, source: source, reason: nil)
            batch.put(HistoryLog.key(path: Self.key.path, entry: entry), HistoryLog.encode(entry))
        }
        try store.write(batch)
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        #expect(try log.entries(for: Self.key).map(\.source) == ["watchdog", "mon"])
    }

    @Test func showsEntriesBeforeTheWriterStoresThem() async throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let log = HistoryLog(store: store, logger: Logger(label: "test"))
        for index in 0..<1000 {
            log.record(
                Self.transition(.unknown, .online, at: Int64(index), key: DeviceKey(type: "bulk", id: "d\(index)")))
            // Read right away, whatever the writer queue is doing: never missing, never doubled.
            if index % 97 == 0 {
                #expect(try log.entries(for: DeviceKey(type: "bulk", id: "d\(index)")).count == 1)
            }
        }
        // The queue writes by itself.
        #expect(await eventually { (try? Self.storedCount(store, DeviceKey(type: "bulk", id: "d999"))) == 1 })
    }

    @Test func decodesWhatItEncodes() {
        let entry = HistoryEntry(
            time: Self.baseTime, from: .expired, to: .online, source: "watchdog", reason: "message on a watch topic")
        let key = HistoryLog.key(path: "t/i", entry: entry)
        let value = HistoryLog.encode(entry)
        let decoded = key.withUnsafeBytes { k in value.withUnsafeBytes { v in HistoryLog.decode(key: k, value: v) } }
        #expect(decoded == entry)
        #expect(Array(key.prefix(6)) == Array("h/t/i/".utf8))
    }
}
