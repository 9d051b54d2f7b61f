// Pure connection logic: events in, actions out. It owns the request parser and the output
// buffer but never touches a socket or reads a clock (`now` is passed in), so tests drive it
// directly. The epoll handler in EventLoop.swift only carries out the actions it returns.
// No Logging, no Glibc.

/// What the server reports for every response it sends, its own refusals included.
public struct HTTPResponseRecord: Sendable {
    /// The request method; nil when the request was refused before it was understood.
    public var method: HTTPMethod?
    /// The route pattern that answered (e.g. "/devices/:type/:id"); nil for the server's own answers.
    public var route: String?
    public var status: HTTPStatus
    /// From the complete request to the response being queued for writing, in nanoseconds (plain
    /// integers: `Duration` arithmetic is 128-bit and costs more than the rest of a cached answer).
    public var nanoseconds: Int64

    public init(method: HTTPMethod?, route: String?, status: HTTPStatus, duration: Duration) {
        self.init(method: method, route: route, status: status, nanoseconds: duration.wholeNanoseconds)
    }

    init(method: HTTPMethod?, route: String?, status: HTTPStatus, nanoseconds: Int64) {
        self.method = method
        self.route = route
        self.status = status
        self.nanoseconds = nanoseconds
    }

    public var duration: Duration { .nanoseconds(nanoseconds) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }
}

struct ConnectionStateMachine {
    typealias Instant = Moment

    struct Settings: Sendable {
        var limits: RequestLimits
        var headerTimeout: Duration
        var idleTimeout: Duration
        var writeTimeout: Duration
        /// After our last answer and `shutdown(SHUT_WR)`, how long unread input is drained before closing:
        /// closing with unread input sends a RST that can destroy the answer before the client reads it.
        var lingerTimeout: Duration = .seconds(2)
        /// Requests parsed ahead of their answers; more wait in the socket: bounds memory per pipelining client.
        var maxPipelinedRequests = 32
        /// Output waiting for a slow reader beyond which no further request is parsed (and an event
        /// stream is cut off): bounds memory per connection.
        var maxBufferedOutput = 1 << 20
    }

    /// Payload-free, so returning one copies two bytes: the request and the record are taken separately.
    enum Action: Equatable {
        /// Hand `takeRequest()` to the responder; answer with `responseReady(sequence:…)`.
        case dispatch
        /// Send `pendingOutput`, then report `wrote(_:)` or `writeBlocked(now:)`.
        case write
        /// A response was queued: tell the observer `takeReport()`.
        case report
        /// Our last answer is out: `shutdown(SHUT_WR)`, keep reading (and discarding) until EOF or the linger deadline.
        case shutdownWrite
        /// Close the socket; the machine is done.
        case close
        /// Nothing to do until an event: watch the socket for these.
        case wait(read: Bool, write: Bool)
    }

    enum Reply {
        case response(HTTPResponse)
        /// A head now, a close-delimited body later through `streamData`.
        case stream(HTTPResponse)
    }

    private enum Content {
        case waiting
        case ready(Reply, completedAt: Instant)
    }

    private struct Slot {
        let sequence: UInt64
        let method: HTTPMethod?
        let persistence: ResponseEncoder.Persistence
        let omitBody: Bool
        let startedAt: Instant
        var route: String?
        var content: Content
    }

    /// A plain enum (no payloads): compared on every step of the hot path.
    enum State: UInt8 {
        /// Reading and answering requests.
        case open
        /// No further request is read; the connection closes once every answer is out.
        case finishing
        /// An event stream owns the connection until it finishes.
        case streaming
        /// Write side shut down; draining input until EOF or `lingerUntil`.
        case lingering
        case closed
    }

    let settings: Settings
    let peer: PeerAddress?
    private(set) var state = State.open
    private var parser: RequestParser
    /// Answers in request order: `slots[slotHead..<slotTail]`. Answered slots are overwritten, not
    /// removed, so a keep-alive connection reuses one buffer instead of reshaping an array per answer.
    private var slots: [Slot] = []
    private var slotHead = 0
    private var slotTail = 0
    private var lingerUntil: Instant
    private var nextSequence: UInt64 = 0
    private var output: [UInt8] = []
    private var outputStart = 0
    private var writeBlocked = false
    private var writeBlockedSince: Instant?
    private var requestStartedAt: Instant?
    private var lastActivity: Instant
    // Handed out by `takeRequest()` and `takeReport()`. Kept apart and moved out by hand: a generic
    // `Optional.take()` of a tuple copied and destroyed the request through runtime witnesses.
    private var dispatchedRequest: HTTPRequest?
    /// The sequence number of the last `.dispatch`, for `responseReady(sequence:…)`.
    private(set) var dispatchedSequence: UInt64 = 0
    private var reported: HTTPResponseRecord?
    private var peerClosed = false

