import Logging
import Storage
import Synchronization

/// One status transition of a device, as `GET /devices/<type>/<id>/history` shows it.
public struct HistoryEntry: Sendable, Equatable {
    /// Wall-clock nanoseconds.
    public var time: Int64
    public var from: DeviceState
    public var to: DeviceState
    /// "mon" (status topics), "watchdog" (watch topics) or a presence preset's name.
    public var source: String
    public var reason: String?
    /// Orders entries of equal `time` (in the order they were recorded).
    var sequence: UInt32 = 0

    public init(time: Int64, from: DeviceState, to: DeviceState, source: String, reason: String?) {
        self.time = time
        self.from = from
        self.to = to
        self.source = source
        self.reason = reason
    }

    /// `{"time":"<RFC 3339>","from":…,"to":…,"source":…,"reason":…|null}`.
    public var json: String {
        JSONText.object([
            ("time", DeviceDirectory.time(time)), ("from", JSONText.quote(from.rawValue)),
            ("to", JSONText.quote(to.rawValue)), ("source", JSONText.quote(source)),
            ("reason", reason.map(JSONText.quote) ?? "null"),
        ])
    }

    /// Newest first: later time, then later sequence.
    static func isNewer(_ a: HistoryEntry, than b: HistoryEntry) -> Bool {
        (a.time, a.sequence) > (b.time, b.sequence)
    }
}

/// The last status transitions of every device (docs/behaviour.md §4.2), persisted in LevelDB under
/// `h/<type>/<id>/<time: 8 bytes big-endian><sequence: 4 bytes big-endian>`, so that one device's entries are
/// adjacent and in time order.
///
/// `record(_:)` runs on the emitter's actor (the status registry, the watchdog): it only appends to a buffer.
/// The store's disk queue writes the buffer as one non-sync batch, and trims a device to `maximumPerDevice` entries on its
/// 1st, 17th, 33rd… write since start (a short reverse scan of that device's keys). Reads merge what is still
/// buffered, so an entry is visible from the moment it is recorded.
public final class HistoryLog: Sendable {
    /// Entries kept per device: bounds disk use and the answer; a device may briefly hold up to
    /// `maximumPerDevice + pruneInterval - 1` before its next trim.
    public static let maximumPerDevice = 100
    /// A device is trimmed every this many writes: a reverse scan per write would cost more than the write.
    static let pruneInterval = 16
    /// Entries waiting for the writer beyond which new ones are dropped (and counted): bounds memory if the disk
    /// stalls; a million devices coming online at once still fit.
    static let maximumBuffered = 2_000_000
    static let prefix: [UInt8] = Array("h/".utf8)

    private struct Buffer {
        var waiting: [(path: String, entry: HistoryEntry)] = []
        /// Taken by the writer, not yet in the store.
        var writing: [(path: String, entry: HistoryEntry)] = []
        var flushScheduled = false
        /// While held (`hold()`), nothing is scheduled: entries wait here, answered from the buffer.
        var held = false
        var sequence: UInt32 = 0
        var dropped = 0
    }

    private struct WriterState {
        /// Writes per device since start, modulo `pruneInterval`.
        var writes: [String: UInt8] = [:]
    }

    /// Entries written (and their devices trimmed) per job of the disk queue: other disk work (synced operation
    /// writes) waits at most one such job, even when a replay's worth is buffered.
    static let flushChunk = 16_384

    private let store: LevelDB
    private let logger: Logger
    private let buffer = Mutex(Buffer())
    private let writer = Mutex(WriterState())

