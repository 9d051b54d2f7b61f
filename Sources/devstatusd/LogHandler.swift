import CSysShims
import Foundation
import Logging
import Synchronization

/// The daemon's log level, shared by every logger: `--log-level`, else `[log] level`, else info; a SIGHUP applies a
/// changed `[log] level` to loggers that already exist.
final class SharedLogLevel: Sendable {
    private let raw: Atomic<Int>

    init(_ level: Logger.Level) { raw = Atomic(Self.index(level)) }

    var level: Logger.Level {
        get { Logger.Level.allCases[raw.load(ordering: .relaxed)] }
        set { raw.store(Self.index(newValue), ordering: .relaxed) }
    }

    private static func index(_ level: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: level) ?? 2 }
}

/// Where log entries go.
enum LogDestination: Sendable {
    /// A terminal or a file: one line per entry, `2026-01-02T03:04:05.678Z INFO    devstatusd: message key=value`.
    case console
    /// Under systemd (stderr is the journal, per `$JOURNAL_STREAM`): entries go to the journal's native socket with
    /// `PRIORITY=`, `MESSAGE=`, `SYSLOG_IDENTIFIER=devstatusd` and one field per metadata key (`deviceType` →
    /// `DEVICE_TYPE=`, so `journalctl DEVICE_ID=ps1` finds a device's entries). Without that socket (or for an entry
    /// it refuses), a stderr line `<6>message key=value`: the `<N>` prefix is the priority, and the journal adds
    /// timestamp and identifier itself, so the line carries neither.
    case journal(JournalSocket?)
}

/// One entry per event: see ``LogDestination``. Metadata values are quoted when they hold a space, a quote or an
/// `=`, so logfmt readers see one value (an agent's output line is such a value, never fields of its own).
struct DaemonLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    let label: String
    let destination: LogDestination
    let shared: SharedLogLevel
    /// A level set on this logger alone (`logger.logLevel = …`); nil follows the shared level.
    private var override: Logger.Level?

    init(label: String, shared: SharedLogLevel, destination: LogDestination) {
        self.label = label
        self.shared = shared
        self.destination = destination
    }

    var logLevel: Logger.Level {
        get { override ?? shared.level }
        set { override = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.sorted(by: { $0.key < $1.key }).map { ($0.key, "\($0.value)") }
        var text = "\(event.message)"
        for (key, value) in fields { text += " \(key)=\(Self.quoted(value))" }
        switch destination {
        case .console:
            let level = event.level.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0)
            Self.writeStderr("\(Self.timestamp()) \(level) \(label): \(text)\n")
        case .journal(let socket):
            if let socket, socket.send(Self.journalEntry(level: event.level, message: text, fields: fields)) { return }
            Self.writeStderr("<\(Self.syslogPriority(event.level))>\(text)\n")
        }
    }

    /// The native journal protocol (systemd's "Native Journal Protocol"): `NAME=value\n` per field, or, for a value
    /// with a newline, `NAME\n`, its length as 64-bit little endian, the value and `\n`.
    static func journalEntry(level: Logger.Level, message: String, fields: [(String, String)]) -> [UInt8] {
        var entry: [UInt8] = []
        entry.reserveCapacity(message.utf8.count + 128)
        append("PRIORITY", "\(syslogPriority(level))", to: &entry)
        append("SYSLOG_IDENTIFIER", "devstatusd", to: &entry)
        append("MESSAGE", message, to: &entry)
        for (key, value) in fields {
            guard let name = journalFieldName(key) else { continue }
            append(name, value, to: &entry)
        }
        return entry
    }

    private static func append(_ name: String, _ value: String, to entry: inout [UInt8]) {
        entry += name.utf8
        if value.utf8.contains(UInt8(ascii: "\n")) {
            entry.append(UInt8(ascii: "\n"))
            withUnsafeBytes(of: UInt64(value.utf8.count).littleEndian) { entry += $0 }
        } else {
            entry.append(UInt8(ascii: "="))
        }
        entry += value.utf8
        entry.append(UInt8(ascii: "\n"))
    }

    /// Fields the journal or this handler set itself; a metadata key that would give one of them gets a prefix.
    private static let reservedFields: Set<String> = ["PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE", "MESSAGE_ID"]

    /// A metadata key as a journal field name: `deviceType` → `DEVICE_TYPE`, `deviceID` → `DEVICE_ID`, other
    /// characters → `_`; only A–Z, 0–9 and `_`, not starting with `_` or a digit (journald drops those), at most
    /// 64 characters. nil when nothing is left.
    static func journalFieldName(_ key: String) -> String? {
        var name = ""
        var previous: Unicode.Scalar?
        for scalar in key.unicodeScalars {
            switch scalar {
            case "A"..."Z":
                if let previous, ("a"..."z").contains(previous) || ("0"..."9").contains(previous) { name += "_" }
                name.unicodeScalars.append(scalar)
            case "a"..."z":
                name += String(scalar).uppercased()
            case "0"..."9":
                name.unicodeScalars.append(scalar)
            default:
                name += "_"
            }
            previous = scalar
        }
        while let first = name.unicodeScalars.first, first == "_" || ("0"..."9").contains(first) {
            name.unicodeScalars.removeFirst()
        }
        guard !name.isEmpty else { return nil }
        if reservedFields.contains(name) { name = "DEVSTATUSD_" + name }
        return String(name.prefix(64))
    }

    /// syslog(3) priorities as sd-daemon(3) reads them.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Whether stderr is connected to the journal, per systemd.exec(5) `$JOURNAL_STREAM` (`device:inode`).
    static func stderrIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// The destination for this process: the journal when stderr is the journal, else the console.
    /// `$DEVSTATUSD_JOURNAL_SOCKET` replaces journald's socket path (tests bind their own).
    static func destination(environment: [String: String] = ProcessInfo.processInfo.environment) -> LogDestination {
        guard stderrIsJournal(environment: environment) else { return .console }
        let path = environment["DEVSTATUSD_JOURNAL_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        return .journal(JournalSocket(path: path ?? JournalSocket.systemPath))
    }

    private static func writeStderr(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    private static func quoted(_ text: String) -> String {
        guard text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" || $0 == "\\" }) else {
            return text
        }
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"" + escaped + "\""
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec / 1_000_000)
    }
}

/// journald's native datagram socket. Each entry is one datagram sent to the path (not connected, so a restarted
/// journald is found again); an entry the socket refuses (too big, journald gone) falls back to stderr.
final class JournalSocket: Sendable {
    static let systemPath = "/run/systemd/journal/socket"
    let path: String
    private let fd: Int32

    /// nil when `path` is not a socket.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        // As sd-journal does: room for large entries, so a busy journal delays rather than drops them.
        var size: Int32 = 8 * 1024 * 1024
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one entry; false if the journal did not take it.
    func send(_ entry: [UInt8]) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        return entry.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    while true {
                        let sent = sendto(
                            fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), pointer,
                            socklen_t(MemoryLayout<sockaddr_un>.size))
                        if sent < 0 && errno == EINTR { continue }
                        return sent == bytes.count
                    }
                }
            }
        }
    }
}