    init(settings: Settings, peer: PeerAddress?, now: Instant, acceptsBody: RequestParser.BodyPolicy? = nil) {
        self.settings = settings
        self.peer = peer
        self.parser = RequestParser(limits: settings.limits, acceptsBody: acceptsBody)
        self.lastActivity = now
        self.lingerUntil = now
    }

    // MARK: Events

    mutating func received(_ bytes: UnsafeRawBufferPointer, now: Instant) {
        guard state == .open else { return }  // finishing, streaming, lingering: input is discarded
        parser.append(bytes)
        lastActivity = now
        if requestStartedAt == nil && parser.hasPartialRequest { requestStartedAt = now }
    }

    /// The peer sent EOF (read returned 0).
    mutating func peerClosedInput(now: Instant) {
        peerClosed = true
        switch state {
        case .streaming, .lingering: state = .closed
        case .open, .finishing, .closed: break
        }
    }

    /// A read or write failed for good (reset, broken pipe).
    mutating func connectionFailed() {
        state = .closed
    }

    mutating func responseReady(sequence: UInt64, reply: Reply, route: String?, now: Instant) {
        guard let index = (slotHead..<slotTail).first(where: { slots[$0].sequence == sequence }) else { return }
        slots[index].route = route
        slots[index].content = .ready(reply, completedAt: now)
        lastActivity = now
    }

    mutating func streamData(_ bytes: [UInt8], now: Instant) {
        guard state == .streaming else { return }
        output.append(contentsOf: bytes)
        lastActivity = now
        // A reader this far behind is not keeping up: cut it off.
        if output.count - outputStart > settings.maxBufferedOutput { state = .closed }
    }

    mutating func streamFinished() {
        if state == .streaming { state = .finishing }
    }

