import CLevelDB

/// Puts and deletes applied atomically by ``LevelDB/write(_:sync:)``: all of them or none, even
/// across a crash. A value type (copy-on-write over `leveldb_writebatch_t`); operations apply in
/// the order they were added, so a later put of the same key wins.
public struct WriteBatch: Sendable {
    /// Owns the C batch; copied before mutation when shared, which makes the struct safe to send.
    final class Box: @unchecked Sendable {
        let pointer: OpaquePointer
        init() { pointer = leveldb_writebatch_create() }
        deinit { leveldb_writebatch_destroy(pointer) }
    }

    private(set) var box = Box()
    /// Number of puts and deletes added since creation or the last ``clear()``.
    public private(set) var count = 0
    /// Total key and value bytes added; lets callers cap a group commit by size.
    public private(set) var byteCount = 0

    /// An empty batch.
    public init() {}

    /// `true` when nothing has been added.
    public var isEmpty: Bool { count == 0 }

    /// Adds "set `key` to `value`".
    public mutating func put(_ key: some Sequence<UInt8>, _ value: some Sequence<UInt8>) {
        makeUnique()
        let pointer = box.pointer
        let added = withBytes(key) { k in
            withBytes(value) { v in
                leveldb_writebatch_put(pointer, k.charPointer, k.count, v.charPointer, v.count)
                return k.count + v.count
            }
        }
        count += 1
        byteCount += added
    }

    /// Adds "remove `key`" (no error if it does not exist).
    public mutating func delete(_ key: some Sequence<UInt8>) {
        makeUnique()
        let pointer = box.pointer
        let added = withBytes(key) { k in
            leveldb_writebatch_delete(pointer, k.charPointer, k.count)
            return k.count
        }
        count += 1
        byteCount += added
    }

    /// Removes every operation, keeping the batch for reuse.
    public mutating func clear() {
        if isKnownUniquelyReferenced(&box) {
            leveldb_writebatch_clear(box.pointer)
        } else {
            box = Box()
        }
        count = 0
        byteCount = 0
    }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&box) {
            let copy = Box()
            leveldb_writebatch_append(copy.pointer, box.pointer)
            box = copy
        }
    }
}

/// Runs `body` on `bytes`' contiguous storage, copying only when the sequence has none.
@inline(__always)
func withBytes<R>(_ bytes: some Sequence<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = bytes.withContiguousStorageIfAvailable(body) { return result }
    return Array(bytes).withUnsafeBufferPointer(body)
}

extension UnsafeBufferPointer<UInt8> {
    /// The bytes as LevelDB's `const char *` (NULL for an empty buffer, which LevelDB accepts with length 0).
    @inline(__always)
    var charPointer: UnsafePointer<CChar>? {
        UnsafeRawPointer(baseAddress)?.assumingMemoryBound(to: CChar.self)
    }
}
