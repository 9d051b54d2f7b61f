import Logging
import MQTT
import Storage
import TestSupport
import Testing

@testable import DeviceStatus

/// The payloads that stopped the daemon: `seconds * 1_000_000_000 + nanos` overflowed for these years. Published
/// retained, one of them stopped every start.
let crashingMonPayloads = [
    #"{"ClientID":"d:o:t:x","Time":"2262-04-12T00:00:00Z","Action":"Connect"}"#,
    #"{"ClientID":"d:o:t:x","Time":"9999-12-31T23:59:59.999999999Z","Action":"Connect"}"#,
    #"{"ClientID":"d:o:t:x","Time":"0001-01-01T00:00:00Z","Action":"Disconnect"}"#,
    #"{"ClientID":"d:o:t:x","Time":"1677-09-21T00:00:00Z","Action":"Connect"}"#,
    #"{"ClientID":"d:o:t:x","Time":"0000-01-01T00:00:00+23:59","Action":"Connect"}"#,
    #"{"ClientID":"d:o:t:x","Time":"9999-12-31T23:59:59-23:59","Action":"Disconnect"}"#,
]

@Suite struct TimeBoundsTests {
    @Test(arguments: [
        "2262-04-12T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "1677-09-21T00:00:00Z",
        "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2262-04-11T23:47:16.854775808Z",
        "1677-09-21T00:12:43.145224191Z", "2262-04-11T23:47:17Z",
    ])
    func rejectsTimesNanosecondsCannotHold(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func acceptsTheFirstAndLastRepresentableNanosecond() {
        #expect(RFC3339.parse("2262-04-11T23:47:16.854775807Z") == Int64.max)
        #expect(RFC3339.parse("1677-09-21T00:12:43.145224192Z") == Int64.min)
        #expect(RFC3339.parse("2262-04-12T00:47:16.854775807+01:00") == Int64.max)
        #expect(RFC3339.format(nanoseconds: .max) == "2262-04-11T23:47:16.854Z")
        #expect(RFC3339.format(nanoseconds: .min) == "1677-09-21T00:12:43.145Z")
    }

    @Test(arguments: crashingMonPayloads)
    func dropsTheCrashingPayloadsAsMalformed(text: String) {
        #expect(throws: MalformedPayload.self) { try MonPayload(parsing: Array(text.utf8)) }
    }

    @Test func acceptsTimeUpToMaxClockSkewAheadAndNotOneNanosecondMore() throws {
        let now = RFC3339.parse("2026-01-01T00:00:00Z")!
        let limit = ClockSkewLimit(seconds: 3600)
        try limit.check(now + 3_600_000_000_000, now: now, field: "Time")
        try limit.check(now - 86_400_000_000_000 * 365 * 30, now: now, field: "Time")
        #expect(throws: MalformedPayload.self) { try limit.check(now + 3_600_000_000_001, now: now, field: "Time") }
        let strict = ClockSkewLimit(seconds: 0)
        try strict.check(now, now: now, field: "Time")
        #expect(throws: MalformedPayload.self) { try strict.check(now + 1, now: now, field: "Time") }
    }

    @Test func namesTheTimeAndTheLimitInTheError() {
        let now = RFC3339.parse("2026-01-01T00:00:00Z")!
        let payload = Array(#"{"ClientID":"d:o:t:x","Time":"2100-01-01T00:00:00Z","Action":"Connect"}"#.utf8)
        #expect(throws: MalformedPayload.self) {
            try MonPayload(parsing: payload, now: now, skew: .default)
        }
        do {
            _ = try MonPayload(parsing: payload, now: now, skew: .default)
        } catch {
            #expect(error.description.contains("2100-01-01T00:00:00.000Z"))
            #expect(error.description.contains("maxClockSkew = 3600 s"))
        }
    }

    @Test func latestAcceptableSaturatesInsteadOfOverflowing() {
        #expect(ClockSkewLimit(seconds: 3600).latestAcceptable(now: .max - 5) == .max)
        #expect(ClockSkewLimit(seconds: .max).latestAcceptable(now: 0) == .max)
        #expect(ClockSkewLimit(seconds: -5).seconds == 0)
        // A clock at the far edge still judges without trapping.
        #expect(throws: Never.self) { try ClockSkewLimit(seconds: 1).check(.max, now: .max, field: "Time") }
        #expect(throws: MalformedPayload.self) {
            try ClockSkewLimit(seconds: 0).check(.max, now: .min, field: "Time")
        }
    }
}

/// The registry judges `Time` against its injected clock: a far-future message can no longer freeze a status.
@Suite struct StatusRegistryTimeTests {
    let pattern = try! StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))
    static let now = RFC3339.parse("2026-06-01T12:00:00Z")!

    func makeRegistry(_ directory: TemporaryDirectory, skew: Int = 3600) throws -> StatusRegistry {
        StatusRegistry(
            store: try LevelDB(path: directory.file("db")), table: DeviceTable(), patterns: [pattern],
            organization: "", logger: Logger(label: "test"), clockSkew: ClockSkewLimit(seconds: skew),
            clock: { Self.now })
    }

    func message(_ payload: [UInt8], retain: Bool = false) -> MQTTMessage {
        MQTTMessage(topic: "iot-2/type/t/id/x/mon", payload: payload, qos: 0, retain: retain)
    }

    @Test func ignoresTimeFarAheadSoLaterRealMessagesStillApply() async throws {
        let directory = try TemporaryDirectory()
        let registry = try makeRegistry(directory)
        await registry.ingest([
            message(Fixtures.mon("Connect", time: "2026-06-01T11:00:00Z")),
            message(Fixtures.mon("Disconnect", time: "2100-01-01T00:00:00Z")),
            message(Fixtures.mon("Disconnect", time: "2026-06-01T13:00:00.001Z")),
        ])
        #expect(registry.table.record(forPath: "t/x")?.action == .connect)
        let counters = await registry.counters
        #expect(counters.malformed == 2 && counters.accepted == 1)
        // Within the limit (exactly one hour ahead) is still the device's word.
        await registry.ingest([message(Fixtures.mon("Disconnect", time: "2026-06-01T13:00:00Z"))])
        #expect(registry.table.record(forPath: "t/x")?.action == .disconnect)
    }

    @Test func countsRetainedCrashingPayloadsAndKeepsIngesting() async throws {
        let directory = try TemporaryDirectory()
        let registry = try makeRegistry(directory)
        var batch = crashingMonPayloads.map { message(Array($0.utf8), retain: true) }
        batch.append(message(Fixtures.mon("Connect", time: "2026-06-01T11:59:00Z"), retain: true))
        await registry.ingest(batch)
        #expect(registry.table.record(forPath: "t/x")?.action == .connect)
        #expect(await registry.counters.malformed == crashingMonPayloads.count)
    }

    @Test func appliesAChangedClockSkewLimit() async throws {
        let directory = try TemporaryDirectory()
        let registry = try makeRegistry(directory, skew: 0)
        await registry.ingest([message(Fixtures.mon("Connect", time: "2026-06-01T12:00:01Z"))])
        #expect(registry.table.record(forPath: "t/x") == nil)
        await registry.setClockSkew(ClockSkewLimit(seconds: 60))
        await registry.ingest([message(Fixtures.mon("Connect", time: "2026-06-01T12:00:01Z"))])
        #expect(registry.table.record(forPath: "t/x")?.action == .connect)
    }
}
