import Logging
import MQTT
import ServiceLifecycle
import Synchronization

/// Everything between the broker and the daemon's components: the client and its settings, the union of the
/// components' subscriptions, the ingestion loop, `B/daemon` online/offline, and the marker that tells when the
/// retained replay is through. Runs (connects, ingests, follows the connection) in ``run()``; on a graceful
/// shutdown publishes `B/daemon offline` and disconnects.
struct BrokerLink<Connection: MQTTConnection>: Service {
    let config: DaemonConfig
    let components: [any BrokerComponent]
    let readiness: Readiness
    let logger: Logger
    /// Created (not connected) with the link: its settings are checked at assembly.
    let client: Connection
    /// Which components each message goes to (rebuilt by `refreshRouting()` when subscriptions change).
    private let router: RouterBox
    /// What the marker's repetition waits on; tests pass a clock they advance.
    let clock: any Clock<Duration>

    var baseTopic: String { config.mqtt.baseTopic }
    var daemonTopic: String { baseTopic + "/daemon" }
    /// Our own marker topic. The broker answers a subscription's retained messages before anything published
    /// after it on the same connection, so when our marker comes back, the replay before it is through.
    var syncTopic: String { baseTopic + "/sync/" + config.mqtt.clientid }
    /// How often the replay marker is published again while it has not come back: a marker lost with the
    /// connection must not leave `/readyz` at 503.
    static var markerRepeat: Duration { .seconds(2) }

    /// - Parameter clock: default `ContinuousClock`.
    init(
        config: DaemonConfig, components: [any BrokerComponent], readiness: Readiness, logger: Logger,
        client: Connection, clock: any Clock<Duration> = ContinuousClock()
    ) throws(MQTTError) {
        self.config = config
        self.components = components
        self.readiness = readiness
        self.logger = logger
        self.client = client
        self.clock = clock
        self.router = RouterBox(ComponentRouter(components))
        try client.setSubscriptions(subscriptions)
    }

    /// Routes by the components' current filters: call when they change (a reload), before subscribing to them.
    func refreshRouting() {
        router.current = ComponentRouter(components)
    }

    /// The components' filters, each once with the highest QoS and every option asked for, in the order first
    /// asked; the marker last.
    var subscriptions: [(filter: String, qos: UInt8)] {
        var order: [String] = []
        var qos: [String: UInt8] = [:]
        for component in components {
            for subscription in component.subscriptions {
                let text = subscription.filter.text
                if let existing = qos[text] {
                    qos[text] = SubscriptionOption.merge(existing, subscription.qos)
                } else {
                    order.append(text)
                    qos[text] = subscription.qos
                }
            }
        }
        return order.map { ($0, qos[$0]!) } + [(syncTopic, 1)]
    }

    /// Connects, hands every batch to the components and follows the connection until a graceful shutdown (or
    /// cancellation); then stops the client, which ends both loops.
    func run() async {
        client.start()
        let marker = SyncMarker()
        // Messages of a connection reach the components only after they were told of it (`brokerConnected`): the
        // two streams are followed by two tasks, and a retained replay may be read before the connection event.
        let (introduced, introduce) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { group in
            group.addTask { await ingest(marker: marker, after: introduced) }
            group.addTask { await followConnection(marker: marker, introduce: introduce) }
            try? await gracefulShutdown()
            await stop()
        }
    }

    private func ingest(marker: SyncMarker, after introduced: AsyncStream<Void>) async {
        var waitingForIntroduction = true
        let syncTopic = syncTopic
        for await batch in client.messageBatches {
            if waitingForIntroduction {
                waitingForIntroduction = false
                for await _ in introduced { break }
            }
            var markerSeen = false
            var messages = batch
            if let index = messages.firstIndex(where: { $0.topic == syncTopic }) {
                let text = String(decoding: messages[index].payload, as: UTF8.self)
                markerSeen = marker.current == text
                messages.removeAll { $0.topic == syncTopic }
            }
            // One walk of one index per message decides which components it goes to; each still gets its batch
            // (empty or not) in order.
            let routed = router.current.route(messages)
            for (position, component) in components.enumerated() { await component.consume(routed[position]) }
            if markerSeen, !readiness.replayFinished {
                // Through once the components serve what came before the marker, not merely received it.
                for component in components { await component.drain() }
                readiness.replayDidFinish()
                logger.info("retained replay received; ready")
            }
        }
    }

