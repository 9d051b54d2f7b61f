import HTTP1
import ServiceLifecycle
import Synchronization

/// `GET /events` (docs/behaviour.md §4.2): every status transition as a Server-Sent Event,
///
///     id: 1717171717123456789
///     event: status
///     data: {"type":"type1","id":"ps1","from":"online","to":"offline","source":"mon","reason":"Disconnect","time":"…","status":"offline"}
///
/// `from` and `to` are what the event's `source` said; `status` is the device's overall status once the event applied
/// (the least favourable of every signal, as `GET /devices/<type>/<id>` answers it): they differ when another source
/// still holds the device down, e.g. a watched device whose watchdog expired comes back `online` on its status topic.
///
/// Ids are wall-clock nanoseconds at publication (kept strictly increasing), so they stay unique and ordered across
/// daemon restarts. The last `ringCapacity` events are kept in memory: a client reconnecting with `Last-Event-ID`
/// gets those after its id first; when events it missed are no longer kept, a `: missed` comment says so.
/// A comment line goes out every `heartbeatInterval` so proxies and clients see the connection alive.
///
/// `publish` runs on the emitter's actor: it formats each event once (only while someone listens) and queues the
/// bytes on each stream's event loop; a client that stops reading is cut off by the server (1 MiB buffered).
public final class StatusEventStream: Service {
    /// Events kept for `Last-Event-ID` resumption: a client away for a reconnect or two loses nothing.
    public static let ringCapacity = 1024
    /// Default heartbeat: well below common proxy read timeouts (nginx: 60 s).
    public static let defaultHeartbeat: Duration = .seconds(15)
    /// Default limit of open streams: each holds a connection for its lifetime, so streams alone cannot take every
    /// connection slot (`[http] maxConnections`, 1024 by default).
    public static let defaultMaximumStreams = 256
    /// What a browser waits before reconnecting (the SSE `retry` field).
    static let retryMilliseconds = 2000

    private struct Subscriber {
        let stream: ResponseStream
    }

    private struct State {
        var ring: [(id: Int64, event: DeviceEvent, status: DeviceState)] = []
        /// Index of the oldest entry once the ring is full.
        var ringStart = 0
        /// The id of the newest event that fell out of the ring (0: none).
        var evictedThrough: Int64 = 0
        var lastID: Int64 = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriber: UInt64 = 0
        var heartbeat: Task<Void, Never>?
        /// After `stop()`: new streams are ended at once.
        var stopped = false

        /// Events after `id`, oldest first.
        func events(after id: Int64) -> [(id: Int64, event: DeviceEvent, status: DeviceState)] {
            let ordered = ring[ringStart...] + ring[..<ringStart]
            return ordered.filter { $0.id > id }
        }
    }

    private let state = Mutex(State())
    /// Heartbeat interval; default 15 s.
    public let heartbeatInterval: Duration
    /// Streams open at once at most (503 beyond); default 256.
    public let maximumStreams: Int
    private let clock: @Sendable () -> Int64
    private let overallStatus: @Sendable (DeviceKey) -> DeviceState?

    /// - Parameters:
    ///   - heartbeatInterval: time between comment lines; default 15 s.
    ///   - maximumStreams: open streams at most; default 256.
    ///   - clock: wall-clock nanoseconds, the source of event ids; default the system's.
    ///   - overallStatus: a device's overall status now, read when an event is published (the emitters apply a change
    ///     before they announce it); nil, or no function (the default), takes the event's `to`.
    public init(
        heartbeatInterval: Duration = defaultHeartbeat, maximumStreams: Int = defaultMaximumStreams,
        clock: @escaping @Sendable () -> Int64 = wallClockNanoseconds,
        overallStatus: @escaping @Sendable (DeviceKey) -> DeviceState? = { _ in nil }
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.maximumStreams = maximumStreams
        self.clock = clock
        self.overallStatus = overallStatus
    }

    /// Publishes every status transition `events` announces.
    public func observe(_ events: DeviceEvents) {
        events.observeBatches { [self] batch in publish(contentsOf: batch) }
    }

    /// Streams open now.
    public var streamCount: Int { state.withLock { $0.subscribers.count } }

    /// The id of the newest event published (0 before the first).
    public var lastEventID: Int64 { state.withLock { $0.lastID } }

    /// Keeps a transition in the ring and sends it to every open stream; hellos are ignored.
    public func publish(_ event: DeviceEvent) {
        publish(contentsOf: [event])
    }

