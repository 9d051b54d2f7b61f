import Foundation
import HTTP1
import Testing

@testable import DeviceStatus

@Suite struct FleetListingTests {
    static let baseTime: Int64 = 1_700_000_000_000_000_000

    /// A table with `connected` and `disconnected` devices per type, ids zero-padded so that the expected order is
    /// easy to write.
    static func table(types: [String], perType: Int, disconnectedEvery: Int = 3) -> DeviceTable {
        let table = DeviceTable()
        var changes: [(path: String, record: StatusRecord?)] = []
        for type in types {
            for index in 0..<perType {
                let action: MonPayload.Action = index % disconnectedEvery == 0 ? .disconnect : .connect
                let record = StatusRecord(action: action, time: baseTime + Int64(index), payload: Array("{}".utf8))
                changes.append((type + "/" + String(format: "d%05d", index), record))
            }
        }
        table.apply(changes)
        return table
    }

    static func directory(_ table: DeviceTable, watched: [WatchInfo] = []) -> DeviceDirectory {
        let snapshot = WatchSnapshot()
        snapshot.replaceAll(watched)
        return DeviceDirectory(table: table, watch: snapshot)
    }

    static func watchInfo(
        name: String, key: DeviceKey, expired: Bool, lastActivity: Int64?
    ) -> WatchInfo {
        WatchInfo(
            name: name, kind: .device, key: key, timeoutSeconds: 30, watched: true, expired: expired,
            lastActivity: lastActivity, since: baseTime, deadline: baseTime + 30_000_000_000, helloCount: 0)
    }

    /// The fleet index of `directory`, built.
    static func fleet(_ directory: DeviceDirectory) -> Fleet {
        let fleet = Fleet(directory: directory)
        fleet.rebuild()
        return fleet
    }

    /// Follows `nextCursor` to the end; returns every page's device paths.
    static func allPages(_ fleet: Fleet, _ query: FleetQuery) -> [[String]] {
        var pages: [[String]] = []
        var query = query
        while true {
            let page = fleet.page(query)
            pages.append(page.devices.map(\.path))
            guard let cursor = page.nextCursor else { return pages }
            query.after = FleetCursor.decode(cursor, sort: query.sort)
            #expect(query.after != nil)
            if pages.count > 10_000 { return pages }
        }
    }

    @Test func pagesThroughEveryDeviceInTypeIdOrderWithoutGapsOrRepeats() {
        let table = Self.table(types: ["zeta", "alpha", "mid"], perType: 50)
        let directory = Self.fleet(Self.directory(table))
        let pages = Self.allPages(directory, FleetQuery(limit: 7))
        let paths = pages.flatMap { $0 }
        #expect(paths.count == 150)
        #expect(paths == paths.sorted())
        #expect(Set(paths).count == 150)
        #expect(pages.dropLast().allSatisfy { $0.count == 7 })
        #expect(pages.last?.count == 150 % 7)
        #expect(paths.first == "alpha/d00000" && paths.last == "zeta/d00049")
    }

    @Test func lastPageHasNoCursorEvenWhenItIsExactlyFull() {
        let fleet = Self.fleet(Self.directory(Self.table(types: ["t"], perType: 10)))
        let first = fleet.page(FleetQuery(limit: 5))
        #expect(first.devices.count == 5)
        #expect(first.nextCursor != nil)
        let second = fleet.page(FleetQuery(limit: 5, after: FleetCursor.decode(first.nextCursor!, sort: .key)))
        #expect(second.devices.map(\.path) == (5..<10).map { String(format: "t/d%05d", $0) })
        #expect(second.nextCursor == nil)
        #expect(fleet.page(FleetQuery(limit: 10)).nextCursor == nil)
    }

    @Test func filtersByStatusAndTypeWhileCountsFollowOnlyTheType() {
        // Per type: 30 devices, every third disconnected → 10 offline, 20 online.
        let directory = Self.fleet(Self.directory(Self.table(types: ["a", "b"], perType: 30)))
        let all = directory.page(FleetQuery())
        #expect(all.total == 60)
        #expect(all.counts == [.online: 40, .offline: 20, .expired: 0, .unknown: 0, .sleeping: 0])

        let offlineB = directory.page(FleetQuery(status: .offline, type: "b"))
        #expect(offlineB.total == 10)
        #expect(offlineB.devices.count == 10)
        #expect(offlineB.devices.allSatisfy { $0.type == "b" && $0.entry.state == .offline })
        #expect(offlineB.counts == [.online: 20, .offline: 10, .expired: 0, .unknown: 0, .sleeping: 0])

        let pages = Self.allPages(directory, FleetQuery(status: .online, type: "a", limit: 6))
        #expect(pages.flatMap { $0 }.count == 20)
        // A type that is the prefix of another is not mixed with it.
        let prefixed = Self.fleet(Self.directory(Self.table(types: ["a", "ab"], perType: 4)))
        #expect(prefixed.page(FleetQuery(type: "a")).total == 4)
        #expect(prefixed.page(FleetQuery(type: "a")).devices.count == 4)
        #expect(prefixed.page(FleetQuery(type: "nothing")).devices.isEmpty)
    }

