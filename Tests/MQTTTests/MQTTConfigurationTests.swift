import Foundation
import TestSupport
import Testing

@testable import MQTT

/// What `MQTTClient.init` refuses before any connection is attempted. No broker needed.
@Suite struct MQTTConfigurationTests {
    private func client(_ url: String = "tcp://127.0.0.1:1", configure: (inout MQTTConfiguration) -> Void = { _ in })
        throws -> MQTTClient
    {
        var configuration = MQTTConfiguration(broker: try BrokerURL(parsing: url), clientID: "config-test")
        configure(&configuration)
        return try MQTTClient(configuration: configuration)
    }

    @Test func defaultsAreTheDocumentedOnes() throws {
        let configuration = MQTTConfiguration(broker: try BrokerURL(parsing: "mqtt://broker"), clientID: "id")
        #expect(configuration.broker.port == 1883)
        #expect(configuration.keepAlive == 60)
        #expect(configuration.protocolVersion == .v311)
        #expect(configuration.cleanSession)
        #expect(configuration.reconnectDelay == .seconds(1) && configuration.maxReconnectDelay == .seconds(30))
        #expect(configuration.user == nil && configuration.will == nil && configuration.caFile == nil)
        #expect(MQTTProtocolVersion(rawValue: "5") == .v5 && MQTTProtocolVersion(rawValue: "3.1.1") == .v311)
    }

    @Test(arguments: [1, 4, -1, 65536])
    func rejectsKeepAliveOutOfRange(keepAlive: Int) {
        #expect {
            try client { $0.keepAlive = keepAlive }
        } throws: { error in
            (error as? MQTTError) == .invalidConfiguration && "\(error)".contains("keepAlive \(keepAlive)")
        }
    }

    @Test func acceptsKeepAliveOffAndFiveSeconds() throws {
        _ = try client { $0.keepAlive = 0 }
        _ = try client { $0.keepAlive = 5 }
    }

    @Test func rejectsAWillTopicWithWildcards() {
        #expect {
            try client { $0.will = MQTTWill(topic: "daemon/#", payload: []) }
        } throws: { error in
            (error as? MQTTError) == .invalidConfiguration && "\(error)".contains("will topic 'daemon/#'")
        }
    }

    @Test func rejectsAnEmptyClientIDWithAPersistentSession() {
        #expect(throws: MQTTError.invalidConfiguration) {
            try client {
                $0.clientID = ""
                $0.cleanSession = false
            }
        }
    }

    @Test func tlsURLWithoutCAFileUsesTheSystemCADirectory() throws {
        let url = try BrokerURL(parsing: "mqtts://broker.example")
        #expect(url.useTLS && url.port == 8883)
        _ = try client("ssl://broker.example")
        #expect(MQTTConfiguration.systemCAPath == "/etc/ssl/certs")
    }

    @Test func tlsURLWithAMissingCAFileNamesTheFile() {
        #expect {
            try client("ssl://broker.example") { $0.caFile = "/nonexistent/ca.pem" }
        } throws: { error in
            (error as? MQTTError) == .invalidConfiguration && "\(error)".contains("/nonexistent/ca.pem")
        }
    }

    @Test func tlsCertificateWithoutKeyIsRejected() throws {
        let directory = try TemporaryDirectory()
        let cert = directory.file("client.pem")
        try "not really a certificate".write(toFile: cert, atomically: true, encoding: .utf8)
        #expect(throws: MQTTError.invalidConfiguration) {
            try client("mqtts://broker.example") { $0.certFile = cert }
        }
    }

    @Test func invalidFiltersAndQoSAreRejectedWithoutChangingTheSubscriptions() async throws {
        let client = try client()
        #expect(throws: MQTTError.invalidArgument) { try client.setSubscriptions([("ok/#", 0), ("bad/#/x", 0)]) }
        #expect(throws: MQTTError.invalidArgument) { try client.setSubscriptions([("ok", 3)]) }
        await #expect(throws: MQTTError.invalidArgument) { try await client.subscribe("a+b/+x") }
        await #expect(throws: MQTTError.invalidArgument) { try await client.publish(topic: "x", payload: [], qos: 3) }
    }

    @Test func publishingBeforeStartSaysNotStarted() async throws {
        let client = try client()
        await #expect {
            try await client.publish(topic: "x", payload: [1], qos: 1)
        } throws: { error in
            (error as? MQTTError) == .stopped && "\(error)".contains("not started")
        }
        await client.stop()
    }

    @Test func badBrokerURLsAreRefusedWithTheReason() {
        #expect {
            try client("http://broker")
        } throws: { error in
            "\(error)".contains("unsupported scheme 'http'")
        }
    }
}
