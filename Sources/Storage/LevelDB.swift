import CLevelDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A LevelDB database in one directory: binary keys and values, sorted by key (bytewise).
///
/// LevelDB is thread-safe, and so is this class: any thread may call any method at the same
/// time. Only one `LevelDB` may have a directory open at a time, in this process or any other
/// (the LOCK file); a second open throws a `.locked` ``StorageError``.
///
/// Keys and values are any `Sequence<UInt8>` (`[UInt8]`, `ArraySlice<UInt8>`, `"text".utf8`);
/// contiguous ones are passed to LevelDB without copying.
///
/// A failed write poisons the handle: LevelDB's log may then hold a partial record, and records appended after it
/// would be dropped by the next recovery (acknowledged data lost without a word). Every later write throws
/// `.poisoned` until ``reopen(probeBytes:)`` has closed the handle, opened the directory again (recovery) and
/// verified every record's checksum. A read that fails (a checksum mismatch) poisons the handle too. Reads go on
/// meanwhile.
public final class LevelDB: Sendable {
    /// How to open the database.
    public struct Options: Sendable, Equatable {
        /// Create the database when the directory holds none. Default `true`.
        public var createIfMissing: Bool
        /// Fail with `.invalidArgument` when a database already exists. Default `false`.
        public var errorIfExists: Bool
        /// Check data aggressively and stop at the first corruption: recovery fails instead of dropping a damaged
        /// log record, table files are checked when opened. Default `false` (LevelDB's own default); the daemon
        /// sets it.
        public var paranoidChecks: Bool
        /// Verify every block read against its checksum: a mismatch is a `.corrupt` error, never altered bytes.
        /// Default `true` (LevelDB's default is `false`).
        public var verifyChecksums: Bool
        /// Bytes buffered in memory before a table is written. Default 8 MiB: LevelDB's 4 MiB
        /// halves the number of level-0 files during a burst of writes (a big retained replay).
        public var writeBufferSize: Int
        /// Bytes of uncompressed blocks cached for reads. Default 8 MiB (LevelDB's default).
        public var blockCacheBytes: Int
        /// Snappy-compress blocks. Default `true`.
        public var compression: Bool
        /// Bloom filter bits per key, 0 for none. Default 10 (~1 % false positives): a lookup of
        /// a missing key then usually reads no table block.
        public var bloomFilterBitsPerKey: Int
        /// Table files LevelDB keeps open. Default 1000 (LevelDB's default); lower it under a tight
        /// `ulimit -n`, because client sockets share the same descriptor limit.
        public var maxOpenFiles: Int

        public init(
            createIfMissing: Bool = true, errorIfExists: Bool = false, paranoidChecks: Bool = false,
            verifyChecksums: Bool = true, writeBufferSize: Int = 8 << 20, blockCacheBytes: Int = 8 << 20,
            compression: Bool = true,
            bloomFilterBitsPerKey: Int = 10, maxOpenFiles: Int = 1000
        ) {
            self.createIfMissing = createIfMissing
            self.errorIfExists = errorIfExists
            self.paranoidChecks = paranoidChecks
            self.verifyChecksums = verifyChecksums
            self.writeBufferSize = writeBufferSize
            self.blockCacheBytes = blockCacheBytes
            self.compression = compression
            self.bloomFilterBitsPerKey = bloomFilterBitsPerKey
            self.maxOpenFiles = maxOpenFiles
        }
    }

    /// The directory given at open.
    public let path: String
    /// Where this store's blocking work runs (synced writes, scans, reopening): see ``DiskExecutor``.
    public let disk = DiskExecutor()
    private let handle: Handle

    /// Opens (by default creating) the database in directory `path`.
    /// Throws `.locked` when another `LevelDB` holds it, `.corrupt`, `.io`, `.notFound` or `.invalidArgument`.
    public init(path: String, options: Options = .init()) throws(StorageError) {
        self.path = path
        handle = try Handle(path: path, options: options)
    }

    deinit { close() }

    /// Closes the database and releases the directory's lock; waits for calls in progress.
    /// Idempotent; later calls on this object throw `.closed`. Must not be called from inside a
    /// ``forEach(prefix:reverse:_:)`` body (it would wait for itself).
    public func close() {
        handle.lock.withWriteLock {
            guard let db = handle.db else { return }
            leveldb_close(db)
            handle.db = nil
        }
    }

    /// `true` until ``close()``.
    public var isOpen: Bool { handle.lock.withReadLock { handle.db != nil } }

    /// The failure that poisoned this handle, nil while it is healthy. Writes throw `.poisoned` while it is set.
    public var failure: StorageError? { handle.failure.withLock { $0 } }

