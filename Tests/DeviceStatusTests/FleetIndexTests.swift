import Foundation
import Testing

@testable import DeviceStatus

/// The fleet index alone (pure): counts, orders, filters, search and paging, checked against a plain model.
@Suite struct FleetIndexTests {
    typealias Entry = FleetEntry

    /// What the index must answer, computed the slow way: a dictionary, filtered and sorted for each question.
    struct Model {
        var devices: [String: Entry] = [:]

        func matching(_ query: FleetQuery) -> [String] {
            let folded = query.search.map { Array($0.lowercased().utf8) }
            let kept = devices.filter { path, entry in
                if let status = query.status, entry.state != status { return false }
                if let type = query.type, FleetIndex.type(of: path) != type { return false }
                if let folded, !Self.contains(Array(path.lowercased().utf8), folded) { return false }
                return true
            }
            switch query.sort {
            case .key:
                return kept.keys.sorted { FleetIndex.precedes($0, $1) }
            case .lastSeen, .since:
                // Newest first; equal times in any order (the index breaks ties its own way), never seen last.
                let time = { (path: String) in
                    (query.sort == .lastSeen ? kept[path]!.lastSeen : kept[path]!.since) ?? Int64.min
                }
                return kept.keys.sorted { time($0) > time($1) || time($0) == time($1) && $0 < $1 }
            }
        }

