import CMosquitto
import Logging
import Synchronization

/// The state libmosquitto's callbacks and the public API share. It is the callbacks' userdata,
/// retained separately from ``MQTTClient`` and released only after `mosquitto_destroy`, so a callback
/// never sees freed memory.
final class ClientCore: Sendable {
    typealias AckContinuation = CheckedContinuation<Result<Void, MQTTError>, Never>

    /// A publish or subscribe waiting for its acknowledgement.
    fileprivate struct Waiter {
        var continuation: AckContinuation
        /// QoS 0 publishes and subscribes are lost with the connection; QoS 1/2 publishes are resent.
        var diesWithConnection: Bool
    }

    /// An acknowledgement slot for one message id.
    fileprivate struct AckTable {
        var waiting: [Int32: Waiter] = [:]
        /// Acks that arrived before their sender registered (on_publish can run before
        /// mosquitto_publish has even returned the id to us).
        var early: [Int32: Result<Void, MQTTError>] = [:]
        /// Ids nobody waits for (fire-and-forget, cancelled, renewal subscriptions) → dies with connection.
        var ignored: [Int32: Bool] = [:]
    }

    struct State {
        var connected = false
        var connectCount = 0
        /// Session takeovers in a row (another client connected with our client id), reset by any other
        /// disconnect: the first is logged as an error, and each one doubles the pause before reconnecting.
        var takeovers = 0
        /// When the current connection was accepted.
        var connectedAt: ContinuousClock.Instant?
        /// Connections in a row that the broker closed soon after accepting them (see `quickDropsForTakeover`).
        var quickDrops = 0
        /// Bumped on every disconnect, so a sender can tell its packet may have been dropped.
        var epoch = 0
        var stopped = false
        /// The configured subscriptions (`setSubscriptions`).
        var subscriptions: [(filter: String, qos: UInt8)] = []
        /// Filters added one at a time (`subscribe`) until `unsubscribe`: kept apart, so that replacing the
        /// configured set (a reload) neither drops nor unsubscribes them.
        var added: [String: UInt8] = [:]

        /// Everything to subscribe on (re)connect: the configured set, then the added filters it lacks.
        var renewed: [(filter: String, qos: UInt8)] {
            let configured = Set(subscriptions.map(\.filter))
            return subscriptions + added.filter { !configured.contains($0.key) }.map { (filter: $0.key, qos: $0.value) }
        }
        /// Renewal subscriptions sent in on_connect, to log the broker's refusals.
        var renewals: [Int32: String] = [:]
        fileprivate var publishes = AckTable()
        fileprivate var subscribes = AckTable()
    }

    let state = Mutex(State())
    let messages = MessageQueue()
    let events: AsyncStream<MQTTConnectionEvent>
    let eventSink: AsyncStream<MQTTConnectionEvent>.Continuation
    let logger: Logger
    let brokerDescription: String
    /// The version spoken now: 5 or 3.1.1 (`auto` starts with 5).
    var protocolVersion: MQTTProtocolVersion { speaksV5.load(ordering: .relaxed) ? .v5 : .v311 }
    /// The version asked for (`auto` may fall back to 3.1.1).
    let requestedVersion: MQTTProtocolVersion
    private let speaksV5: Atomic<Bool>
    /// Runs after a fall-back to 3.1.1 that ended libmosquitto's network thread (it quits on a protocol error).
    let restartAfterFallback = Mutex<(@Sendable () -> Void)?>(nil)
    let clientID: String
    /// libmosquitto's reconnect backoff, in whole seconds: first pause and longest pause.
    let reconnectDelay: (first: UInt32, longest: UInt32)

