import Dispatch
import Synchronization

/// The fleet index of the running daemon: what `GET /devices` pages through, and the counts per status and per type
/// that every other part (`/metrics`, the service status line, the dashboard) reads.
///
/// It is built once from every known device (`rebuild`), then kept up to date from the device events: each event
/// (a status transition, a sign of life, a hello) marks its device as changed, and the changed devices are judged
/// again (`DeviceDirectory.judgement`) before the next read, in one batch. Marking is a set insertion on the emitter's
/// thread; the judging happens on the reader's. So the index never needs to know how a source stores its records,
/// and a burst of messages about one device costs one judgement.
///
/// Thread-safe; reads wait for the first build.
public final class Fleet: Sendable {
    /// Changed devices are judged on a thread of their own once this many wait: bounds the set between reads.
    static let changedLimit = 16_384

    private struct State {
        var index = FleetIndex()
        /// The last search, kept while no device is added or removed: paging through one search walks it once.
        var search: Search?
        var built = false
        /// While a rebuild walks the fleet: the devices settled meanwhile into the index it will replace, to be
        /// judged again in the new one.
        var settledDuringRebuild: Set<String>?
        /// Bumped by every settle that rebuilt the index whole: a rebuild that began before keeps the newer index.
        var wholeRebuilds = 0
    }

    private struct Search {
        var needle: String
        var generation: Int
        var matches: [Int32]
        /// Membership by slot, made when a time order first needs it.
        var table: [Bool]?
    }

    private let state = Mutex(State())
    private let changed = Mutex(Set<String>())
    /// Whether a settle of the changed devices is queued or running on `builder`.
    private let settling = Atomic(false)
    /// While held (the broker's retained replay at start), changed devices are not settled every `changedLimit`:
    /// they wait for `release()` or the next read, which settles them in bulk.
    private let held = Atomic(false)
    /// Set while held once the changed devices are much of the fleet (a replay): the next settle rebuilds the index
    /// whole, so further marks need not be kept.
    private let everythingChanged = Atomic(false)
    private let firstBuild = DispatchSemaphore(value: 0)
    private let judge: @Sendable (String) -> FleetEntry?
    private let everything: @Sendable (_ body: (String, FleetEntry) -> Void) -> Void

    /// - Parameters:
    ///   - judge: the device's entry now, nil when nothing is known of it (it leaves the index).
    ///   - everything: calls its argument with every known device (for `rebuild`).
    public init(
        judge: @escaping @Sendable (String) -> FleetEntry?,
        everything: @escaping @Sendable (_ body: (String, FleetEntry) -> Void) -> Void
    ) {
        self.judge = judge
        self.everything = everything
    }

    /// The fleet of `directory`: status-topic records and configured devices, judged as `GET /devices/<type>/<id>`.
    public convenience init(directory: DeviceDirectory) {
        self.init(
            judge: { directory.judgement(forPath: $0).map(FleetEntry.init) },
            everything: { body in directory.forEachJudgement { body($0, FleetEntry($1)) } })
    }

    /// Marks the device of every event as changed.
    public func observe(_ events: DeviceEvents) {
        events.observe { [weak self] event in self?.markChanged(event.key.path) }
    }

    /// `path` may have changed: it is judged again before the next read.
    public func markChanged(_ path: String) {
        // The change is in what the next whole rebuild reads (events follow the change).
        if everythingChanged.load(ordering: .sequentiallyConsistent) { return }
        let pending = changed.withLock { set -> Int in
            set.insert(path)
            return set.count
        }
        if held.load(ordering: .relaxed) {
            // Held (a replay): once the changes are much of the fleet, stop keeping them one by one.
            if pending % Self.changedLimit == 0,
                Self.rebuildBeatsSettling(changed: pending, indexed: state.withLock { $0.index.count })
            {
                everythingChanged.store(true, ordering: .sequentiallyConsistent)
                changed.withLock { $0 = [] }
            }
            return
        }
        // Judged apart from the emitter (the status registry, in the middle of a retained replay, would otherwise
        // spend a tenth of its time here); one settle in flight at a time.
        if pending >= Self.changedLimit, state.withLock({ $0.built }),
            settling.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        {
            Self.builder.async { [self] in
                settle()
                settling.store(false, ordering: .releasing)
            }
        }
    }

    /// Holds the settling of changed devices until `release()`: a retained replay at start announces every device,
    /// and judging them one by one meanwhile took CPU from the replay. Reads still settle first (their answers stay
    /// current); the set of changed devices grows with the fleet meanwhile.
    public func hold() {
        held.store(true, ordering: .relaxed)
    }

    /// Ends `hold()`: what changed meanwhile is settled on the index's own thread (in bulk when it is much of the
    /// fleet).
    public func release() {
        held.store(false, ordering: .relaxed)
        guard settling.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Self.builder.async { [self] in
            if state.withLock({ $0.built }) { settle() }
            settling.store(false, ordering: .releasing)
        }
    }

