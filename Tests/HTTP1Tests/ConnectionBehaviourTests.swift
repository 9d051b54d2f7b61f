import Glibc
import Testing

@testable import HTTP1

/// Where a behaviour test runs: the state machine alone, or the real server over a socket.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, socket
    var testDescription: String { rawValue }
}

/// One client connection, in memory or over a socket, with the same verbs.
final class Exchange {
    private var memory: InMemoryConnection?
    private var server: TestServer?
    private var client: RawClient?

    init(_ transport: Transport, configuration: HTTPServer.Configuration = testConfiguration) throws {
        let router = makeTestRouter()
        switch transport {
        case .memory:
            memory = InMemoryConnection(
                settings: configuration.machineSettings,
                acceptsBody: { router.acceptsBody(method: $0, pathSegments: $1) }
            ) { request in
                if case .response(let response) = router.respond(to: request).kind { return .now(response) }
                return .later
            }
        case .socket:
            let server = try TestServer(configuration, router: router)
            self.server = server
            client = try server.client()
        }
    }

    deinit {
        client = nil  // closed first, so the server has no lingering connection to wait for
        server?.stop()
    }

    func send(_ text: String) throws {
        if memory != nil { memory!.send(text) } else { try client!.send(text) }
    }

    /// Sends, ignoring a connection the server already closed.
    func trySend(_ text: String) {
        if memory != nil { memory!.send(text) } else { client!.trySend(text) }
    }

    func shutdownWrite() {
        if memory != nil { memory!.peerCloses() } else { shutdown(client!.fd, Int32(SHUT_WR)) }
    }

    func responses(_ count: Int, bodiless: Bool = false) throws -> [ParsedResponse] {
        if let memory { return ParsedResponse.parseAll(memory.written, bodiless: bodiless).responses }
        return try client!.responses(count, bodiless: bodiless)
    }

    func response(bodiless: Bool = false) throws -> ParsedResponse? {
        try responses(1, bodiless: bodiless).first
    }

    /// True when the server finished the connection (write side shut or closed).
    func serverClosed(within timeout: Duration = .seconds(3)) throws -> Bool {
        if let memory { return memory.finished }
        return try client!.closedByServer(within: timeout)
    }

    /// Lets time pass: the in-memory clock jumps, the socket test really waits.
    func elapse(_ duration: Duration) async throws {
        if memory != nil {
            memory!.advance(by: duration)
        } else {
            try await Task.sleep(for: duration)
        }
    }
}

/// Each behaviour runs on the state machine in memory and on the real server over a socket.
@Suite(.serialized) struct ConnectionBehaviourTests {
    @Test(arguments: Transport.allCases)
    func answersPipelinedRequestsInOrder(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send(
            "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /n/3 HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        let responses = try exchange.responses(3)
        #expect(responses.map(\.text) == [#"{"n":1}"#, #"{"n":2}"#, #"{"n":3}"#])
        #expect(responses.allSatisfy { $0.status == 200 && !$0.closes })
        #expect(responses.first?.header("Content-Type") == "application/json")
        #expect(responses.first?.header("Date")?.hasSuffix("GMT") == true)
        #expect(try !exchange.serverClosed(within: .milliseconds(100)))
    }

    @Test(arguments: Transport.allCases)
    func keepsTheConnectionForTheNextRequest(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try exchange.responses(1).map(\.text) == ["hello"])
        try exchange.send("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nping")
        #expect(try exchange.responses(2).map(\.text) == ["hello", "ping"])
    }

    @Test(arguments: Transport.allCases)
    func closesAfterAnsweringConnectionClose(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send(
            "GET /n/1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: h\r\n\r\n")
        let responses = try exchange.responses(2)
        #expect(responses.count == 1)
        #expect(responses.first?.closes == true)
        #expect(try exchange.serverClosed())
    }

