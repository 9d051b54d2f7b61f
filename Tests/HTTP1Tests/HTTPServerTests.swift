import Dispatch
import Glibc
import Logging
import Synchronization
import TestSupport
import Testing

@testable import HTTP1

/// What only a real server over real sockets can show.
@Suite(.serialized) struct HTTPServerTests {
    @Test func servesAFreshClientPromptlyWhile200SlowDripConnectionsAreOpen() async throws {
        // A head timeout far above what accepting 200 connections takes on a busy machine: the order of events below
        // (the fresh client answered, then the drips cut off) is then the server's doing, not the machine's.
        var configuration = testConfiguration
        configuration.headerTimeout = .seconds(3)
        let server = try TestServer(configuration)
        defer { server.stop() }
        var drips: [RawClient] = []
        for _ in 0..<200 {
            let client = try server.client()
            try client.send("GET /hello HTTP/1.1\r\nHo")
            drips.append(client)
        }
        #expect(await eventually { server.server.openConnections == 200 })
        for client in drips { client.trySend("s") }

        let fresh = try server.client()
        try fresh.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        let response = try fresh.response()
        #expect(response.text == "hello")
        // Answered while every drip still waits for the rest of its head (none was answered 408 yet): the drips
        // held up nobody. A server that served connections in turn would reach the fresh one only after their
        // head timeouts.
        for client in drips { try client.readSome(timeout: .zero) }
        #expect(drips.allSatisfy { $0.received.isEmpty && !$0.sawEOF })

        // Every drip is cut off once its head timeout (3 s from its first byte) has passed, at the next sweep.
        for client in drips {
            #expect(try client.closedByServer(within: .seconds(5)))
            #expect(try client.response().status == 408)
        }
    }

    @Test func refusesConnectionsOverTheCapWith503() throws {
        var configuration = testConfiguration
        configuration.maxConnections = 2
        configuration.threads = 1
        let server = try TestServer(configuration)
        defer { server.stop() }
        let first = try server.client()
        let second = try server.client()
        try first.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        try second.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try first.response().status == 200)
        #expect(try second.response().status == 200)

        let third = try server.client()
        let refused = try third.response()
        #expect(refused.status == 503)
        #expect(refused.closes)
        #expect(try third.closedByServer())
        try eventually { server.statuses.all.contains(503) }

