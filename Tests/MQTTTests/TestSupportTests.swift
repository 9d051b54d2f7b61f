import Foundation
import Testing

@testable import TestSupport

/// The fixtures other test targets rely on: a real broker, child processes, HTTP helpers.
@Suite struct TestSupportTests {
    @Test func brokerAcceptsConnectionsThenStopsCleanlyOnSIGTERM() async throws {
        let broker = try await MosquittoBroker()
        let pid = try #require(broker.pid)
        #expect(broker.url == "tcp://127.0.0.1:\(broker.port)")
        let fd = connectLoopback(port: broker.port)
        #expect(fd >= 0)
        close(fd)
        await broker.stop()
        #expect(!broker.isRunning)
        #expect(kill(pid, 0) != 0, "the broker process is gone and reaped")
        #expect(connectLoopback(port: broker.port) < 0)
        #expect(broker.log.contains("terminating"), "SIGTERM reached mosquitto: \(broker.log)")
    }

    @Test func brokerRestartsOnTheSamePort() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.kill() }
        let port = broker.port
        let firstPID = broker.pid
        try await broker.restart()
        #expect(broker.port == port)
        #expect(broker.pid != firstPID)
        let fd = connectLoopback(port: port)
        #expect(fd >= 0)
        close(fd)
    }

    @Test func brokerCreatedStoppedStartsLaterOnItsReservedPort() async throws {
        let broker = try await MosquittoBroker(start: false)
        defer { broker.kill() }
        #expect(!broker.isRunning)
        #expect(connectLoopback(port: broker.port) < 0)
        try await broker.start()
        #expect(broker.isRunning)
    }

    @Test func severalBrokersRunAtOnceWithExtraConfig() async throws {
        async let first = MosquittoBroker(extraConfig: ["max_queued_messages 5000"])
        async let second = MosquittoBroker()
        let brokers = try await [first, second]
        defer { brokers.forEach { $0.kill() } }
        #expect(brokers[0].port != brokers[1].port)
        #expect(brokers.allSatisfy { $0.isRunning })
        let config = try String(
            contentsOfFile: brokers[0].logPath.replacingOccurrences(
                of: "mosquitto.log", with: "mosquitto.conf"), encoding: .utf8)
        #expect(config.contains("max_queued_messages 5000"))
    }

    @Test func childProcessReportsExitCodeSignalAndOutput() async throws {
        let directory = try TemporaryDirectory()
        let exits = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "echo \"hello $GREETING\"; echo oops >&2; exit 3"],
            environment: ["GREETING": "world"], outputPath: directory.file("out"))
        #expect(await exits.waitForExit() == .exited(3))
        #expect(exits.output == "hello world\noops\n")
        #expect(!exits.isRunning)

        let sleeper = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        #expect(sleeper.isRunning)
        #expect(await sleeper.waitForExit(timeout: .milliseconds(50)) == nil)
        sleeper.terminate()
        #expect(await sleeper.waitForExit() == .signaled(SIGTERM))
    }

    @Test func childProcessSpawnFailureIsAnError() {
        #expect(throws: TestSupportError.self) {
            try ChildProcess(executable: "/nonexistent/binary")
        }
    }

    @Test func temporaryDirectoryIsRemovedOnDeinit() throws {
        var directory: TemporaryDirectory? = try TemporaryDirectory()
        let path = try #require(directory?.path)
        try "x".write(toFile: directory!.file("f"), atomically: false, encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: path))
        directory = nil
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func eventuallyWaitsForTheConditionAndGivesUpAtTimeout() async {
        let start = ContinuousClock.now
        #expect(await eventually { ContinuousClock.now - start > .milliseconds(50) })
        #expect(await eventually(timeout: .milliseconds(50)) { false } == false)
    }

    @Test func httpResponseParsesContentLengthChunkedAndCloseDelimitedBodies() throws {
        let sized = try #require(
            HTTPResponse.parse(
                Array(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}extra".utf8)))
        #expect(sized.status == 200 && sized.reason == "OK" && sized.text == "{}")
        #expect(sized.header("content-type") == "application/json")
        let chunked = try #require(
            HTTPResponse.parse(
                Array(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n".utf8)))
        #expect(chunked.text == "abcde")
        let untilClose = try #require(HTTPResponse.parse(Array("HTTP/1.0 404 Not Found\r\n\r\nnope".utf8)))
        #expect(untilClose.status == 404 && untilClose.text == "nope")
        #expect(HTTPResponse.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".utf8)) == nil)
        #expect(HTTPResponse.parse(Array("garbage\r\n\r\n".utf8)) == nil)
    }

    @Test func httpGetSendsARequestAndReadsTheResponse() async throws {
        let server = try OneShotServer(answer: "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
        let response = try httpGet(port: server.port, path: "/devices/a/b", headers: [("Accept", "text/html")])
        #expect(response.status == 201 && response.text == "hello" && response.header("x-a") == "b")
        let request = await server.request()
        #expect(request.hasPrefix("GET /devices/a/b HTTP/1.1\r\n"))
        #expect(request.contains("\r\nAccept: text/html\r\n") && request.contains("\r\nConnection: close\r\n"))

        let raw = try OneShotServer(answer: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        let bytes = try rawHTTP(port: raw.port, Array("BOGUS\r\n\r\n".utf8))
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        #expect(await raw.request() == "BOGUS\r\n\r\n")
    }
}

/// Accepts one connection on a free port, reads one request head, answers `answer` and closes.
private final class OneShotServer: Sendable {
    let port: Int
    private let received: AsyncStream<String>

    init(answer: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(fd, $0, length) == 0, listen(fd, 1) == 0, getsockname(fd, $0, &length) == 0 else {
                    throw TestSupportError("cannot listen: errno \(errno)")
                }
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let (received, delivered) = AsyncStream.makeStream(of: String.self)
        self.received = received
        // Blocking accept and recv: on a thread of its own, never on the cooperative pool (whose few threads the
        // test's own blocking client may hold while it waits for this answer).
        Thread.detachNewThread {
            let client = accept(fd, nil, nil)
            defer {
                close(client)
                close(fd)
            }
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while request.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                request += buffer.prefix(n)
            }
            _ = Array(answer.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            delivered.yield(String(decoding: request, as: UTF8.self))
            delivered.finish()
        }
    }

    func request() async -> String {
        for await request in received { return request }
        return ""
    }
}