    @Test(arguments: Transport.allCases)
    func closesHTTP10UnlessKeepAliveIsAsked(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let first = try exchange.response()
        #expect(first?.header("Connection") == "keep-alive")
        try exchange.send("GET /hello HTTP/1.0\r\n\r\n")
        let both = try exchange.responses(2)
        #expect(both.count == 2)
        #expect(both.last?.closes == true)
        #expect(try exchange.serverClosed())
    }

    @Test(arguments: Transport.allCases)
    func answersHeadWithTheLengthButNoBody(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send("HEAD /big/10 HTTP/1.1\r\nHost: h\r\n\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        let head = try exchange.response(bodiless: true)
        #expect(head?.status == 200)
        #expect(head?.header("Content-Length") == "10")
        // Right after the bodiless head comes the next response, not ten body bytes.
        let raw = try exchange.responses(2, bodiless: true)
        #expect(raw.count == 2)
        #expect(raw.last?.header("Content-Length") == "5")
    }

    @Test(arguments: Transport.allCases)
    func answersUnknownPathsWith404AndWrongMethodsWith405(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send("GET /nope HTTP/1.1\r\nHost: h\r\n\r\nDELETE /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        let responses = try exchange.responses(2)
        #expect(responses.map(\.status) == [404, 405])
        #expect(responses.first?.text == #"{"error":"not found"}"#)
        #expect(responses.last?.header("Allow") == "GET, HEAD")
    }

    @Test(arguments: Transport.allCases)
    func answersRequestsSentBeforeTheClientHalfCloses(_ transport: Transport) throws {
        let exchange = try Exchange(transport)
        try exchange.send("GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /n/3")
        exchange.shutdownWrite()
        #expect(try exchange.responses(3).count == 2)
        #expect(try exchange.serverClosed())
    }

    @Test(arguments: Transport.allCases)
    func closesAKeepAliveConnectionAfterTheIdleTimeout(_ transport: Transport) async throws {
        let exchange = try Exchange(transport)
        try exchange.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try exchange.responses(1).count == 1)
        try await exchange.elapse(.milliseconds(200))
        #expect(try !exchange.serverClosed(within: .zero))
        try await exchange.elapse(.milliseconds(400))
        #expect(try exchange.serverClosed(within: .milliseconds(500)))
    }

    @Test(arguments: Transport.allCases)
    func cutsOffASlowDripHeadWith408(_ transport: Transport) async throws {
        let exchange = try Exchange(transport)
        // One byte every 100 ms keeps the connection busy but never completes the head in 600 ms.
        for byte in "GET /hello HTTP/1.1\r\nHost: h\r\nX-A: b".map(String.init) {
            exchange.trySend(byte)
            try await exchange.elapse(.milliseconds(100))
            if try exchange.serverClosed(within: .zero) { break }
        }
        let response = try exchange.response()
        #expect(response?.status == 408)
        #expect(response?.closes == true)
        #expect(try exchange.serverClosed())
    }

    static let refusals: [(raw: String, status: Int)] = [
        ("GET /\(String(repeating: "a", count: 300)) HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "b", count: 600))\r\n\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-A: 1\r\n", count: 9) + "\r\n", 431),
        ("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", 413),
        ("GET /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx", 413),
        ("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        ("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx", 400),
        ("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
        ("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: \u{1}\r\n\r\n", 400),
        ("GET /path/a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: h\n\n", 400),
    ]

    @Test(arguments: Transport.allCases, refusals)
    func refusesWithItsStatusAndClosesTheConnection(_ transport: Transport, _ refusal: (raw: String, status: Int))
        throws
    {
        let exchange = try Exchange(transport)
        // A valid request after the bad one must go unanswered: the connection is done.
        exchange.trySend(refusal.raw + "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
        let responses = try exchange.responses(2)
        #expect(responses.map(\.status) == [refusal.status])
        #expect(responses.first?.closes == true)
        #expect(responses.first?.header("Content-Type") == "application/json")
        #expect(try exchange.serverClosed())
    }
}
