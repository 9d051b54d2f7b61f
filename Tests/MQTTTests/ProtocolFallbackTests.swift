import Foundation
import Logging
import MQTT
import Synchronization
import TestSupport
import Testing

/// `protocol = auto`: MQTT 5 first, 3.1.1 once a broker refuses 5.
@Suite(.serialized) struct ProtocolFallbackTests {
    @Test func autoFallsBackToMQTT311WhenTheBrokerRefusesVersion5() async throws {
        let broker = try OnlyMQTT311Broker()
        var configuration = MQTTConfiguration(
            broker: try BrokerURL(parsing: "tcp://127.0.0.1:\(broker.port)"), clientID: "auto-fallback",
            protocolVersion: .auto)
        configuration.reconnectDelay = .seconds(1)
        let client = try MQTTClient(configuration: configuration, logger: Logger(label: "test"))
        client.start()
        #expect(await eventually(timeout: .seconds(15)) { client.isConnected }, "levels seen: \(broker.levels)")
        // First a version-5 CONNECT (refused), then 3.1.1 (protocol level 4), accepted.
        #expect(broker.levels.first == 5)
        #expect(broker.levels.last == 4)
        #expect(broker.levels.filter { $0 == 5 }.count == 1, "\(broker.levels)")
        await client.stop()
    }

    @Test func autoSpeaksMQTT5ToABrokerThatAcceptsIt() async throws {
        let broker = try await MosquittoBroker()
        let client = try await connectedClient(broker) { $0.protocolVersion = .auto }
        // mosquitto logs each client's protocol: "(p5, c1, k60)".
        #expect(await eventually { broker.log.contains("(p5, ") }, "\(broker.log)")
        #expect(!broker.log.contains("(p4, "))
        await client.stop()
    }
}

/// A broker that speaks only MQTT 3.1/3.1.1 (as RabbitMQ's MQTT plugin does): a version-5 CONNECT gets a 3.1.1
/// CONNACK with return code 1 (unacceptable protocol version) and the connection is closed; a 3.1.1 CONNECT is
/// accepted and the connection kept open. Records each CONNECT's protocol level.
final class OnlyMQTT311Broker: Sendable {
    let port: Int
    private let listener: Int32
    private final class Levels: Sendable { let list = Mutex<[UInt8]>([]) }
    private let seen = Levels()

    var levels: [UInt8] { seen.list.withLock { $0 } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, ok, listen(fd, 8) == 0 else { throw TestSupportError("fake broker: errno \(errno)") }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let seen = self.seen
        Thread.detachNewThread {
            while true {
                let connection = accept(fd, nil, nil)
                guard connection >= 0 else { return }
                Thread.detachNewThread { Self.serve(connection, seen: seen) }
            }
        }
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private static func serve(_ fd: Int32, seen: Levels) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        // CONNECT: 0x10, remaining length (one byte here), 0x00 0x04 "MQTT", then the protocol level.
        guard count >= 9, buffer[0] == 0x10 else { return }
        let level = buffer[8]
        seen.list.withLock { $0.append(level) }
        let accepted = level == 4
        let connack: [UInt8] = [0x20, 0x02, 0x00, accepted ? 0x00 : 0x01]
        _ = connack.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard accepted else { return }
        // Keep the session: answer PINGREQ, ignore the rest, until the client goes.
        while true {
            let got = read(fd, &buffer, buffer.count)
            guard got > 0 else { return }
            if buffer[0] == 0xC0 {
                let pong: [UInt8] = [0xD0, 0x00]
                _ = pong.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }
}
