import Logging
import MQTT
import ServiceLifecycle
import Storage
import Synchronization

/// Where the watchdog service reads the time and waits: the system's clocks by default; tests pass a clock they move.
public struct WatchClock: Sendable {
    /// Monotonic nanoseconds (deadlines).
    public var monotonic: @Sendable () -> Int64
    /// Wall-clock nanoseconds since the epoch (what is published and shown).
    public var wall: @Sendable () -> Int64
    /// Returns after `duration` of this clock (throws when cancelled).
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        monotonic: @escaping @Sendable () -> Int64, wall: @escaping @Sendable () -> Int64,
        sleep: @escaping @Sendable (Duration) async throws -> Void
    ) {
        self.monotonic = monotonic
        self.wall = wall
        self.sleep = sleep
    }

    /// `monotonicNanoseconds`, `wallClockNanoseconds` and `Task.sleep`.
    public static var system: WatchClock {
        WatchClock(
            monotonic: monotonicNanoseconds, wall: wallClockNanoseconds, sleep: { try await Task.sleep(for: $0) })
    }
}

/// IotMonitor's job, done strictly (docs/behaviour.md §3 watchdog rules, §5, §6): per-device watchdogs on the configured watch
/// topics, `B/expire/<name>` and `B/status/<name>` on every transition, the `B/up` counter, and state restoration
/// on hello and at daemon start.
public actor WatchService: BrokerComponent, Service {
    /// Messages that matched a watched device's topics, by kind (`/metrics`).
    public nonisolated let traffic = WatchTraffic()
    /// How often the clock is checked at most: bounds the lateness of an expiry whose deadline was filed while the
    /// timer slept (a device coming back with a short timeout). Ten wake-ups a second cost nothing measurable.
    static let maximumSleep: Int64 = 100_000_000

    nonisolated let snapshot: WatchSnapshot
    /// Where time is read and waited for.
    nonisolated let time: WatchClock
    nonisolated let baseTopic: String
    /// The configured devices and their indexes; replaced by `reconfigure`. Also readable without the actor,
    /// for `subscriptions`.
    private nonisolated let currentLayout: Mutex<WatchLayout>
    private var layout: WatchLayout
    private var watchdog: Watchdog
    private let states: StateStore
    private let store: LevelDB
    private let events: DeviceEvents
    private var logger: Logger
    private var client: (any MQTTPublishing)?
    private var helloCounts: [Int]
    /// Payloads devstatusd published itself (state restoration) and may receive back (MQTT 3.1.1 has no no-local;
    /// overlapping subscriptions deliver one copy each), with when to stop expecting them: never activity.
    private var pendingEchoes: [String: (payloads: [[UInt8]], until: Int64)] = [:]
    /// How long an echo of our own publication is expected: far above a local broker's round trip.
    static let echoWindow: Int64 = 5_000_000_000
    private var restoredAtStart = false
    /// Wall-clock nanoseconds at daemon start: the "last activity" of a device never seen.
    private let startedAt: Int64

    var devices: [WatchedDevice] { layout.devices }
    var keys: [DeviceKey] { layout.keys }

    /// - Parameter time: where time is read and waited for; default `WatchClock.system`.
    public init(
        devices: [WatchedDevice], baseTopic: String, store: LevelDB, events: DeviceEvents, logger: Logger,
        time: WatchClock = .system
    ) {
        self.time = time
        self.baseTopic = baseTopic
        self.store = store
        self.states = StateStore(store: store)
        self.events = events
        self.logger = logger
        let layout = WatchLayout(devices: devices)
        self.layout = layout
        self.currentLayout = Mutex(layout)
        let wallNow = time.wall()
        self.startedAt = wallNow
        var watchdog = Watchdog(timeouts: layout.timeouts, monotonicNow: time.monotonic(), wallNow: wallNow)
        var helloCounts = Array(repeating: 0, count: devices.count)
        Self.restore(
            devices.indices, layout: layout, from: store, into: &watchdog, helloCounts: &helloCounts, logger: logger)
        self.watchdog = watchdog
        self.helloCounts = helloCounts
        let snapshot = WatchSnapshot()
        self.snapshot = snapshot
        snapshot.replaceAll(
            devices.indices.map {
                Self.info($0, layout: layout, watchdog: watchdog, helloCount: helloCounts[$0], time: time)
            })
    }

    /// Gives the devices at `indexes` what an earlier run stored of their watchdog (see `WatchdogRecord`).
    private static func restore(
        _ indexes: some Sequence<Int>, layout: WatchLayout, from store: LevelDB, into watchdog: inout Watchdog,
        helloCounts: inout [Int], logger: Logger
    ) {
        for index in indexes {
            let name = layout.devices[index].name
            let stored: [UInt8]?
            do {
                stored = try store.get(WatchdogRecord.key(device: name))
            } catch {
                logger.error(
                    "could not read a stored watchdog state", metadata: ["device": "\(name)", "error": "\(error)"])
                continue
            }
            guard let stored, let record = WatchdogRecord(encoded: stored) else { continue }
            helloCounts[index] = record.helloCount
            if let slot = layout.watchedSlots[index] {
                watchdog.restore(
                    device: slot, lastActivity: record.lastActivity, expired: record.expired, since: record.since)
            }
        }
        watchdog.rebuildSchedule()
    }

    /// Adds the watchdog state of the devices at `indexes` to `batch` (kept across restarts).
    private func persist(_ indexes: some Sequence<Int>, into batch: inout WriteBatch) {
        for index in indexes {
            var record = WatchdogRecord(
                lastActivity: nil, helloCount: helloCounts[index], expired: false, since: startedAt)
            if let slot = layout.watchedSlots[index] {
                let device = watchdog.devices[slot]
                record.lastActivity = device.lastActivity
                record.expired = device.expired
                record.since = device.since
            }
            batch.put(WatchdogRecord.key(device: devices[index].name), record.encoded)
        }
    }

    /// Writes every device's watchdog state (after the store came back from a failure).
    public func storeAll() {
        var batch = WriteBatch()
        persist(devices.indices, into: &batch)
        flush(&batch)
    }

    /// QoS 0 throughout (a QoS 1 retained replay beyond the broker's queue limit is dropped). On MQTT 5, our own
    /// publications are not delivered back (no-local), and state topics keep the RETAIN flag they were published
    /// with (retain-as-published), so that states are restored exactly as they were sent. MQTT 3.1.1 clears the
    /// flag of every live message (§3.3.1.3): there, a state is recorded retained only when it arrives retained.
    /// Plus `B/expire/+`, to find expiries retained from an earlier run (see `clearIfStale`).
    public nonisolated var subscriptions: [(filter: TopicFilter, qos: UInt8)] {
        var result = currentLayout.withLock { $0.subscriptions }
        if let expire = try? TopicFilter(baseTopic + "/expire/+") {
            result.append((expire, SubscriptionOption.noLocal))
        }
        return result
    }

    /// Applies a reloaded configuration: devices that keep their name keep their watchdog state and hello count,
    /// new ones start a grace period now, removed ones have their expire topic cleared.
    /// - Returns: the names added and removed.
    public func reconfigure(devices newDevices: [WatchedDevice]) -> (added: [String], removed: [String]) {
        let old = layout
        let oldWatchdog = watchdog
        let new = WatchLayout(devices: newDevices)
        var newWatchdog = Watchdog(
            timeouts: new.timeouts, monotonicNow: time.monotonic(), wallNow: time.wall())
        var newHellos = Array(repeating: 0, count: newDevices.count)
        let oldByName = Dictionary(uniqueKeysWithValues: old.devices.enumerated().map { ($1.name, $0) })
        Self.restore(
            newDevices.indices.filter { oldByName[newDevices[$0].name] == nil }, layout: new, from: store,
            into: &newWatchdog, helloCounts: &newHellos, logger: logger)
        for (index, device) in newDevices.enumerated() {
            guard let oldIndex = oldByName[device.name] else { continue }
            newHellos[index] = helloCounts[oldIndex]
            if let slot = new.watchedSlots[index], let oldSlot = old.watchedSlots[oldIndex] {
                newWatchdog.carryOver(device: slot, from: oldWatchdog.devices[oldSlot])
            }
        }
        newWatchdog.rebuildSchedule()
        let newNames = Set(newDevices.map(\.name))
        let removed = old.devices.map(\.name).filter { !newNames.contains($0) }
        let added = newDevices.map(\.name).filter { oldByName[$0] == nil }
        var batch = WriteBatch()
        for name in removed {
            client?.publishNoWait(topic: baseTopic + "/expire/" + name, payload: [], qos: 1, retain: true)
            batch.delete(WatchdogRecord.key(device: name))
        }
        layout = new
        currentLayout.withLock { $0 = new }
        watchdog = newWatchdog
        helloCounts = newHellos
        flush(&batch)
        let watchdogCopy = newWatchdog
        snapshot.replaceAll(
            newDevices.indices.map {
                Self.info($0, layout: new, watchdog: watchdogCopy, helloCount: newHellos[$0], time: time)
            })
        return (added, removed)
    }

    /// Expires silent devices on time and counts `B/up` once a second, until a graceful shutdown.
    public nonisolated func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { [self] in
                    while !Task.isCancelled {
                        let pause = await tick()
                        try? await time.sleep(.nanoseconds(pause))
                    }
                }
                group.addTask { [self] in
                    var count = 0
                    while !Task.isCancelled {
                        do { try await time.sleep(.seconds(1)) } catch { return }
                        count += 1
                        await client?.publishNoWait(
                            topic: baseTopic + "/up", payload: Array("\(count)".utf8), qos: 0, retain: false)
                    }
                }
            }
        }
    }

    public func brokerConnected(_ client: any MQTTPublishing) async {
        self.client = client
        if !restoredAtStart {
            restoredAtStart = true
            // Expired before the restart and silent since: B/expire says so again, with the last activity.
            for (slot, device) in watchdog.devices.enumerated() where device.expired {
                let index = layout.slotOwners[slot]
                client.publishNoWait(
                    topic: expireTopic(index),
                    payload: Array("\((device.lastActivity ?? startedAt) / 1_000_000_000)".utf8), qos: 1, retain: true)
                publishStatus(index, device: device, status: "expired")
            }
            for index in devices.indices where !devices[index].stateTopics.isEmpty { restoreStates(of: index) }
        }
    }

    /// Expires what is due, publishes the transitions, and says how long to sleep.
    func tick() -> Int64 {
        let now = time.monotonic()
        let transitions = watchdog.expireDue(monotonicNow: now, wallNow: time.wall())
        var changed: [(Int, WatchInfo)] = []
        for transition in transitions {
            guard case .expired(let slot) = transition else { continue }
            let index = layout.slotOwners[slot]
            announceExpired(index, slot: slot)
            changed.append(
                (
                    index,
                    Self.info(index, layout: layout, watchdog: watchdog, helloCount: helloCounts[index], time: time)
                ))
        }
        snapshot.update(changed)
        if !changed.isEmpty {
            var batch = WriteBatch()
            persist(changed.map(\.0), into: &batch)
            flush(&batch)
        }
        guard let next = watchdog.nextDeadline else { return Self.maximumSleep }
        return max(0, min(next - time.monotonic(), Self.maximumSleep))
    }

    public func consume(_ messages: [MQTTMessage]) async {
        var batch = WriteBatch()
        var touched = Set<Int>()
        let ownPrefix = baseTopic + "/"
        for message in messages {
            if !pendingEchoes.isEmpty, isEcho(message) { continue }
            if layout.stateIndex.count > 0 {
                var matched = false
                defer { if matched { traffic.state.add(1, ordering: .relaxed) } }
                layout.stateIndex.forEachMatch(message.topic) { index in
                    matched = true
                    states.record(
                        device: devices[index].name, topic: message.topic, payload: message.payload,
                        retain: message.retain, into: &batch)
                }
            }
            if message.retain, message.topic.hasPrefix(expirePrefix) {
                clearIfStale(message)
                continue
            }
            // Retained messages are replays of the past, and our own publications say nothing of devices.
            if message.retain || (layout.watchIndex.count == 0 && layout.helloIndex.isEmpty)
                || message.topic.hasPrefix(ownPrefix)
            {
                continue
            }
            let monotonicNow = time.monotonic()
            let wallNow = time.wall()
            var watched = false
            layout.watchIndex.forEachMatch(message.topic) { index in
                watched = true
                touched.insert(index)
                activity(index, monotonicNow: monotonicNow, wallNow: wallNow)
            }
            if watched { traffic.watch.add(1, ordering: .relaxed) }
            if let hellos = layout.helloIndex[message.topic] {
                traffic.hello.add(1, ordering: .relaxed)
                for index in hellos {
                    touched.insert(index)
                    helloCounts[index] += 1
                    activity(index, monotonicNow: monotonicNow, wallNow: wallNow)
                    // Observers read the snapshot: it says what the event says before the event goes out.
                    snapshot.update([
                        (
                            index,
                            Self.info(
                                index, layout: layout, watchdog: watchdog, helloCount: helloCounts[index], time: time)
                        )
                    ])
                    events.emit(DeviceEvent(key: keys[index], kind: .hello, source: "hello", time: wallNow))
                    if !batch.isEmpty { flush(&batch) }
                    restoreStates(of: index)
                }
            }
        }
        persist(touched, into: &batch)
        if !batch.isEmpty { flush(&batch) }
        if !touched.isEmpty {
            snapshot.update(
                touched.map {
                    ($0, Self.info($0, layout: layout, watchdog: watchdog, helloCount: helloCounts[$0], time: time))
                })
            // Their last-seen time moved (the fleet index orders by it).
            let wallNow = time.wall()
            for index in touched {
                events.emit(DeviceEvent(key: keys[index], kind: .seen, source: "watchdog", time: wallNow))
            }
        }
    }

    /// `B/expire/`: retained expiries are replayed to us at (re)subscription.
    private var expirePrefix: String { baseTopic + "/expire/" }

    /// A retained expiry of a device that is not expired now (every device starts in its grace period) or no longer
    /// configured is left over from an earlier run: cleared, so that `B/expire/#` lists what is expired right now.
    private func clearIfStale(_ message: MQTTMessage) {
        guard !message.payload.isEmpty else { return }
        let name = String(message.topic.dropFirst(expirePrefix.count))
        if let index = layout.indexByName[name], let slot = layout.watchedSlots[index], watchdog.devices[slot].expired {
            return
        }
        client?.publishNoWait(topic: message.topic, payload: [], qos: 1, retain: true)
    }

    private func activity(_ index: Int, monotonicNow: Int64, wallNow: Int64) {
        guard let slot = layout.watchedSlots[index] else { return }
        if case .alive = watchdog.recordActivity(device: slot, monotonicNow: monotonicNow, wallNow: wallNow) {
            announceAlive(index, slot: slot)
        }
    }

    private func flush(_ batch: inout WriteBatch) {
        do {
            try store.write(batch, sync: false)
        } catch {
            logger.error("could not store device states", metadata: ["error": "\(error)"])
        }
        batch.clear()
    }

    private func isEcho(_ message: MQTTMessage) -> Bool {
        guard let pending = pendingEchoes[message.topic] else { return false }
        guard pending.until > time.monotonic() else {
            pendingEchoes[message.topic] = nil
            return false
        }
        return pending.payloads.contains(message.payload)
    }

    /// Re-publishes the device's own stored states with their original retain flag (docs/behaviour.md §6).
    private func restoreStates(of index: Int) {
        let name = devices[index].name
        guard let client else { return }
        do {
            let records = try states.records(device: name)
            let until = time.monotonic() + Self.echoWindow
            for record in records {
                var pending = pendingEchoes[record.topic] ?? ([], until)
                pending.payloads.append(record.payload)
                pending.until = until
                pendingEchoes[record.topic] = pending
                client.publishNoWait(topic: record.topic, payload: record.payload, qos: 1, retain: record.retain)
            }
            if !records.isEmpty {
                logger.info("restored states", metadata: ["device": "\(name)", "count": "\(records.count)"])
            }
        } catch {
            logger.error("could not read stored states", metadata: ["device": "\(name)", "error": "\(error)"])
        }
    }

    // MARK: - Publications (docs/behaviour.md §5)

    private func expireTopic(_ index: Int) -> String { baseTopic + "/expire/" + devices[index].name }
    private func statusTopic(_ index: Int) -> String { baseTopic + "/status/" + devices[index].name }

    private func announceExpired(_ index: Int, slot: Int) {
        let device = watchdog.devices[slot]
        let lastActivity = device.lastActivity ?? startedAt
        logger.notice(
            "device expired",
            metadata: ["device": "\(devices[index].name)", "timeout": "\(devices[index].watchTimeOut)"])
        client?.publishNoWait(
            topic: expireTopic(index), payload: Array("\(lastActivity / 1_000_000_000)".utf8), qos: 1, retain: true)
        publishStatus(index, device: device, status: "expired")
        // Observers read the snapshot: it says what the event says before the event goes out.
        snapshot.update([
            (index, Self.info(index, layout: layout, watchdog: watchdog, helloCount: helloCounts[index], time: time))
        ])
        events.emit(
            DeviceEvent(
                key: keys[index], kind: .transition(from: .online, to: .expired), source: "watchdog",
                reason: "no message for \(devices[index].watchTimeOut) s", time: device.since))
    }

    private func announceAlive(_ index: Int, slot: Int) {
        let device = watchdog.devices[slot]
        logger.notice("device alive again", metadata: ["device": "\(devices[index].name)"])
        client?.publishNoWait(topic: expireTopic(index), payload: [], qos: 1, retain: true)
        publishStatus(index, device: device, status: "online")
        // Observers read the snapshot: it says what the event says before the event goes out.
        snapshot.update([
            (index, Self.info(index, layout: layout, watchdog: watchdog, helloCount: helloCounts[index], time: time))
        ])
        events.emit(
            DeviceEvent(
                key: keys[index], kind: .transition(from: .expired, to: .online), source: "watchdog",
                reason: "message on a watch topic", time: device.since))
    }

    private func publishStatus(_ index: Int, device: Watchdog.Device, status: String) {
        let lastSeen = device.lastActivity.map { "\($0 / 1_000_000_000)" } ?? "null"
        let body = "{\"status\":\"\(status)\",\"lastSeen\":\(lastSeen),\"since\":\(device.since / 1_000_000_000)}"
        client?.publishNoWait(topic: statusTopic(index), payload: Array(body.utf8), qos: 1, retain: true)
    }

    private static func info(
        _ index: Int, layout: WatchLayout, watchdog: Watchdog, helloCount: Int, time: WatchClock
    ) -> WatchInfo {
        let device = layout.devices[index]
        let slot = layout.watchedSlots[index]
        let state = slot.map { watchdog.devices[$0] }
        // Deadlines are monotonic; shown as wall-clock time.
        let deadline = state.map { time.wall() + ($0.deadline - time.monotonic()) }
        return WatchInfo(
            name: device.name, kind: device.kind, key: layout.keys[index], timeoutSeconds: device.watchTimeOut,
            watched: slot != nil, expired: state?.expired ?? false, lastActivity: state?.lastActivity,
            since: state?.since, deadline: deadline, helloCount: helloCount)
    }
}

