import Logging
import MQTT
import ServiceLifecycle
import Storage
import Synchronization

/// How fast `[availability]` publishes. A fleet of 100,000 devices means 200,000 retained messages at a first start
/// with Home Assistant discovery: sent as fast as possible they would sit in libmosquitto's unbounded outgoing queue
/// (the daemon sets no in-flight limit of its own), hold up everything else the daemon publishes behind them, and
/// reach every subscriber of the discovery prefix (Home Assistant) as one burst.
public struct AvailabilityPacing: Sendable, Equatable {
    /// Devices handled per round, default 100; a round's publications (at most three a device) are all in flight
    /// together and acknowledged (QoS 1) before the next round starts, so libmosquitto never queues more than one
    /// round.
    public var devicesPerRound: Int
    /// Messages per second at most, default 5,000 (100,000 devices with discovery: about 40 s).
    public var messagesPerSecond: Int

    public init(devicesPerRound: Int = 100, messagesPerSecond: Int = 5_000) {
        self.devicesPerRound = devicesPerRound
        self.messagesPerSecond = messagesPerSecond
    }
}

/// A token bucket in virtual time (GCRA): each message costs `1 / rate`; a burst of `burst` messages passes at once.
struct PublicationPacer: Sendable {
    let interval: Duration
    let burstWindow: Duration
    /// When the last reserved message is "due" at the steady rate.
    private var theoretical: Duration = .zero

    init(messagesPerSecond: Int, burst: Int) {
        interval = .seconds(1) / max(messagesPerSecond, 1)
        burstWindow = interval * max(burst, 1)
    }

    /// Reserves `count` messages at `now` (time since any fixed origin) and returns how long to wait before the
    /// next reservation: zero while within the rate and its burst.
    mutating func reserve(_ count: Int, now: Duration) -> Duration {
        theoretical = max(theoretical, now) + interval * count
        let wait = theoretical - burstWindow - now
        return wait > .zero ? wait : .zero
    }
}

/// Devices waiting to be looked at, first in first out, each once.
struct PathQueue: Sendable {
    private var order: [String] = []
    private var head = 0
    private var queued = Set<String>()

    var count: Int { queued.count }

    /// Appends `path` unless it waits already.
    mutating func append(_ path: String) {
        if queued.insert(path).inserted { order.append(path) }
    }

    mutating func take(_ limit: Int) -> [String] {
        let end = min(order.count, head + limit)
        let taken = Array(order[head..<end])
        head = end
        for path in taken { queued.remove(path) }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        return taken
    }
}

/// Publishes `[availability]`: the retained `B/availability/<type>/<id>` of every selected device and, with
/// `homeassistant`, its Home Assistant discovery config; clears both when the device is gone.
///
/// Every device event marks its device; the publisher looks at marked devices in rounds, judges each again (its
/// overall status, as `GET /devices/<type>/<id>` answers it), and publishes what differs from what the broker
/// holds. What the broker holds is remembered in the store (`a/<type>/<id>`, written once the broker acknowledged
/// it): so after a restart only the devices whose value changed while the daemon was down are published again,
/// without subscribing to our own topics (a retained replay of 100,000 topics is cut short by a default mosquitto).
/// A burst of transitions of one device between two rounds publishes its last value once.
///
/// At start (once the broker's retained replay is through) and after a reload that changes `[availability]`, every
/// known device and every remembered one is looked at: devices no longer selected, or no longer known, are
/// cleared.
public final class AvailabilityPublisher: Service, Sendable {
    private let plan: Mutex<AvailabilityPlan>
    private let active: Atomic<Bool>
    private let queue = Mutex(PathQueue())
    private let wake: AsyncStream<Void>
    private let wakeInput: AsyncStream<Void>.Continuation
    private let store: LevelDB
    private let client: any MQTTPublishing
    private let state: @Sendable (String) -> DeviceState?
    private let everyDevice: @Sendable () -> [String]
    private let replayFinished: @Sendable () -> Bool
    private let clock: any Clock<Duration>
    private let pacing: AvailabilityPacing
    private let logger: Logger
    private let started = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    /// The last sweep, until the queue has emptied after it (then logged).
    private let sweeping = Mutex<Sweep?>(nil)

    private struct Sweep {
        let devices: Int
        let began: ContinuousClock.Instant
        let published: Int
        let cleared: Int
    }