        // Closing one frees a slot.
        _ = consume first
        try eventually {
            let fourth = try server.client()
            try fourth.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
            return try fourth.response().status == 200
        }
    }

    @Test func answersDeferredResponsesInPipelineOrder() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try server.client()
        try client.send(
            "GET /slow/200 HTTP/1.1\r\nHost: h\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /slow/0 HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        let responses = try client.responses(3)
        #expect(responses.map(\.text) == ["slept 200", #"{"n":2}"#, "slept 0"])
    }

    @Test func reportsAPortInUseAsAddressInUse() throws {
        let server = try TestServer()
        defer { server.stop() }
        var configuration = testConfiguration
        configuration.port = server.port
        let second = HTTPServer(configuration: configuration, responder: makeTestRouter(), logger: Logger(label: "t"))
        #expect(throws: HTTPServerError.addressInUse) { try second.start() }
        do {
            try second.start()
        } catch {
            #expect(error.description.contains("127.0.0.1:\(server.port)"))
            #expect(error.description.contains("in use"))
        }
    }

    @Test func reportsAnAddressThatIsNotHereAsInvalid() {
        var configuration = testConfiguration
        configuration.bind = "192.0.2.1"  // TEST-NET-1: not an address of this machine
        let server = HTTPServer(configuration: configuration, responder: makeTestRouter(), logger: Logger(label: "t"))
        #expect(throws: HTTPServerError.invalidAddress) { try server.start() }
        configuration.bind = "not an address"
        let named = HTTPServer(configuration: configuration, responder: makeTestRouter(), logger: Logger(label: "t"))
        #expect(throws: HTTPServerError.invalidAddress) { try named.start() }
    }

    @Test func sharesOnePortBetweenAllLoopThreads() throws {
        var configuration = testConfiguration
        configuration.threads = 4
        let server = try TestServer(configuration)
        defer { server.stop() }
        #expect(server.port > 0)
        #expect(server.server.port == server.port)
        for _ in 0..<40 {
            let client = try server.client()
            try client.send("GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            #expect(try client.response().text == "hello")
        }
    }

    /// A reply computed off the loop (a walk over a whole fleet) does not hold up the loop's other
    /// connections: with one loop thread, a lookup is answered while a slow off-loop reply is pending.
    @Test func answersOtherConnectionsWhileAnOffLoopReplyIsComputed() throws {
        var configuration = testConfiguration
        configuration.threads = 1
        var router = makeTestRouter()
        let walking = DispatchSemaphore(value: 0)
        let finishWalk = DispatchSemaphore(value: 0)
        router.get("walk") { _, _ in
            .offLoop {
                // Blocks the thread it runs on, as a long walk does, until the test has its other answer.
                walking.signal()
                finishWalk.wait()
                return .text(.ok, "walked")
            }
        }
        let server = try TestServer(configuration, router: router)
        defer { server.stop() }
        let walker = try server.client()
        try walker.send("GET /walk HTTP/1.1\r\nHost: h\r\n\r\n")
        walking.wait()
        let client = try server.client()
        try client.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try client.response().text == "hello")
        finishWalk.signal()
        #expect(try walker.response().text == "walked")
    }

    /// Connections are edge-triggered: a read that fills the buffer (64 KiB) is followed by another before
    /// the connection waits, or the rest of the request, already in the socket, would never be read.
    @Test func readsARequestLargerThanOneReadBeforeWaiting() throws {
        var configuration = testConfiguration
        configuration.maxBody = 200_000
        let server = try TestServer(configuration)
        defer { server.stop() }
        let client = try server.client()
        let body = String(repeating: "b", count: 150_000)
        try client.send(
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        let responses = try client.responses(2)
        #expect(responses.count == 2)
        #expect(responses.first?.body.count == 150_000)
        #expect(responses.last?.text == "hello")
    }

    @Test func survivesClientsThatVanishMidResponse() throws {
        let server = try TestServer()
        defer { server.stop() }
        for _ in 0..<20 {
            let client = try server.client()
            try client.send(String(repeating: "GET /big/2000000 HTTP/1.1\r\nHost: h\r\n\r\n", count: 4))
            try client.readSome(timeout: .milliseconds(5))
            // Unread data at close: the kernel resets the connection under the server's writes.
        }
        let client = try server.client()
        try client.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try client.response().text == "hello")
    }

    @Test func reportsEveryResponseIncludingItsOwnRefusals() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try server.client()
        try client.send(
            "GET /hello HTTP/1.1\r\nHost: h\r\n\r\nGET /nope HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        #expect(try client.responses(3).count == 3)
        try eventually { server.statuses.all == [200, 404, 400] }
    }

    @Test func finishesInFlightRequestsOnShutdown() async throws {
        let (handling, handlingInput) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseInput) = AsyncStream.makeStream(of: Void.self)
        var router = makeTestRouter()
        router.get("held") { _, _ in
            .task {
                handlingInput.yield()
                for await _ in release { break }
                return .text(.ok, "released")
            }
        }
        let server = try TestServer(router: router)
        let client = try server.client()
        try client.send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n")
        for await _ in handling { break }
        let stopped = Task.detached { await server.server.gracefulShutdown(gracePeriod: .seconds(3)) }
        // The shutdown has begun once the listening socket refuses connections.
        #expect(await TestSupport.eventually { (try? RawClient(port: server.port)) == nil })
        releaseInput.yield()
        // Blocking reads below: the handler task must not need this thread.
        let response = try await Task.detached { try client.response() }.value
        #expect(response.text == "released")
        #expect(response.closes)
        #expect(try client.closedByServer())
        client.close()
        await stopped.value
        #expect(throws: (any Error).self) { try server.client() }
    }

    @Test func streamsEventsUntilTheStreamFinishes() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try server.client()
        try client.send("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try client.closedByServer())
        let text = String(decoding: client.received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("Content-Type: text/event-stream\r\n"))
        #expect(text.hasSuffix("\r\n\r\n: hi\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"))
    }

    @Test func tellsTheResponderThePeerIsLoopback() throws {
        var router = Router()
        router.get("peer") { request, _ in
            .response(.text(.ok, "\(request.peer?.isLoopback == true) \(request.peer?.host ?? "none")"))
        }
        let server = try TestServer(router: router)
        defer { server.stop() }
        let client = try server.client()
        try client.send("GET /peer HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try client.response().text == "true 127.0.0.1")
    }
}

/// Retries `condition` for up to two seconds.
func eventually(_ condition: () throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let deadline = ContinuousClock.now + .seconds(2)
    while ContinuousClock.now < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    Issue.record("condition never became true", sourceLocation: sourceLocation)
}