    /// Keeps the transitions of `events` in the ring, in order, and sends them to every open stream; other events are
    /// ignored.
    public func publish(contentsOf events: [DeviceEvent]) {
        let count = events.reduce(0) { $0 + (Self.isTransition($1) ? 1 : 0) }
        guard count > 0 else { return }
        let now = clock()
        // While nobody listens, the transitions before the batch's last `ringCapacity` would fall out of the ring as
        // soon as they were in it: they are counted as evicted, never stored, and their status is not read (reading
        // it, a device's every signal, for each of a retained replay's hundred thousand devices was a tenth of
        // announcing them).
        let unread = state.withLock { $0.subscribers.isEmpty } ? max(0, count - Self.ringCapacity) : 0
        // Read outside the lock: the status as of the event, kept with it for streams that resume later.
        var statuses: [DeviceState] = []
        statuses.reserveCapacity(count - unread)
        var transition = 0
        for event in events where Self.isTransition(event) {
            if transition >= unread { statuses.append(overallStatus(event.key) ?? Self.target(of: event)) }
            transition += 1
        }
        state.withLock { state in
            var transition = 0
            for event in events where Self.isTransition(event) {
                defer { transition += 1 }
                let id = max(state.lastID + 1, now)
                state.lastID = id
                let status: DeviceState
                if transition >= unread {
                    status = statuses[transition - unread]
                } else if state.subscribers.isEmpty {
                    state.evictedThrough = id
                    continue
                } else {
                    // A stream opened since the batch began: it gets this one as any other.
                    status = overallStatus(event.key) ?? Self.target(of: event)
                }
                if state.ring.count < Self.ringCapacity {
                    state.ring.append((id, event, status))
                } else {
                    state.evictedThrough = max(state.evictedThrough, state.ring[state.ringStart].id)
                    state.ring[state.ringStart] = (id, event, status)
                    state.ringStart = (state.ringStart + 1) % Self.ringCapacity
                }
                guard !state.subscribers.isEmpty else { continue }
                // Sent under the lock, so that a stream starting now gets every event once and in order.
                let bytes = Array(Self.frame(id: id, event: event, status: status).utf8)
                for subscriber in state.subscribers.values { subscriber.stream.send(bytes) }
            }
        }
    }

    private static func isTransition(_ event: DeviceEvent) -> Bool {
        if case .transition = event.kind { return true }
        return false
    }

    /// The status a transition went to.
    private static func target(of event: DeviceEvent) -> DeviceState {
        if case .transition(_, let to) = event.kind { return to }
        return .unknown
    }

    /// Sends the heartbeat comment to every open stream now (the heartbeat task does this every interval).
    public func sendHeartbeat() {
        let bytes = Array(": heartbeat\n\n".utf8)
        state.withLock { state in
            for subscriber in state.subscribers.values { subscriber.stream.send(bytes) }
        }
    }

    /// Starts the heartbeat task.
    public func start() {
        let interval = heartbeatInterval
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let self else { return }
                self.sendHeartbeat()
            }
        }
        let previous = state.withLock { state in
            defer { state.heartbeat = task }
            return state.heartbeat
        }
        previous?.cancel()
    }

    /// Sends heartbeats until a graceful shutdown, then ends every open stream (``stop()``).
    public func run() async {
        let interval = heartbeatInterval
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: interval)
                self.sendHeartbeat()
            }
        }
        stop()
    }

    /// Stops the heartbeat and ends every open stream (their connections close once sent); later streams end at once.
    public func stop() {
        let (task, streams) = state.withLock { state in
            defer {
                state.heartbeat = nil
                state.subscribers.removeAll()
                state.stopped = true
            }
            return (state.heartbeat, state.subscribers.values.map(\.stream))
        }
        task?.cancel()
        for stream in streams { stream.finish() }
    }

    /// The answer to `GET /events`: 200 `text/event-stream` that replays the kept events after `Last-Event-ID`
    /// (when the header holds a number) and then follows; 503 when `maximumStreams` are open.
    public func reply(lastEventID header: String?) -> HTTPReply {
        let resumeAfter = header.flatMap { Int64($0.trimmingSpaces()) }
        guard streamCount < maximumStreams else {
            return .response(
                .jsonError(.serviceUnavailable, "too many event streams open (\(maximumStreams)); try again later"))
        }
        var head = HTTPResponse(status: .ok, body: Array("retry: \(Self.retryMilliseconds)\n\n".utf8))
        head.headers["Content-Type"] = "text/event-stream"
        head.headers["Cache-Control"] = "no-cache"
        // Tells nginx not to buffer the stream.
        head.headers["X-Accel-Buffering"] = "no"
        return .eventStream(head) { [self] stream in attach(stream, resumeAfter: resumeAfter) }
    }

    private func attach(_ stream: ResponseStream, resumeAfter: Int64?) {
        let id = state.withLock { state -> UInt64? in
            guard state.subscribers.count < maximumStreams, !state.stopped else { return nil }
            if let resumeAfter {
                var text = ""
                if resumeAfter < state.evictedThrough {
                    text += ": missed events: the oldest kept has id \(state.events(after: 0).first?.id ?? 0)\n\n"
                }
                for (id, event, status) in state.events(after: resumeAfter) {
                    text += Self.frame(id: id, event: event, status: status)
                }
                if !text.isEmpty { stream.send(text) }
            }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = Subscriber(stream: stream)
            return id
        }
        guard let id else {
            stream.send(": too many event streams open, or the daemon is stopping\n\n")
            stream.finish()
            return
        }
        stream.onTermination { [weak self] in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
    }

    /// One event in the SSE wire format.
    static func frame(id: Int64, event: DeviceEvent, status: DeviceState) -> String {
        guard case .transition(let from, let to) = event.kind else { return "" }
        let data = JSONText.object([
            ("type", JSONText.quote(event.key.type)), ("id", JSONText.quote(event.key.id)),
            ("from", JSONText.quote(from.rawValue)), ("to", JSONText.quote(to.rawValue)),
            ("source", JSONText.quote(event.source)), ("reason", event.reason.map(JSONText.quote) ?? "null"),
            ("time", DeviceDirectory.time(event.time)), ("status", JSONText.quote(status.rawValue)),
        ])
        return "id: \(id)\nevent: status\ndata: \(data)\n\n"
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return slice
    }
}