    /// Publications acknowledged by the broker, by kind (`availability`, `discovery`, `cleared`).
    public let published = AvailabilityCounts()

    /// - Parameters:
    ///   - state: a device's overall status by `type/id`, nil when nothing is known of it.
    ///   - everyDevice: every known device's `type/id`.
    ///   - replayFinished: true once the broker's retained replay is through (nothing is published before).
    ///   - clock: what pacing waits on; default `ContinuousClock`.
    public init(
        plan: AvailabilityPlan, store: LevelDB, client: any MQTTPublishing,
        state: @escaping @Sendable (String) -> DeviceState?, everyDevice: @escaping @Sendable () -> [String],
        replayFinished: @escaping @Sendable () -> Bool, pacing: AvailabilityPacing = .init(),
        clock: any Clock<Duration> = ContinuousClock(), logger: Logger
    ) {
        self.plan = Mutex(plan)
        self.active = Atomic(plan.isActive)
        self.store = store
        self.client = client
        self.state = state
        self.everyDevice = everyDevice
        self.replayFinished = replayFinished
        self.pacing = pacing
        self.clock = clock
        self.logger = logger
        (wake, wakeInput) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Marks the device of every event (while anything is published).
    public func observe(_ events: DeviceEvents) {
        events.observe { [weak self] event in
            guard let self, self.active.load(ordering: .relaxed) else { return }
            if case .hello = event.kind { return }
            self.mark([event.key.path])
        }
    }

    /// Devices waiting to be looked at.
    public var pending: Int { queue.withLock { $0.count } }

    /// Applies changed settings (a reload): every known and remembered device is looked at again.
    public func update(_ newPlan: AvailabilityPlan) {
        plan.withLock { $0 = newPlan }
        active.store(newPlan.isActive, ordering: .relaxed)
        if started.load(ordering: .relaxed) { sweep() }
    }

    /// `paths` may have changed (e.g. watched devices added or removed by a reload).
    public func mark(_ paths: [String]) {
        // Called on the status registry's path for every event: the publisher is woken only when the queue was
        // empty (it drains the queue before it waits again).
        let wasEmpty = queue.withLock { queue in
            let wasEmpty = queue.count == 0
            for path in paths { queue.append(path) }
            return wasEmpty
        }
        if wasEmpty { wakeInput.yield() }
    }

    /// How long a clean stop waits for the round in flight: its acknowledgements are remembered, so the next start
    /// does not publish it again. Bounded: a broker that has gone quiet must not hold up the stop.
    static var stopPatience: Duration { .seconds(1) }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.work() }
            do {
                try await gracefulShutdown()
                // No new round starts; the one in flight may finish.
                stopping.store(true, ordering: .relaxed)
                wakeInput.finish()
                group.addTask { try? await Task.sleep(for: Self.stopPatience) }
                await group.next()
            } catch {
                // Cancelled: stop at once.
            }
            group.cancelAll()
        }
        wakeInput.finish()
    }

    private func work() async {
        do {
            while !replayFinished() {
                if stopping.load(ordering: .relaxed) { return }
                try await clock.sleep(for: .milliseconds(50))
            }
        } catch {
            return
        }
        started.store(true, ordering: .relaxed)
        sweep()
        await publishLoop()
    }

    /// Marks every known device (when publishing) and every remembered one.
    private func sweep() {
        var paths = Set(active.load(ordering: .relaxed) ? everyDevice() : [])
        do {
            try store.forEach(prefix: AvailabilityRecord.prefix) { key, _ in
                paths.insert(String(decoding: key.dropFirst(AvailabilityRecord.prefix.count), as: UTF8.self))
                return true
            }
        } catch {
            logger.error("could not read the remembered availability topics", metadata: ["error": "\(error)"])
        }
        guard !paths.isEmpty else { return }
        sweeping.withLock {
            $0 = Sweep(
                devices: paths.count, began: .now,
                published: published.value(.availability) + published.value(.discovery),
                cleared: published.value(.cleared))
        }
        mark(Array(paths))
    }

    private func publishLoop() async {
        var pacer = PublicationPacer(
            messagesPerSecond: pacing.messagesPerSecond, burst: pacing.devicesPerRound * 3)
        let elapsed = Self.stopwatch(clock)
        for await _ in wake {
            while !Task.isCancelled, !stopping.load(ordering: .relaxed) {
                let paths = queue.withLock { $0.take(pacing.devicesPerRound) }
                if paths.isEmpty {
                    reportSweep()
                    break
                }
                let count = await publishRound(paths)
                let wait = pacer.reserve(count, now: elapsed())
                if wait > .zero {
                    do { try await clock.sleep(for: wait) } catch { return }
                }
            }
        }
    }

    /// Once the queue has emptied after a sweep (start, reload): one line saying what it took.
    private func reportSweep() {
        guard let sweep = sweeping.withLock({ $0.take() }) else { return }
        let milliseconds = (ContinuousClock.now - sweep.began) / .milliseconds(1)
        logger.notice(
            "availability topics up to date",
            metadata: [
                "devices": "\(sweep.devices)",
                "published": "\(published.value(.availability) + published.value(.discovery) - sweep.published)",
                "cleared": "\(published.value(.cleared) - sweep.cleared)", "milliseconds": "\(Int(milliseconds))",
            ])
    }

    /// Time since the call, on `clock`.
    private static func stopwatch<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> Duration {
        let origin = clock.now
        return { origin.duration(to: clock.now) }
    }

    private struct Change {
        let path: String
        let target: AvailabilityRecord?
        let publications: [AvailabilityPublication]
    }

    /// Publishes what `paths` need, waits for the broker's acknowledgements, remembers what it acknowledged.
    /// Returns the number of messages sent.
    private func publishRound(_ paths: [String]) async -> Int {
        let plan = plan.withLock { $0 }
        var changes: [Change] = []
        for path in paths {
            guard let key = DeviceKey(storedPath: path) else { continue }
            let held: AvailabilityRecord?
            do {
                held = try store.get(AvailabilityRecord.key(path: path)).flatMap { AvailabilityRecord(encoded: $0) }
            } catch {
                logger.error("could not read a remembered availability topic", metadata: ["error": "\(error)"])
                continue
            }
            let target = plan.desired(key, state: state(path))
            let publications = AvailabilityPlan.publications(
                from: held, to: target, key: key, baseTopic: plan.baseTopic)
            if !publications.isEmpty { changes.append(Change(path: path, target: target, publications: publications)) }
        }
        guard !changes.isEmpty else { return 0 }
        let client = client
        let acknowledged = await withTaskGroup(of: (Int, Bool).self) { group in
            for (index, change) in changes.enumerated() {
                group.addTask {
                    for publication in change.publications {
                        do {
                            try await client.publish(
                                topic: publication.topic, payload: publication.payload, qos: 1, retain: true,
                                timeout: nil)
                        } catch {
                            return (index, false)
                        }
                    }
                    return (index, true)
                }
            }
            var result = [Bool](repeating: false, count: changes.count)
            for await (index, ok) in group { result[index] = ok }
            return result
        }
        var batch = WriteBatch()
        for (change, ok) in zip(changes, acknowledged) where ok {
            if let target = change.target {
                batch.put(AvailabilityRecord.key(path: change.path), target.encoded)
            } else {
                batch.delete(AvailabilityRecord.key(path: change.path))
            }
            for publication in change.publications { published.count(publication.kind) }
        }
        let failed = acknowledged.filter { !$0 }.count
        if failed > 0, !Task.isCancelled {
            logger.warning("availability publications not acknowledged", metadata: ["devices": "\(failed)"])
        }
        if !batch.isEmpty {
            do {
                try store.write(batch, sync: false)
            } catch {
                // Published but not remembered: the next start publishes these devices again.
                logger.error("could not remember availability publications", metadata: ["error": "\(error)"])
            }
        }
        return changes.reduce(0) { $0 + $1.publications.count }
    }
}

/// Publications acknowledged by the broker, by kind.
public final class AvailabilityCounts: Sendable {
    private let availability = Atomic<Int>(0)
    private let discovery = Atomic<Int>(0)
    private let cleared = Atomic<Int>(0)

    func count(_ kind: AvailabilityPublication.Kind) {
        switch kind {
        case .availability: availability.add(1, ordering: .relaxed)
        case .discovery: discovery.add(1, ordering: .relaxed)
        case .cleared: cleared.add(1, ordering: .relaxed)
        }
    }

    public func value(_ kind: AvailabilityPublication.Kind) -> Int {
        switch kind {
        case .availability: availability.load(ordering: .relaxed)
        case .discovery: discovery.load(ordering: .relaxed)
        case .cleared: cleared.load(ordering: .relaxed)
        }
    }
}
