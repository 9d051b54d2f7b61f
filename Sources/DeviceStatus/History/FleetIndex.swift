import Foundation

/// What the fleet index knows of one device: its overall status, the signal that decided it, and its times.
public struct FleetEntry: Sendable, Equatable {
    public var state: DeviceState
    /// The signal that decided `state` (`status`, `watchdog`, a presence convention…); nil when unknown.
    public var source: String?
    /// Wall-clock nanoseconds of the last status change; nil when not known.
    public var since: Int64?
    /// Wall-clock nanoseconds of the last sign of life; nil when never seen.
    public var lastSeen: Int64?

    public init(state: DeviceState, source: String? = nil, since: Int64? = nil, lastSeen: Int64? = nil) {
        self.state = state
        self.source = source
        self.since = since
        self.lastSeen = lastSeen
    }
}

/// The fleet as `GET /devices` walks it: every device's overall status, source and times, the counts per status and
/// per type, and the device keys in the three orders a page can be asked in (`type/id`; last seen and since, newest
/// first). Kept up to date one device at a time (`set`), so that a page costs a seek and a short walk rather than a
/// pass over the fleet.
///
/// Pure: no locks, no clock, no I/O. `Fleet` wraps it for the daemon.
///
/// Memory: about 50 bytes per device. Devices live in slots (columns of plain arrays); the three orders hold 4-byte
/// slot numbers in chunked sorted arrays, compared through the columns. A device's slot is found by binary search in
/// the `type/id` order (no dictionary of paths).
struct FleetIndex {
    typealias Entry = FleetEntry

    /// The orders a page can be asked in.
    enum Order: Sendable, Equatable {
        /// `type/id`, bytewise (UTF-8) ascending.
        case key
        /// Last seen, newest first; never seen last.
        case lastSeen
        /// Since, newest first; unknown last.
        case since
    }

    /// Every status, in `DeviceState.allCases` order; a device's status is stored as its position here.
    static let states = DeviceState.allCases.map { $0 }
    /// Marks a free slot in `states`.
    private static let freeSlot: UInt8 = .max
    /// Stands for an unknown time in the time columns: sorts after every real time in newest-first order.
    static let noTime = Int64.min

    /// One column per attribute, indexed by slot.
    struct Columns {
        var paths: [String] = []
        var states: [UInt8] = []
        var sources: [UInt8] = []
        var types: [Int32] = []
        var since: [Int64] = []
        var lastSeen: [Int64] = []

        func precedes(_ a: Int32, _ b: Int32, in order: Order) -> Bool {
            switch order {
            case .key: return FleetIndex.precedes(paths[Int(a)], paths[Int(b)])
            case .lastSeen:
                let (x, y) = (lastSeen[Int(a)], lastSeen[Int(b)])
                return x != y ? x > y : a < b
            case .since:
                let (x, y) = (since[Int(a)], since[Int(b)])
                return x != y ? x > y : a < b
            }
        }
    }

    private(set) var columns = Columns()
    private var freeSlots: [Int32] = []
    private var byKey = SortedChunks()
    private var byLastSeen = SortedChunks()
    private var bySince = SortedChunks()

    private var typeNames: [String] = []
    private var typeIndex: [String: Int32] = [:]
    private var sourceNames: [String?] = [nil]
    private var sourceIndex: [String: UInt8] = [:]
    /// Devices per status (`states` order).
    private(set) var stateCounts: [Int] = Array(repeating: 0, count: FleetIndex.states.count)
    /// Devices per type (`typeNames` order).
    private var typeCounts: [Int] = []
    /// Devices per type and status: `type * states.count + state`.
    private var typeStateCounts: [Int] = []

    /// Changes whenever a device is added or removed (not when one changes): what a search over the keys depends on.
    private(set) var keyGeneration = 0

    /// Devices in the index.
    var count: Int { byKey.count }

    init() {}

    /// An index of `devices` (in any order, each path once), built in O(n log n) rather than by n insertions.
    init(devices: some Sequence<(path: String, entry: Entry)>) {
        for (path, entry) in devices { append(path, entry) }
        finishAppending()
    }

    /// Adds a device not in the index without ordering it; `finishAppending()` orders them all, and nothing else may
    /// be called in between.
    mutating func append(_ path: String, _ entry: Entry) {
        fill(newSlot(path), path: path, entry: entry)
    }

    /// A slot at the end of every column, holding `path` and no status yet.
    private mutating func newSlot(_ path: String) -> Int32 {
        let slot = Int32(columns.paths.count)
        columns.paths.append(path)
        columns.states.append(0)
        columns.sources.append(0)
        columns.types.append(0)
        columns.since.append(Self.noTime)
        columns.lastSeen.append(Self.noTime)
        return slot
    }

