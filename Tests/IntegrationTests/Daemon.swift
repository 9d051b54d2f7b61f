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
    init(
        brokerURL: String, config: String = "", directory: TemporaryDirectory? = nil, port: Int? = nil,
        extraArguments: [String] = [], waitForReady: Bool = true, logLevel: String? = "debug",
        environment: [String: String] = [:]
    ) async throws {
        self.directory = try directory ?? TemporaryDirectory(prefix: "devstatusd-it")
        self.port = try port ?? FreePort.next()
        let configPath = self.directory.file("config.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        process = try ChildProcess(
            executable: Self.executable,
            arguments: [
                "--config", configPath, "--port", "\(self.port)", "--broker", brokerURL,
                "--data-dir", self.directory.file("data"),
            ] + (logLevel.map { ["--log-level", $0] } ?? []) + extraArguments,
            environment: ["STATE_DIRECTORY": ""].merging(environment) { $1 },
            outputPath: self.directory.file("daemon.log"))
        if waitForReady {
            let ready = await eventually(timeout: .seconds(20)) { (try? self.get("/readyz").status) == 200 }
            guard ready else {
                throw TestSupportError("daemon not ready within 20 s; log:\n\(log)")
            }
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
