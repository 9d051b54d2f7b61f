/// The MQTT protocol version spoken to the broker.
public enum MQTTProtocolVersion: String, Sendable, Equatable, CaseIterable {
    /// MQTT 3.1.1 (protocol level 4), what IotMonitor and most devices speak.
    case v311 = "3.1.1"
    /// MQTT 5.
    case v5 = "5"
    /// MQTT 5 first; MQTT 3.1.1 from the moment a broker refuses 5 ("unacceptable protocol version"), for the rest
    /// of the client's life.
    case auto = "auto"
}

/// A Last Will: the message the broker publishes for the client when the connection ends without a
/// DISCONNECT (crash, network loss, keep-alive expiry). A clean ``MQTTClient/stop()`` does not send it.
public struct MQTTWill: Sendable, Equatable {
    /// The topic; no wildcards.
    public var topic: String
    /// The payload; may be empty.
    public var payload: [UInt8]
    /// 0, 1 or 2; default 1.
    public var qos: UInt8
    /// Default true, so late subscribers see the last state.
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: UInt8 = 1, retain: Bool = true) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// How an ``MQTTClient`` connects. Only `broker` and `clientID` are required.
public struct MQTTConfiguration: Sendable, Equatable {
    /// Where the broker is; `ssl://` and `mqtts://` enable TLS.
    public var broker: BrokerURL
    /// The MQTT client id; "" lets libmosquitto pick a random one (needs `cleanSession`).
    public var clientID: String
    /// User name; default nil (anonymous).
    public var user: String?
    /// Password, sent only with a user; default nil.
    public var password: String?
    /// Keep-alive interval in seconds; default 60. libmosquitto accepts 0 (off) or 5 and more.
    public var keepAlive: Int
    /// Default ``MQTTProtocolVersion/v311``.
    public var protocolVersion: MQTTProtocolVersion
    /// CA certificate file (PEM) for TLS; default nil: the system CA directory `/etc/ssl/certs`.
    public var caFile: String?
    /// Client certificate (PEM) for TLS client authentication; default nil. Needs `keyFile`.
    public var certFile: String?
    /// Client private key (PEM, unencrypted); default nil. Needs `certFile`.
    public var keyFile: String?
    /// Last Will; default nil.
    public var will: MQTTWill?
    /// Start each connection with a fresh session; default true. Subscriptions are renewed on every
    /// connect anyway.
    public var cleanSession: Bool
    /// First pause before reconnecting; default 1 s. It grows after each failed attempt (libmosquitto's
    /// backoff once connected, doubling before the first connection)…
    public var reconnectDelay: Duration
    /// …up to this; default 30 s, so a broker back from an outage is found within half a minute.
    public var maxReconnectDelay: Duration

    /// The system CA directory used for TLS when no `caFile` is given.
    public static let systemCAPath = "/etc/ssl/certs"

    public init(
        broker: BrokerURL,
        clientID: String,
        user: String? = nil,
        password: String? = nil,
        keepAlive: Int = 60,
        protocolVersion: MQTTProtocolVersion = .v311,
        caFile: String? = nil,
        certFile: String? = nil,
        keyFile: String? = nil,
        will: MQTTWill? = nil,
        cleanSession: Bool = true,
        reconnectDelay: Duration = .seconds(1),
        maxReconnectDelay: Duration = .seconds(30)
    ) {
        self.broker = broker
        self.clientID = clientID
        self.user = user
        self.password = password
        self.keepAlive = keepAlive
        self.protocolVersion = protocolVersion
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.will = will
        self.cleanSession = cleanSession
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
    }
}
