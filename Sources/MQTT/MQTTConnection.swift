/// What a part of an application that publishes needs of an MQTT connection. ``MQTTClient`` is the real one;
/// tests drive a component against an in-memory one and watch what it publishes.
public protocol MQTTPublishing: Sendable {
    /// True while connected to the broker.
    var isConnected: Bool { get }
    /// Publishes without waiting for anything; never blocks on the network. Failures are dropped.
    func publishNoWait(topic: String, payload: [UInt8], qos: UInt8, retain: Bool)
    /// Publishes and waits until the message is written (QoS 0) or acknowledged (QoS 1 and 2), at most `timeout`.
    func publish(
        topic: String, payload: [UInt8], qos: UInt8, retain: Bool, timeout: Duration?
    ) async throws(MQTTError)
    /// Adds a filter (renewed on every reconnect) and waits for the broker's acknowledgement, at most `timeout`.
    func subscribe(_ filter: String, qos: UInt8, timeout: Duration?) async throws(MQTTError)
    /// Drops a filter added by ``subscribe(_:qos:timeout:)``.
    func unsubscribe(_ filter: String)
}

/// A connection's whole life: what ``MQTTPublishing`` offers, plus starting, stopping, the configured
/// subscriptions, the messages received and the connection's ups and downs.
public protocol MQTTConnection: MQTTPublishing {
    associatedtype Batches: AsyncSequence<[MQTTMessage], Never> & Sendable
    /// Starts connecting in the background and returns at once.
    func start()
    /// Disconnects cleanly; ``messageBatches`` and ``connectionEvents`` end.
    func stop() async
    /// Everything received, as batches in arrival order. Single consumer.
    var messageBatches: Batches { get }
    /// Connected and disconnected, in order; ends after ``stop()``.
    var connectionEvents: AsyncStream<MQTTConnectionEvent> { get }
    /// Replaces the subscriptions renewed on every (re)connect.
    func setSubscriptions(_ filters: [(filter: String, qos: UInt8)]) throws(MQTTError)
}

extension MQTTClient: MQTTConnection {}