    public init(store: LevelDB, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Records every status transition `events` announces (hellos are not transitions).
    public func observe(_ events: DeviceEvents) {
        events.observeBatches { [self] batch in record(contentsOf: batch) }
    }

    /// Buffers a transition for the writer; other events are ignored. Quick: safe on the emitter's actor.
    public func record(_ event: DeviceEvent) {
        record(contentsOf: [event])
    }

    /// Buffers the transitions of `events` for the writer, in order, under one lock; other events are ignored.
    public func record(contentsOf events: [DeviceEvent]) {
        let schedule = buffer.withLock { buffer -> Bool in
            var added = false
            for event in events {
                guard case .transition(let from, let to) = event.kind else { continue }
                guard buffer.waiting.count < Self.maximumBuffered else {
                    buffer.dropped += 1
                    continue
                }
                var entry = HistoryEntry(
                    time: event.time, from: from, to: to, source: event.source, reason: event.reason)
                entry.sequence = buffer.sequence
                buffer.sequence &+= 1
                buffer.waiting.append((event.key.path, entry))
                added = true
            }
            guard added, !buffer.held, !buffer.flushScheduled else { return false }
            buffer.flushScheduled = true
            return true
        }
        if schedule { store.disk.submit { [self] in flushScheduledChunk() } }
    }

    /// Holds the writes until `release()`: the broker's retained replay at start brings every device's first
    /// transition, and writing (and trimming) a hundred thousand entries meanwhile took CPU and disk from the
    /// replay. Held entries are answered from the buffer as always; `flush()` still writes them.
    public func hold() {
        buffer.withLock { $0.held = true }
    }

    /// Ends `hold()`: what waits is written by the disk queue, `flushChunk` entries per job.
    public func release() {
        let schedule = buffer.withLock { buffer -> Bool in
            buffer.held = false
            guard !buffer.waiting.isEmpty, !buffer.flushScheduled else { return false }
            buffer.flushScheduled = true
            return true
        }
        if schedule { store.disk.submit { [self] in flushScheduledChunk() } }
    }

    /// The disk queue's flush: one chunk, then the next chunk as a job of its own while more waits.
    private func flushScheduledChunk() {
        if flush(atMost: Self.flushChunk) { store.disk.submit { [self] in flushScheduledChunk() } }
    }

    /// Writes what is buffered now (the disk queue does this by itself; call it before closing the store).
    public func flush() {
        while true {
            _ = flush(atMost: Self.flushChunk)
            if buffer.withLock({ $0.waiting.isEmpty }) { return }
        }
    }

    /// Writes the oldest `limit` buffered entries (at most) and trims their devices. Returns whether more wait and
    /// writes are not held (then a flush stays scheduled: the caller runs the next).
    private func flush(atMost limit: Int) -> Bool {
        writer.withLock { state -> Bool in
            let (taken, dropped, more) = buffer.withLock { buffer in
                if buffer.waiting.count <= limit {
                    swap(&buffer.waiting, &buffer.writing)
                } else {
                    buffer.writing = Array(buffer.waiting.prefix(limit))
                    buffer.waiting.removeFirst(limit)
                }
                let more = !buffer.waiting.isEmpty && !buffer.held
                buffer.flushScheduled = more
                defer { buffer.dropped = 0 }
                return (buffer.writing, buffer.dropped, more)
            }
            if dropped > 0 {
                logger.error(
                    "status history entries dropped: the store is not keeping up", metadata: ["count": "\(dropped)"])
            }
            guard !taken.isEmpty else { return more }
            var batch = WriteBatch()
            var trim = Set<String>()
            for (path, entry) in taken {
                batch.put(Self.key(path: path, entry: entry), Self.encode(entry))
                let count = state.writes[path, default: 0]
                if count == 0 { trim.insert(path) }
                state.writes[path] = (count + 1) % UInt8(Self.pruneInterval)
            }
            do {
                try store.write(batch, sync: false)
            } catch {
                logger.error("could not store status history", metadata: ["error": "\(error)"])
            }
            buffer.withLock { $0.writing.removeAll() }
            if !trim.isEmpty { self.trim(trim) }
            return more
        }
    }

    /// Deletes all but the newest `maximumPerDevice` entries of each device.
    ///
    /// In key order, through the block cache: after a replay most devices have one or two entries, so neighbours
    /// share LevelDB blocks, each read (and decompressed) once rather than once per device.
    private func trim(_ paths: Set<String>) {
        var batch = WriteBatch()
        for path in paths.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            var seen = 0
            do {
                try store.forEach(prefix: Self.devicePrefix(path), reverse: true, fillCache: true) { key, _ in
                    seen += 1
                    if seen > Self.maximumPerDevice { batch.delete(Array(key)) }
                    return true
                }
            } catch {
                logger.error("could not read status history", metadata: ["device": "\(path)", "error": "\(error)"])
            }
        }
        guard !batch.isEmpty else { return }
        do {
            try store.write(batch, sync: false)
        } catch {
            logger.error("could not trim status history", metadata: ["error": "\(error)"])
        }
    }

