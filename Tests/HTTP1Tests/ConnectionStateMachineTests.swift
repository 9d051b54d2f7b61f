import Testing

@testable import HTTP1

/// Behaviour that needs a hand on the clock or on the order of completions: the state machine alone.
@Suite struct ConnectionStateMachineTests {
    let settings = testConfiguration.machineSettings

    private func connection(
        _ settings: ConnectionStateMachine.Settings? = nil, answer: @escaping (HTTPRequest) -> InMemoryConnection.Answer
    ) -> InMemoryConnection {
        InMemoryConnection(settings: settings ?? self.settings, answer: answer)
    }

    @Test func sendsDeferredAnswersInRequestOrder() {
        var conn = connection { _ in .later }
        conn.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(conn.dispatched.map(\.request.target) == ["/a", "/b"])
        conn.complete(conn.dispatched[1].sequence, .text(.ok, "b"))
        #expect(conn.written.isEmpty)
        conn.complete(conn.dispatched[0].sequence, .text(.ok, "a"))
        #expect(conn.responses.map(\.text) == ["a", "b"])
    }

    @Test func stopsReadingWhenThePipelineIsFull() {
        var small = settings
        small.maxPipelinedRequests = 2
        var conn = connection(small) { _ in .later }
        conn.send(String(repeating: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", count: 5))
        #expect(conn.dispatched.count == 2)
        #expect(conn.watching.read == false)
        conn.complete(conn.dispatched[0].sequence, .text(.ok, "1"))
        #expect(conn.dispatched.count == 3)
    }

    @Test func doesNotTimeOutAHeadItHasNotReadBecauseThePipelineIsFull() {
        var small = settings
        small.maxPipelinedRequests = 1
        var conn = connection(small) { _ in .later }
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHo")
        conn.advance(by: .seconds(60))
        #expect(!conn.finished)
        #expect(conn.machine.deadline == nil)
    }

    @Test func cutsOffAReaderThatStallsLongerThanTheWriteTimeout() {
        var conn = connection { _ in .now(HTTPResponse(body: [UInt8](repeating: 1, count: 1000))) }
        conn.socketCapacity = 100
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(conn.written.count == 100)
        #expect(conn.watching.write)
        conn.advance(by: .milliseconds(900))
        #expect(!conn.closed)
        conn.drain(capacity: 100)  // progress restarts the clock
        conn.advance(by: .milliseconds(900))
        #expect(!conn.closed)
        conn.advance(by: .milliseconds(200))
        #expect(conn.closed)
    }

    @Test func headTimeoutCountsFromTheFirstByteNotTheLast() {
        var conn = connection { _ in .now(.text(.ok, "x")) }
        conn.send("G")
        conn.advance(by: .milliseconds(500))
        conn.send("ET / HTTP/1.1\r\n")
        conn.advance(by: .milliseconds(150))
        #expect(conn.responses.map(\.status) == [408])
        #expect(conn.finished)
    }

    @Test func idleTimerRestartsAfterEachAnswer() {
        var conn = connection { _ in .now(.text(.ok, "x")) }
        conn.advance(by: .milliseconds(300))
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        conn.advance(by: .milliseconds(300))
        #expect(!conn.closed)
        conn.advance(by: .milliseconds(150))
        #expect(conn.closed)
    }

    @Test func noIdleTimeoutWhileAnAnswerIsPending() {
        var conn = connection { _ in .later }
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        conn.advance(by: .seconds(30))
        #expect(!conn.finished)
    }

    @Test func lingersAfterTheLastAnswerThenCloses() {
        var conn = connection { _ in .now(.text(.ok, "x")) }
        conn.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        #expect(conn.writeShutdown)
        #expect(!conn.closed)
        conn.send("ignored garbage")
        #expect(conn.responses.count == 1)
        conn.advance(by: .seconds(3))
        #expect(conn.closed)
    }

    @Test func answers100ContinueBeforeReadingTheBody() {
        var conn = connection { request in .now(HTTPResponse(body: request.body)) }
        conn.send("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        #expect(String(decoding: conn.written, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        conn.send("ok")
        #expect(conn.responses.map(\.status) == [100, 200])
        #expect(conn.responses.last?.text == "ok")
    }

    @Test func reportsEveryAnswerIncludingRefusals() {
        var conn = connection { _ in .now(.text(.ok, "x")) }
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        #expect(conn.records.map(\.status.code) == [200, 400])
        #expect(conn.records.map(\.method) == [.get, nil])
    }

    @Test func honoursConnectionCloseFromTheResponder() {
        var conn = connection { _ in .now(HTTPResponse(status: .ok, headers: ["Connection": "close"])) }
        conn.send("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(conn.responses.count == 1)
        #expect(conn.responses.first?.closes == true)
        #expect(conn.finished)
    }

    @Test func streamsAnEventStreamUntilItFinishes() {
        let now = Moment(nanoseconds: 0)
        var machine = ConnectionStateMachine(settings: settings, peer: nil, now: now)
        let date = Array("Date: x\r\n".utf8)
        Array("GET /events HTTP/1.1\r\nHost: h\r\n\r\n".utf8).withUnsafeBytes { machine.received($0, now: now) }
        guard machine.nextAction(now: now, date: date) == .dispatch else {
            Issue.record("expected dispatch")
            return
        }
        let sequence = machine.dispatchedSequence
        machine.responseReady(
            sequence: sequence, reply: .stream(HTTPResponse(body: Array("start\n".utf8))), route: nil, now: now)
        var written: [UInt8] = []
        func flush() {
            while true {
                switch machine.nextAction(now: now, date: date) {
                case .write:
                    let bytes = machine.withPendingOutput { Array($0) }
                    written += bytes
                    machine.wrote(bytes.count, now: now)
                case .report: continue
                default: return
                }
            }
        }
        flush()
        machine.streamData(Array("data: 1\n\n".utf8), now: now)
        flush()
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Connection: close\r\n"))
        #expect(!text.contains("Content-Length"))
        #expect(text.hasSuffix("\r\n\r\nstart\ndata: 1\n\n"))
        machine.streamFinished()
        #expect(machine.nextAction(now: now, date: date).isShutdownWrite)
    }
}

extension ConnectionStateMachine.Action {
    var isShutdownWrite: Bool {
        if case .shutdownWrite = self { return true }
        return false
    }
}