    /// Orders what `append` added.
    mutating func finishAppending() {
        let slots = (0..<Int32(columns.paths.count)).map { $0 }
        let columns = self.columns
        byKey = SortedChunks(sorted: slots.sorted { columns.precedes($0, $1, in: .key) })
        byLastSeen = SortedChunks(sorted: slots.sorted { columns.precedes($0, $1, in: .lastSeen) })
        bySince = SortedChunks(sorted: slots.sorted { columns.precedes($0, $1, in: .since) })
        keyGeneration += 1
    }

    // MARK: - Changes

    /// Adds, changes (`entry`) or removes (`nil`) the device at `path`.
    mutating func set(_ path: String, _ entry: Entry?) {
        let existing = slot(of: path)
        switch (existing, entry) {
        case (nil, nil): return
        case (let slot?, nil):
            Self.remove(slot, from: &byKey, columns, .key)
            Self.remove(slot, from: &byLastSeen, columns, .lastSeen)
            Self.remove(slot, from: &bySince, columns, .since)
            count(slot, -1)
            columns.states[Int(slot)] = Self.freeSlot
            columns.paths[Int(slot)] = ""
            freeSlots.append(slot)
            keyGeneration += 1
        case (nil, let entry?):
            let slot: Int32
            if let free = freeSlots.popLast() {
                slot = free
                columns.paths[Int(slot)] = path
            } else {
                slot = newSlot(path)
            }
            fill(slot, path: path, entry: entry)
            Self.insert(slot, into: &byKey, columns, .key)
            Self.insert(slot, into: &byLastSeen, columns, .lastSeen)
            Self.insert(slot, into: &bySince, columns, .since)
            keyGeneration += 1
        case (let slot?, let entry?):
            let index = Int(slot)
            let (since, lastSeen) = (entry.since ?? Self.noTime, entry.lastSeen ?? Self.noTime)
            let state = UInt8(Self.states.firstIndex(of: entry.state)!)
            if state != columns.states[index] {
                count(slot, -1)
                columns.states[index] = state
                count(slot, 1)
            }
            columns.sources[index] = intern(source: entry.source)
            if lastSeen != columns.lastSeen[index] {
                Self.remove(slot, from: &byLastSeen, columns, .lastSeen)
                columns.lastSeen[index] = lastSeen
                Self.insert(slot, into: &byLastSeen, columns, .lastSeen)
            }
            if since != columns.since[index] {
                Self.remove(slot, from: &bySince, columns, .since)
                columns.since[index] = since
                Self.insert(slot, into: &bySince, columns, .since)
            }
        }
    }

    /// Writes a new device's attributes into its slot and counts it.
    private mutating func fill(_ slot: Int32, path: String, entry: Entry) {
        let index = Int(slot)
        columns.states[index] = UInt8(Self.states.firstIndex(of: entry.state)!)
        columns.sources[index] = intern(source: entry.source)
        columns.types[index] = intern(type: Self.type(of: path))
        columns.since[index] = entry.since ?? Self.noTime
        columns.lastSeen[index] = entry.lastSeen ?? Self.noTime
        count(slot, 1)
    }

    private mutating func count(_ slot: Int32, _ delta: Int) {
        let state = Int(columns.states[Int(slot)])
        let type = Int(columns.types[Int(slot)])
        stateCounts[state] += delta
        typeCounts[type] += delta
        typeStateCounts[type * Self.states.count + state] += delta
    }

    private mutating func intern(type: Substring) -> Int32 {
        if let index = typeIndex[String(type)] { return index }
        let index = Int32(typeNames.count)
        typeNames.append(String(type))
        typeIndex[String(type)] = index
        typeCounts.append(0)
        typeStateCounts.append(contentsOf: repeatElement(0, count: Self.states.count))
        return index
    }

    private mutating func intern(source: String?) -> UInt8 {
        guard let source else { return 0 }
        if let index = sourceIndex[source] { return index }
        // Sources are a handful of names; should there ever be more than a byte holds, the rest share "other".
        guard sourceNames.count < Int(UInt8.max) else { return UInt8(sourceNames.count - 1) }
        let index = UInt8(sourceNames.count)
        sourceNames.append(source)
        sourceIndex[source] = index
        return index
    }

    private static func insert(_ slot: Int32, into list: inout SortedChunks, _ columns: Columns, _ order: Order) {
        list.insert(slot) { columns.precedes($0, $1, in: order) }
    }

