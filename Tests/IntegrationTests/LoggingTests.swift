import Foundation
import MQTT
import TestSupport
import Testing

/// What the daemon's log says and where it goes: the journal's native fields, the level from the config and
/// SIGHUP, status transitions, the access log, and a client id taken over by another client.
@Suite(.serialized) struct LoggingTests {
    /// `JOURNAL_STREAM` as systemd sets it (`device:inode` of the stream) for a file standing in for the journal's
    /// stream: the daemon compares it with its stderr to know it runs under journald.
    static func journalStream(in directory: TemporaryDirectory) throws -> String {
        let path = directory.file("daemon.log")
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw TestSupportError("cannot create \(path)")
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestSupportError("cannot stat \(path)") }
        return "\(info.st_dev):\(info.st_ino)"
    }

    @Test func underJournaldEntriesCarryDeviceFieldsForJournalctl() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-journal")
        // The test plays journald: a datagram socket where the daemon is told the journal's socket is.
        let journal = try JournalListener(path: directory.file("journal.socket"))
        journal.start()
        let stream = try Self.journalStream(in: directory)
        let daemon = try await Daemon(
            brokerURL: broker.url, directory: directory,
            environment: [
                "JOURNAL_STREAM": stream, "DEVSTATUSD_JOURNAL_SOCKET": journal.path,
            ])
        let client = try await connectedClient(broker)
        try await client.publish(monTopic("type1", "ps1"), mon("Connect", "2024-01-02T03:04:05.000Z"))

        let transition = await journal.next {
            $0["DEVICE_ID"] == "ps1" && $0["MESSAGE"]?.hasPrefix("status changed") == true
        }
        let entry = try #require(transition, "no entry for ps1; received \(journal.entries)")
        #expect(entry["DEVICE_TYPE"] == "type1")
        #expect(entry["PRIORITY"] == "7")
        #expect(entry["SYSLOG_IDENTIFIER"] == "devstatusd")
        #expect(entry["TO"] == "online")
        #expect(entry["SOURCE"] != nil)
        // The journal names the program itself: the message does not repeat it.
        #expect(journal.entries.allSatisfy { $0["MESSAGE"]?.hasPrefix("devstatusd") == false })
        #expect(
            journal.entries.contains {
                $0["PRIORITY"] == "6" && $0["MESSAGE"]?.hasPrefix("HTTP server listening") == true
            })
        await daemon.stop()
        // Everything went to the native socket, nothing to the stream.
        #expect(daemon.log.isEmpty, "\(daemon.log)")
        await client.stop()
    }

    @Test func withoutTheJournalSocketLinesGoToStderrWithPrioritiesAndNoPrefix() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-journal")
        let stream = try Self.journalStream(in: directory)
        let daemon = try await Daemon(
            brokerURL: broker.url, directory: directory,
            environment: [
                "JOURNAL_STREAM": stream,
                "DEVSTATUSD_JOURNAL_SOCKET": directory.file("no-such.socket"),
            ])
        await daemon.stop()
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("<6>HTTP server listening") }, "\(daemon.log)")
        #expect(!daemon.log.contains("devstatusd: "), "\(daemon.log)")
    }

    @Test func levelComesFromTheConfigAndSIGHUPAppliesAChangeWithTheAccessLog() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-log")
        let daemon = try await Daemon(
            brokerURL: broker.url, config: "[log]\nlevel = \"warning\"\n", directory: directory, logLevel: nil)
        #expect(try daemon.get("/healthz").status == 200)
        #expect(!daemon.log.contains("INFO"), "\(daemon.log)")

        try "[log]\nlevel = \"debug\"\naccess = true\n".write(
            toFile: directory.file("config.toml"), atomically: true, encoding: .utf8)
        kill(daemon.process.pid, SIGHUP)
        #expect(await eventually { daemon.log.contains("log level changed from=warning to=debug") }, "\(daemon.log)")
        #expect(await eventually { daemon.log.contains("configuration reloaded") })
        #expect(try daemon.get("/healthz").status == 200)
        #expect(await eventually { daemon.log.contains("request method=GET ms=") }, "\(daemon.log)")
        #expect(daemon.log.contains("route=/healthz status=200"), "\(daemon.log)")

        // Transitions from every source at debug.
        let client = try await connectedClient(broker)
        try await client.publish(monTopic("type1", "ps7"), mon("Connect", "2024-01-02T03:04:05.000Z", id: "ps7"))
        let line = "DEBUG   devstatusd: status changed deviceId=ps7 deviceType=type1 from=unknown"
        #expect(await eventually { daemon.log.contains(line) }, "\(daemon.log)")
        #expect(await daemon.stop() == .exited(0))
        await client.stop()
    }

    @Test func theLogLevelFlagWinsOverTheConfig() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: "[log]\nlevel = \"debug\"\n", logLevel: "error")
        #expect(await daemon.stop() == .exited(0))
        #expect(!daemon.log.contains("DEBUG") && !daemon.log.contains("INFO"), "\(daemon.log)")
    }

    @Test func aClientIdTakenOverIsLoggedOnceAsAnErrorAndBacksOff() async throws {
        let broker = try await MosquittoBroker()
        let clientID = "devstatusd-\(UInt32.random(in: 0...UInt32.max))"
        let daemon = try await Daemon(
            brokerURL: broker.url, config: "[mqtt]\nclientid = \"\(clientID)\"\nprotocol = \"5\"\n")
        // A second instance with the same client id. mosquitto 2.0 closes the replaced connection without MQTT 5's
        // reason 0x8E, so the two throw each other off until the daemon recognises the pattern.
        let intruder = try MQTTClient(
            configuration: MQTTConfiguration(
                broker: BrokerURL(parsing: broker.url), clientID: clientID, protocolVersion: .v5),
            logger: .init(label: "intruder"))
        intruder.start()
        let error = "ERROR   devstatusd: MQTT session taken over: another client connected with this client id"
        #expect(await eventually(timeout: .seconds(30)) { daemon.log.contains(error) }, "\(daemon.log)")
        #expect(daemon.log.contains("clientid=\(clientID)"))
        #expect(daemon.log.contains("retryInSeconds=30"))
        #expect(daemon.log.ranges(of: error).count == 1)
        // Two lost connections before the third tells: not a loop of them.
        #expect(daemon.log.ranges(of: "lost the connection").count < 3, "\(daemon.log)")
        // The daemon backs off: the other client gets (and keeps, for 30 s) the session.
        #expect(await eventually { intruder.isConnected })
        #expect(await daemon.stop() == .exited(0))
        await intruder.stop()
    }
}

