import CMosquitto
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An MQTT client on libmosquitto: connects in the background and keeps reconnecting with backoff
/// (1 s doubling to 30 s by default) forever, renews its subscriptions on every connect, delivers
/// received messages in batches, and completes publishes when the broker acknowledges them.
///
/// ```swift
/// let client = try MQTTClient(configuration: .init(broker: try BrokerURL(parsing: "tcp://localhost"), clientID: "me"))
/// try client.setSubscriptions([("home/#", 0)])
/// client.start()
/// Task { for await batch in client.messageBatches { handle(batch) } }
/// try await client.publish(topic: "home/x", payload: Array("1".utf8), qos: 1)
/// await client.stop()
/// ```
public final class MQTTClient: Sendable {
    private enum Phase { case created, started, stopping, stopped }

    private struct Handle {
        var mosq: OpaquePointer?
        var phase: Phase
        /// The network thread runs (from the first successful connection attempt until stop).
        var loopStarted = false
    }

    /// The configuration the client was made with.
    public let configuration: MQTTConfiguration
    private let core: ClientCore
    /// The libmosquitto handle: used under this lock by callers, destroyed under it by `stop()`.
    /// The callbacks use their own argument; they cannot run after the network thread was joined.
    private let handle: Mutex<Handle>
    private let logger: Logger

    /// Creates the client and checks the configuration; does not connect (see ``start()``).
    ///
    /// Throws ``MQTTError/invalidConfiguration`` naming the problem: keep-alive out of range, an
    /// unusable client id, will or TLS file.
    public init(configuration: MQTTConfiguration, logger: Logger = Logger(label: "mqtt")) throws(MQTTError) {
        _ = mosquittoLibrary
        self.configuration = configuration
        self.logger = logger
        let core = ClientCore(
            logger: logger, brokerDescription: configuration.broker.description,
            protocolVersion: configuration.protocolVersion, clientID: configuration.clientID,
            reconnectDelay: configuration.reconnectDelay, maxReconnectDelay: configuration.maxReconnectDelay)
        self.core = core

        func invalid(_ text: String) -> MQTTError { MQTTError.invalidConfiguration.with(text) }
        // MQTT encodes keep-alive in 16 bits; libmosquitto refuses 1...4 s.
        guard configuration.keepAlive == 0 || (5...65535).contains(configuration.keepAlive) else {
            throw invalid("keepAlive \(configuration.keepAlive) must be 0 (off) or 5...65535 seconds")
        }
        guard configuration.clientID.utf8.count <= 65535 else { throw invalid("clientID is longer than 65535 bytes") }
        if configuration.clientID.isEmpty && !configuration.cleanSession {
            throw invalid("an empty clientID needs cleanSession = true")
        }

        let box = Unmanaged.passRetained(core).toOpaque()
        guard
            let mosq = mosquitto_new(
                configuration.clientID.isEmpty ? nil : configuration.clientID, configuration.cleanSession, box)
        else {
            Unmanaged<ClientCore>.fromOpaque(box).release()
            throw invalid(
                "mosquitto_new failed for client id '\(configuration.clientID)': \(String(cString: strerror(errno)))")
        }
        do {
            try Self.configure(mosq, configuration, core: core)
        } catch {
            mosquitto_destroy(mosq)
            Unmanaged<ClientCore>.fromOpaque(box).release()
            throw error
        }
        registerCallbacks(mosq, trace: logger.logLevel <= .trace)
        handle = Mutex(Handle(mosq: mosq, phase: .created))
    }