    mutating func wrote(_ count: Int, now: Instant) {
        outputStart += count
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 16)
            outputStart = 0
        } else if outputStart >= 1 << 16 {
            output.removeSubrange(0..<outputStart)
            outputStart = 0
        }
        if count > 0 {
            writeBlockedSince = nil
            lastActivity = now
        }
    }

    mutating func writeBlocked(now: Instant) {
        writeBlocked = true
        if writeBlockedSince == nil { writeBlockedSince = now }
    }

    mutating func writable() {
        writeBlocked = false
    }

    /// Server shutdown: finish what is in flight, read nothing more.
    mutating func beginShutdown() {
        switch state {
        case .open:
            if slotsEmpty && !hasOutput { state = .closed } else { state = .finishing }
        case .streaming:
            state = .finishing
        case .finishing, .lingering, .closed:
            break
        }
    }

    /// The earliest moment `timerFired` has something to do, or nil.
    var deadline: Instant? {
        switch state {
        case .closed: return nil
        case .lingering: return lingerUntil
        case .open, .finishing, .streaming: break
        }
        var result: Instant?
        if let since = writeBlockedSince, hasOutput { result = since + settings.writeTimeout }
        if state == .open, !paused, let started = requestStartedAt {
            result = earliest(result, started + settings.headerTimeout)
        }
        if isIdle { result = earliest(result, lastActivity + settings.idleTimeout) }
        return result
    }

    mutating func timerFired(now: Instant) {
        switch state {
        case .closed: return
        case .lingering:
            if now >= lingerUntil { state = .closed }
            return
        case .open, .finishing, .streaming: break
        }
        if let since = writeBlockedSince, hasOutput, now >= since + settings.writeTimeout {
            state = .closed
        } else if state == .open, !paused, let started = requestStartedAt, now >= started + settings.headerTimeout {
            // Slow-drip clients are cut off whatever they send: answer 408 and close.
            appendSlot(errorSlot(.jsonError(.requestTimeout, "request not received in time"), now: now))
            state = .finishing
            requestStartedAt = nil
        } else if isIdle, now >= lastActivity + settings.idleTimeout {
            state = .closed
        }
    }

    // MARK: Output access

    var hasOutput: Bool { outputStart < output.count }

    /// Mutating although it changes nothing: called on a class's stored machine, a non-mutating method
    /// gets a copy of the whole machine (every reference retained and released again).
    mutating func withPendingOutput<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[outputStart...])) }
    }

    // MARK: Driving

    /// The request of the last `.dispatch`, once.
    mutating func takeRequest() -> HTTPRequest {
        moveOut(&dispatchedRequest)
    }

    /// Hands an answered request back so that the next one reuses its storage.
    mutating func recycle(_ request: consuming HTTPRequest) {
        parser.recycle(request)
    }

    /// The record of the last `.report`, once.
    mutating func takeReport() -> HTTPResponseRecord {
        moveOut(&reported)
    }

    /// The next thing to do. Call repeatedly until `.wait` or `.close`.
    mutating func nextAction(now: Instant, date: [UInt8]) -> Action {
        while true {
            switch state {
            case .closed: return .close
            case .lingering: return .wait(read: true, write: false)
            case .open, .finishing, .streaming: break
            }
            if state != .streaming, let record = flushFrontSlot(date: date) {
                reported = record
                return .report
            }
            if hasOutput && !writeBlocked { return .write }
            if state == .finishing && slotsEmpty && !hasOutput {
                if peerClosed {
                    state = .closed
                    return .close
                }
                state = .lingering
                lingerUntil = now + settings.lingerTimeout
                return .shutdownWrite
            }
            if state == .open && !paused {
                switch parser.next() {
                case .request(var request):
                    request.peer = peer
                    let sequence = nextSequence
                    nextSequence += 1
                    let keepAlive = request.parsedKeepAlive ?? request.wantsKeepAlive
                    appendSlot(
                        Slot(
                            sequence: sequence, method: request.method,
                            persistence: keepAlive
                                ? (request.version == .http1_0 ? .keepAliveHTTP10 : .keepAlive) : .close,
                            omitBody: request.method == .head, startedAt: now, route: nil, content: .waiting))
                    if !keepAlive { state = .finishing }
                    requestStartedAt = parser.hasPartialRequest ? now : nil
                    dispatchedRequest = request
                    dispatchedSequence = sequence
                    return .dispatch
                case .error(let error):
                    appendSlot(errorSlot(.jsonError(error.status, error.description), now: now))
                    state = .finishing
                    requestStartedAt = nil
                    continue
                case .needMore:
                    if peerClosed {
                        // EOF: answer what was asked, drop a partial request.
                        state = .finishing
                        requestStartedAt = nil
                        continue
                    }
                    if parser.takeContinueRequest() && slotsEmpty {
                        output.append(contentsOf: ResponseEncoder.continueLine)
                        continue
                    }
                }
            }
            let read = (state == .open && !paused && !peerClosed) || (state == .streaming && !peerClosed)
            return .wait(read: read, write: writeBlocked && hasOutput)
        }
    }

    // MARK: Internals

    private var paused: Bool {
        slotTail - slotHead >= settings.maxPipelinedRequests
            || output.count - outputStart >= settings.maxBufferedOutput
    }

    private var isIdle: Bool {
        state == .open && slotsEmpty && !hasOutput && !parser.hasPartialRequest
    }

    private var slotsEmpty: Bool { slotHead == slotTail }

    private mutating func appendSlot(_ slot: Slot) {
        if slotTail < slots.count { slots[slotTail] = slot } else { slots.append(slot) }
        slotTail += 1
    }

    private mutating func removeFrontSlot() {
        slots[slotHead].content = .waiting  // drops the answer's storage
        slotHead += 1
        if slotHead == slotTail {
            slotHead = 0
            slotTail = 0
        }
    }

    private mutating func removeAllSlots() {
        while !slotsEmpty { removeFrontSlot() }
    }

    private func errorSlot(_ response: HTTPResponse, now: Instant) -> Slot {
        Slot(
            sequence: .max, method: nil, persistence: .close, omitBody: false, startedAt: now, route: nil,
            content: .ready(.response(response), completedAt: now))
    }

    /// Encodes the front slot if its answer is there; returns what to report.
    private mutating func flushFrontSlot(date: [UInt8]) -> HTTPResponseRecord? {
        guard slotHead < slotTail, case .ready = slots[slotHead].content else { return nil }
        var content = Content.waiting
        swap(&content, &slots[slotHead].content)  // moved out, not copied
        guard case .ready(let reply, let completedAt) = content else { return nil }
        let slot = (
            method: slots[slotHead].method, persistence: slots[slotHead].persistence,
            omitBody: slots[slotHead].omitBody, startedAt: slots[slotHead].startedAt, route: slots[slotHead].route
        )
        removeFrontSlot()
        switch reply {
        case .response(let response):
            let closing =
                slot.persistence == .close || response.headers.asksToClose
                || (state == .finishing && slotsEmpty)
            if closing && state != .finishing {
                // The responder asked to close: later pipelined requests go unanswered.
                state = .finishing
                removeAllSlots()
            }
            ResponseEncoder.encode(
                response, omitBody: slot.omitBody, persistence: closing ? .close : slot.persistence, date: date,
                into: &output)
            return HTTPResponseRecord(
                method: slot.method, route: slot.route, status: response.status,
                nanoseconds: completedAt.nanoseconds - slot.startedAt.nanoseconds)
        case .stream(let head):
            // Close-delimited body: nothing after it can be answered.
            removeAllSlots()
            state = .streaming
            if slot.omitBody {
                ResponseEncoder.encode(head, omitBody: true, persistence: .close, date: date, into: &output)
                state = .finishing
            } else {
                ResponseEncoder.encodeStreamHead(head, date: date, into: &output)
            }
            return HTTPResponseRecord(
                method: slot.method, route: slot.route, status: head.status,
                nanoseconds: completedAt.nanoseconds - slot.startedAt.nanoseconds)
        }
    }
}

private func earliest(_ a: Moment?, _ b: Moment) -> Moment {
    guard let a else { return b }
    return min(a, b)
}