    private func followConnection(marker: SyncMarker, introduce: AsyncStream<Void>.Continuation) async {
        defer { introduce.finish() }
        await withDiscardingTaskGroup { markers in
            for await event in client.connectionEvents {
                switch event {
                case .connected:
                    readiness.mqtt(connected: true)
                    client.publishNoWait(topic: daemonTopic, payload: Array("online".utf8), qos: 1, retain: true)
                    let nonce = "\(UInt64.random(in: 1...UInt64.max))"
                    marker.current = nonce
                    markers.addTask { await repeatMarker(nonce, marker: marker) }
                    for component in components { await component.brokerConnected(client) }
                    introduce.yield()
                case .disconnected(let reason):
                    readiness.mqtt(connected: false)
                    logger.debug("broker connection lost", metadata: ["reason": "\(reason)"])
                }
            }
            // The client stopped: markers still repeating have nobody to reach.
            markers.cancelAll()
        }
    }

    /// Publishes the marker until it has come back or a newer connection has a marker of its own.
    private func repeatMarker(_ nonce: String, marker: SyncMarker) async {
        while !readiness.replayFinished, marker.current == nonce {
            client.publishNoWait(topic: syncTopic, payload: Array(nonce.utf8), qos: 1, retain: false)
            do { try await clock.sleep(for: Self.markerRepeat) } catch { return }
        }
    }

    /// Publishes `B/daemon offline` (the Last Will is not sent on a clean disconnect), then disconnects; the
    /// client's streams end, and with them both loops.
    private func stop() async {
        if client.isConnected {
            // Bounded: a broker that has gone quiet must not hold up the stop.
            try? await client.publish(
                topic: daemonTopic, payload: Array("offline".utf8), qos: 1, retain: true, timeout: .seconds(1))
        }
        await client.stop()
    }
}

extension BrokerLink where Connection == MQTTClient {
    /// The link over a real client built from `[mqtt]`.
    /// - Throws: what the broker settings have wrong (a URL that does not parse, TLS files libmosquitto refuses).
    init(config: DaemonConfig, components: [any BrokerComponent], readiness: Readiness, logger: Logger) throws {
        let mqtt = config.mqtt
        var settings = MQTTConfiguration(broker: try BrokerURL(parsing: mqtt.serverAddress), clientID: mqtt.clientid)
        settings.user = mqtt.user.isEmpty ? nil : mqtt.user
        settings.password = mqtt.password.isEmpty ? nil : mqtt.password
        settings.keepAlive = mqtt.keepAlive
        settings.protocolVersion = mqtt.protocolVersion
        settings.caFile = mqtt.cafile.isEmpty ? nil : mqtt.cafile
        settings.certFile = mqtt.certfile.isEmpty ? nil : mqtt.certfile
        settings.keyFile = mqtt.keyfile.isEmpty ? nil : mqtt.keyfile
        settings.will = MQTTWill(
            topic: mqtt.baseTopic + "/daemon", payload: Array("offline".utf8), qos: 1, retain: true)
        try self.init(
            config: config, components: components, readiness: readiness, logger: logger,
            client: try MQTTClient(configuration: settings, logger: logger))
    }
}

/// Which components a message goes to: one topic index over the components' filters, walked once per message. A
/// component that `takesEveryMessage`, or that `skipsOtherTopics` itself (the status registry), gets the batch as
/// received, and its filters are left out of the index: with the registry's out, a status message leaves the walk
/// at its first level.
struct ComponentRouter: Sendable {
    private var index = TopicFilterIndex<Int>()
    /// Components handed every batch whole.
    private let whole: [Int]
    private let count: Int

    init(_ components: [any BrokerComponent]) {
        count = components.count
        whole = components.indices.filter { components[$0].takesEveryMessage || components[$0].skipsOtherTopics }
        for (position, component) in components.enumerated() where !whole.contains(position) {
            for subscription in component.subscriptions { index.insert(subscription.filter, position) }
        }
    }

    /// `messages` split by component (by position), each in arrival order; a message goes to a component once even
    /// when several of its filters match.
    func route(_ messages: [MQTTMessage]) -> [[MQTTMessage]] {
        var routed = Array(repeating: [MQTTMessage](), count: count)
        for position in whole { routed[position] = messages }
        guard index.count > 0 else { return routed }
        for message in messages {
            var taken: UInt64 = 0
            index.forEachMatch(message.topic) { position in
                let bit: UInt64 = position < 64 ? 1 << UInt64(position) : 0
                guard bit == 0 || taken & bit == 0 else { return }
                taken |= bit
                routed[position].append(message)
            }
        }
        return routed
    }
}

/// The router in use, replaced whole on a reload.
final class RouterBox: Sendable {
    private let value: Mutex<ComponentRouter>

    init(_ router: ComponentRouter) { value = Mutex(router) }

    var current: ComponentRouter {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// The nonce of the replay marker in flight.
final class SyncMarker: Sendable {
    private let value = Mutex<String?>(nil)

    var current: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