    /// The device's last transitions, newest first, at most `limit` (default and maximum `maximumPerDevice`).
    public func entries(for key: DeviceKey, limit: Int = maximumPerDevice) throws(StorageError) -> [HistoryEntry] {
        let limit = min(max(limit, 0), Self.maximumPerDevice)
        guard limit > 0 else { return [] }
        let path = key.path
        // Buffered first: an entry leaves the buffer only after it is in the store, so none is missed.
        var entries = buffer.withLock { buffer in
            (buffer.writing + buffer.waiting).filter { $0.path == path }.map(\.entry)
        }
        // The newest `limit` of the union hold at most `limit` stored entries: the newest stored ones.
        var stored = 0
        do {
            try store.forEach(prefix: Self.devicePrefix(path), reverse: true) { key, value in
                guard let entry = Self.decode(key: key, value: value) else { return true }
                entries.append(entry)
                stored += 1
                return stored < limit
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(kind: .other, message: "\(error)", path: store.path)
        }
        entries.sort(by: HistoryEntry.isNewer)
        // Buffered entries may already be in the store too.
        var unique: [HistoryEntry] = []
        for entry in entries where unique.last.map({ $0.time != entry.time || $0.sequence != entry.sequence }) ?? true {
            unique.append(entry)
            if unique.count == limit { break }
        }
        return unique
    }

    /// Whether any transition of the device is stored or buffered.
    public func hasEntries(for key: DeviceKey) -> Bool {
        ((try? entries(for: key, limit: 1)) ?? []).isEmpty == false
    }

    // MARK: - Encoding

    static func devicePrefix(_ path: String) -> [UInt8] { prefix + Array(path.utf8) + [UInt8(ascii: "/")] }

    static func key(path: String, entry: HistoryEntry) -> [UInt8] {
        var key = devicePrefix(path)
        key.reserveCapacity(key.count + 12)
        // Times before 1970 would sort after later ones as unsigned: clamp (a wall clock is never there).
        withUnsafeBytes(of: UInt64(max(entry.time, 0)).bigEndian) { key.append(contentsOf: $0) }
        withUnsafeBytes(of: entry.sequence.bigEndian) { key.append(contentsOf: $0) }
        return key
    }

    /// from (1 byte), to (1 byte), source length (1 byte), source, reason (the rest; absent when the flag is 0).
    static func encode(_ entry: HistoryEntry) -> [UInt8] {
        let source = Array(entry.source.utf8.prefix(255))
        var value: [UInt8] = [stateCode(entry.from), stateCode(entry.to), UInt8(source.count)] + source
        if let reason = entry.reason {
            value.append(1)
            value += reason.utf8
        } else {
            value.append(0)
        }
        return value
    }

    static func decode(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HistoryEntry? {
        guard key.count >= 12, value.count >= 4 else { return nil }
        var time: UInt64 = 0
        for byte in key[(key.count - 12)..<(key.count - 4)] { time = time << 8 | UInt64(byte) }
        var sequence: UInt32 = 0
        for byte in key[(key.count - 4)...] { sequence = sequence << 8 | UInt32(byte) }
        guard let from = state(value[0]), let to = state(value[1]) else { return nil }
        let sourceLength = Int(value[2])
        guard value.count >= 3 + sourceLength + 1 else { return nil }
        var source = String(decoding: UnsafeRawBufferPointer(rebasing: value[3..<(3 + sourceLength)]), as: UTF8.self)
        // Entries written before presence conventions named the status topics "status": they are `mon`.
        if source == "status" { source = PresenceSource.mon.name }
        let flag = value[3 + sourceLength]
        let reason =
            flag == 1
            ? String(decoding: UnsafeRawBufferPointer(rebasing: value[(4 + sourceLength)...]), as: UTF8.self) : nil
        var entry = HistoryEntry(time: Int64(time), from: from, to: to, source: source, reason: reason)
        entry.sequence = sequence
        return entry
    }

    private static func stateCode(_ state: DeviceState) -> UInt8 {
        UInt8(DeviceState.allCases.firstIndex(of: state)!)
    }

    private static func state(_ code: UInt8) -> DeviceState? {
        Int(code) < DeviceState.allCases.count ? DeviceState.allCases[Int(code)] : nil
    }
}