    private static func remove(_ slot: Int32, from list: inout SortedChunks, _ columns: Columns, _ order: Order) {
        list.remove(slot) { columns.precedes($0, $1, in: order) }
    }

    // MARK: - Reading

    /// The slot of `path`, if the index holds it: a binary search in the key order.
    func slot(of path: String) -> Int32? {
        let paths = columns.paths
        guard let position = byKey.firstPosition(where: { !Self.precedes(paths[Int($0)], path) }) else { return nil }
        let slot = byKey[position]
        return paths[Int(slot)] == path ? slot : nil
    }

    /// What the index holds for `path`.
    func entry(for path: String) -> Entry? {
        slot(of: path).map(entry(at:))
    }

    func entry(at slot: Int32) -> Entry {
        let index = Int(slot)
        let (since, lastSeen) = (columns.since[index], columns.lastSeen[index])
        return Entry(
            state: Self.states[Int(columns.states[index])], source: sourceNames[Int(columns.sources[index])],
            since: since == Self.noTime ? nil : since, lastSeen: lastSeen == Self.noTime ? nil : lastSeen)
    }

    func path(at slot: Int32) -> String { columns.paths[Int(slot)] }

    /// Devices per status, every status present.
    var counts: [DeviceState: Int] {
        Dictionary(uniqueKeysWithValues: zip(Self.states, stateCounts))
    }

    /// Devices per status among those of `type` (zero everywhere for a type the fleet does not have).
    func counts(ofType type: String) -> [DeviceState: Int] {
        guard let index = typeIndex[type] else { return Dictionary(uniqueKeysWithValues: Self.states.map { ($0, 0) }) }
        let start = Int(index) * Self.states.count
        return Dictionary(
            uniqueKeysWithValues: zip(Self.states, typeStateCounts[start..<start + Self.states.count]))
    }

    /// The device count of every type that has devices, by type name.
    var typeTotals: [(type: String, count: Int)] {
        zip(typeNames, typeCounts).filter { $0.1 > 0 }.map { (type: $0.0, count: $0.1) }.sorted {
            Self.precedes($0.type, $1.type)
        }
    }

    /// Devices matching `status` and `type` (either nil for any), without a walk.
    func total(status: DeviceState?, type: String?) -> Int {
        let state = status.map { Self.states.firstIndex(of: $0)! }
        switch (state, type) {
        case (nil, nil): return count
        case (let state?, nil): return stateCounts[state]
        case (nil, let type?): return typeIndex[type].map { typeCounts[Int($0)] } ?? 0
        case (let state?, let type?):
            return typeIndex[type].map { typeStateCounts[Int($0) * Self.states.count + state] } ?? 0
        }
    }

    /// The devices whose `type/id` contains `needle` (ASCII letters in any case), in key order.
    func search(_ needle: String) -> [Int32] {
        let folded = Array(needle.utf8).map(Self.foldASCII)
        var found: [Int32] = []
        for slot in byKey where Self.contains(columns.paths[Int(slot)], folded) { found.append(slot) }
        return found
    }

    /// Where a page starts: after this device (its path, and its time in a time order).
    struct Cursor: Equatable, Sendable {
        var path: String
        /// The device's time in the page's order (nil for the key order, or a device never seen).
        var time: Int64?
    }

    /// The filters of one page.
    struct Filter {
        var state: DeviceState?
        var type: String?
        /// Only these slots (a `search` result, in key order); nil for all.
        var matches: [Int32]?
        /// `matches` as a membership table by slot, for the time orders; built by the caller once per search.
        var matchTable: [Bool]?
    }

