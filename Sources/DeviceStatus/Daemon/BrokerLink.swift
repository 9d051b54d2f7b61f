import Logging
import MQTT
import Synchronization

/// Everything between the broker and the registry: the client's settings and subscriptions, the ingestion loop,
/// `B/daemon` online/offline, and the marker that tells when the retained replay is through.
struct BrokerLink: Sendable {
    let config: DaemonConfig
    let registry: StatusRegistry
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
        // Status topics at QoS 0: a default mosquitto queues at most 1000 messages per QoS 1 subscriber and drops
        // the rest of a big retained replay, while QoS 0 ones are written straight to a reader that keeps up.
        var subscriptions = config.status.topics.map { (filter: $0.text, qos: UInt8(0)) }
        subscriptions.append((filter: syncTopic, qos: 1))
        try client.setSubscriptions(subscriptions)
        return client
    }

    struct Tasks {
        let ingest: Task<Void, Never>
        let events: Task<Void, Never>
    }

    func startTasks(client: MQTTClient) -> Tasks {
        let marker = SyncMarker()
        let ingest = Task {
            for await batch in client.messageBatches {
                var statusMessages: [MQTTMessage] = []
                statusMessages.reserveCapacity(batch.count)
                var markerSeen = false
                for message in batch {
                    if message.topic == syncTopic {
                        let text = String(decoding: message.payload, as: UTF8.self)
                        if marker.current == text { markerSeen = true }
                    } else {
                        statusMessages.append(message)
                    }
                }
                await registry.ingest(statusMessages)
                if markerSeen, !readiness.replayFinished {
                    readiness.replayDidFinish()
                    logger.info("retained status replay received", metadata: ["devices": "\(registry.table.count)"])
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
            let offline = Task {
                try await client.publish(topic: daemonTopic, payload: Array("offline".utf8), qos: 1, retain: true)
            }
            // Don't let a broker that has gone quiet hold up the stop.
            let timeout = Task {
                try await Task.sleep(for: .seconds(1))
                offline.cancel()
            }
            _ = await offline.result
            timeout.cancel()
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
