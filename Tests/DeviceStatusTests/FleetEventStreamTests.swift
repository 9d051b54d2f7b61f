import HTTP1
import Logging
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// `GET /events` over a real server on a free port, read with a plain socket.
@Suite struct FleetEventStreamTests {
    static let key = DeviceKey(type: "type1", id: "ps1")

    static func transition(_ from: DeviceState, _ to: DeviceState, id: String = "ps1") -> DeviceEvent {
        DeviceEvent(
            key: DeviceKey(type: "type1", id: id), kind: .transition(from: from, to: to), source: "mon",
            reason: to == .online ? "Connect" : "Disconnect", time: 1_700_000_000_000_000_000)
    }

    /// A server answering `/events` from `stream`.
    final class Fixture: Sendable {
        let stream: StatusEventStream
        let server: HTTPServer
        let port: Int

        init(_ stream: StatusEventStream) throws {
            self.stream = stream
            var router = Router()
            router.get("events") { request, _ in stream.reply(lastEventID: request.headers["Last-Event-ID"]) }
            server = HTTPServer(
                configuration: .init(bind: "127.0.0.1", port: 0, threads: 1), responder: router,
                logger: Logger(label: "test"))
            port = try server.start()
        }

        /// Opens `/events` and returns the connection, once its head has arrived.
        func open(lastEventID: String? = nil) async throws -> EventStreamReader {
            try await EventStreamReader(port: port, lastEventID: lastEventID)
        }

        deinit { server.shutdown(gracePeriod: .zero) }
    }

