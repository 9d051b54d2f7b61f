import Foundation
import MQTT
import TestSupport

/// The real devstatusd binary, run as a child process against a test broker, with its config, data directory
/// and log in a temporary directory of its own.
final class Daemon: Sendable {
    /// The binary `swift build` put beside the test bundle.
    static let executable: String = {
        let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return bundle.appendingPathComponent("devstatusd").path
    }()

    let directory: TemporaryDirectory
    let port: Int
    let process: ChildProcess
    var dataDirectory: String { directory.file("data") }
    var logPath: String { directory.file("daemon.log") }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Writes `config` and starts the daemon; `waitUntil` decides what "started" means (default: `/readyz` 200).
    ///
    /// Ready means ready on *this* daemon's port: a free port can be taken by another test's process between
    /// `FreePort.next()` and the daemon's bind, and then `/readyz` on it may answer from another test's daemon while
    /// this one has exited. So the daemon must still run and (when it logs at info or finer, to its log file) have logged
    /// that it listens on the port; a daemon that could not bind is started again on a new port (a fixed `port` is not retried).
    init(
        brokerURL: String, config: String = "", directory: TemporaryDirectory? = nil, port: Int? = nil,
        extraArguments: [String] = [], waitForReady: Bool = true, logLevel: String? = "debug",
        environment: [String: String] = [:]
    ) async throws {
        let directory = try directory ?? TemporaryDirectory(prefix: "devstatusd-it")
        self.directory = directory
        let configPath = directory.file("config.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let logPath = directory.file("daemon.log")
        var attempts = 0
        while true {
            attempts += 1
            let chosenPort = try port ?? FreePort.next()
            let process = try ChildProcess(
                executable: Self.executable,
                arguments: [
                    "--config", configPath, "--port", "\(chosenPort)", "--broker", brokerURL,
                    "--data-dir", directory.file("data"),
                ] + (logLevel.map { ["--log-level", $0] } ?? []) + extraArguments,
                environment: ["STATE_DIRECTORY": ""].merging(environment) { $1 },
                outputPath: logPath)
            guard waitForReady else {
                self.port = chosenPort
                self.process = process
                return
            }
            let logsListening = logLevel.map { ["trace", "debug", "info"].contains($0) } ?? false
            let ready = await eventually(timeout: .seconds(20)) {
                if process.exitStatus != nil { return true }
                guard (try? httpGet(port: chosenPort, path: "/readyz").status) == 200 else { return false }
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                // An empty log: the daemon logs elsewhere (journald), and says nothing here either way.
                return !logsListening || log.isEmpty
                    || log.split(separator: "\n").contains {
                        $0.contains("HTTP server listening") && $0.contains(":\(chosenPort) ")
                    }
            }
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if process.exitStatus != nil {
                if port == nil, attempts < 3, log.contains("in use") { continue }
                throw TestSupportError("daemon exited before it was ready; log:\n\(log)")
            }
            guard ready else { throw TestSupportError("daemon not ready within 20 s; log:\n\(log)") }
            self.port = chosenPort
            self.process = process
            return
        }
    }

    func get(_ path: String, headers: [(String, String)] = []) throws -> HTTPResponse {
        try httpGet(port: port, path: path, headers: headers)
    }

    func json(_ path: String) throws -> [String: Any] {
        let response = try get(path)
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw TestSupportError("\(path) answered \(response.status) with a non-object body: \(response.text)")
        }
        return object
    }

    @discardableResult
    func stop() async -> ExitStatus { await process.stop(grace: .seconds(10)) }
}

/// A plain publisher for tests, on our own MQTT client.
func connectedClient(_ broker: MosquittoBroker, id: String = "it-\(UInt32.random(in: 0...UInt32.max))") async throws
    -> MQTTClient
{
    let client = try MQTTClient(
        configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: id),
        logger: .init(label: "test"))
    client.start()
    guard await eventually(timeout: .seconds(10), { client.isConnected }) else {
        throw TestSupportError("test client did not connect to \(broker.url)")
    }
    return client
}

extension MQTTClient {
    func publish(_ topic: String, _ text: String, retain: Bool = false, qos: UInt8 = 1) async throws {
        try await publish(topic: topic, payload: Array(text.utf8), qos: qos, retain: retain)
    }
}

/// A status payload as IBM sends it.
func mon(
    _ action: String, _ time: String, type: String = "type1", id: String = "ps1", org: String = "7gnple",
    closeCode: Int? = nil
) -> String {
    var text = #"{"ClientAddr":"10.0.0.1","Protocol":"mqtt3","Secure":false,"ClientID":"d:\#(org):\#(type):\#(id)","#
    text += #""Time":"\#(time)","Action":"\#(action)","Port":1883"#
    if let closeCode { text += ",\"CloseCode\":\(closeCode)" }
    return text + "}"
}

func monTopic(_ type: String, _ id: String) -> String { "iot-2/type/\(type)/id/\(id)/mon" }
