import Foundation
import Logging
import MQTT
import Storage

/// Every device's status from the IBM-style status topics: applies SPEC §3's rules to batches of messages,
/// persists each accepted change in LevelDB (one write batch per message batch: a group commit), and publishes
/// the result to a `DeviceTable` that HTTP threads read without awaiting this actor.
public actor StatusRegistry {
    /// What became of each status message; the labels are `/metrics`' `outcome` values.
    public struct Counters: Sendable, Equatable {
        public var accepted = 0
        public var unchanged = 0
        public var deleted = 0
        public var outOfOrder = 0
        public var tieLost = 0
        public var clientIDReused = 0
        public var malformed = 0
        public var storeErrors = 0

        public init() {}

        public var byOutcome: [(String, Int)] {
            [
                ("accepted", accepted), ("unchanged", unchanged), ("deleted", deleted),
                ("out_of_order", outOfOrder), ("tie_lost", tieLost), ("client_id_reused", clientIDReused),
                ("malformed", malformed),
            ]
        }
    }

    static let statusPrefix: [UInt8] = Array("s/".utf8)
    static let organizationKey: [UInt8] = Array("m/org".utf8)
    /// How many statuses are stored, written with every change: sizes the table when loading.
    static let countKey: [UInt8] = Array("m/count".utf8)

    public nonisolated let table: DeviceTable
    private let store: LevelDB
    let patterns: [StatusTopicPattern]
    private var configuredOrganization: String
    private var learnedOrganization = ""
    private var logger: Logger
    private var malformedLog: RateLimitedLog
    public private(set) var counters = Counters()
    private let events: DeviceEvents?
    private let onStoreWrite: (@Sendable (Duration) -> Void)?
    /// `[status] maxClockSkew`: how far ahead of `clock` a `Time` may lie.
    private var clockSkew: ClockSkewLimit
    /// Wall-clock nanoseconds: what `Time` is judged against and what events are stamped with.
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - organization: `[status] org`; "" (the default) means learn it from the client ids of messages.
    ///   - events: where status transitions are announced (Connect → online, Disconnect → offline, cleared → unknown).
    ///   - onStoreWrite: told how long each LevelDB write took (for `/metrics`); default nil.
    ///   - clockSkew: `[status] maxClockSkew`; default 3600 s.
    ///   - clock: wall-clock nanoseconds; default the system's (tests pass their own).
    public init(
        store: LevelDB, table: DeviceTable, patterns: [StatusTopicPattern], organization: String,
        events: DeviceEvents? = nil, logger: Logger, onStoreWrite: (@Sendable (Duration) -> Void)? = nil,
        clockSkew: ClockSkewLimit = .default, clock: @escaping @Sendable () -> Int64 = wallClockNanoseconds
    ) {
        self.clockSkew = clockSkew
        self.clock = clock
        self.events = events
        self.onStoreWrite = onStoreWrite
        self.store = store
        self.table = table
        self.patterns = patterns
        self.configuredOrganization = organization
        self.logger = logger
        self.malformedLog = RateLimitedLog(interval: .seconds(10))
        table.setOrganization(organization)
    }

    /// `[status] org` changed by a configuration reload; "" goes back to the org learned from messages.
    public func setConfiguredOrganization(_ organization: String) {
        configuredOrganization = organization
        table.setOrganization(organization.isEmpty ? learnedOrganization : organization)
    }

    /// `[status] maxClockSkew` changed by a configuration reload.
    public func setClockSkew(_ limit: ClockSkewLimit) { clockSkew = limit }

    /// Whether a topic is one of the configured status topics.
    public nonisolated func isStatusTopic(_ topic: String) -> Bool {
        patterns.contains { $0.filter.matches(topic) }
    }

    /// Loads every stored status into the table. Call once, before the HTTP port opens.
    ///
    /// Reading LevelDB (decompressing, copying out) and filling the dictionary take about as long as each other, so
    /// a thread of its own reads while this one inserts; the device count stored with every write sizes the
    /// dictionary up front, so it never rehashes.
    /// - Returns: the number of devices loaded.
    @discardableResult
    public func load() throws -> Int {
        var loaded: [String: StatusRecord] = [:]
        if let hint = try store.get(Self.countKey).flatMap({ UInt64(String(decoding: $0, as: UTF8.self)) }) {
            loaded.reserveCapacity(Int(min(hint, 100_000_000)))
        }
        let chunks = ChunkChannel<(String, StatusRecord)>()
        let store = store
        let reader = Thread {
            var chunk: [(String, StatusRecord)] = []
            chunk.reserveCapacity(ChunkChannel<(String, StatusRecord)>.chunkSize)
            do {
                try store.forEach(prefix: Self.statusPrefix) { key, value in
                    let path = String(
                        decoding: UnsafeRawBufferPointer(rebasing: key[Self.statusPrefix.count...]), as: UTF8.self)
                    if let record = StatusRecord(encoded: Array(value)) { chunk.append((path, record)) }
                    if chunk.count == ChunkChannel<(String, StatusRecord)>.chunkSize {
                        chunks.put(chunk)
                        chunk.removeAll(keepingCapacity: true)
                    }
                    return true
                }
                chunks.put(chunk)
                chunks.finish(error: nil)
            } catch {
                chunks.finish(error: error)
            }
        }
        reader.start()
        while let chunk = chunks.take() {
            for (path, record) in chunk { loaded[path] = record }
        }
        if let error = chunks.error { throw error }
        if let stored = try store.get(Self.organizationKey) {
            learnedOrganization = String(decoding: stored, as: UTF8.self)
        }
        if configuredOrganization.isEmpty { table.setOrganization(learnedOrganization) }
        let count = loaded.count
        table.replaceAll(loaded)
        return count
    }

    /// Applies a batch of messages from the status topics, in order, and stores the result in one write.
    /// Messages on other topics are ignored.
    public func ingest(_ messages: [MQTTMessage]) {
        var batch = WriteBatch()
        var changes: [(path: String, record: StatusRecord?)] = []
        var transitions: [(path: String, from: DeviceState, to: DeviceState, reason: String?)] = []
        // Several messages of one batch may concern the same device: judge each against the latest.
        var pending: [String: StatusRecord?] = [:]
        var organization = learnedOrganization
        let now = clock()
        for message in messages {
            guard let key = device(inTopic: message.topic) else { continue }
            let path = key.path
            let current: StatusRecord? = pending[path] ?? table.record(forPath: path)
            if message.payload.isEmpty {
                // An empty payload clears the retained status. Subscribers that are online when it is cleared get
                // it with retain = 0 (MQTT 3.1.1 §3.3.1.3), so a live empty message deletes too.
                counters.deleted += 1
                guard current != nil else { continue }
                pending[path] = .some(nil)
                changes.append((path, nil))
                transitions.append((path, Self.state(of: current), .unknown, "status cleared"))
                batch.delete(Self.statusPrefix + Array(path.utf8))
                continue
            }
            let parsed: MonPayload
            do {
                parsed = try MonPayload(parsing: message.payload, now: now, skew: clockSkew)
            } catch {
                counters.malformed += 1
                let suppressed = malformedLog.admit(now: .now)
                if let suppressed {
                    logger.warning(
                        "dropped malformed status payload",
                        metadata: [
                            "topic": "\(message.topic)", "error": "\(error)",
                            "suppressed": "\(suppressed)",
                        ])
                }
                continue
            }
            let decision = StatusRules.decide(
                stored: current.map { ($0.action, $0.time) }, incoming: parsed, retained: message.retain)
            switch decision {
            case .accept:
                counters.accepted += 1
                let record = StatusRecord(action: parsed.action, time: parsed.time, payload: message.payload)
                pending[path] = .some(record)
                changes.append((path, record))
                if current?.action != parsed.action {
                    transitions.append(
                        (
                            path, Self.state(of: current), Self.state(of: record),
                            parsed.action == .connect ? "Connect" : "Disconnect"
                        ))
                }
                batch.put(Self.statusPrefix + Array(path.utf8), record.encoded)
                if configuredOrganization.isEmpty, let org = StatusRules.organization(ofClientID: parsed.clientID) {
                    organization = org
                }
            case .unchanged: counters.unchanged += 1
            case .delete: counters.deleted += 1
            case .ignoreOutOfOrder: counters.outOfOrder += 1
            case .ignoreTieLost: counters.tieLost += 1
            case .ignoreClientIDReused: counters.clientIDReused += 1
            }
        }
        if organization != learnedOrganization {
            learnedOrganization = organization
            batch.put(Self.organizationKey, Array(organization.utf8))
            table.setOrganization(organization)
        }
        guard !changes.isEmpty else { return }
        table.apply(changes)
        batch.put(Self.countKey, Array("\(table.count)".utf8))
        let writeStarted = ContinuousClock.now
        do {
            try store.write(batch, sync: false)
            onStoreWrite?(ContinuousClock.now - writeStarted)
        } catch {
            counters.storeErrors += 1
            logger.error("could not persist status changes", metadata: ["error": "\(error)"])
        }
        if let events, !transitions.isEmpty {
            for transition in transitions {
                guard let key = DeviceKey(path: transition.path) else { continue }
                events.emit(
                    DeviceEvent(
                        key: key, kind: .transition(from: transition.from, to: transition.to), source: "status",
                        reason: transition.reason, time: now))
            }
        }
    }

    /// What a status record says of the device.
    static func state(of record: StatusRecord?) -> DeviceState {
        switch record?.action {
        case .connect: .online
        case .disconnect: .offline
        case nil: .unknown
        }
    }

    private func device(inTopic topic: String) -> DeviceKey? {
        for pattern in patterns {
            if let key = pattern.device(inTopic: topic) { return key }
        }
        return nil
    }
}

/// Lets one log line through per interval and counts the ones it held back.
struct RateLimitedLog {
    let interval: Duration
    private var lastAdmitted: ContinuousClock.Instant?
    private var suppressed = 0

    init(interval: Duration) { self.interval = interval }

    /// Returns the number suppressed since the last admitted line when this one may be logged, else nil.
    mutating func admit(now: ContinuousClock.Instant) -> Int? {
        if let lastAdmitted, now - lastAdmitted < interval {
            suppressed += 1
            return nil
        }
        lastAdmitted = now
        defer { suppressed = 0 }
        return suppressed
    }
}
