import MQTT
import Synchronization

/// An MQTT connection with no broker behind it, for testing what a component does with one: the test says when
/// it connects and what arrives; everything published is recorded, and can be awaited one message at a time.
final class InMemoryConnection: MQTTConnection {
    struct Publication: Sendable, Equatable {
        var topic: String
        var payload: String
        var qos: UInt8
        var retain: Bool
    }

    private struct State {
        var connected = false
        var started = false
        var stopped = false
        var published: [Publication] = []
        var subscriptions: [String] = []
        var added: [String] = []
    }

    private let state = Mutex(State())
    let messageBatches: AsyncStream<[MQTTMessage]>
    private let batchInput: AsyncStream<[MQTTMessage]>.Continuation
    let connectionEvents: AsyncStream<MQTTConnectionEvent>
    private let eventInput: AsyncStream<MQTTConnectionEvent>.Continuation
    /// Every publication, in order, as it happens.
    let publications: AsyncStream<Publication>
    private let publicationInput: AsyncStream<Publication>.Continuation

    init() {
        (messageBatches, batchInput) = AsyncStream.makeStream()
        (connectionEvents, eventInput) = AsyncStream.makeStream()
        (publications, publicationInput) = AsyncStream.makeStream()
    }

    var isConnected: Bool { state.withLock { $0.connected } }
    var isStarted: Bool { state.withLock { $0.started } }
    var isStopped: Bool { state.withLock { $0.stopped } }
    var published: [Publication] { state.withLock { $0.published } }
    var subscriptions: [String] { state.withLock { $0.subscriptions } }

    /// The broker accepted the connection.
    func connect() {
        state.withLock { $0.connected = true }
        eventInput.yield(.connected)
    }

    /// The connection broke.
    func disconnect() {
        state.withLock { $0.connected = false }
        eventInput.yield(.disconnected(reason: "test"))
    }

    /// Messages arrive from the broker, as one batch.
    func deliver(_ messages: [MQTTMessage]) { batchInput.yield(messages) }

    func start() { state.withLock { $0.started = true } }

    func stop() async {
        state.withLock {
            $0.stopped = true
            $0.connected = false
        }
        batchInput.finish()
        eventInput.finish()
        publicationInput.finish()
    }

    func setSubscriptions(_ filters: [(filter: String, qos: UInt8)]) throws(MQTTError) {
        state.withLock { $0.subscriptions = filters.map(\.filter) }
    }

    func publishNoWait(topic: String, payload: [UInt8], qos: UInt8, retain: Bool) {
        record(Publication(topic: topic, payload: String(decoding: payload, as: UTF8.self), qos: qos, retain: retain))
    }

    func publish(
        topic: String, payload: [UInt8], qos: UInt8, retain: Bool, timeout: Duration?
    ) async throws(MQTTError) {
        guard isConnected || qos > 0 else { throw MQTTError.notConnected }
        publishNoWait(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    func subscribe(_ filter: String, qos: UInt8, timeout: Duration?) async throws(MQTTError) {
        state.withLock { $0.added.append(filter) }
    }

    func unsubscribe(_ filter: String) { state.withLock { $0.added.removeAll { $0 == filter } } }

    private func record(_ publication: Publication) {
        let stopped = state.withLock { state -> Bool in
            guard !state.stopped else { return true }
            state.published.append(publication)
            return false
        }
        if !stopped { publicationInput.yield(publication) }
    }
}