/// A datagram socket bound where the daemon is told journald listens; collects entries in the native journal
/// format (`NAME=value` lines, or `NAME`, a 64-bit little-endian length and the value for values with newlines).
final class JournalListener: @unchecked Sendable {  // `received` is guarded by `lock`
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [[String: String]] = []

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0 else { throw TestSupportError("cannot bind \(path): errno \(errno)") }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    /// Reads on a thread of its own, as journald does: a datagram socket's queue is short, and a full one blocks
    /// the sender.
    func start() {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 1 << 17)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                let entry = Self.parse(Array(buffer[0..<count]))
                lock.withLock { received.append(entry) }
            }
        }
    }

    /// Every entry received so far.
    var entries: [[String: String]] { lock.withLock { received } }

    /// The first entry matching `predicate`, waiting up to 20 s for it.
    func next(_ predicate: @escaping ([String: String]) -> Bool) async -> [String: String]? {
        var found: [String: String]?
        _ = await eventually(timeout: .seconds(20)) {
            found = self.entries.first(where: predicate)
            return found != nil
        }
        return found
    }

    static func parse(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "=") })
            else { break }
            let name = String(decoding: bytes[index..<end], as: UTF8.self)
            if bytes[end] == UInt8(ascii: "=") {
                let valueEnd = bytes[(end + 1)...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                fields[name] = String(decoding: bytes[(end + 1)..<valueEnd], as: UTF8.self)
                index = valueEnd + 1
            } else {
                var length: UInt64 = 0
                for shift in 0..<8 { length |= UInt64(bytes[end + 1 + shift]) << (8 * UInt64(shift)) }
                let start = end + 9
                fields[name] = String(decoding: bytes[start..<(start + Int(length))], as: UTF8.self)
                index = start + Int(length) + 1
            }
        }
        return fields
    }
}