/// The configured devices and the indexes that map topics to them.
struct WatchLayout: Sendable {
    let devices: [WatchedDevice]
    let keys: [DeviceKey]
    let watchIndex: TopicFilterIndex<Int>
    let stateIndex: TopicFilterIndex<Int>
    let helloIndex: [String: [Int]]
    /// Each device's watchdog slot: only devices with watch topics or a hello topic have one.
    let watchedSlots: [Int?]
    /// The device index of each watchdog slot.
    let slotOwners: [Int]
    let timeouts: [(name: String, timeout: Int64)]
    let indexByName: [String: Int]

    init(devices: [WatchedDevice]) {
        self.devices = devices
        indexByName = Dictionary(devices.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        keys = devices.map { DeviceKey(type: $0.type, id: $0.id) }
        var watchIndex = TopicFilterIndex<Int>()
        var stateIndex = TopicFilterIndex<Int>()
        var helloIndex: [String: [Int]] = [:]
        var slots: [Int?] = []
        var timeouts: [(name: String, timeout: Int64)] = []
        for (index, device) in devices.enumerated() {
            for filter in device.watchTopics { watchIndex.insert(filter, index) }
            for filter in device.stateTopics { stateIndex.insert(filter, index) }
            if let hello = device.helloTopic { helloIndex[hello, default: []].append(index) }
            if !device.watchTopics.isEmpty || device.helloTopic != nil {
                slots.append(timeouts.count)
                timeouts.append((device.name, Int64(device.watchTimeOut) * 1_000_000_000))
            } else {
                slots.append(nil)
            }
        }
        self.watchIndex = watchIndex
        self.stateIndex = stateIndex
        self.helloIndex = helloIndex
        watchedSlots = slots
        slotOwners = slots.indices.filter { slots[$0] != nil }
        self.timeouts = timeouts
    }

    var subscriptions: [(filter: TopicFilter, qos: UInt8)] {
        var result: [(filter: TopicFilter, qos: UInt8)] = []
        for device in devices {
            result += device.watchTopics.map { ($0, SubscriptionOption.noLocal) }
            result += device.stateTopics.map { ($0, SubscriptionOption.noLocal | SubscriptionOption.retainAsPublished) }
            if let hello = device.helloTopic, let filter = try? TopicFilter(hello) {
                result.append((filter, SubscriptionOption.noLocal))
            }
        }
        return result
    }
}

/// What the watchdog knows of one configured device, for the HTTP routes.
public struct WatchInfo: Sendable, Equatable {
    public let name: String
    public let kind: WatchedDevice.Kind
    public let key: DeviceKey
    public let timeoutSeconds: Int
    /// False when the device has neither watch topics nor a hello topic: nothing to judge it by.
    public let watched: Bool
    public let expired: Bool
    /// Wall-clock nanoseconds of the last activity, nil if none since daemon start.
    public let lastActivity: Int64?
    /// Wall-clock nanoseconds of the last transition (or daemon start).
    public let since: Int64?
    /// Wall-clock nanoseconds of the current deadline (meaningless once expired).
    public let deadline: Int64?
    public let helloCount: Int
}

/// The watchdog's state as HTTP threads read it; the `WatchService` updates the devices that changed.
public final class WatchSnapshot: Sendable {
    private let state = Mutex<(list: [WatchInfo], byPath: [String: Int])>(([], [:]))

    public init() {}

    func replaceAll(_ infos: [WatchInfo]) {
        var byPath: [String: Int] = [:]
        for (index, info) in infos.enumerated() { byPath[info.key.path] = index }
        state.withLock { $0 = (infos, byPath) }
    }

    func update(_ changes: [(Int, WatchInfo)]) {
        guard !changes.isEmpty else { return }
        state.withLock { state in
            for (index, info) in changes { state.list[index] = info }
        }
    }

    /// Every configured device, in config order.
    public var all: [WatchInfo] { state.withLock { $0.list } }

    public func info(forPath path: String) -> WatchInfo? {
        state.withLock { state in
            // No hashing of the path when no device is watched (a fleet known from status topics alone).
            guard !state.byPath.isEmpty else { return nil }
            return state.byPath[path].map { state.list[$0] }
        }
    }
}

/// Counts of messages on watched devices' topics: live messages on `watchTopics` (activity), messages on
/// `stateTopics` (stored for restoration, retained ones included) and hellos.
public final class WatchTraffic: Sendable {
    public let watch = Atomic<Int>(0)
    public let state = Atomic<Int>(0)
    public let hello = Atomic<Int>(0)
}