        static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
            guard !needle.isEmpty else { return true }
            guard haystack.count >= needle.count else { return false }
            return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<$0 + needle.count]) == needle }
        }
    }

    /// Every page of `query`, following cursors.
    static func walk(_ fleet: Fleet, _ query: FleetQuery) -> [FleetPage] {
        var pages: [FleetPage] = []
        var query = query
        while pages.count < 10_000 {
            let page = fleet.page(query)
            pages.append(page)
            guard let cursor = page.nextCursor else { break }
            query.after = FleetCursor.decode(cursor, sort: query.sort)
        }
        return pages
    }

    /// A `Fleet` over a mutable model, fed as the daemon feeds it: changes marked, judged on the next read.
    final class ModelSource: @unchecked Sendable {
        let lock = NSLock()
        var model = Model()
        func judge(_ path: String) -> Entry? { lock.withLock { model.devices[path] } }
        func all(_ body: (String, Entry) -> Void) {
            for (path, entry) in lock.withLock({ model.devices }) { body(path, entry) }
        }
    }

    static func fleet(over source: ModelSource) -> Fleet {
        Fleet(judge: { source.judge($0) }, everything: { source.all($0) })
    }

    @Test func answersEveryOrderFilterAndSearchAsAPlainModelDoesThroughRandomChanges() {
        var generator = SeededGenerator(seed: 11)
        let source = ModelSource()
        let types = ["meter", "valve", "Pump", "v"]
        let states = DeviceState.allCases
        let sources = ["mon", "watchdog", nil]
        func randomEntry() -> Entry {
            let time = { () -> Int64? in
                Int.random(in: 0..<6, using: &generator) == 0 ? nil : Int64.random(in: 0..<40, using: &generator)
            }
            return Entry(
                state: states.randomElement(using: &generator)!,
                source: sources.randomElement(using: &generator)!, since: time(), lastSeen: time())
        }
        for index in 0..<300 {
            let path = types.randomElement(using: &generator)! + "/d\(index)"
            source.model.devices[path] = randomEntry()
        }
        let fleet = Self.fleet(over: source)
        fleet.rebuild()
        let queries: [FleetQuery] = [
            FleetQuery(limit: 7), FleetQuery(status: .online, limit: 5), FleetQuery(type: "valve", limit: 9),
            FleetQuery(type: "v", limit: 4), FleetQuery(status: .offline, type: "meter", limit: 3),
            FleetQuery(search: "D1", limit: 6), FleetQuery(search: "ump/d2", limit: 2),
            FleetQuery(search: "nothing", limit: 2), FleetQuery(sort: .lastSeen, limit: 8),
            FleetQuery(sort: .since, limit: 11), FleetQuery(status: .expired, sort: .lastSeen, limit: 4),
            FleetQuery(type: "meter", search: "1", sort: .since, limit: 5),
            FleetQuery(search: "e", sort: .lastSeen, limit: 13), FleetQuery(type: "nothing"),
        ]
        for round in 0..<40 {
            // Add, change and remove devices; some changes keep the times, some move them.
            for _ in 0..<25 {
                let path = types.randomElement(using: &generator)! + "/d\(Int.random(in: 0..<400, using: &generator))"
                if Int.random(in: 0..<4, using: &generator) == 0 {
                    source.lock.withLock { source.model.devices[path] = nil }
                } else {
                    let entry = randomEntry()
                    source.lock.withLock { source.model.devices[path] = entry }
                }
                fleet.markChanged(path)
            }
            let model = source.lock.withLock { source.model }
            for query in queries {
                let pages = Self.walk(fleet, query)
                let paths = pages.flatMap { $0.devices.map(\.path) }
                let expected = model.matching(query)
                if query.sort == .key {
                    #expect(paths == expected, "round \(round), \(query)")
                } else {
                    // Same devices, and each one's time not newer than the one before it.
                    #expect(paths.sorted() == expected.sorted(), "round \(round), \(query)")
                    let times = paths.map {
                        (query.sort == .lastSeen ? model.devices[$0]!.lastSeen : model.devices[$0]!.since) ?? .min
                    }
                    #expect(zip(times, times.dropFirst()).allSatisfy { $0 >= $1 }, "round \(round), \(query)")
                }
                #expect(pages.dropLast().allSatisfy { $0.devices.count == query.limit })
                #expect(pages.allSatisfy { $0.total == expected.count }, "round \(round), \(query)")
                for device in pages.flatMap(\.devices) { #expect(device.entry == model.devices[device.path]) }
            }
            var counts = Dictionary(uniqueKeysWithValues: states.map { ($0, 0) })
            var typeCounts: [String: Int] = [:]
            for (path, entry) in model.devices {
                counts[entry.state]! += 1
                typeCounts[String(FleetIndex.type(of: path)), default: 0] += 1
            }
            #expect(fleet.counts() == counts)
            #expect(fleet.typeCounts().map(\.type) == typeCounts.keys.sorted { FleetIndex.precedes($0, $1) })
            #expect(Dictionary(uniqueKeysWithValues: fleet.typeCounts().map { ($0.type, $0.count) }) == typeCounts)
        }
    }

    @Test func countsFollowAddChangeAndRemoveByStatusAndType() {
        var index = FleetIndex()
        index.set("a/1", Entry(state: .online))
        index.set("a/2", Entry(state: .offline))
        index.set("b/1", Entry(state: .online))
        #expect(index.counts == [.online: 2, .offline: 1, .expired: 0, .unknown: 0, .sleeping: 0])
        #expect(index.counts(ofType: "a") == [.online: 1, .offline: 1, .expired: 0, .unknown: 0, .sleeping: 0])
        index.set("a/1", Entry(state: .expired))
        index.set("b/1", nil)
        index.set("b/9", nil)  // removing what is not there changes nothing
        #expect(index.counts == [.online: 0, .offline: 1, .expired: 1, .unknown: 0, .sleeping: 0])
        #expect(index.typeTotals.map(\.type) == ["a"])
        #expect(index.total(status: .expired, type: "a") == 1)
        #expect(index.total(status: nil, type: "b") == 0)
        #expect(index.count == 2)
    }

    @Test func reusesTheSlotOfARemovedDeviceWithoutKeepingItsTimes() {
        var index = FleetIndex()
        index.set("t/old", Entry(state: .online, since: 50, lastSeen: 90))
        index.set("t/old", nil)
        index.set("t/new", Entry(state: .offline))
        #expect(index.slotCapacity == 1)
        #expect(index.entry(for: "t/new") == Entry(state: .offline))
        #expect(index.entry(for: "t/old") == nil)
        let (slots, more) = index.page(order: .lastSeen, after: nil, limit: 5, filter: .init())
        #expect(slots.map(index.path(at:)) == ["t/new"] && !more)
    }

    @Test func searchesSubstringsOfTypeSlashIdIgnoringTheCaseOfASCIILetters() {
        var index = FleetIndex()
        for path in ["Meter/A1", "meter/b2", "valve/xa1", "ü/Ä1", "t/<script>"] {
            index.set(path, Entry(state: .online))
        }
        let found = { (needle: String) in index.search(needle).map(index.path(at:)) }
        #expect(found("a1") == ["Meter/A1", "valve/xa1"])
        #expect(found("R/A") == ["Meter/A1"])
        #expect(found("meter/") == ["Meter/A1", "meter/b2"])
        #expect(found("Ä1") == ["ü/Ä1"])  // other letters match as they are
        #expect(found("ä1") == [])
        #expect(found("<script") == ["t/<script>"])
        #expect(found("") == ["Meter/A1", "meter/b2", "t/<script>", "valve/xa1", "ü/Ä1"])
    }

    @Test func ordersKeysByTheirBytesAsLevelDBDoes() {
        #expect(FleetIndex.precedes("a/b", "a/c"))
        #expect(FleetIndex.precedes("a/b", "a/bb"))
        #expect(!FleetIndex.precedes("a/b", "a/b"))
        #expect(FleetIndex.precedes("Z/1", "a/1"))
        // U+00E9 precomposed (C3 A9) sorts after "e" + U+0301 (65 CC 81), by bytes.
        #expect(FleetIndex.precedes("t/e\u{301}", "t/\u{E9}"))
    }

    @Test func sortsANarrowSearchAndWalksAWideOne() {
        // 111,111 of 1M match (q=dev12): a walk finds a page of 100 in about 900 steps; sorting them costs 1.9M.
        #expect(!FleetIndex.sortingBeatsWalking(matches: 111_111, of: 1_000_000, limit: 100))
        #expect(FleetIndex.sortingBeatsWalking(matches: 50, of: 1_000_000, limit: 100))
        #expect(FleetIndex.sortingBeatsWalking(matches: 0, of: 1_000_000, limit: 100))
    }

    @Test func keepsChunksSortedThroughSplitsAndRemovals() {
        var list = SortedChunks()
        var generator = SeededGenerator(seed: 3)
        var values = (0..<5000).map { Int32($0) }
        values.shuffle(using: &generator)
        for value in values { list.insert(value, by: <) }
        #expect(Array(list) == (0..<5000).map { Int32($0) })
        #expect(list.chunks.count > 2 && list.chunks.allSatisfy { $0.count < 2 * SortedChunks.chunkSize })
        for value in values.prefix(4000) {
            let removed = list.remove(value, by: <)
            #expect(removed)
        }
        let removedMissing = list.remove(-1, by: <)
        #expect(!removedMissing)
        #expect(Array(list) == values.suffix(1000).sorted())
        #expect(list.count == 1000)
        #expect(list.firstPosition { $0 >= 4999 }.map { list[$0] } == (values.suffix(1000).contains(4999) ? 4999 : nil))
    }

    @Test func answersHeldBulkChangesAsItAnswersOneByOne() {
        var generator = SeededGenerator(seed: 5)
        let source = ModelSource()
        for index in 0..<500 { source.model.devices["old/d\(index)"] = Entry(state: .offline, since: Int64(index)) }
        let fleet = Self.fleet(over: source)
        fleet.rebuild()
        fleet.hold()
        // A retained replay's worth of new devices (more than the index holds, more than `changedLimit`), with some
        // of the known ones changed and removed.
        let added = Fleet.changedLimit + 3000
        for index in 0..<added {
            let path = "new\(index % 7)/d\(index)"
            let entry = Entry(
                state: index % 3 == 0 ? .online : .offline, source: "mon",
                since: Int64.random(in: 0..<1000, using: &generator),
                lastSeen: Int64(index))
            source.lock.withLock { source.model.devices[path] = entry }
            fleet.markChanged(path)
        }
        for index in stride(from: 0, to: 500, by: 5) {
            let path = "old/d\(index)"
            source.lock.withLock { source.model.devices[path] = index % 10 == 0 ? nil : Entry(state: .expired) }
            fleet.markChanged(path)
        }
        #expect(Fleet.rebuildBeatsSettling(changed: added + 100, indexed: 500))
        #expect(!Fleet.rebuildBeatsSettling(changed: 100, indexed: 500))
        #expect(!Fleet.rebuildBeatsSettling(changed: Fleet.changedLimit, indexed: 4 * Fleet.changedLimit))
        func check(_ label: String) {
            let model = source.lock.withLock { source.model }
            var counts = Dictionary(uniqueKeysWithValues: DeviceState.allCases.map { ($0, 0) })
            for entry in model.devices.values { counts[entry.state]! += 1 }
            #expect(fleet.counts() == counts, "\(label)")
            for query in [FleetQuery(limit: 1000), FleetQuery(status: .online, sort: .since, limit: 777)] {
                let pages = Self.walk(fleet, query)
                let paths = pages.flatMap { $0.devices.map(\.path) }
                if query.sort == .key {
                    #expect(paths == model.matching(query), "\(label)")
                } else {
                    #expect(paths.sorted() == model.matching(query).sorted(), "\(label)")
                }
                for device in pages.flatMap(\.devices) { #expect(device.entry == model.devices[device.path]) }
            }
        }
        // Read while held: the read settles what changed (in bulk) first.
        check("held")
        fleet.release()
        // After the release, changes are settled one by one again.
        for index in 0..<20 {
            let path = "new1/d\(index * 7 + 1)"
            source.lock.withLock { source.model.devices[path] = Entry(state: .sleeping, source: "mon") }
            fleet.markChanged(path)
        }
        check("released")
    }

    @Test func waitsForTheFirstBuildThenJudgesOnlyWhatChanged() async {
        let source = ModelSource()
        source.model.devices["t/a"] = Entry(state: .online)
        let fleet = Self.fleet(over: source)
        async let counts = Task.detached { fleet.counts() }.value
        fleet.rebuildInBackground()
        #expect(await counts[.online] == 1)
        // Without a mark, a change in the source is not seen; with one, it is.
        source.lock.withLock { source.model.devices["t/b"] = Entry(state: .offline) }
        #expect(fleet.counts()[.offline] == 0)
        fleet.markChanged("t/b")
        #expect(fleet.counts()[.offline] == 1)
    }
}

/// A small deterministic generator (SplitMix64), so that a failing random case can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