    /// (Re)builds the index from every known device: once at start, and when the configured devices change. Devices
    /// that change meanwhile are marked by their events and judged after.
    public func rebuild() {
        let everything = everything
        let generation = state.withLock { state in
            state.settledDuringRebuild = []
            return state.wholeRebuilds
        }
        // Built apart, then swapped in: reads go on meanwhile with the old index (or wait for the first).
        var index = FleetIndex()
        everything { path, entry in index.append(path, entry) }
        index.finishAppending()
        let (first, settled) = state.withLock { state -> (Bool, Set<String>) in
            // A settle that rebuilt the index whole meanwhile read the fleet after this walk: its index is newer.
            if state.wholeRebuilds == generation || !state.built {
                state.index = index
                state.search = nil
            }
            defer {
                state.built = true
                state.settledDuringRebuild = nil
            }
            return (!state.built, state.settledDuringRebuild ?? [])
        }
        changed.withLock { $0.formUnion(settled) }
        if first { firstBuild.signal() }
        settle()
    }

    /// `rebuild()` on a thread of its own: at 1M devices it takes a second or two, which the start need not wait.
    public func rebuildInBackground() {
        Self.builder.async { [self] in rebuild() }
    }

    /// Rebuilds run one at a time.
    private static let builder = DispatchQueue(label: "fleet-index", qos: .userInitiated)

    private func waitForFirstBuild() {
        if state.withLock({ $0.built }) { return }
        firstBuild.wait()
        firstBuild.signal()
    }

    /// Judges the changed devices again; the state lock is held throughout, so that two settles never apply their
    /// judgements out of order.
    private func settle() {
        state.withLock { settle(&$0) }
    }

    private func settle(_ state: inout State) {
        let everythingChanged = everythingChanged.exchange(false, ordering: .sequentiallyConsistent)
        let paths = changed.withLock { set -> Set<String> in
            defer { set = [] }
            return set
        }
        if everythingChanged || Self.rebuildBeatsSettling(changed: paths.count, indexed: state.index.count) {
            // Much of the fleet changed (a retained replay): one walk and three sorts cost less than inserting each
            // device into three sorted orders. Every change taken above is in the table the walk reads.
            var index = FleetIndex()
            everything { path, entry in index.append(path, entry) }
            index.finishAppending()
            state.index = index
            state.search = nil
            state.wholeRebuilds += 1
        } else {
            for path in paths { state.index.set(path, judge(path)) }
        }
        state.settledDuringRebuild?.formUnion(paths)
    }

    /// Whether rebuilding the index beats settling `changed` devices one by one in an index of `indexed`.
    static func rebuildBeatsSettling(changed: Int, indexed: Int) -> Bool {
        changed >= changedLimit && changed >= indexed / 2
    }

    // MARK: - Reading

    /// Devices per overall status, every status present.
    public func counts() -> [DeviceState: Int] {
        waitForFirstBuild()
        return state.withLock { state in
            settle(&state)
            return state.index.counts
        }
    }

    /// Devices per overall status, or nil while the first build is still running (never waits: for readers on the
    /// cooperative pool, such as the service status line and `/metrics`).
    public func countsIfBuilt() -> [DeviceState: Int]? {
        state.withLock { state in
            guard state.built else { return nil }
            settle(&state)
            return state.index.counts
        }
    }

    /// The device count of every type in the fleet, by type name in key order.
    public func typeCounts() -> [(type: String, count: Int)] {
        waitForFirstBuild()
        return state.withLock { state in
            settle(&state)
            return state.index.typeTotals
        }
    }

    /// What the index says of one device (after settling what changed).
    public func entry(forPath path: String) -> FleetEntry? {
        waitForFirstBuild()
        return state.withLock { state in
            settle(&state)
            return state.index.entry(for: path)
        }
    }

    /// One page of `GET /devices`.
    public func page(_ query: FleetQuery) -> FleetPage {
        waitForFirstBuild()
        return state.withLock { state in
            settle(&state)
            var filter = FleetIndex.Filter(state: query.status, type: query.type)
            let total: Int
            if let needle = query.search {
                let search = Self.search(needle, needsTable: query.sort != .key, in: &state)
                filter.matches = search.matches
                filter.matchTable = search.table
                total = state.index.count(of: search.matches, state: query.status, type: query.type)
            } else {
                total = state.index.total(status: query.status, type: query.type)
            }
            let index = state.index
            let cursor = query.after.map { FleetIndex.Cursor(path: $0.path, time: $0.time) }
            let (slots, hasMore) = index.page(
                order: query.sort.order, after: cursor, limit: query.limit, filter: filter)
            let next = hasMore ? slots.last.map { index.cursor(after: $0, order: query.sort.order) } : nil
            return FleetPage(
                devices: slots.map { FleetPage.Device(path: index.path(at: $0), entry: index.entry(at: $0)) },
                nextCursor: next.map { FleetCursor(path: $0.path, time: $0.time).encoded(sort: query.sort) },
                counts: query.type.map(index.counts(ofType:)) ?? index.counts, total: total,
                types: index.typeTotals)
        }
    }

    private static func search(_ needle: String, needsTable: Bool, in state: inout State) -> Search {
        let generation = state.index.keyGeneration
        var search: Search
        if let cached = state.search, cached.needle == needle, cached.generation == generation {
            search = cached
        } else {
            search = Search(needle: needle, generation: generation, matches: state.index.search(needle))
        }
        if needsTable && search.table == nil {
            var table = [Bool](repeating: false, count: state.index.slotCapacity)
            for slot in search.matches { table[Int(slot)] = true }
            search.table = table
        }
        state.search = search
        return search
    }
}

extension FleetEntry {
    init(_ judgement: DeviceDirectory.Judgement) {
        self.init(
            state: judgement.state, source: judgement.source, since: judgement.since, lastSeen: judgement.lastSeen)
    }
}
