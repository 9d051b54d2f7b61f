import Synchronization

/// One view of every signal about a device (docs/behaviour.md §4.2): its status-topic record, its watchdog, its agent, its
/// pending operations. Reads only snapshots, never awaits an actor.
///
/// A device judged from several signals takes the least favourable one: expired (watchdog) before offline
/// before sleeping before online; `unknown` when no signal has said anything yet (e.g. a watched device still in
/// its grace period, never seen).
public final class DeviceDirectory: Sendable {
    /// What an agent supervisor says of one agent (filled in by the agent supervisor).
    public struct AgentInfo: Sendable {
        public var pid: Int32?
        public var startedAt: Int64?
        public var restarts: Int
        public init(pid: Int32?, startedAt: Int64?, restarts: Int) {
            self.pid = pid
            self.startedAt = startedAt
            self.restarts = restarts
        }
    }

    public let table: DeviceTable
    public let watch: WatchSnapshot
    private let agentInfo: (@Sendable (String) -> AgentInfo?)?
    private let operationCounts: (@Sendable (DeviceKey) -> [(String, Int)])?

    /// - Parameters:
    ///   - agents: an agent's name → its process (e.g. `AgentSupervisor.info`); default none.
    ///   - operationCounts: one device → its operations by status name; default none.
    public init(
        table: DeviceTable, watch: WatchSnapshot, agents: (@Sendable (String) -> AgentInfo?)? = nil,
        operationCounts: (@Sendable (DeviceKey) -> [(String, Int)])? = nil
    ) {
        self.table = table
        self.watch = watch
        self.agentInfo = agents
        self.operationCounts = operationCounts
    }

    /// The overall status and which signal decided it.
    public struct Judgement: Sendable, Equatable {
        public var state: DeviceState
        public var source: String?
        public var since: Int64?
        public var lastSeen: Int64?
        public var reason: String?
    }

    public func judgement(for key: DeviceKey) -> Judgement? {
        let record = table.record(for: key)
        let info = watch.info(forPath: key.path)
        return Self.judge(record: record, watch: info)
    }

    /// The judgement of the device at `type/id`, nil when nothing is known or configured.
    public func judgement(forPath path: String) -> Judgement? {
        Self.judge(record: table.record(forPath: path), watch: watch.info(forPath: path))
    }

    /// Calls `body` with every known device (status-topic records and configured devices) and its judgement, each
    /// once; the records come from a snapshot of the table (no lock held while `body` runs).
    public func forEachJudgement(_ body: (String, Judgement) -> Void) {
        let watched = watch.all
        let watchedPaths = Set(watched.map(\.key.path))
        table.forEachRecord { path, record in
            // Configured devices are judged below, from both signals.
            if !watchedPaths.isEmpty, watchedPaths.contains(path) { return }
            if let judgement = Self.judge(record: record, watch: nil) { body(path, judgement) }
        }
        for info in watched {
            if let judgement = Self.judge(record: table.record(for: info.key), watch: info) {
                body(info.key.path, judgement)
            }
        }
    }

    /// Whether the device is online now (what operation delivery waits for).
    public func isOnline(_ key: DeviceKey) -> Bool { judgement(for: key)?.state == .online }

    static func judge(record: StatusRecord?, watch: WatchInfo?) -> Judgement? {
        guard record != nil || watch != nil else { return nil }
        var fromStatus: Judgement?
        if let record {
            let reason: String
            if record.source == .mon {
                reason = record.action == .connect ? "Connect" : "Disconnect"
            } else {
                reason = record.reason ?? record.status.state.rawValue
            }
            fromStatus = Judgement(
                state: record.status.state, source: record.source.name, since: record.time, lastSeen: record.time,
                reason: reason)
        }
        var fromWatch: Judgement?
        if let watch, watch.watched {
            if watch.expired {
                fromWatch = Judgement(
                    state: .expired, source: "watchdog", since: watch.since, lastSeen: watch.lastActivity,
                    reason: "no message for \(watch.timeoutSeconds) s")
            } else if watch.lastActivity != nil {
                fromWatch = Judgement(
                    state: .online, source: "watchdog", since: watch.since, lastSeen: watch.lastActivity,
                    reason: "message on a watch topic")
            } else {
                fromWatch = Judgement(
                    state: .unknown, source: "watchdog", since: watch.since, lastSeen: nil,
                    reason: "not seen since daemon start (grace period)")
            }
        }
        let candidates = [fromWatch, fromStatus].compactMap { $0 }
        let rank: [DeviceState: Int] = [.expired: 0, .offline: 1, .sleeping: 2, .online: 3, .unknown: 4]
        let known = candidates.filter { $0.state != .unknown }
        if let worst = known.min(by: { rank[$0.state]! < rank[$1.state]! }) {
            var result = worst
            result.lastSeen = candidates.compactMap(\.lastSeen).max()
            return result
        }
        return candidates.first ?? Judgement(state: .unknown)
    }

