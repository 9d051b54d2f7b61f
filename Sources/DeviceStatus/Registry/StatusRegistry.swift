import Foundation
import Logging
import MQTT
import Storage

/// Every device's status from the IBM-style status topics and the presence conventions of `[[presence]]`.
///
/// A topic index maps each message once to its decoder and device; the decoder turns the bytes into an
/// `Observation`; this actor judges it by its source's ordering model and counts outcomes by source. Each batch's
/// accepted changes then go to a `StatusCommitter`, which on a thread of its own persists them in LevelDB (one write
/// batch per message batch: a group commit), publishes them to a `DeviceTable` that HTTP threads read without
/// awaiting anything, and announces the transitions — while this actor judges the next batch. It knows no format.
public actor StatusRegistry {
    /// What became of each status message; the labels are `/metrics`' `outcome` values.
    public struct Counters: Sendable, Equatable {
        /// The outcome labels, in `byOutcome`'s order.
        static let outcomes = [
            "accepted", "unchanged", "deleted", "out_of_order", "tie_lost", "client_id_reused", "malformed", "stale",
        ]
        /// Messages by source and outcome: `cells[Int(source.rawValue) * outcomes.count + outcome]`. Counted once per
        /// message while a retained replay brings hundreds of thousands: an array, not a dictionary keyed by names.
        private var cells = [Int](
            repeating: 0, count: (Int(PresenceSource.allCases.map(\.rawValue).max()!) + 1) * Self.outcomes.count)
        public var storeErrors = 0

        public init() {}

        public var accepted: Int { total(0) }
        public var unchanged: Int { total(1) }
        public var deleted: Int { total(2) }
        public var outOfOrder: Int { total(3) }
        public var tieLost: Int { total(4) }
        public var clientIDReused: Int { total(5) }
        public var malformed: Int { total(6) }
        /// Sparkplug deaths whose `bdSeq` is not the node's last birth's.
        public var stale: Int { total(7) }

        public var byOutcome: [(String, Int)] {
            Self.outcomes.indices.map { (Self.outcomes[$0], total($0)) }
        }

        /// Messages by (source name, outcome label), for the pairs that happened.
        public var bySource: [SourceOutcome: Int] {
            var counts: [SourceOutcome: Int] = [:]
            for source in PresenceSource.allCases {
                for (index, outcome) in Self.outcomes.enumerated() {
                    let value = cells[Self.cell(source, index)]
                    if value > 0 { counts[SourceOutcome(source: source.name, outcome: outcome)] = value }
                }
            }
            return counts
        }

        mutating func count(_ source: PresenceSource, _ outcome: String) {
            guard let index = Self.outcomes.firstIndex(of: outcome) else { return }
            cells[Self.cell(source, index)] += 1
        }

        /// How many messages of `source` ended as `outcome`.
        public func count(source: PresenceSource, outcome: String) -> Int {
            Self.outcomes.firstIndex(of: outcome).map { cells[Self.cell(source, $0)] } ?? 0
        }

        private static func cell(_ source: PresenceSource, _ outcome: Int) -> Int {
            Int(source.rawValue) * outcomes.count + outcome
        }

        private func total(_ outcome: Int) -> Int {
            PresenceSource.allCases.reduce(0) { $0 + cells[Self.cell($1, outcome)] }
        }
    }

    public struct SourceOutcome: Hashable, Sendable {
        public var source: String
        public var outcome: String
    }

    static let statusPrefix: [UInt8] = Array("s/".utf8)
    static let organizationKey: [UInt8] = Array("m/org".utf8)
    /// How many statuses are stored, written with every change: sizes the table when loading.
    static let countKey: [UInt8] = Array("m/count".utf8)

    public nonisolated let table: DeviceTable
    private let store: LevelDB
    let patterns: [StatusTopicPattern]
    /// Every source's topics and decoders: the status topics first, then the `[[presence]]` blocks.
    public nonisolated let topics: TopicIndex
    private var configuredOrganization: String
    private var learnedOrganization = ""
    private var logger: Logger
    private var malformedLog: RateLimitedLog
    /// Outcomes of the messages judged so far, and the store's failed writes.
    public var counters: Counters {
        var counters = judged
        counters.storeErrors = committer.errors
        return counters
    }
    private var judged = Counters()
    /// Stores, serves and announces judged batches while the next is judged.
    private let committer: StatusCommitter
    /// `[status] maxClockSkew`: how far ahead of `clock` a `Time` may lie.
    private var clockSkew: ClockSkewLimit
    /// Wall-clock nanoseconds: what `Time` is judged against and what events are stamped with.
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - organization: `[status] org`; "" (the default) means learn it from the client ids of messages.
    ///   - events: where status transitions are announced (Connect → online, Disconnect → offline, cleared → unknown).
    ///   - onStoreWrite: told how long each LevelDB write took (for `/metrics`); default nil.
    ///   - presence: decoders of the `[[presence]]` blocks (default none).
    ///   - clockSkew: `[status] maxClockSkew`; default 3600 s.
    ///   - clock: wall-clock nanoseconds; default the system's (tests pass their own).
    public init(
        store: LevelDB, table: DeviceTable, patterns: [StatusTopicPattern], presence: [any PresenceDecoder] = [],
        organization: String, events: DeviceEvents? = nil, logger: Logger,
        onStoreWrite: (@Sendable (Duration) -> Void)? = nil,
        clockSkew: ClockSkewLimit = .default, clock: @escaping @Sendable () -> Int64 = wallClockNanoseconds
    ) {
        self.clockSkew = clockSkew
        self.clock = clock
        self.committer = StatusCommitter(
            store: store, table: table, events: events, logger: logger, onStoreWrite: onStoreWrite, clock: clock)
        self.store = store
        self.table = table
        self.patterns = patterns
        self.topics = TopicIndex(decoders: (patterns.isEmpty ? [] : [MonDecoder(patterns: patterns)]) + presence)
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

    /// Whether a topic is one of the configured status or presence topics.
    public nonisolated func isStatusTopic(_ topic: String) -> Bool {
        topics.route(topic) != nil
    }

    /// Loads every stored status into the table. Call once, before the HTTP port opens.
    ///
    /// Reading LevelDB (decompressing, copying out) and filling the dictionary take about as long as each other, so
    /// the store's disk queue reads while this actor inserts; the device count stored with every write sizes the
    /// dictionary up front, so it never rehashes. No thread of the cooperative pool waits for the disk meanwhile.
    /// - Returns: the number of devices loaded.
    @discardableResult
    public func load() async throws -> Int {
        var loaded: [String: StatusRecord] = [:]
        let store = store
        let (hint, organization) = try await store.disk.run { () throws(StorageError) in
            (
                try store.get(Self.countKey).flatMap { UInt64(String(decoding: $0, as: UTF8.self)) },
                try store.get(Self.organizationKey).map { String(decoding: $0, as: UTF8.self) }
            )
        }
        if let hint { loaded.reserveCapacity(Int(min(hint, 100_000_000))) }
        let chunks = ChunkChannel<(String, StatusRecord)>()
        store.disk.submit {
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
        while let chunk = await chunks.take() {
            for (path, record) in chunk { loaded[path] = record }
        }
        if let error = chunks.error { throw error }
        if let organization { learnedOrganization = organization }
        if configuredOrganization.isEmpty { table.setOrganization(learnedOrganization) }
        let count = loaded.count
        table.replaceAll(loaded)
        return count
    }

    /// Applies a batch of messages from the status and presence topics, in order, stores the result in one write
    /// and returns once the table serves it. Messages on other topics are ignored.
    public func ingest(_ messages: [MQTTMessage]) async {
        _ = judge(messages)
        await committer.drain()
    }

    /// Judges a batch and hands it to the committer, without waiting for it to be stored (the next batch is judged
    /// meanwhile) unless the committer has fallen behind by several batches.
    func consumeBatch(_ messages: [MQTTMessage]) async {
        if judge(messages) { await committer.drain() }
    }

    /// Returns once every batch judged so far is stored and served (the table answers it).
    public func drain() async { await committer.drain() }

    /// Judges `messages` and submits the changes; returns whether the committer asks to wait.
    private func judge(_ messages: [MQTTMessage]) -> Bool {
        var changes = Changes(organization: learnedOrganization)
        // A replay's batches are thousands of devices, each changed: sized once instead of grown.
        changes.judged.pending.reserveCapacity(messages.count)
        changes.judged.records.reserveCapacity(messages.count)
        let now = clock()
        let context = DecodeContext(now: now, clockSkew: clockSkew)
        // Each message's source and device first; then what each device had before the batch, read at once (a lookup
        // per message took the table's lock as often, against the committer storing the previous batch).
        var routes: [(message: Int, decoder: Int, match: TopicMatch)] = []
        routes.reserveCapacity(messages.count)
        for (index, message) in messages.enumerated() {
            guard let (position, match) = topics.route(message.topic) else { continue }
            routes.append((index, position, match))
        }
        let before = committer.records(forPaths: routes.map(\.match.key.path))
        for (route, stored) in zip(routes, before) {
            let message = messages[route.message]
            let decoder = topics.decoders[route.decoder]
            let match = route.match
            if message.payload.isEmpty {
                // An empty payload clears the retained status. Subscribers that are online when it is cleared get
                // it with retain = 0 (MQTT 3.1.1 §3.3.1.3), so a live empty message deletes too.
                apply(
                    Observation(key: match.key, source: decoder.source, status: .deleted, payload: []),
                    stored: stored, retained: message.retain, now: now, into: &changes)
                continue
            }
            switch decoder.decode(match, payload: message.payload, retained: message.retain, context: context) {
            case .observation(let observation):
                apply(observation, stored: stored, retained: message.retain, now: now, into: &changes)
            case .ignored(let outcome):
                judged.count(decoder.source, outcome)
            case .malformed(let error):
                judged.count(decoder.source, "malformed")
                if let suppressed = malformedLog.admit(now: .now) {
                    logger.warning(
                        "dropped malformed status payload",
                        metadata: [
                            "topic": "\(message.topic)", "source": "\(decoder.source.name)", "error": "\(error)",
                            "suppressed": "\(suppressed)",
                        ])
                }
            }
        }
        return commit(changes)
    }

    /// What one batch changes, before it is stored and announced.
    struct Changes {
        var judged = StatusCommitter.Batch()
        var organization: String

        init(organization: String) { self.organization = organization }

        /// Several messages of one batch may concern the same device: each is judged against the latest.
        var pending: [String: StatusRecord?] { judged.pending }

        /// `previous`: the device's record before this change (what it was judged against).
        mutating func set(_ path: String, _ record: StatusRecord?, previous: StatusRecord?) {
            let before = judged.pending.updateValue(record, forKey: path)
            // Counted against what the device had before the batch (or before its last change in the batch).
            let had = before.map { $0 != nil } ?? (previous != nil)
            judged.countChange += (record == nil ? 0 : 1) - (had ? 1 : 0)
            judged.records.append((path, record))
        }

        mutating func transition(
            _ path: String, _ from: DeviceState, _ to: DeviceState, _ source: PresenceSource, _ reason: String?
        ) {
            judged.transitions.append((path, from, to, source, reason))
        }
    }

    /// What the device's status is for the next message: this batch's latest, else what earlier batches left (in
    /// flight to the store, or served).
    private func current(_ path: String, _ changes: Changes) -> StatusRecord? {
        changes.judged.pending[path] ?? committer.record(forPath: path)
    }

    /// Judges one observation by its source's ordering model against what is stored, and records the outcome.
    /// `stored`: the device's record before this batch (`current` reads it again for a device the batch changed).
    private func apply(
        _ observation: Observation, stored: StatusRecord?, retained: Bool, now: Int64, into changes: inout Changes
    ) {
        let path = observation.key.path
        let current = changes.judged.pending[path] ?? stored
        // What this source said before; another source's status is replaced, never compared with.
        let own = current.flatMap { $0.source == observation.source ? $0 : nil }
        let source = observation.source
        guard case .set(let status) = observation.status else {
            judged.count(source, "deleted")
            guard let own else { return }
            changes.set(path, nil, previous: current)
            changes.transition(path, Self.state(of: own), .unknown, source, "status cleared")
            return
        }
        let decision: OrderingDecision
        var reason = observation.reason
        switch source.ordering {
        case .timestamp:
            decision = TimestampOrdering.decide(
                stored: own.map { ($0.status, $0.time) }, incoming: status, time: observation.sourceTime ?? now)
        case .birthSequence:
            decision = BirthSequenceOrdering.decide(
                stored: own?.stored, incoming: status, sequence: observation.sequence)
        case .arrival:
            decision = ArrivalOrdering.decide(
                stored: own.map { ($0.status, $0.reason) }, incoming: status, reason: reason)
            reason = ArrivalOrdering.reason(reason, retained: retained)
        }
        judged.count(source, decision.outcome)
        guard decision == .accept || decision == .restate else { return }
        let record = StatusRecord(
            source: source, status: status,
            time: decision == .restate ? (own?.time ?? now) : (observation.sourceTime ?? now),
            sequence: observation.sequence ?? own?.sequence ?? 0, reason: reason, payload: observation.payload)
        changes.set(path, record, previous: current)
        if current?.status != status {
            changes.transition(path, Self.state(of: current), status.state, source, reason)
        } else {
            changes.judged.seen.append((path, source))
        }
        if observation.cascades, status != .online {
            cascade(from: observation.key, status: status, record: record, into: &changes)
        }
        if configuredOrganization.isEmpty, let organization = observation.organization {
            changes.organization = organization
        }
    }

    /// A node's death takes its devices (keys `type/node/…` of the same source) to the same status.
    private func cascade(from key: DeviceKey, status: PresenceStatus, record: StatusRecord, into changes: inout Changes)
    {
        let prefix = key.path + "/"
        var children: [String] = []
        table.forEachStatus { path, _ in
            if path.hasPrefix(prefix) { children.append(path) }
        }
        for path in committer.pathsInFlight() + Array(changes.pending.keys)
        where path.hasPrefix(prefix) && !children.contains(path) {
            children.append(path)
        }
        for path in children.sorted() {
            guard let child = current(path, changes), child.source == record.source, child.status != status else {
                continue
            }
            let reason = "node \(key.id) \(status == .offline ? "died" : status.state.rawValue)"
            let updated = StatusRecord(
                source: child.source, status: status, time: record.time, sequence: child.sequence, reason: reason,
                payload: child.payload)
            changes.set(path, updated, previous: child)
            changes.transition(path, child.status.state, status.state, child.source, reason)
        }
    }

    /// Hands the batch's changes (and a newly learned organization) to the committer; returns whether to wait.
    private func commit(_ changes: Changes) -> Bool {
        var judged = changes.judged
        if changes.organization != learnedOrganization {
            learnedOrganization = changes.organization
            judged.organization = changes.organization
        }
        guard !judged.records.isEmpty || judged.organization != nil else { return false }
        return committer.submit(judged)
    }

    /// Writes the statuses that changed while the store refused writes (call once it is back). Returns how many.
    @discardableResult
    public func storeUnsaved() async -> Int {
        await committer.storeUnsaved()
    }

    /// What a status record says of the device.
    static func state(of record: StatusRecord?) -> DeviceState {
        record?.status.state ?? .unknown
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
