import Glibc
import Logging
import Synchronization

@testable import HTTP1

/// Short timeouts so timeout behaviour is observable in tests.
let testConfiguration = HTTPServer.Configuration(
    bind: "127.0.0.1", port: 0, threads: 2, maxConnections: 1024, headerTimeout: .milliseconds(600),
    idleTimeout: .milliseconds(400), writeTimeout: .seconds(1), maxRequestLine: 256, maxHeaderBytes: 512,
    maxHeaders: 8, maxBody: 64)

extension HTTPServer.Configuration {
    var machineSettings: ConnectionStateMachine.Settings {
        ConnectionStateMachine.Settings(
            limits: limits, headerTimeout: headerTimeout, idleTimeout: idleTimeout, writeTimeout: writeTimeout)
    }
}

/// Routes every behaviour test uses, in memory and over sockets.
func makeTestRouter() -> Router {
    var router = Router()
    router.get("hello") { _, _ in .response(.text(.ok, "hello")) }
    router.get("n", ":k") { _, params in .json(.ok, "{\"n\":\(params["k"] ?? "")}") }
    router.post("echo") { request, _ in .response(HTTPResponse(status: .ok, body: request.body)) }
    router.get("path", "*") { request, params in .response(.text(.ok, params.catchAll.joined(separator: "|"))) }
    router.get("big", ":bytes") { _, params in
        .response(HTTPResponse(body: [UInt8](repeating: 0x61, count: Int(params["bytes"] ?? "") ?? 0)))
    }
    router.get("slow", ":ms") { _, params in
        let ms = Int(params["ms"] ?? "") ?? 0
        return .task {
            try? await Task.sleep(for: .milliseconds(ms))
            return .text(.ok, "slept \(ms)")
        }
    }
    router.get("events") { _, _ in
        .eventStream(HTTPResponse(headers: ["Content-Type": "text/event-stream"], body: Array(": hi\n\n".utf8))) {
            stream in
            Task {
                for i in 1...3 {
                    try? await Task.sleep(for: .milliseconds(20))
                    stream.send("data: \(i)\n\n")
                }
                stream.finish()
            }
        }
    }
    return router
}

/// Status codes the server reported through `onResponse`.
final class StatusLog: Sendable {
    let codes = Mutex<[Int]>([])
    var all: [Int] { codes.withLock { $0 } }
}

/// A running server on a free port with the test router; stopped by `stop()`.
final class TestServer: Sendable {
    let server: HTTPServer
    let port: Int
    let statuses = StatusLog()

    init(_ configuration: HTTPServer.Configuration = testConfiguration, router: Router = makeTestRouter()) throws {
        var logger = Logger(label: "http-test")
        logger.logLevel = .warning
        let statuses = self.statuses
        server = HTTPServer(configuration: configuration, responder: router, logger: logger) { record in
            statuses.codes.withLock { $0.append(record.status.code) }
        }
        port = try server.start()
    }

    func client() throws -> RawClient { try RawClient(port: port) }

    func stop() { server.shutdown(gracePeriod: .seconds(1)) }
}