    /// Every known device (status-topic records and configured devices) by its overall status. O(devices).
    public func countsByState() -> [DeviceState: Int] {
        let watched = watch.all
        let watchedPaths = Set(watched.map(\.key.path))
        var counts: [DeviceState: Int] = [:]
        table.forEachStatus { path, status in
            guard !watchedPaths.contains(path) else { return }
            counts[status.state, default: 0] += 1
        }
        for info in watched {
            let state = Self.judge(record: table.record(for: info.key), watch: info)?.state ?? .unknown
            counts[state, default: 0] += 1
        }
        return counts
    }

    /// `GET /devices/<type>/<id>` as JSON, or nil when nothing is known or configured.
    public func viewJSON(for key: DeviceKey) -> String? {
        let record = table.record(for: key)
        let info = watch.info(forPath: key.path)
        guard let judgement = Self.judge(record: record, watch: info) else { return nil }
        let (agentProvider, countsProvider) = (agentInfo, operationCounts)
        var members: [(String, String)] = [
            ("type", JSONText.quote(key.type)), ("id", JSONText.quote(key.id)),
            ("status", JSONText.quote(judgement.state.rawValue)),
            ("since", Self.time(judgement.since)), ("lastSeen", Self.time(judgement.lastSeen)),
            ("source", judgement.source.map(JSONText.quote) ?? "null"),
            ("reason", judgement.reason.map(JSONText.quote) ?? "null"),
            ("statusPayload", record.map(Self.payloadJSON) ?? "null"),
        ]
        if let info {
            members.append(("name", JSONText.quote(info.name)))
            members.append(
                (
                    "watchdog",
                    info.watched
                        ? JSONText.object([
                            ("timeoutSeconds", "\(info.timeoutSeconds)"), ("expired", "\(info.expired)"),
                            ("lastActivity", Self.time(info.lastActivity)),
                            ("deadline", info.expired ? "null" : Self.time(info.deadline)),
                            ("helloCount", "\(info.helloCount)"),
                        ]) : "null"
                ))
            if info.kind == .agent, let agent = agentProvider?(info.name) {
                members.append(
                    (
                        "agent",
                        JSONText.object([
                            ("pid", agent.pid.map { "\($0)" } ?? "null"), ("startedAt", Self.time(agent.startedAt)),
                            ("restarts", "\(agent.restarts)"),
                        ])
                    ))
            }
        }
        if let counts = countsProvider?(key) {
            members.append(("operations", JSONText.object(counts.map { ($0.0, "\($0.1)") })))
        }
        return JSONText.object(members)
    }

    /// IotMonitor's list for `GET /` (JSON clients): `[{"name":"esp04","enabled":true,"expired":false}, …]`,
    /// each entry also naming the device's `type` and `id` (for `GET /devices/<type>/<id>`).
    public func iotMonitorListJSON() -> String {
        "["
            + watch.all.map { info in
                JSONText.object([
                    ("name", JSONText.quote(info.name)), ("enabled", "true"), ("expired", "\(info.expired)"),
                    ("type", JSONText.quote(info.key.type)), ("id", JSONText.quote(info.key.id)),
                ])
            }.joined(separator: ",") + "]"
    }

    /// The last status payload as JSON: a `mon` payload or a presence payload that is a JSON object as is (both
    /// were checked when accepted), any other (`Online`, `true`) as a JSON string.
    static func payloadJSON(_ record: StatusRecord) -> String {
        let payload = record.payload
        if record.source == .mon
            || (payload.first == UInt8(ascii: "{") && (try? StrictJSON.members(of: Array(payload))) != nil)
        {
            return String(decoding: payload, as: UTF8.self)
        }
        return JSONText.quote(String(decoding: payload, as: UTF8.self))
    }

    static func time(_ nanoseconds: Int64?) -> String {
        nanoseconds.map { JSONText.quote(RFC3339.format(nanoseconds: $0)) } ?? "null"
    }
}
