/// A message received from the broker, copied out of libmosquitto's buffers.
public struct MQTTMessage: Sendable, Equatable {
    /// The topic it was published on.
    public var topic: String
    /// The payload; empty for an empty message (e.g. a retained-message deletion).
    public var payload: [UInt8]
    /// The QoS it was delivered with (the lower of publish and subscription QoS).
    public var qos: UInt8
    /// True when the broker sent it from its retained store (a replay at subscribe time), not live.
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: UInt8 = 0, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// A change of the connection to the broker.
public enum MQTTConnectionEvent: Sendable, Equatable {
    /// Connected (first time or again); the configured subscriptions have been sent.
    case connected
    /// The connection ended; the client reconnects with backoff unless it was stopped.
    case disconnected(reason: String)
}