    private static func configure(
        _ mosq: OpaquePointer, _ configuration: MQTTConfiguration, core: ClientCore
    ) throws(MQTTError) {
        func check(_ rc: Int32, _ what: String) throws(MQTTError) {
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                throw MQTTError.invalidConfiguration.with(
                    "\(what): \(MQTTError.mosquitto(rc, "libmosquitto").description)")
            }
        }
        let version = configuration.protocolVersion == .v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5
        try check(
            mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, Int32(version)),
            "protocol \(configuration.protocolVersion.rawValue)")
        // libmosquitto sends at most 20 QoS 1/2 messages awaiting their ack by default and queues the rest: a burst
        // of expiries (thousands of devices sharing a timeout) then waits hundreds of round trips. The broker
        // bounds what it accepts itself (MQTT 5 Receive Maximum, which libmosquitto honours).
        try check(mosquitto_max_inflight_messages_set(mosq, 0), "max inflight messages")
        if let user = configuration.user, !user.isEmpty {
            try check(mosquitto_username_pw_set(mosq, user, configuration.password), "user '\(user)'")
        }
        if let will = configuration.will {
            guard will.qos <= 2 else {
                throw MQTTError.invalidConfiguration.with("will QoS \(will.qos) is not 0, 1 or 2")
            }
            let rc = will.payload.withUnsafeBytes {
                mosquitto_will_set(mosq, will.topic, Int32($0.count), $0.baseAddress, Int32(will.qos), will.retain)
            }
            try check(rc, "will topic '\(will.topic)'")
        }
        if configuration.broker.useTLS {
            let caPath = configuration.caFile == nil ? MQTTConfiguration.systemCAPath : nil
            let rc = mosquitto_tls_set(
                mosq, configuration.caFile, caPath, configuration.certFile, configuration.keyFile, nil)
            try check(
                rc,
                "TLS files (cafile \(configuration.caFile ?? "none, using \(MQTTConfiguration.systemCAPath)"), certfile \(configuration.certFile ?? "none"), keyfile \(configuration.keyFile ?? "none"))"
            )
        }
        try check(core.restoreReconnectDelay(mosq), "reconnect delay")
    }

    // MARK: Lifecycle

    /// Starts connecting in the background and returns at once. A broker that is down (or a host that
    /// does not resolve yet) is logged and retried with backoff forever; watch ``connectionEvents``
    /// or ``isConnected``. Calling it again, or after ``stop()``, does nothing.
    public func start() {
        let begin = handle.withLock { handle -> Bool in
            guard handle.phase == .created else { return false }
            handle.phase = .started
            return true
        }
        if begin {
            core.restartAfterFallback.withLock { restart in
                restart = { [weak self] in
                    DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
                        self?.restartLoop()
                    }
                }
            }
            connect(attempt: 0)
        }
    }

    /// Joins the network thread that ended (a protocol error) and connects again from the start.
    private func restartLoop() {
        let ended = handle.withLock { handle -> Bool in
            guard handle.phase == .started, handle.loopStarted, let mosq = handle.mosq else { return false }
            mosquitto_loop_stop(mosq, false)
            handle.loopStarted = false
            return true
        }
        if ended { connect(attempt: 0) }
    }

    /// One attempt at the first connection. libmosquitto 2.0.11's network thread reconnects only after a
    /// connection attempt got under way: when `mosquitto_connect_async` fails at once (connection refused,
    /// unknown host) the thread gives up, so until then we retry here, on our own backoff.
    private func connect(attempt: Int) {
        let broker = configuration.broker
        let failure = handle.withLock { handle -> MQTTError? in
            guard handle.phase == .started, !handle.loopStarted, let mosq = handle.mosq else { return nil }
            let rc = mosquitto_connect_async(mosq, broker.host, Int32(broker.port), Int32(configuration.keepAlive))
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { return MQTTError.mosquitto(rc, "connect") }
            let loop = mosquitto_loop_start(mosq)
            if loop == MOSQ_ERR_SUCCESS.rawValue {
                handle.loopStarted = true
            } else {
                logger.critical(
                    "cannot start the MQTT network thread",
                    metadata: ["error": "\(MQTTError.mosquitto(loop, "mosquitto_loop_start"))"])
            }
            return nil
        }
        guard let failure else { return }
        let delay = min(configuration.reconnectDelay * (1 << min(attempt, 16)), configuration.maxReconnectDelay)
        logger.warning(
            "cannot connect to the MQTT broker; retrying with backoff",
            metadata: ["broker": "\(broker)", "error": "\(failure)", "retryIn": "\(delay)"])
        // A thread of its own: connect_async may block in getaddrinfo, which must not hold a pool thread.
        let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [weak self] in
            self?.connect(attempt: attempt + 1)
        }
    }

    /// Disconnects cleanly (the broker does not publish the Last Will), joins the network thread and
    /// frees libmosquitto's handle. Pending publishes and subscribes fail with ``MQTTError/stopped``;
    /// ``messageBatches`` ends after what was already received; ``connectionEvents`` finishes.
    public func stop() async {
        let (mosq, loopStarted) = handle.withLock { handle -> (OpaquePointer?, Bool) in
            guard handle.phase == .created || handle.phase == .started else { return (nil, false) }
            handle.phase = .stopping
            return (handle.mosq, handle.loopStarted)
        }
        guard let mosq else { return }
        core.state.withLock { $0.stopped = true }
        if loopStarted {
            mosquitto_disconnect(mosq)
            // loop_stop joins the network thread: keep that blocking wait off the cooperative pool.
            // Never force: cancelling the thread can leave libmosquitto's mutexes locked.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let pointer = UncheckedSendable(mosq)
                DispatchQueue.global().async {
                    mosquitto_loop_stop(pointer.value, false)
                    continuation.resume()
                }
            }
        }
        destroy()
    }

    /// Frees the handle (the network thread is not running) and releases the callbacks' box.
    private func destroy() {
        handle.withLock { handle in
            if let mosq = handle.mosq {
                mosquitto_destroy(mosq)
                Unmanaged.passUnretained(core).release()
            }
            handle.mosq = nil
            handle.phase = .stopped
        }
        core.shutDown()
    }

    deinit {
        let (mosq, loopStarted) = handle.withLock { ($0.mosq, $0.loopStarted) }
        if let mosq, loopStarted {
            core.state.withLock { $0.stopped = true }
            mosquitto_disconnect(mosq)
            mosquitto_loop_stop(mosq, false)
        }
        if mosq != nil { destroy() }
    }

    // MARK: State

    /// Publishes and subscribes waiting for the broker's acknowledgement right now (e.g. for a test that cancels
    /// one while it waits).
    public var waitingForAcknowledgement: Int { core.waitingCount }

    /// True while connected to the broker.
    public var isConnected: Bool { core.state.withLock { $0.connected } }

    /// How many times the client connected again after its first connection.
    public var reconnectCount: Int { core.state.withLock { max(0, $0.connectCount - 1) } }

    /// Received messages in batches, in arrival order; single consumer. Ends after ``stop()``.
    public var messageBatches: MessageBatches { MessageBatches(queue: core.messages) }

    /// Connection changes (connected, disconnected with a reason); keeps the newest 64 if nobody
    /// reads. Single consumer; finishes after ``stop()``.
    public var connectionEvents: AsyncStream<MQTTConnectionEvent> { core.events }

    /// Messages received but not yet taken by the consumer.
    public var queuedMessageCount: Int { core.messages.count }

    // MARK: Subscriptions

    /// Replaces the configured subscriptions. They are sent on every (re)connect; when connected now,
    /// new filters are subscribed and dropped ones unsubscribed at once (without waiting for the broker).
    /// Filters added by `subscribe(_:qos:timeout:)` are not part of this set and stay subscribed.
    /// Throws ``MQTTError/invalidArgument`` for an invalid filter or QoS, changing nothing.
    /// `qos` may carry ``SubscriptionOption`` flags (used on MQTT 5 connections).
    public func setSubscriptions(_ filters: [(filter: String, qos: UInt8)]) throws(MQTTError) {
        for (filter, qos) in filters { try Self.validate(filter: filter, qos: qos) }
        let (old, addedOneByOne) = core.state.withLock { state in
            defer { state.subscriptions = filters }
            return (state.subscriptions, state.added)
        }
        // By dictionary, not by searching one list for each entry of the other: a reload with 100,000
        // watched filters made that 10^10 comparisons.
        var oldQoS: [String: UInt8] = [:]
        for (filter, qos) in old { oldQoS[filter] = qos }
        var newFilters = Set<String>()
        for (filter, _) in filters { newFilters.insert(filter) }
        let added = filters.filter { oldQoS[$0.filter] != $0.qos }
        let removed = old.filter { !newFilters.contains($0.filter) && addedOneByOne[$0.filter] == nil }
        handle.withLock { handle in
            guard handle.phase == .started, let mosq = handle.mosq, isConnected else { return }
            for filter in removed {
                mosquitto_unsubscribe(mosq, nil, filter.filter)
            }
            for filter in added {
                var mid: Int32 = 0
                if MQTT.subscribe(
                    mosq, &mid, filter.filter, options: filter.qos, version: core.protocolVersion)
                    == MOSQ_ERR_SUCCESS.rawValue
                {
                    core.ignoreAck(.subscribe, mid: mid, diesWithConnection: true)
                }
            }
        }
    }

    /// Adds `filter` to the subscriptions renewed on every connect, until `unsubscribe(_:)` (whatever
    /// `setSubscriptions` sets meanwhile), subscribes now and waits for the broker's SUBACK. Retained
    /// messages for it follow the SUBACK.
    ///
    /// Throws ``MQTTError/notConnected`` when not connected right now (the filter stays configured
    /// and is subscribed at the next connect), ``MQTTError/rejected`` when the broker refuses it,
    /// ``MQTTError/timedOut`` after `timeout` (default nil: no limit), ``MQTTError/invalidArgument``.
    public func subscribe(_ filter: String, qos: UInt8 = 0, timeout: Duration? = nil) async throws(MQTTError) {
        try Self.validate(filter: filter, qos: qos)
        core.state.withLock { $0.added[filter] = qos }
        let (mid, epoch) = try handle.withLock { handle throws(MQTTError) -> (Int32, Int) in
            guard let mosq = handle.mosq, handle.phase == .started else { throw notRunning(handle.phase) }
            let epoch = core.epoch
            var mid: Int32 = 0
            let rc = MQTT.subscribe(mosq, &mid, filter, options: qos, version: core.protocolVersion)
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError.mosquitto(rc, "subscribe to '\(filter)'") }
            return (mid, epoch)
        }
        try await core.waitForAck(.subscribe, mid: mid, epoch: epoch, diesWithConnection: true, timeout: timeout).get()
    }

    /// The filters added by `subscribe(_:qos:timeout:)` and not dropped by `unsubscribe(_:)`, in no order.
    public var addedSubscriptions: [String] { core.state.withLock { Array($0.added.keys) } }

    /// Drops a filter added by `subscribe(_:qos:timeout:)`: no longer renewed, and unsubscribed now when
    /// connected (without waiting for the broker), unless the configured subscriptions hold it too.
    public func unsubscribe(_ filter: String) {
        let configured = core.state.withLock { state in
            state.added[filter] = nil
            return state.subscriptions.contains { $0.filter == filter }
        }
        guard !configured else { return }
        handle.withLock { handle in
            guard handle.phase == .started, let mosq = handle.mosq, isConnected else { return }
            mosquitto_unsubscribe(mosq, nil, filter)
        }
    }

    private static func validate(filter: String, qos: UInt8) throws(MQTTError) {
        guard SubscriptionOption.qos(qos) <= 2, qos & 0xF0 == 0 else {
            throw MQTTError.invalidArgument.with(
                "QoS \(qos) for '\(filter)' is not 0, 1 or 2 (plus SubscriptionOption flags)")
        }
        guard mosquitto_sub_topic_check(filter) == MOSQ_ERR_SUCCESS.rawValue else {
            throw MQTTError.invalidArgument.with("invalid topic filter '\(filter)'")
        }
    }

    // MARK: Publishing

    /// Publishes and waits until the broker has it: PUBACK for QoS 1, PUBCOMP for QoS 2, and for QoS 0
    /// until the message was written to the socket.
    ///
    /// A QoS 1/2 message published while the connection is down is queued by libmosquitto and sent
    /// after reconnecting; this call then waits for that (bound it with `timeout`, default nil: no
    /// limit, or by cancelling the task). QoS 0 fails with ``MQTTError/notConnected`` when there is no
    /// connection or it is lost before the message was written.
    public func publish(
        topic: String, payload: [UInt8], qos: UInt8 = 0, retain: Bool = false, timeout: Duration? = nil
    ) async throws(MQTTError) {
        let (mid, epoch) = try send(topic: topic, payload: payload, qos: qos, retain: retain)
        try await core.waitForAck(.publish, mid: mid, epoch: epoch, diesWithConnection: qos == 0, timeout: timeout)
            .get()
    }

    /// Publishes without waiting for anything (e.g. a heartbeat); never blocks on the network. Failures
    /// (not connected at QoS 0, invalid topic) are logged at debug level and dropped.
    public func publishNoWait(topic: String, payload: [UInt8], qos: UInt8 = 0, retain: Bool = false) {
        do {
            let (mid, _) = try send(topic: topic, payload: payload, qos: qos, retain: retain)
            core.ignoreAck(.publish, mid: mid, diesWithConnection: qos == 0)
        } catch {
            logger.debug("publish dropped", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    private func send(topic: String, payload: [UInt8], qos: UInt8, retain: Bool) throws(MQTTError) -> (Int32, Int) {
        guard qos <= 2 else { throw MQTTError.invalidArgument.with("QoS \(qos) for '\(topic)' is not 0, 1 or 2") }
        return try handle.withLock { handle throws(MQTTError) -> (Int32, Int) in
            guard let mosq = handle.mosq, handle.phase == .started else { throw notRunning(handle.phase) }
            // Read before sending: a disconnect after this point may have dropped a QoS 0 packet.
            let epoch = core.epoch
            var mid: Int32 = 0
            let rc = payload.withUnsafeBytes {
                mosquitto_publish(mosq, &mid, topic, Int32($0.count), $0.baseAddress, Int32(qos), retain)
            }
            // At QoS 1/2 libmosquitto has queued the message even when it answers "no connection":
            // it is sent after reconnecting, so the caller waits for its acknowledgement.
            let queued = qos > 0 && rc == MOSQ_ERR_NO_CONN.rawValue
            guard rc == MOSQ_ERR_SUCCESS.rawValue || queued else {
                throw MQTTError.mosquitto(rc, "publish to '\(topic)'")
            }
            return (mid, epoch)
        }
    }

    private func notRunning(_ phase: Phase) -> MQTTError {
        phase == .created ? MQTTError.stopped.with("the MQTT client is not started") : .stopped
    }

    // MARK: Testing

    /// Shuts the socket down without a DISCONNECT, as a network failure would: the broker publishes
    /// the Last Will and the client reconnects. For tests.
    func simulateConnectionLoss() {
        handle.withLock { handle in
            guard let mosq = handle.mosq else { return }
            let fd = mosquitto_socket(mosq)
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }
}

/// Moves a value the compiler cannot prove Sendable to a thread that is its only user at the time.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