    /// Lines of LevelDB's own log (`LOG` in the directory) written by the last open that say recovery dropped or
    /// skipped damaged data ("000005.log: dropping 1234 bytes; Corruption: checksum mismatch"); empty when
    /// recovery lost nothing.
    public var recoveryLosses: [String] { handle.lock.withReadLock { handle.recoveryLosses } }

    /// Makes a poisoned handle usable again, or throws and stays poisoned: writes and syncs `probeBytes` to a file
    /// in the directory (is there room again?), closes the database, opens it again (LevelDB's recovery, with the
    /// options of the first open), reads every record with its checksum verified, and writes and syncs a probe
    /// record. Reads wait while it runs. A healthy handle is left alone.
    /// - Parameter probeBytes: at least what recovery may write (a table of the write buffer's size); default 16 MiB.
    public func reopen(probeBytes: Int = 16 << 20) throws(StorageError) {
        guard failure != nil else { return }
        try probeSpace(directory: path, bytes: probeBytes)
        try handle.lock.withWriteLock { () throws(StorageError) in
            if let db = handle.db { leveldb_close(db) }
            handle.db = nil
            try handle.open(path: path)
        }
        // The new handle stays poisoned (writes refused, reads served) until every record has been read back whole.
        do {
            try forEach { _, _ in true }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(kind: .other, message: "\(error)", path: path)
        }
        try handle.lock.withReadLock { () throws(StorageError) in
            let db = try openDB()
            var error: UnsafeMutablePointer<CChar>?
            let key = Self.probeKey
            key.withUnsafeBufferPointer { k in
                leveldb_put(db, handle.syncWrite, k.charPointer, k.count, k.charPointer, k.count, &error)
                if error == nil { leveldb_delete(db, handle.syncWrite, k.charPointer, k.count, &error) }
            }
            try check(error)
        }
        handle.failure.withLock { $0 = nil }
    }

    /// The key of the probe record ``reopen(probeBytes:)`` writes and deletes: sorts before any text key.
    static let probeKey: [UInt8] = Array("\u{0}storage-probe".utf8)

    /// The value stored under `key`, or `nil`.
    public func get(_ key: some Sequence<UInt8>) throws(StorageError) -> [UInt8]? {
        try handle.lock.withReadLock { () throws(StorageError) -> [UInt8]? in
            let db = try openDB()
            var error: UnsafeMutablePointer<CChar>?
            var length = 0
            let value = withBytes(key) { k in
                leveldb_get(db, handle.readOptions, k.charPointer, k.count, &length, &error)
            }
            try check(error)
            guard let value else { return nil }
            defer { leveldb_free(value) }
            return Array(UnsafeRawBufferPointer(start: value, count: length))
        }
    }

    /// Stores `value` under `key`. With `sync` the write reaches the disk (fsync) before this returns
    /// (~100× slower); without it a machine crash (not a process crash) may lose the latest writes.
    public func put(_ key: some Sequence<UInt8>, _ value: some Sequence<UInt8>, sync: Bool = false) throws(StorageError)
    {
        try handle.lock.withReadLock { () throws(StorageError) in
            let db = try writableDB()
            var error: UnsafeMutablePointer<CChar>?
            let options = writeOptions(sync)
            withBytes(key) { k in
                withBytes(value) { v in
                    leveldb_put(db, options, k.charPointer, k.count, v.charPointer, v.count, &error)
                }
            }
            try check(error)
        }
    }

    /// Removes `key`; no error when it is absent. `sync` as for ``put(_:_:sync:)``.
    public func delete(_ key: some Sequence<UInt8>, sync: Bool = false) throws(StorageError) {
        try handle.lock.withReadLock { () throws(StorageError) in
            let db = try writableDB()
            var error: UnsafeMutablePointer<CChar>?
            let options = writeOptions(sync)
            withBytes(key) { k in leveldb_delete(db, options, k.charPointer, k.count, &error) }
            try check(error)
        }
    }

    /// Applies every operation of `batch` atomically. `sync` as for ``put(_:_:sync:)``; one synced
    /// batch costs about as much as one synced put, so group writes that must be durable.
    public func write(_ batch: WriteBatch, sync: Bool = false) throws(StorageError) {
        if batch.isEmpty { return }
        try handle.lock.withReadLock { () throws(StorageError) in
            let db = try writableDB()
            var error: UnsafeMutablePointer<CChar>?
            leveldb_write(db, writeOptions(sync), batch.box.pointer, &error)
            try check(error)
        }
    }

