import Logging
import MQTT
import Synchronization
import TestSupport

/// A client for `broker` with a unique id; not started.
func makeClient(
    _ broker: MosquittoBroker,
    id: String = "test-\(UInt32.random(in: 0...UInt32.max))",
    configure: (inout MQTTConfiguration) -> Void = { _ in }
) throws -> MQTTClient {
    var configuration = MQTTConfiguration(broker: try BrokerURL(parsing: broker.url), clientID: id)
    configure(&configuration)
    var logger = Logger(label: "mqtt-test")
    logger.logLevel = .warning
    return try MQTTClient(configuration: configuration, logger: logger)
}

/// A started client that is connected, or a thrown error with the broker's log.
func connectedClient(
    _ broker: MosquittoBroker,
    id: String = "test-\(UInt32.random(in: 0...UInt32.max))",
    configure: (inout MQTTConfiguration) -> Void = { _ in }
) async throws -> MQTTClient {
    let client = try makeClient(broker, id: id, configure: configure)
    client.start()
    guard await eventually(timeout: .seconds(10), { client.isConnected }) else {
        throw TestSupportError("client \(id) did not connect to \(broker.url); broker log:\n\(broker.log)")
    }
    return client
}

/// Consumes a client's message batches in the background and keeps them for assertions.
final class Received: Sendable {
    private final class Storage: Sendable {
        let state = Mutex<(messages: [MQTTMessage], batches: Int)>(([], 0))
    }

    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ client: MQTTClient) {
        let storage = self.storage
        task = Task {
            for await batch in client.messageBatches {
                storage.state.withLock {
                    $0.messages += batch
                    $0.batches += 1
                }
            }
        }
    }

    var messages: [MQTTMessage] { storage.state.withLock { $0.messages } }
    var count: Int { storage.state.withLock { $0.messages.count } }
    var batches: Int { storage.state.withLock { $0.batches } }
    func on(_ topic: String) -> [MQTTMessage] { messages.filter { $0.topic == topic } }

    /// Waits until `count` messages (default: at least one more than zero) have arrived.
    func wait(for count: Int = 1, timeout: Duration = .seconds(10)) async -> Bool {
        await eventually(timeout: timeout) { self.count >= count }
    }

    /// Waits for the sequence to end (after `stop()`).
    func finished() async { await task.value }

    deinit { task.cancel() }
}

extension MQTTClient {
    func publish(_ topic: String, _ text: String, qos: UInt8 = 1, retain: Bool = false) async throws {
        try await publish(topic: topic, payload: Array(text.utf8), qos: qos, retain: retain, timeout: .seconds(10))
    }
}

extension MQTTMessage {
    var text: String { String(decoding: payload, as: UTF8.self) }
}