    init(
        logger: Logger, brokerDescription: String, protocolVersion: MQTTProtocolVersion, clientID: String = "",
        reconnectDelay: Duration = .seconds(1), maxReconnectDelay: Duration = .seconds(30)
    ) {
        self.logger = logger
        self.brokerDescription = brokerDescription
        self.requestedVersion = protocolVersion
        self.speaksV5 = Atomic(protocolVersion != .v311)
        self.clientID = clientID
        let first = max(1, reconnectDelay.components.seconds)
        self.reconnectDelay = (
            UInt32(clamping: first), UInt32(clamping: max(first, maxReconnectDelay.components.seconds))
        )
        // A consumer that lags behind connection flapping only needs the recent changes.
        (events, eventSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    enum AckKind { case publish, subscribe }

    private static func table(_ kind: AckKind) -> WritableKeyPath<State, AckTable> {
        kind == .publish ? \.publishes : \.subscribes
    }

    /// The current connection epoch (read before sending, checked when registering).
    var epoch: Int { state.withLock { $0.epoch } }

    /// Publishes and subscribes waiting for their acknowledgement right now.
    var waitingCount: Int { state.withLock { $0.publishes.waiting.count + $0.subscribes.waiting.count } }

    /// Waits for the acknowledgement of `mid`, sent during connection `epoch`.
    func waitForAck(
        _ kind: AckKind, mid: Int32, epoch: Int, diesWithConnection: Bool, timeout: Duration?
    ) async -> Result<Void, MQTTError> {
        let path = Self.table(kind)
        let timer = timeout.map { timeout in
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self?.abandon(kind, mid: mid, with: .timedOut) }
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: AckContinuation) in
                let immediate = state.withLock { state -> Result<Void, MQTTError>? in
                    if let result = state[keyPath: path].early.removeValue(forKey: mid) { return result }
                    if state.stopped { return .failure(.stopped) }
                    if diesWithConnection && state.epoch != epoch {
                        return .failure(MQTTError.notConnected.with("the connection was lost while sending"))
                    }
                    state[keyPath: path].waiting[mid] = Waiter(
                        continuation: continuation, diesWithConnection: diesWithConnection)
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                } else if Task.isCancelled {
                    abandon(kind, mid: mid, with: .cancelled)
                }
            }
        } onCancel: {
            abandon(kind, mid: mid, with: .cancelled)
        }
    }

    /// Nobody will wait for `mid` (fire-and-forget): forget an early ack or ignore the coming one.
    func ignoreAck(_ kind: AckKind, mid: Int32, diesWithConnection: Bool) {
        let path = Self.table(kind)
        state.withLock { state in
            if state[keyPath: path].early.removeValue(forKey: mid) == nil {
                state[keyPath: path].ignored[mid] = diesWithConnection
            }
        }
    }

    /// Fails the waiter of `mid`, if it still waits, and ignores the ack that may come later.
    private func abandon(_ kind: AckKind, mid: Int32, with error: MQTTError) {
        let path = Self.table(kind)
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state[keyPath: path].waiting.removeValue(forKey: mid) else { return nil }
            state[keyPath: path].ignored[mid] = waiter.diesWithConnection
            return waiter
        }
        waiter?.continuation.resume(returning: .failure(error))
    }

    /// Called on the network thread when the broker acknowledged `mid` (or a QoS 0 publish was written).
    func acknowledge(_ kind: AckKind, mid: Int32, result: Result<Void, MQTTError>) {
        let path = Self.table(kind)
        let waiter = state.withLock { state -> Waiter? in
            if let waiter = state[keyPath: path].waiting.removeValue(forKey: mid) { return waiter }
            if state[keyPath: path].ignored.removeValue(forKey: mid) != nil { return nil }
            state[keyPath: path].early[mid] = result
            return nil
        }
        waiter?.continuation.resume(returning: result)
    }

    /// Called on the network thread when the connection ends: fails what cannot complete any more.
    /// Returns whether the client was connected (false after a failed connection attempt).
    /// The pause before reconnecting after the `count`-th session takeover in a row: 30 s, doubling, at most
    /// 10 minutes. Two instances sharing a client id would otherwise throw each other off every second.
    static func takeoverPause(_ count: Int) -> UInt32 {
        UInt32(min(600, 30 << min(max(count - 1, 0), 5)))
    }

    /// A broker that does not send MQTT 5's "Session taken over" (mosquitto 2.0, any 3.1.1 connection) just closes
    /// the connection of the client an intruder replaces. When it closes this many connections in a row, each
    /// within ``quickDropWindow`` of being accepted, the daemon takes it for a takeover.
    static let quickDropsForTakeover = 3
    static let quickDropWindow: Duration = .seconds(10)

    /// With `auto`: the broker refused MQTT 5, so every later connection attempt speaks 3.1.1. True if it
    /// switched (only once).
    func fallBackToV311(_ mosq: OpaquePointer) -> Bool {
        guard requestedVersion == .auto, speaksV5.exchange(false, ordering: .relaxed) else { return false }
        _ = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, Int32(MQTT_PROTOCOL_V311))
        return true
    }

    /// Back to the configured backoff (after a takeover's long pause).
    func restoreReconnectDelay(_ mosq: OpaquePointer) -> Int32 {
        mosquitto_reconnect_delay_set(mosq, reconnectDelay.first, reconnectDelay.longest, true)
    }

    func connectionLost(reason: String) -> Bool {
        let (wasConnected, failed) = state.withLock { state -> (Bool, [Waiter]) in
            let wasConnected = state.connected
            state.connected = false
            state.epoch += 1
            var failed: [Waiter] = []
            for path in [\State.publishes, \State.subscribes] {
                for (mid, waiter) in state[keyPath: path].waiting where waiter.diesWithConnection {
                    state[keyPath: path].waiting[mid] = nil
                    failed.append(waiter)
                }
                state[keyPath: path].ignored = state[keyPath: path].ignored.filter { !$0.value }
            }
            state.renewals = [:]
            return (wasConnected, failed)
        }
        let error = MQTTError.notConnected.with("connection lost before the broker acknowledged: \(reason)")
        for waiter in failed { waiter.continuation.resume(returning: .failure(error)) }
        return wasConnected
    }

    /// Fails every waiter (the client is stopping) and ends the streams.
    func shutDown() {
        let failed = state.withLock { state -> [Waiter] in
            state.stopped = true
            state.connected = false
            let failed = Array(state.publishes.waiting.values) + Array(state.subscribes.waiting.values)
            state.publishes = AckTable()
            state.subscribes = AckTable()
            return failed
        }
        for waiter in failed { waiter.continuation.resume(returning: .failure(.stopped)) }
        messages.finish()
        eventSink.finish()
    }
}
