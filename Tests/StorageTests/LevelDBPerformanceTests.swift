import Foundation
import Storage
import TestSupport
import Testing

/// Puts, a full scan and synced batches at scale, with their rates printed (figures, not assertions):
/// `DEVSTATUSD_PERF=1 swift test -c release --filter LevelDBPerformanceTests` runs 1,000,000 records; by default
/// 100,000 keep the suite quick.
@Suite struct LevelDBPerformanceTests {
    static let records = ProcessInfo.processInfo.environment["DEVSTATUSD_PERF"] != nil ? 1_000_000 : 100_000

    /// 16-byte keys ("dev/" + 12 digits) and 64-byte values, the size of a status record's index entry.
    private static func key(_ i: Int) -> [UInt8] {
        var key = Array("dev/".utf8)
        var digits = [UInt8](repeating: UInt8(ascii: "0"), count: 12)
        var n = i
        for position in stride(from: 11, through: 0, by: -1) {
            digits[position] = UInt8(ascii: "0") + UInt8(n % 10)
            n /= 10
        }
        key += digits
        return key
    }

    @Test func batchedPutsAndAFullScanKeepEveryRecord() throws {
        let directory = try TemporaryDirectory(prefix: "storage-perf")
        let db = try LevelDB(path: directory.file("db"))
        let value = [UInt8](repeating: 0x5A, count: 64)
        let clock = ContinuousClock()
        let n = Self.records

        var batch = WriteBatch()
        let putTime = try clock.measure {
            for i in 0..<n {
                batch.put(Self.key(i), value)
                if batch.count == 1_000 {
                    try db.write(batch)
                    batch.clear()
                }
            }
            try db.write(batch)
        }

        var seen = 0
        var bytes = 0
        let scanTime = try clock.measure {
            try db.forEach(prefix: Array("dev/".utf8)) { key, value in
                seen += 1
                bytes += key.count + value.count
                return true
            }
        }

        var syncBatch = WriteBatch()
        let syncRecords = 50_000
        let syncTime = try clock.measure {
            for i in 0..<syncRecords {
                syncBatch.put(Self.key(n + i), value)
                if syncBatch.count == 500 {
                    try db.write(syncBatch, sync: true)
                    syncBatch.clear()
                }
            }
        }

        func rate(_ count: Int, _ d: Duration) -> Int {
            Int(Double(count) / (Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18))
        }
        print(
            "LevelDB: \(n) puts in batches of 1000: \(putTime) (\(rate(n, putTime)) records/s); "
                + "forEach over \(seen): \(scanTime) (\(rate(seen, scanTime)) records/s); "
                + "sync batches of 500: \(rate(syncRecords, syncTime)) records/s")
        // The figures are printed, not asserted (a time limit in a test fails on a busy machine and proves nothing
        // on an idle one): the daemon's start-up load is measured by `devstatusd-bench restart`.
        #expect(seen == n)
        #expect(bytes == n * 80)
    }
}
