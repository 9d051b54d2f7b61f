import Foundation
import TestSupport
import Testing

@testable import MQTT

/// `ssl://` end to end: a throw-away CA and server certificate from openssl, and a second, TLS
/// listener on the test broker.
@Suite struct MQTTTLSTests {
    /// Writes ca.crt, server.crt and server.key into `directory` (EC keys: fast to generate).
    private func makeCertificates(in directory: TemporaryDirectory) async throws {
        let script = """
            set -e
            cd '\(directory.path)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
                -days 2 -subj /CN=devstatusd-test-ca
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
                -subj /CN=localhost
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
                -extfile san.ext
            """
        let openssl = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", script], outputPath: directory.file("openssl.log"))
        guard await openssl.waitForExit(timeout: .seconds(30)) == .exited(0) else {
            throw TestSupportError("openssl failed:\n\(openssl.output)")
        }
    }

    @Test func connectsOverTLSWithTheConfiguredCAFileAndNotWithoutIt() async throws {
        let directory = try TemporaryDirectory()
        try await makeCertificates(in: directory)
        let tlsPort = try FreePort.next()
        let broker = try await MosquittoBroker(extraConfig: [
            "listener \(tlsPort) 127.0.0.1",
            "cafile \(directory.file("ca.crt"))",
            "certfile \(directory.file("server.crt"))",
            "keyfile \(directory.file("server.key"))",
        ])
        defer { broker.kill() }

        var configuration = MQTTConfiguration(
            broker: try BrokerURL(parsing: "ssl://127.0.0.1:\(tlsPort)"), clientID: "tls-test")
        configuration.caFile = directory.file("ca.crt")
        let client = try MQTTClient(configuration: configuration)
        let received = Received(client)
        client.start()
        #expect(await eventually(timeout: .seconds(10)) { client.isConnected }, "broker log:\n\(broker.log)")
        try await client.subscribe("tls/#", qos: 1, timeout: .seconds(5))
        try await client.publish("tls/hello", "secret")
        #expect(await received.wait(for: 1))
        #expect(received.messages.first?.text == "secret")
        await client.stop()

        // The system CAs do not know our test CA: the handshake fails and the client stays disconnected.
        configuration.caFile = nil
        configuration.clientID = "tls-untrusted"
        let untrusted = try MQTTClient(configuration: configuration)
        untrusted.start()
        // The broker sees the handshake fail (the client refuses its certificate).
        #expect(await eventually(timeout: .seconds(10)) { broker.log.contains("OpenSSL Error") }, "\(broker.log)")
        #expect(!untrusted.isConnected)
        await untrusted.stop()
    }
}
