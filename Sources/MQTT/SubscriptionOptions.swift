import CMosquitto

/// Subscription options beyond QoS (MQTT 5 §3.8.3.1). A subscription's "qos" byte throughout this module is the
/// MQTT 5 options byte: QoS in bits 0–1, and these flags above it. On an MQTT 3.1.1 connection the flags are
/// dropped (3.1.1 has no such options) and only the QoS is sent.
public enum SubscriptionOption {
    /// Don't deliver this client's own publications back to it.
    public static let noLocal: UInt8 = 0x04
    /// Keep the RETAIN flag a message was published with, instead of clearing it on live delivery.
    public static let retainAsPublished: UInt8 = 0x08

    /// The QoS part of an options byte.
    public static func qos(_ options: UInt8) -> UInt8 { options & 0x03 }

    /// Two requests for the same filter merged: the higher QoS and every flag either asked for.
    public static func merge(_ first: UInt8, _ second: UInt8) -> UInt8 {
        max(qos(first), qos(second)) | ((first | second) & ~0x03)
    }
}

/// `mosquitto_subscribe`, or `mosquitto_subscribe_v5` with the options' flags on an MQTT 5 connection.
func subscribe(
    _ mosq: OpaquePointer, _ mid: inout Int32, _ filter: String, options: UInt8, version: MQTTProtocolVersion
) -> Int32 {
    let qos = Int32(SubscriptionOption.qos(options))
    if version == .v5 {
        return mosquitto_subscribe_v5(mosq, &mid, filter, qos, Int32(options & ~0x03), nil)
    }
    return mosquitto_subscribe(mosq, &mid, filter, qos)
}
