import Logging
import MQTT
import Synchronization

/// Everything between the broker and the daemon's components: the client's settings, the union of the
/// components' subscriptions, the ingestion loop, `B/daemon` online/offline, and the marker that tells when the
/// retained replay is through.
struct BrokerLink: Sendable {
    let config: DaemonConfig
    let components: [any BrokerComponent]
    let readiness: Readiness
    let logger: Logger

    var baseTopic: String { config.mqtt.baseTopic }
    var daemonTopic: String { baseTopic + "/daemon" }
    /// Our own marker topic. The broker answers a subscription's retained messages before anything published
    /// after it on the same connection, so when our marker comes back, the replay before it is through.
    var syncTopic: String { baseTopic + "/sync/" + config.mqtt.clientid }

    func makeClient() throws -> MQTTClient {
        let mqtt = config.mqtt
        var settings = MQTTConfiguration(broker: try BrokerURL(parsing: mqtt.serverAddress), clientID: mqtt.clientid)
        settings.user = mqtt.user.isEmpty ? nil : mqtt.user
        settings.password = mqtt.password.isEmpty ? nil : mqtt.password
        settings.keepAlive = mqtt.keepAlive
        settings.protocolVersion = mqtt.protocolVersion
        settings.caFile = mqtt.cafile.isEmpty ? nil : mqtt.cafile
        settings.certFile = mqtt.certfile.isEmpty ? nil : mqtt.certfile
        settings.keyFile = mqtt.keyfile.isEmpty ? nil : mqtt.keyfile
        settings.will = MQTTWill(topic: daemonTopic, payload: Array("offline".utf8), qos: 1, retain: true)
        let client = try MQTTClient(configuration: settings, logger: logger)
        try client.setSubscriptions(subscriptions)
        return client
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

    struct Tasks {
        let ingest: Task<Void, Never>
        let events: Task<Void, Never>
    }

    func startTasks(client: MQTTClient) -> Tasks {
        let marker = SyncMarker()
        let ingest = Task {
            for await batch in client.messageBatches {
                var markerSeen = false
                var messages = batch
                if let index = messages.firstIndex(where: { $0.topic == syncTopic }) {
                    let text = String(decoding: messages[index].payload, as: UTF8.self)
                    markerSeen = marker.current == text
                    messages.removeAll { $0.topic == syncTopic }
                }
                for component in components { await component.consume(messages) }
                if markerSeen, !readiness.replayFinished {
                    readiness.replayDidFinish()
                    logger.info("retained replay received; ready")
                }
            }
        }
        let events = Task {
            for await event in client.connectionEvents {
                switch event {
                case .connected:
                    readiness.mqtt(connected: true)
                    client.publishNoWait(topic: daemonTopic, payload: Array("online".utf8), qos: 1, retain: true)
                    let nonce = "\(UInt64.random(in: 1...UInt64.max))"
                    marker.current = nonce
                    // Repeated until seen: a marker lost with the connection must not leave /readyz at 503.
                    Task {
                        while !readiness.replayFinished, marker.current == nonce, !Task.isCancelled {
                            client.publishNoWait(topic: syncTopic, payload: Array(nonce.utf8), qos: 1, retain: false)
                            try? await Task.sleep(for: .seconds(2))
                        }
                    }
                    for component in components { await component.brokerConnected(client) }
                case .disconnected(let reason):
                    readiness.mqtt(connected: false)
                    logger.debug("broker connection lost", metadata: ["reason": "\(reason)"])
                }
            }
        }
        return Tasks(ingest: ingest, events: events)
    }

    /// Publishes `B/daemon offline` (the Last Will is not sent on a clean disconnect), then disconnects.
    func stop(client: MQTTClient, tasks: Tasks) async {
        if client.isConnected {
            // Bounded: a broker that has gone quiet must not hold up the stop.
            try? await client.publish(
                topic: daemonTopic, payload: Array("offline".utf8), qos: 1, retain: true, timeout: .seconds(1))
        }
        await client.stop()
        tasks.events.cancel()
        tasks.ingest.cancel()
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