    @Test func streamsATransitionAsAnSSEEvent() async throws {
        let fixture = try Fixture(StatusEventStream())
        let reader = try await fixture.open()
        #expect(reader.text.lowercased().contains("content-type: text/event-stream"))
        #expect(reader.text.contains("retry: 2000"))
        #expect(await eventually { fixture.stream.streamCount == 1 })
        fixture.stream.publish(Self.transition(.online, .offline))
        fixture.stream.publish(DeviceEvent(key: Self.key, kind: .hello, source: "hello", time: 0))
        fixture.stream.publish(Self.transition(.offline, .online))
        try await reader.read(until: #""to":"online""#)
        let events = reader.events
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.event == "status" })
        #expect(events[0].id < events[1].id)
        #expect(
            events[0].data
                == #"{"type":"type1","id":"ps1","from":"online","to":"offline","source":"mon","reason":"Disconnect","time":"2023-11-14T22:13:20.000Z","status":"offline"}"#
        )
    }

    @Test func carriesTheOverallStatusReadWhenTheEventWasPublished() async throws {
        let overall = Mutex<DeviceState?>(.expired)
        let fixture = try Fixture(StatusEventStream(overallStatus: { _ in overall.withLock { $0 } }))
        let reader = try await fixture.open()
        #expect(await eventually { fixture.stream.streamCount == 1 })
        fixture.stream.publish(Self.transition(.offline, .online))
        try await reader.read(until: #""status":"expired""#)
        #expect(reader.events.last?.data.contains(#""from":"offline","to":"online""#) == true)
        // Kept with the event: a stream resuming later gets the status as it was then, not as it is now.
        overall.withLock { $0 = .online }
        let resumed = try await fixture.open(lastEventID: "0")
        try await resumed.read(until: #""status":"expired""#)
        #expect(resumed.events.count == 1)
        // No overall status known: the event's own `to`.
        overall.withLock { $0 = nil }
        fixture.stream.publish(Self.transition(.online, .offline))
        try await reader.read(
            until:
                #""to":"offline","source":"mon","reason":"Disconnect","time":"2023-11-14T22:13:20.000Z","status":"offline""#
        )
    }

    @Test func resumesAfterLastEventIDWithOnlyTheLaterEvents() async throws {
        let fixture = try Fixture(StatusEventStream())
        for index in 0..<5 { fixture.stream.publish(Self.transition(.offline, .online, id: "d\(index)")) }
        let first = try await fixture.open()
        fixture.stream.publish(Self.transition(.offline, .online, id: "d5"))
        try await first.read(until: #""id":"d5""#)
        // Only the live event: without Last-Event-ID nothing is replayed.
        #expect(first.events.map(\.data).allSatisfy { $0.contains(#""id":"d5""#) })
        let seen = try #require(first.events.last?.id)
        fixture.stream.publish(Self.transition(.offline, .online, id: "d6"))
        fixture.stream.publish(Self.transition(.offline, .online, id: "d7"))

        let resumed = try await fixture.open(lastEventID: "\(seen)")
        try await resumed.read(until: #""id":"d7""#)
        #expect(resumed.events.map { $0.data.contains(#""id":"d6""#) } == [true, false])
        #expect(resumed.events.allSatisfy { $0.id > seen })
        // And the stream goes on live after the replay.
        fixture.stream.publish(Self.transition(.offline, .online, id: "d8"))
        try await resumed.read(until: #""id":"d8""#)
        #expect(resumed.events.count == 3)
    }

    @Test func saysSoWhenTheEventsToResumeFromAreNoLongerKept() async throws {
        let fixture = try Fixture(StatusEventStream())
        fixture.stream.publish(Self.transition(.offline, .online, id: "first"))
        let firstID = fixture.stream.lastEventID
        for index in 0..<(StatusEventStream.ringCapacity + 10) {
            fixture.stream.publish(Self.transition(.offline, .online, id: "d\(index)"))
        }
        let resumed = try await fixture.open(lastEventID: "\(firstID)")
        try await resumed.read(until: #""id":"d\#(StatusEventStream.ringCapacity + 9)""#)
        #expect(resumed.text.contains(": missed events"))
        #expect(resumed.events.count == StatusEventStream.ringCapacity)
    }

    /// A replay's batch of more events than the ring keeps, with nobody listening: the overall status is read for the
    /// events that stay only, and a stream resuming from before the batch gets those, each with its status, after
    /// saying it missed the rest.
    @Test func readsTheStatusOnlyOfTheEventsABatchLeavesInTheRing() async throws {
        let reads = Mutex(0)
        let fixture = try Fixture(
            StatusEventStream(overallStatus: { _ in
                reads.withLock { $0 += 1 }
                return .expired
            }))
        fixture.stream.publish(Self.transition(.offline, .online, id: "first"))
        let firstID = fixture.stream.lastEventID
        let count = StatusEventStream.ringCapacity * 3
        fixture.stream.publish(contentsOf: (0..<count).map { Self.transition(.offline, .online, id: "d\($0)") })
        #expect(reads.withLock { $0 } == 1 + StatusEventStream.ringCapacity)
        #expect(fixture.stream.lastEventID > firstID)
        let resumed = try await fixture.open(lastEventID: "\(firstID)")
        try await resumed.read(until: #""id":"d\#(count - 1)""#)
        #expect(resumed.text.contains(": missed events"))
        #expect(resumed.events.count == StatusEventStream.ringCapacity)
        #expect(resumed.events.first?.data.contains(#""id":"d\#(count - StatusEventStream.ringCapacity)""#) == true)
        #expect(resumed.events.allSatisfy { $0.data.contains(#""status":"expired""#) })
    }

    /// With a stream open, every event of a batch is sent, each with its own status read.
    @Test func sendsEveryEventOfABatchToAnOpenStream() async throws {
        let reads = Mutex(0)
        let fixture = try Fixture(
            StatusEventStream(overallStatus: { _ in
                reads.withLock { $0 += 1 }
                return nil
            }))
        let reader = try await fixture.open()
        #expect(await eventually { fixture.stream.streamCount == 1 })
        let count = StatusEventStream.ringCapacity + 5
        fixture.stream.publish(contentsOf: (0..<count).map { Self.transition(.offline, .online, id: "d\($0)") })
        try await reader.read(until: #""id":"d\#(count - 1)""#)
        #expect(reader.events.count == count)
        #expect(reads.withLock { $0 } == count)
    }

    @Test func sendsHeartbeatComments() async throws {
        let stream = StatusEventStream(heartbeatInterval: .milliseconds(50))
        let fixture = try Fixture(stream)
        stream.start()
        defer { stream.stop() }
        let reader = try await fixture.open()
        try await reader.read(until: ": heartbeat\n\n")
    }

    @Test func forgetsAClientThatGoesAway() async throws {
        let fixture = try Fixture(StatusEventStream())
        do {
            let reader = try await fixture.open()
            #expect(await eventually { fixture.stream.streamCount == 1 })
            _ = reader
        }
        // The socket closed with the reader; the server notices at its next read or write.
        fixture.stream.publish(Self.transition(.online, .offline))
        #expect(await eventually { fixture.stream.streamCount == 0 })
    }

    @Test func refusesStreamsBeyondItsLimit() async throws {
        let fixture = try Fixture(StatusEventStream(maximumStreams: 1))
        let first = try await fixture.open()
        #expect(await eventually { fixture.stream.streamCount == 1 })
        let refused = try httpGet(port: fixture.port, path: "/events")
        #expect(refused.status == 503)
        _ = first
    }

    @Test func endsEveryStreamOnStop() async throws {
        let fixture = try Fixture(StatusEventStream())
        let reader = try await fixture.open()
        #expect(await eventually { fixture.stream.streamCount == 1 })
        fixture.stream.stop()
        #expect(fixture.stream.streamCount == 0)
        // The server closes the connection once everything sent is out.
        let closed = await #expect(throws: TestSupportError.self) { try await reader.read(until: "never sent") }
        #expect(closed?.description.hasPrefix("stream closed") == true)
        #expect(reader.text.hasSuffix("retry: 2000\n\n"))
        // A stream opened after the stop ends at once.
        let late = try await fixture.open()
        let lateClosed = await #expect(throws: TestSupportError.self) { try await late.read(until: "never sent") }
        #expect(lateClosed?.description.hasPrefix("stream closed") == true)
        #expect(late.text.contains(": too many event streams open, or the daemon is stopping"))
    }

    @Test func keepsIDsIncreasingWhenTheClockStandsStillOrGoesBack() {
        let now = Mutex<Int64>(5_000)
        let stream = StatusEventStream(clock: { now.withLock { $0 } })
        stream.publish(Self.transition(.online, .offline))
        #expect(stream.lastEventID == 5_000)
        stream.publish(Self.transition(.offline, .online))
        #expect(stream.lastEventID == 5_001)
        now.withLock { $0 = 10 }
        stream.publish(Self.transition(.online, .offline))
        #expect(stream.lastEventID == 5_002)
        now.withLock { $0 = 9_000 }
        stream.publish(Self.transition(.offline, .online))
        #expect(stream.lastEventID == 9_000)
    }
}
