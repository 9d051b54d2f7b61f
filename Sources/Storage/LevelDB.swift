import CLevelDB

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
public final class LevelDB: Sendable {
    /// How to open the database.
    public struct Options: Sendable, Equatable {
        /// Create the database when the directory holds none. Default `true`.
        public var createIfMissing: Bool
        /// Fail with `.invalidArgument` when a database already exists. Default `false`.
        public var errorIfExists: Bool
        /// Check data aggressively and stop at the first corruption. Default `false` (LevelDB's own default).
        public var paranoidChecks: Bool
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
            writeBufferSize: Int = 8 << 20, blockCacheBytes: Int = 8 << 20, compression: Bool = true,
            bloomFilterBitsPerKey: Int = 10, maxOpenFiles: Int = 1000
        ) {
            self.createIfMissing = createIfMissing
            self.errorIfExists = errorIfExists
            self.paranoidChecks = paranoidChecks
            self.writeBufferSize = writeBufferSize
            self.blockCacheBytes = blockCacheBytes
            self.compression = compression
            self.bloomFilterBitsPerKey = bloomFilterBitsPerKey
            self.maxOpenFiles = maxOpenFiles
        }
    }

    /// The directory given at open.
    public let path: String
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
            let db = try openDB()
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
            let db = try openDB()
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
            let db = try openDB()
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
        try handle.lock.withReadLock { () throws in
            let db = try openDB()
            guard let iterator = leveldb_create_iterator(db, handle.scanOptions) else {
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

    @inline(__always)
    private func writeOptions(_ sync: Bool) -> OpaquePointer { sync ? handle.syncWrite : handle.plainWrite }

    @inline(__always)
    private func check(_ error: UnsafeMutablePointer<CChar>?) throws(StorageError) {
        guard let error else { return }
        throw Handle.consume(error, path: path)
    }
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
        plainWrite = leveldb_writeoptions_create()
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)

        var error: UnsafeMutablePointer<CChar>?
        db = leveldb_open(options, path, &error)
        if let error {
            if let db { leveldb_close(db) }
            db = nil
            throw Self.consume(error, path: path)
        }
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