    @Test func includesConfiguredDevicesJudgedFromBothSignals() {
        let table = Self.table(types: ["type1"], perType: 3)  // d00000 offline, d00001 and d00002 online
        let joined = Self.watchInfo(
            name: "joined", key: DeviceKey(type: "type1", id: "d00001"), expired: true, lastActivity: Self.baseTime)
        let fresh = WatchInfo(
            name: "esp04", kind: .device, key: DeviceKey(type: "device", id: "esp04"), timeoutSeconds: 30,
            watched: true, expired: false, lastActivity: nil, since: Self.baseTime, deadline: nil, helloCount: 0)
        let directory = Self.fleet(Self.directory(table, watched: [joined, fresh]))
        let page = directory.page(FleetQuery())
        #expect(page.devices.map(\.path) == ["device/esp04", "type1/d00000", "type1/d00001", "type1/d00002"])
        #expect(page.devices.map(\.entry.state) == [.unknown, .offline, .expired, .online])
        // The joined device is counted once, as expired (watchdog beats status topic).
        #expect(page.counts == [.online: 1, .offline: 1, .expired: 1, .unknown: 1, .sleeping: 0])
        #expect(page.total == 4)
        #expect(directory.page(FleetQuery(status: .expired)).devices.map(\.path) == ["type1/d00001"])
    }

