import Foundation

/// How devstatusd recognises its own agent after a restart (docs/behaviour.md §7): a pid file in the data directory plus the
/// environment tag the agent was started with. Pure rules over the texts `/proc` gives; no I/O here.
public enum AgentIdentity {
    /// The environment variable every agent is started with; its value is the agent's name.
    public static let tagVariable = "DEVSTATUSD_AGENT"

    /// `DEVSTATUSD_AGENT=<name>`, the exact environment entry of agent `name`.
    public static func tag(for name: String) -> String { tagVariable + "=" + name }

    /// Whether a `/proc/<pid>/environ` text (NUL-separated entries) holds exactly the entry
    /// `DEVSTATUSD_AGENT=<name>`: never a prefix, a suffix or a substring of another entry.
    public static func environ(_ environ: [UInt8], isTaggedWith name: String) -> Bool {
        let wanted = Array(tag(for: name).utf8)
        return environ.split(separator: 0, omittingEmptySubsequences: true).contains { $0.elementsEqual(wanted) }
    }

    /// The parts of a `/proc/<pid>/stat` line the supervisor needs.
    public struct ProcessStat: Sendable, Equatable {
        /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
        public var state: Character
        /// Field 5: the process group.
        public var processGroup: Int32
        /// Field 22: when the process started, in clock ticks since boot; with the pid, unique for the boot.
        public var startTime: UInt64

        public init(state: Character, processGroup: Int32, startTime: UInt64) {
            self.state = state
            self.processGroup = processGroup
            self.startTime = startTime
        }

        /// Whether the process has exited (a zombie waiting for its parent, or dead).
        public var hasExited: Bool { state == "Z" || state == "X" }

        /// Parses a `/proc/<pid>/stat` line. Field 2, the command name, is in parentheses and may itself contain
        /// spaces and parentheses, so fields are counted from the last `)`.
        public init?(parsing line: String) {
            guard let close = line.lastIndex(of: ")") else { return nil }
            let fields = line[line.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
            // fields[0] is field 3 (state); field N is fields[N - 3].
            guard fields.count >= 20, fields[0].count == 1, let state = fields[0].first,
                let group = Int32(fields[2]), let start = UInt64(fields[19])
            else { return nil }
            self.init(state: state, processGroup: group, startTime: start)
        }
    }

    /// What `<dataDir>/agents/<name>.pid` says: which process was started, when.
    public struct PidFile: Sendable, Equatable {
        public var pid: Int32
        /// `/proc/<pid>/stat` field 22 at start: defeats pid reuse.
        public var startTime: UInt64
        /// Wall-clock nanoseconds of the start (what `GET /devices/agent/<name>` shows as `startedAt`).
        public var startedAt: Int64

        public init(pid: Int32, startTime: UInt64, startedAt: Int64) {
            self.pid = pid
            self.startTime = startTime
            self.startedAt = startedAt
        }

        /// `pid=…`, `starttime=…`, `started=…` lines.
        public var text: String { "pid=\(pid)\nstarttime=\(startTime)\nstarted=\(startedAt)\n" }

        /// Parses ``text``; nil when a line is missing or malformed.
        public init?(parsing text: String) {
            var values: [Substring: Substring] = [:]
            for line in text.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { return nil }
                values[line[..<equals]] = line[line.index(after: equals)...]
            }
            guard let pid = values["pid"].flatMap({ Int32($0) }), pid > 0,
                let start = values["starttime"].flatMap({ UInt64($0) }),
                let started = values["started"].flatMap({ Int64($0) })
            else { return nil }
            self.init(pid: pid, startTime: start, startedAt: started)
        }
    }

    /// Whether a process found through a pid file is the agent, or why not.
    public enum Verdict: Sendable, Equatable {
        /// Alive, started when the pid file says, and tagged with the agent's name: adopt it.
        case adopt
        /// No such process, or it has exited.
        case gone
        /// The pid now belongs to a process started at another time.
        case pidReused
        /// The environment does not hold the exact tag (another program, or an agent of another name).
        case untagged
    }

    /// Judges the process `/proc` describes (nil stat: no such process) against the pid file of agent `name`.
    public static func verdict(pidFile: PidFile, stat: ProcessStat?, environ: [UInt8], name: String) -> Verdict {
        guard let stat, !stat.hasExited else { return .gone }
        guard stat.startTime == pidFile.startTime else { return .pidReused }
        guard Self.environ(environ, isTaggedWith: name) else { return .untagged }
        return .adopt
    }
}

/// Reads of `/proc` for the supervisor.
enum ProcFS {
    static func stat(_ pid: Int32) -> AgentIdentity.ProcessStat? {
        guard let bytes = readAll("/proc/\(pid)/stat") else { return nil }
        return AgentIdentity.ProcessStat(parsing: String(decoding: bytes, as: UTF8.self))
    }

    static func environ(_ pid: Int32) -> [UInt8] { readAll("/proc/\(pid)/environ") ?? [] }

    /// The whole file (`/proc` files report size 0, so read until end of file); nil if it cannot be opened.
    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return count < 0 && result.isEmpty ? nil : result }
            result += chunk[0..<count]
        }
    }
}