    /// Calls `body` for every record whose key starts with `prefix` (all records for `[]`), in
    /// ascending key order, or descending with `reverse`, until `body` returns `false`.
    ///
    /// The buffers are valid only during the call (copy them with `Array(key)` to keep them);
    /// nothing is allocated per record. The view is a consistent snapshot taken at the start.
    /// Throws what `body` throws, or a ``StorageError``.
    public func forEach(
        prefix: [UInt8] = [], reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try forEach(prefix: prefix, reverse: reverse, fillCache: false, body)
    }

    /// `forEach(prefix:reverse:_:)`, choosing whether the blocks read stay in the block cache: not for a long scan
    /// (it would evict every hot block), yes for many short reads of neighbouring keys (they then share blocks).
    public func forEach(
        prefix: [UInt8], reverse: Bool, fillCache: Bool,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try handle.lock.withReadLock { () throws in
            let db = try openDB()
            guard let iterator = leveldb_create_iterator(db, fillCache ? handle.readOptions : handle.scanOptions)
            else {
                throw StorageError(kind: .other, message: "leveldb_create_iterator failed", path: path)
            }
            defer { leveldb_iter_destroy(iterator) }
            prefix.withUnsafeBufferPointer { p in
                if !reverse {
                    if p.isEmpty {
                        leveldb_iter_seek_to_first(iterator)
                    } else {
                        leveldb_iter_seek(iterator, p.charPointer, p.count)
                    }
                    return
                }
                // Start at the last key below the prefix's successor (none when the prefix is all 0xFF).
                guard let upper = Self.successor(of: prefix) else {
                    leveldb_iter_seek_to_last(iterator)
                    return
                }
                upper.withUnsafeBufferPointer { u in leveldb_iter_seek(iterator, u.charPointer, u.count) }
                if leveldb_iter_valid(iterator) != 0 {
                    leveldb_iter_prev(iterator)
                } else {
                    leveldb_iter_seek_to_last(iterator)
                }
            }
            let prefixCount = prefix.count
            try prefix.withUnsafeBytes { p in
                while leveldb_iter_valid(iterator) != 0 {
                    var keyLength = 0
                    guard let key = leveldb_iter_key(iterator, &keyLength) else { break }
                    if prefixCount > 0 && (keyLength < prefixCount || memcmp(key, p.baseAddress!, prefixCount) != 0) {
                        break
                    }
                    var valueLength = 0
                    let value = leveldb_iter_value(iterator, &valueLength)
                    let goOn = try body(
                        UnsafeRawBufferPointer(start: key, count: keyLength),
                        UnsafeRawBufferPointer(start: value, count: valueLength))
                    if !goOn { break }
                    if reverse { leveldb_iter_prev(iterator) } else { leveldb_iter_next(iterator) }
                }
            }
            var error: UnsafeMutablePointer<CChar>?
            leveldb_iter_get_error(iterator, &error)
            try check(error)
        }
    }

    /// The smallest key greater than every key starting with `prefix`, or `nil` when there is
    /// none (empty or all-0xFF prefix): drop trailing 0xFF bytes, then increment the last byte.
    static func successor(of prefix: [UInt8]) -> [UInt8]? {
        var upper = prefix
        while let last = upper.last, last == 0xFF { upper.removeLast() }
        guard !upper.isEmpty else { return nil }
        upper[upper.count - 1] += 1
        return upper
    }

    // MARK: - Private

    @inline(__always)
    private func openDB() throws(StorageError) -> OpaquePointer {
        guard let db = handle.db else {
            throw StorageError(kind: .closed, message: "database is closed", path: path)
        }
        return db
    }

    /// The open database, unless a failure poisoned the handle.
    @inline(__always)
    private func writableDB() throws(StorageError) -> OpaquePointer {
        if let failure = handle.failure.withLock({ $0 }) {
            throw StorageError(kind: .poisoned, message: failure.message, path: path)
        }
        return try openDB()
    }

    @inline(__always)
    private func writeOptions(_ sync: Bool) -> OpaquePointer { sync ? handle.syncWrite : handle.plainWrite }

    /// Throws LevelDB's error, if any. A failed write, or a failed read (damaged data), poisons the handle.
    @inline(__always)
    private func check(_ error: UnsafeMutablePointer<CChar>?) throws(StorageError) {
        guard let error else { return }
        let failure = Handle.consume(error, path: path)
        if failure.kind != .closed && failure.kind != .notFound {
            handle.failure.withLock { $0 = $0 ?? failure }
        }
        throw failure
    }
}

/// Writes, syncs and removes a file of `bytes` zeros in `directory`: is there room for recovery to write?
private func probeSpace(directory: String, bytes: Int) throws(StorageError) {
    let file = directory + "/.space-probe"
    func failure() -> StorageError {
        StorageError(kind: .io, message: "IO error: \(file): \(String(cString: strerror(errno)))", path: directory)
    }
    let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw failure() }
    defer {
        close(fd)
        unlink(file)
    }
    let chunk = [UInt8](repeating: 0, count: 1 << 20)
    var written = 0
    while written < bytes {
        let count = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, bytes - written)) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { throw failure() }
        written += count
    }
    guard fsync(fd) == 0 else { throw failure() }
}