    @Test func answersTheDocumentedJSON() throws {
        let directory = Self.fleet(Self.directory(Self.table(types: ["t"], perType: 2)))
        let page = directory.page(FleetQuery(limit: 1))
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(page.json.utf8)) as? [String: Any])
        let devices = try #require(object["devices"] as? [[String: Any]])
        #expect(devices.count == 1)
        #expect(devices[0]["type"] as? String == "t")
        #expect(devices[0]["id"] as? String == "d00000")
        #expect(devices[0]["status"] as? String == "offline")
        #expect(devices[0]["since"] as? String == "2023-11-14T22:13:20.000Z")
        #expect(devices[0]["lastSeen"] as? String == "2023-11-14T22:13:20.000Z")
        #expect(devices[0]["source"] as? String == "mon")
        #expect(object["nextCursor"] as? String == FleetCursor.encode("t/d00000"))
        #expect(object["counts"] as? [String: Int] == ["online": 1, "offline": 1, "expired": 0, "unknown": 0])
        #expect(object["total"] as? Int == 2)
        #expect(object["types"] as? [String: Int] == ["t": 2])
        let last = try #require(
            try JSONSerialization.jsonObject(with: Data(directory.page(FleetQuery()).json.utf8)) as? [String: Any])
        #expect(last["nextCursor"] is NSNull)
    }

    @Test func refusesBadParametersNamingThem() {
        func refusal(_ items: [(String, String)]) -> String? {
            if case .failure(let refusal) = FleetQuery.parse(items.map { (name: $0.0, value: $0.1) }) {
                return refusal.parameter
            }
            return nil
        }
        #expect(refusal([("limit", "0")]) == "limit")
        #expect(refusal([("limit", "1001")]) == "limit")
        #expect(refusal([("limit", "ten")]) == "limit")
        #expect(refusal([("limit", "-5")]) == "limit")
        #expect(refusal([("status", "asleep")]) == "status")
        #expect(refusal([("cursor", "!!!")]) == "cursor")
        #expect(refusal([("cursor", FleetCursor.encode("no-slash"))]) == "cursor")
        #expect(refusal([("type", "a/b")]) == "type")
        #expect(refusal([("sort", "name")]) == "sort")
        #expect(refusal([("sort", "lastseen")]) == "sort")
        #expect(refusal([("q", String(repeating: "x", count: 257))]) == "q")
        // Characters, as JSON Schema's maxLength counts them: 256 four-byte ones pass.
        #expect(refusal([("q", String(repeating: "😀", count: 256))]) == nil)
        #expect(refusal([("q", String(repeating: "é", count: 257))]) == "q")
        #expect(refusal([("stauts", "online")]) == "stauts")
        #expect(refusal([("limit", "5"), ("limit", "6")]) == "limit")
        #expect(refusal([("page", "")]) == "page")
        // A cursor is only good for the order it was made in.
        let timeCursor = FleetCursor(path: "t/a", time: 5).encoded(sort: .lastSeen)
        #expect(refusal([("cursor", timeCursor)]) == "cursor")
        #expect(refusal([("cursor", timeCursor), ("sort", "since")]) == "cursor")
        #expect(refusal([("cursor", timeCursor), ("sort", "lastSeen")]) == nil)
        #expect(refusal([("cursor", FleetCursor.encode("t/a")), ("sort", "since")]) == "cursor")
        #expect(
            refusal([("limit", "1000"), ("status", "expired"), ("type", "t"), ("q", "x"), ("sort", "since")]) == nil)
        // Empty values are absent values, as in `?status=&type=`.
        let empty = FleetQuery.parse([
            (name: "status", value: ""), (name: "type", value: ""), (name: "limit", value: ""), (name: "q", value: ""),
            (name: "sort", value: ""),
        ])
        #expect((try? empty.get()) == FleetQuery())
    }

    @Test func cursorRoundTripsAnyDevicePathAndNeedsNoEscaping() {
        for path in ["t/i", "type1/ps1", "a b/ü€😀", "x/+=&?%", "abc/de", "ab/c", "a/b"] {
            let cursor = FleetCursor.encode(path)
            #expect(
                cursor.utf8.allSatisfy {
                    $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 < 128 && isalnum(Int32($0)) != 0
                })
            #expect(FleetCursor.decode(cursor) == path)
            #expect(FleetCursor.decode(cursor, sort: .key) == FleetCursor(path: path))
            for sort in [FleetSort.lastSeen, .since] {
                for time: Int64? in [nil, 0, -3, 1_700_000_000_123_456_789] {
                    let cursor = FleetCursor(path: path, time: time)
                    #expect(FleetCursor.decode(cursor.encoded(sort: sort), sort: sort) == cursor)
                }
            }
        }
        #expect(FleetCursor.decode("") == nil)
        #expect(FleetCursor.decode("A") == nil)
    }

    /// A large fleet answered from the index in one pass. `DEVSTATUSD_PERF=1` runs it at 1,000,000 devices and
    /// prints the figures for the README (a release build: `swift test -c release --filter servesAPageOfALargeFleet`);
    /// by default 20,000 keep the suite quick.
    @Test func servesAPageOfALargeFleetInOnePass() {
        let count = ProcessInfo.processInfo.environment["DEVSTATUSD_PERF"] != nil ? 1_000_000 : 20_000
        let table = DeviceTable()
        var changes: [(path: String, record: StatusRecord?)] = []
        changes.reserveCapacity(count)
        let payload = Array(#"{"Action":"Connect"}"#.utf8)
        for index in 0..<count {
            let action: MonPayload.Action = index % 4 == 0 ? .disconnect : .connect
            changes.append(
                (
                    "type\(index % 10)/device\(index)",
                    StatusRecord(action: action, time: Self.baseTime, payload: payload)
                ))
        }
        table.apply(changes)
        changes = []
        let directory = Self.directory(table)
        let buildStarted = ContinuousClock.now
        let fleet = Self.fleet(directory)
        let built = ContinuousClock.now - buildStarted
        var elapsed: [Duration] = []
        var query = FleetQuery(limit: 100)
        var page = fleet.page(query)
        for _ in 0..<3 {
            let started = ContinuousClock.now
            page = fleet.page(query)
            elapsed.append(ContinuousClock.now - started)
            query.after = page.nextCursor.flatMap { FleetCursor.decode($0, sort: .key) }
        }
        func timed(_ query: FleetQuery) -> (FleetPage, Duration) {
            let started = ContinuousClock.now
            let page = fleet.page(query)
            return (page, ContinuousClock.now - started)
        }
        let (filtered, filteredElapsed) = timed(FleetQuery(status: .offline, type: "type4", limit: 1000))
        let (searched, searchElapsed) = timed(FleetQuery(search: "ice99", limit: 100))
        let (searchedAgain, searchAgainElapsed) = timed(FleetQuery(search: "ice99", sort: .lastSeen, limit: 100))
        #expect(page.devices.count == 100)
        #expect(page.total == count)
        #expect(page.counts[.offline] == count / 4)
        #expect(filtered.devices.count == 1000)
        let matching = (0..<count).count { "type\($0 % 10)/device\($0)".contains("ice99") }
        #expect(searched.total == matching && searchedAgain.total == matching)
        print(
            "GET /devices at \(count) devices: index built in \(built / .milliseconds(1)) ms; limit 100 page "
                + "\(elapsed.map { "\($0 / .milliseconds(1)) ms" }); status+type filter, limit 1000: "
                + "\(filteredElapsed / .milliseconds(1)) ms; q: \(searchElapsed / .milliseconds(1)) ms, "
                + "same q by lastSeen: \(searchAgainElapsed / .milliseconds(1)) ms")
    }
}