    /// Up to `limit` devices after `cursor` in `order` that pass `filter`, and whether more follow.
    func page(order: Order, after cursor: Cursor?, limit: Int, filter: Filter) -> (slots: [Int32], hasMore: Bool) {
        let wantedState = filter.state.map { UInt8(Self.states.firstIndex(of: $0)!) }
        var wantedType: Int32?
        if let type = filter.type {
            guard let index = typeIndex[type] else { return ([], false) }
            wantedType = index
        }
        var chosen: [Int32] = []
        chosen.reserveCapacity(limit + 1)
        func admit(_ slot: Int32) -> Bool {
            if let wantedState, columns.states[Int(slot)] != wantedState { return true }
            if let wantedType, columns.types[Int(slot)] != wantedType { return true }
            chosen.append(slot)
            return chosen.count <= limit
        }
        let paths = columns.paths

        switch order {
        case .key:
            if let matches = filter.matches {
                // A search result is in key order already: seek the cursor in it.
                var start = 0
                if let cursor {
                    start = Self.partition(matches.count) { Self.precedes(cursor.path, paths[Int(matches[$0])]) }
                }
                for slot in matches[start...] where !admit(slot) { break }
            } else {
                // A type's devices are contiguous in key order (`type/` prefixes every one of them).
                var start = cursor.map(\.path)
                var strictly = true
                if let type = filter.type, start.map({ Self.precedes($0, type + "/") }) ?? true {
                    start = type + "/"
                    strictly = false
                }
                let from = start.flatMap { start in
                    byKey.firstPosition { slot in
                        strictly ? Self.precedes(start, paths[Int(slot)]) : !Self.precedes(paths[Int(slot)], start)
                    }
                }
                if start == nil || from != nil {
                    byKey.forEach(from: from) { slot in
                        if let wantedType, columns.types[Int(slot)] != wantedType { return false }
                        return admit(slot)
                    }
                }
            }
        case .lastSeen, .since:
            let times = order == .lastSeen ? columns.lastSeen : columns.since
            let list = order == .lastSeen ? byLastSeen : bySince
            // The cursor's device, or where it would be: its time, then its slot (a device gone since: all of its
            // time again, rather than skip one).
            let cursorSlot = cursor.flatMap { slot(of: $0.path) } ?? -1
            let cursorTime = cursor.map { $0.time ?? Self.noTime }
            func isAfterCursor(_ slot: Int32) -> Bool {
                guard let cursorTime else { return true }
                let time = times[Int(slot)]
                return time != cursorTime ? time < cursorTime : slot > cursorSlot
            }
            if let matches = filter.matches, Self.sortingBeatsWalking(matches: matches.count, of: count, limit: limit) {
                // A narrow search: sort its few devices rather than walk the fleet's order.
                let sorted = matches.filter(isAfterCursor).sorted { a, b in
                    let (x, y) = (times[Int(a)], times[Int(b)])
                    return x != y ? x > y : a < b
                }
                for slot in sorted where !admit(slot) { break }
            } else {
                let from = cursorTime == nil ? nil : list.firstPosition(where: isAfterCursor)
                if cursorTime == nil || from != nil {
                    let table = filter.matchTable
                    list.forEach(from: from) { slot in
                        if let table, !table[Int(slot)] { return true }
                        return admit(slot)
                    }
                }
            }
        }
        let hasMore = chosen.count > limit
        if hasMore { chosen.removeLast() }
        return (chosen, hasMore)
    }

    /// Whether sorting a search's `matches` devices (m log m) costs less than walking a time order until `limit` of
    /// them are found (about limit × fleet / matches steps when they are spread evenly).
    static func sortingBeatsWalking(matches: Int, of fleet: Int, limit: Int) -> Bool {
        guard matches > 0 else { return true }
        let sorting = Double(matches) * log2(Double(max(matches, 2)))
        let walking = Double(limit + 1) * Double(fleet) / Double(matches)
        return sorting < walking
    }

    /// The cursor that continues after `slot` in `order`.
    func cursor(after slot: Int32, order: Order) -> Cursor {
        let index = Int(slot)
        switch order {
        case .key: return Cursor(path: columns.paths[index])
        case .lastSeen: return Cursor(path: columns.paths[index], time: columns.lastSeen[index])
        case .since: return Cursor(path: columns.paths[index], time: columns.since[index])
        }
    }

    /// How many of `matches` pass `state` and `type`.
    func count(of matches: [Int32], state: DeviceState?, type: String?) -> Int {
        if state == nil && type == nil { return matches.count }
        let wantedState = state.map { UInt8(Self.states.firstIndex(of: $0)!) }
        var wantedType: Int32?
        if let type {
            guard let index = typeIndex[type] else { return 0 }
            wantedType = index
        }
        var total = 0
        for slot in matches {
            if let wantedState, columns.states[Int(slot)] != wantedState { continue }
            if let wantedType, columns.types[Int(slot)] != wantedType { continue }
            total += 1
        }
        return total
    }

    /// Slots in use so far (the size a membership table by slot needs).
    var slotCapacity: Int { columns.paths.count }

    // MARK: - Byte order and search

