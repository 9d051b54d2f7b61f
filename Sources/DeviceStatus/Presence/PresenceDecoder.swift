import MQTT

/// Where a topic led: the decoder that owns it, the device it names, and what the topic itself says (some
/// conventions put the status or the message kind in the topic: EMQX `connected`, Sparkplug `NDEATH`).
public struct TopicMatch: Sendable, Equatable {
    public var key: DeviceKey
    /// A decoder-defined tag taken from the topic; 0 when the topic says nothing more.
    public var kind: UInt8

    public init(key: DeviceKey, kind: UInt8 = 0) {
        self.key = key
        self.kind = kind
    }
}

/// One presence convention: the filters it subscribes to, how it reads a device key from a topic, and how it
/// turns a message's bytes into an observation. Adding a convention is one decoder and one row in
/// `PresencePreset`.
public protocol PresenceDecoder: Sendable {
    var source: PresenceSource { get }
    /// What to subscribe to (QoS 0 each: see `StatusRegistry.subscriptions`).
    var filters: [TopicFilter] { get }
    /// The device a topic names, if the topic is one of this convention's.
    func match(topic: String) -> TopicMatch?
    /// Decodes a non-empty payload of a topic `match(topic:)` accepted. `retained`: delivered from the broker's
    /// retained store.
    func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded
}

/// What a decoder may judge a message against besides its bytes.
public struct DecodeContext: Sendable {
    /// The daemon's wall clock when the batch arrived, in nanoseconds since the epoch.
    public var now: Int64
    /// `[status] maxClockSkew`: a source time further ahead of `now` is malformed.
    public var clockSkew: ClockSkewLimit

    public init(now: Int64, clockSkew: ClockSkewLimit = .default) {
        self.now = now
        self.clockSkew = clockSkew
    }
}

/// Maps a topic to its decoder and device once: a trie over every configured filter, then that decoder's own
/// reading of the topic (first decoder that names a device wins, in configuration order).
public struct TopicIndex: Sendable {
    public let decoders: [any PresenceDecoder]
    private var index = TopicFilterIndex<Int>()

    public init(decoders: [any PresenceDecoder]) {
        self.decoders = decoders
        for (position, decoder) in decoders.enumerated() {
            for filter in decoder.filters { index.insert(filter, position) }
        }
    }

    /// Every filter to subscribe to, once each, in configuration order.
    public var filters: [TopicFilter] {
        var seen = Set<String>()
        return decoders.flatMap(\.filters).filter { seen.insert($0.text).inserted }
    }

    /// The decoder (its position in `decoders`) and the device a topic names, or nil when no decoder's topic.
    public func route(_ topic: String) -> (decoder: Int, match: TopicMatch)? {
        if decoders.count == 1 {
            return decoders[0].match(topic: topic).map { (0, $0) }
        }
        var best: (decoder: Int, match: TopicMatch)?
        index.forEachMatch(topic) { position in
            guard best == nil || position < best!.decoder, let match = decoders[position].match(topic: topic) else {
                return
            }
            best = (position, match)
        }
        return best
    }
}
