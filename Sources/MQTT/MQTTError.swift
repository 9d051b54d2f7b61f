import CMosquitto

#if canImport(Glibc)
    import Glibc
#endif

/// Why an MQTT operation failed. Compare with the static members (`error == .notConnected`); the
/// ``description`` carries the detail a person needs (the call, the topic, libmosquitto's own words).
public struct MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Sendable, Equatable {
        case invalidConfiguration, invalidArgument, notConnected, timedOut, cancelled, stopped, rejected, library
    }

    private let code: Code
    /// One line for a person: what failed and why.
    public let description: String

    private init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    /// Errors are equal when they are of the same kind, whatever their detail.
    public static func == (lhs: MQTTError, rhs: MQTTError) -> Bool { lhs.code == rhs.code }

    /// The configuration cannot be used (bad client id, TLS files, will topic…).
    public static let invalidConfiguration = MQTTError(.invalidConfiguration, "invalid MQTT configuration")
    /// A topic, filter, QoS or payload the library refuses.
    public static let invalidArgument = MQTTError(.invalidArgument, "invalid MQTT argument")
    /// There is no connection to the broker right now (the client keeps reconnecting).
    public static let notConnected = MQTTError(.notConnected, "not connected to the MQTT broker")
    /// The broker did not acknowledge within the caller's timeout.
    public static let timedOut = MQTTError(.timedOut, "the MQTT broker did not acknowledge in time")
    /// The waiting task was cancelled.
    public static let cancelled = MQTTError(.cancelled, "cancelled while waiting for the MQTT broker")
    /// The client was stopped (or never started).
    public static let stopped = MQTTError(.stopped, "the MQTT client is stopped")
    /// The broker answered with a failure (SUBACK 0x80, an MQTT 5 reason code ≥ 0x80).
    public static let rejected = MQTTError(.rejected, "the MQTT broker rejected the request")
    /// Any other libmosquitto failure.
    public static let library = MQTTError(.library, "libmosquitto failed")

    /// The same kind of error with a specific description.
    func with(_ detail: String) -> MQTTError { MQTTError(code, detail) }

    /// Maps a libmosquitto return code of `call` to an error naming the call and libmosquitto's reason.
    static func mosquitto(_ rc: Int32, _ call: String) -> MQTTError {
        let reason: String
        if rc == Int32(MOSQ_ERR_ERRNO.rawValue) {
            reason = String(cString: strerror(errno))
        } else {
            reason = String(cString: mosquitto_strerror(rc))
        }
        let text = "\(call): \(reason)"
        switch rc {
        case Int32(MOSQ_ERR_NO_CONN.rawValue), Int32(MOSQ_ERR_CONN_LOST.rawValue): return notConnected.with(text)
        case Int32(MOSQ_ERR_INVAL.rawValue), Int32(MOSQ_ERR_MALFORMED_UTF8.rawValue),
            Int32(MOSQ_ERR_PAYLOAD_SIZE.rawValue), Int32(MOSQ_ERR_QOS_NOT_SUPPORTED.rawValue),
            Int32(MOSQ_ERR_OVERSIZE_PACKET.rawValue):
            return invalidArgument.with(text)
        default: return library.with(text)
        }
    }
}
