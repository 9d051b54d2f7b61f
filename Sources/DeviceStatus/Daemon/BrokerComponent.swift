import MQTT

/// A part of the daemon that listens to the broker: the status registry, the watchdog, state restoration,
/// operation delivery. `BrokerLink` subscribes to the union of their filters (and nothing else) and hands every
/// message batch to each, in order.
public protocol BrokerComponent: Sendable {
    /// The filters this component needs, with their QoS (and `SubscriptionOption` flags for MQTT 5);
    /// subscribed again on every reconnect.
    var subscriptions: [(filter: TopicFilter, qos: UInt8)] { get }
    /// One batch of messages, in arrival order: those on a topic one of `subscriptions` matches (or every message,
    /// with `takesEveryMessage`). Don't block for long.
    func consume(_ messages: [MQTTMessage]) async
    /// Called after every (re)connect, once the subscriptions are requested.
    func brokerConnected(_ client: any MQTTPublishing) async
    /// Returns once everything consumed so far has taken effect (a component may still be storing batches it
    /// consumed): the link waits for it before it calls the retained replay through.
    func drain() async
    /// Whether the component also listens on topics it subscribes to itself at run time (beyond `subscriptions`):
    /// it is then handed every message. Default false: only messages its filters match.
    var takesEveryMessage: Bool { get }
    /// Whether the component skips, by itself, messages on topics its filters do not match: the link then hands it
    /// every batch as received rather than matching each topic for it too. Default false.
    var skipsOtherTopics: Bool { get }
}

extension BrokerComponent {
    public func brokerConnected(_ client: any MQTTPublishing) async {}
    public func drain() async {}
    public var takesEveryMessage: Bool { false }
    public var skipsOtherTopics: Bool { false }
}

extension StatusRegistry: BrokerComponent {
    /// Status and presence topics at QoS 0: a default mosquitto queues at most 1000 messages per QoS 1 subscriber and drops
    /// the rest of a big retained replay, while QoS 0 ones are written straight to a reader that keeps up.
    public nonisolated var subscriptions: [(filter: TopicFilter, qos: UInt8)] {
        topics.filters.map { ($0, 0) }
    }

    /// Judges the batch and goes on to the next while it is stored (see `drain()`).
    public func consume(_ messages: [MQTTMessage]) async { await consumeBatch(messages) }

    /// Every message goes through the registry's own topic index, which skips topics no source knows.
    public nonisolated var skipsOtherTopics: Bool { true }
}