/// The C objects behind a ``LevelDB``; `db` is read under the read lock and cleared under the write lock.
private final class Handle: @unchecked Sendable {
    let lock = ReadWriteLock()
    var db: OpaquePointer?
    let options: OpaquePointer
    let cache: OpaquePointer?
    let filterPolicy: OpaquePointer?
    let readOptions: OpaquePointer
    /// Scans do not fill the block cache: one full iteration would evict every hot block.
    let scanOptions: OpaquePointer
    let plainWrite: OpaquePointer
    let syncWrite: OpaquePointer
    /// The failure that poisoned the handle (see `LevelDB.failure`).
    let failure = Mutex<StorageError?>(nil)
    /// What the last open's recovery dropped, from LevelDB's `LOG`; written under the write lock.
    var recoveryLosses: [String] = []

    init(path: String, options o: LevelDB.Options) throws(StorageError) {
        options = leveldb_options_create()
        leveldb_options_set_create_if_missing(options, o.createIfMissing ? 1 : 0)
        leveldb_options_set_error_if_exists(options, o.errorIfExists ? 1 : 0)
        leveldb_options_set_paranoid_checks(options, o.paranoidChecks ? 1 : 0)
        leveldb_options_set_write_buffer_size(options, max(o.writeBufferSize, 64 << 10))
        leveldb_options_set_max_open_files(options, Int32(clamping: max(o.maxOpenFiles, 10)))
        leveldb_options_set_compression(
            options, Int32(o.compression ? leveldb_snappy_compression : leveldb_no_compression))
        cache = o.blockCacheBytes > 0 ? leveldb_cache_create_lru(o.blockCacheBytes) : nil
        if let cache { leveldb_options_set_cache(options, cache) }
        filterPolicy =
            o.bloomFilterBitsPerKey > 0
            ? leveldb_filterpolicy_create_bloom(Int32(clamping: o.bloomFilterBitsPerKey)) : nil
        if let filterPolicy { leveldb_options_set_filter_policy(options, filterPolicy) }
        readOptions = leveldb_readoptions_create()
        scanOptions = leveldb_readoptions_create()
        leveldb_readoptions_set_fill_cache(scanOptions, 0)
        leveldb_readoptions_set_verify_checksums(readOptions, o.verifyChecksums ? 1 : 0)
        leveldb_readoptions_set_verify_checksums(scanOptions, o.verifyChecksums ? 1 : 0)
        plainWrite = leveldb_writeoptions_create()
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)

        try open(path: path)
    }

    /// Opens the database into `db` (nil before) and reads what recovery dropped from LevelDB's `LOG`.
    func open(path: String) throws(StorageError) {
        var error: UnsafeMutablePointer<CChar>?
        let opened = leveldb_open(options, path, &error)
        recoveryLosses = Self.recoveryLosses(inLogAt: path + "/LOG")
        if let error {
            if let opened { leveldb_close(opened) }
            throw Self.consume(error, path: path)
        }
        db = opened
    }

    /// The lines of a LevelDB `LOG` that report data dropped or skipped during recovery. LevelDB starts a new
    /// `LOG` at every open (the previous one becomes `LOG.old`), so the file holds this open's recovery.
    static func recoveryLosses(inLogAt path: String) -> [String] {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var lines: [String] = []
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            var line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if line.hasSuffix("\n") { line.removeLast() }
            // "<file>: dropping <n> bytes; <why>" (a damaged log record), "(ignoring error)" (skipped while not
            // paranoid), and any other corruption reported.
            if line.contains("dropping") || line.contains("ignoring error") || line.contains("Corruption") {
                lines.append(line)
            }
        }
        return lines
    }

    deinit {
        if let db { leveldb_close(db) }
        leveldb_options_destroy(options)
        if let cache { leveldb_cache_destroy(cache) }
        if let filterPolicy { leveldb_filterpolicy_destroy(filterPolicy) }
        leveldb_readoptions_destroy(readOptions)
        leveldb_readoptions_destroy(scanOptions)
        leveldb_writeoptions_destroy(plainWrite)
        leveldb_writeoptions_destroy(syncWrite)
    }

    /// Converts and frees a LevelDB error string.
    static func consume(_ error: UnsafeMutablePointer<CChar>, path: String) -> StorageError {
        let message = String(cString: error)
        leveldb_free(error)
        return StorageError(leveldbMessage: message, path: path)
    }
}