    /// `type/id` order: the UTF-8 bytes compared one by one, as LevelDB and cursors order them.
    static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in
                let common = Swift.min(x.count, y.count)
                if common > 0 {
                    let order = memcmp(x.baseAddress!, y.baseAddress!, common)
                    if order != 0 { return order < 0 }
                }
                return x.count < y.count
            }
        }
        if let result = fast ?? nil { return result }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func type(of path: String) -> Substring {
        path.splitAtFirstSlash?.head ?? Substring(path)
    }

    private static func foldASCII(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// Whether `path` contains `needle` (already folded), comparing ASCII letters without case.
    static func contains(_ path: String, _ needle: [UInt8]) -> Bool {
        if needle.isEmpty { return true }
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.count >= needle.count else { return false }
            let first = needle[0]
            for start in 0...(bytes.count - needle.count) where foldASCII(bytes[start]) == first {
                var offset = 1
                while offset < needle.count, foldASCII(bytes[start + offset]) == needle[offset] { offset += 1 }
                if offset == needle.count { return true }
            }
            return false
        }
    }

    /// The first index in 0..<count for which `isAtOrAfter` holds (it must be false, then true).
    static func partition(_ count: Int, _ isAtOrAfter: (Int) -> Bool) -> Int {
        var (low, high) = (0, count)
        while low < high {
            let middle = (low + high) / 2
            if isAtOrAfter(middle) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

/// Slot numbers in an order given by a comparison, kept sorted in chunks of at most `2 * chunkSize`: an insertion
/// or removal moves at most one chunk's elements, a seek is two binary searches, a walk is sequential.
struct SortedChunks: Sequence {
    /// Elements per chunk when built or split: a memmove of 4 KB at most per change, a thousand chunks at 1M devices.
    static let chunkSize = 1024

    private(set) var chunks: [[Int32]] = []
    private(set) var count = 0

    init() {}

    /// Chunks of `sorted`, which must be in the order later comparisons will use.
    init(sorted: [Int32]) {
        var start = 0
        while start < sorted.count {
            let end = Swift.min(start + Self.chunkSize, sorted.count)
            chunks.append(Array(sorted[start..<end]))
            start = end
        }
        count = sorted.count
    }

    struct Position: Equatable {
        var chunk: Int
        var offset: Int
    }

    subscript(position: Position) -> Int32 { chunks[position.chunk][position.offset] }

    /// The first position whose element satisfies `isAtOrAfter` (false for a prefix of the order, true for the rest).
    func firstPosition(where isAtOrAfter: (Int32) -> Bool) -> Position? {
        let chunk = FleetIndex.partition(chunks.count) { isAtOrAfter(chunks[$0].last!) }
        guard chunk < chunks.count else { return nil }
        let elements = chunks[chunk]
        return Position(chunk: chunk, offset: FleetIndex.partition(elements.count) { isAtOrAfter(elements[$0]) })
    }

    /// Calls `body` on each element from `position` (the start when nil) until it returns false.
    func forEach(from position: Position?, _ body: (Int32) -> Bool) {
        var chunk = position?.chunk ?? 0
        var offset = position?.offset ?? 0
        while chunk < chunks.count {
            let elements = chunks[chunk]
            while offset < elements.count {
                if !body(elements[offset]) { return }
                offset += 1
            }
            chunk += 1
            offset = 0
        }
    }

    mutating func insert(_ element: Int32, by precedes: (Int32, Int32) -> Bool) {
        count += 1
        guard !chunks.isEmpty else {
            chunks = [[element]]
            return
        }
        // The first chunk whose last element does not precede the new one; else the last chunk.
        let chunk = Swift.min(
            FleetIndex.partition(chunks.count) { !precedes(chunks[$0].last!, element) }, chunks.count - 1)
        let offset = FleetIndex.partition(chunks[chunk].count) { !precedes(chunks[chunk][$0], element) }
        chunks[chunk].insert(element, at: offset)
        if chunks[chunk].count >= 2 * Self.chunkSize {
            let upper = Array(chunks[chunk][Self.chunkSize...])
            chunks[chunk].removeSubrange(Self.chunkSize...)
            chunks.insert(upper, at: chunk + 1)
        }
    }

    /// Removes `element`, which must be where `precedes` places it (its sort attributes unchanged since insertion).
    @discardableResult
    mutating func remove(_ element: Int32, by precedes: (Int32, Int32) -> Bool) -> Bool {
        let chunk = FleetIndex.partition(chunks.count) { !precedes(chunks[$0].last!, element) }
        guard chunk < chunks.count else { return false }
        let offset = FleetIndex.partition(chunks[chunk].count) { !precedes(chunks[chunk][$0], element) }
        guard offset < chunks[chunk].count, chunks[chunk][offset] == element else { return false }
        chunks[chunk].remove(at: offset)
        count -= 1
        if chunks[chunk].isEmpty { chunks.remove(at: chunk) }
        return true
    }

    func makeIterator() -> some IteratorProtocol<Int32> { chunks.joined().makeIterator() }
}
