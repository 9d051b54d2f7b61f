import Testing

@testable import DeviceStatus

/// Walks over the whole table run on a snapshot, outside the lock lookups take.
@Suite struct DeviceTableTests {
    static func record(_ action: MonPayload.Action) -> StatusRecord {
        StatusRecord(action: action, time: 1, payload: Array("{}".utf8))
    }

    @Test func aWalkSeesTheTableAsItWasAndWritesDuringItAreKept() {
        let table = DeviceTable()
        table.apply((0..<100).map { ("t/d\($0)", Self.record(.connect)) })
        var seen = 0
        var changedMidWalk = false
        table.forEach { _, _ in
            seen += 1
            if !changedMidWalk {
                changedMidWalk = true
                // The lock is free during the walk: lookups and the writer go on.
                #expect(table.record(forPath: "t/d5") != nil)
                table.apply([("t/new", Self.record(.disconnect)), ("t/d5", nil)])
                #expect(table.record(forPath: "t/new")?.action == .disconnect)
                #expect(table.record(forPath: "t/d5") == nil)
            }
        }
        #expect(seen == 100)  // the snapshot, not the table changed under it
        #expect(table.count == 100)  // one added, one removed
        #expect(table.record(forPath: "t/new") != nil)
        #expect(table.countsByAction() == (connected: 99, disconnected: 1))
    }

    @Test func writesWithoutAWalkChangeTheTableInPlace() {
        let table = DeviceTable()
        table.apply([("t/a", Self.record(.connect)), ("t/b", Self.record(.connect))])
        table.apply([("t/a", Self.record(.disconnect))])
        #expect(table.countsByAction() == (connected: 1, disconnected: 1))
    }
}
