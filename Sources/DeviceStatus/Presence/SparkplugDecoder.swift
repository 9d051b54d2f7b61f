import MQTT

/// Sparkplug B (placeholder until the protobuf decoding lands).
public struct SparkplugDecoder: PresenceDecoder {
    public var source: PresenceSource { .sparkplug }
    public let type: String?
    public let prefix: String
    public let filters: [TopicFilter]

    public init(type: String?, prefix: String) {
        self.type = type
        self.prefix = prefix
        filters = []
    }

    public func match(topic: String) -> TopicMatch? { nil }

    public func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded {
        .malformed("not supported")
    }
}
