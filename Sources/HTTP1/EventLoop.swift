import CSysShims
import Glibc
import Logging
import Synchronization

/// Open connections across all loops, for `maxConnections`.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// One epoll loop on its own thread, with its own `SO_REUSEPORT` listener. It carries out what each
/// connection's `ConnectionStateMachine` returns; the only cross-thread entry is `mailbox`.
///
/// `@unchecked Sendable`: handed to its thread once at start, then touched only there.
final class EventLoop: @unchecked Sendable {
    private static let listenerID: UInt64 = 0
    private static let mailboxID: UInt64 = 1
    /// Bytes read per recv(): a whole typical request, and a 64 KiB body in one go.
    private static let readBufferSize = 1 << 16
    /// Accepts per wake-up, so a connection storm cannot starve established connections.
    private static let acceptBatch = 64
    /// Pause after accept() fails for lack of descriptors, instead of spinning on the ready listener.
    private static let acceptBackoff = Duration.milliseconds(100)

    private final class Connection {
        let id: UInt64
        let fd: Int32
        var machine: ConnectionStateMachine
        var interest: UInt32
        var stream: ResponseStream?
        /// The last read filled the buffer, so the socket may hold more: with edge-triggered events no
        /// new event comes for it, so it is read before the connection waits for input again.
        var inputPending = false
        var sawEOF = false

        init(id: UInt64, fd: Int32, machine: ConnectionStateMachine, interest: UInt32) {
            self.id = id
            self.fd = fd
            self.machine = machine
            self.interest = interest
        }
    }

    let mailbox: LoopMailbox
    private let epollFD: Int32
    private var listenFD: Int32
    private let settings: ConnectionStateMachine.Settings
    private let responder: any HTTPResponder
    private let acceptsBody: RequestParser.BodyPolicy
    private let onResponse: (@Sendable (HTTPResponseRecord) -> Void)?
    private let counter: ConnectionCounter
    private let maxConnections: Int
    private let sweepInterval: Duration
    private var logger: Logger

    /// Open connections indexed by descriptor (descriptors are small and dense). A connection's id is
    /// `generation << 32 | fd`, so a late mailbox item for a closed connection never reaches the next
    /// one on the same descriptor; ids 0 and 1 (listener, mailbox) are never a connection's.
    private var connections: [Connection?] = []
    private var openCount = 0
    private var generation: UInt64 = 1
    private var date = DateCache()
    private var now = Moment.monotonic()
    private var nextSweep = Moment.monotonic()
    private var acceptPausedUntil: Moment?
    private var stopDeadline: Moment?
    private let readBuffer: UnsafeMutableRawBufferPointer

    init(
        index: Int, listenFD: Int32, settings: ConnectionStateMachine.Settings, responder: any HTTPResponder,
        onResponse: (@Sendable (HTTPResponseRecord) -> Void)?, counter: ConnectionCounter, maxConnections: Int,
        logger: Logger
    ) throws(HTTPServerError) {
        let epollFD = shim_epoll_create()
        guard epollFD >= 0 else { throw .system("epoll_create", errno) }
        guard let mailbox = LoopMailbox() else {
            let error = errno
            close(epollFD)
            throw .system("eventfd", error)
        }
        self.epollFD = epollFD
        self.mailbox = mailbox
        self.listenFD = listenFD
        self.settings = settings
        self.responder = responder
        self.acceptsBody = { [responder] method, segments in
            responder.acceptsBody(method: method, pathSegments: segments)
        }
        self.onResponse = onResponse
        self.counter = counter
        self.maxConnections = maxConnections
        // Deadlines are checked by a sweep: a quarter of the shortest timeout, 5…250 ms.
        let shortest = min(settings.headerTimeout, settings.idleTimeout, settings.writeTimeout, settings.lingerTimeout)
        self.sweepInterval = min(max(shortest / 4, .milliseconds(5)), .milliseconds(250))
        self.logger = logger
        self.logger[metadataKey: "loop"] = "\(index)"
        self.readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
        _ = shim_epoll_add(epollFD, mailbox.eventFD, SHIM_EPOLLIN, EventLoop.mailboxID)
        _ = shim_epoll_add(epollFD, listenFD, SHIM_EPOLLIN, EventLoop.listenerID)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Runs until a shutdown item arrives and every connection is closed (or the grace period ends).
    func run() {
        var events = [shim_epoll_event](repeating: shim_epoll_event(), count: 256)
        let timeoutMS = Int32(max(1, sweepInterval / .milliseconds(1)))
        while true {
            let count = events.withUnsafeMutableBufferPointer {
                shim_epoll_wait(epollFD, $0.baseAddress, Int32($0.count), timeoutMS)
            }
            now = .monotonic()
            date.refresh()
            if count < 0 && errno != EINTR {
                logger.error("epoll_wait failed: \(errnoText(errno))")
                break
            }
            for i in 0..<max(0, Int(count)) {
                let event = events[i]
                switch event.data {
                case EventLoop.listenerID: acceptConnections()
                case EventLoop.mailboxID: drainMailbox()
                default: handle(event)
                }
            }
            if now >= nextSweep {
                nextSweep = now + sweepInterval
                sweep()
            }
            if let stopDeadline {
                if openCount == 0 { break }
                if now >= stopDeadline {
                    logger.debug("grace period over, closing \(openCount) connections")
                    for connection in openConnections() { closeConnection(connection) }
                    break
                }
            }
        }
        stopListening()
        mailbox.close()
        close(epollFD)
    }

    // MARK: Accepting

    private func acceptConnections() {
        for _ in 0..<EventLoop.acceptBatch {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { shim_accept_nonblocking(listenFD, $0, &length) }
            }
            if fd < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    logger.warning("accept failed: \(errnoText(errno)); pausing accepts")
                    acceptPausedUntil = now + EventLoop.acceptBackoff
                    _ = shim_epoll_mod(epollFD, listenFD, 0, EventLoop.listenerID)
                    return
                default:
                    logger.error("accept failed: \(errnoText(errno))")
                    return
                }
            }
            if counter.value.wrappingAdd(1, ordering: .relaxed).newValue > maxConnections {
                counter.value.wrappingSubtract(1, ordering: .relaxed)
                refuse(fd)
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            generation += 1
            let id = generation << 32 | UInt64(UInt32(fd))
            let machine = ConnectionStateMachine(
                settings: settings, peer: ListenerSocket.peer(address), now: now, acceptsBody: acceptsBody)
            let interest = SHIM_EPOLLIN | SHIM_EPOLLRDHUP | SHIM_EPOLLET
            let connection = Connection(id: id, fd: fd, machine: machine, interest: interest)
            if Int(fd) >= connections.count {
                connections.append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - connections.count))
            }
            connections[Int(fd)] = connection
            openCount += 1
            _ = shim_epoll_add(epollFD, fd, interest, id)
        }
    }

    /// Over `maxConnections`: answer 503 without reading, then close.
    private func refuse(_ fd: Int32) {
        var bytes: [UInt8] = []
        let response = HTTPResponse.jsonError(.serviceUnavailable, "too many connections")
        ResponseEncoder.encode(response, omitBody: false, persistence: .close, date: date.line, into: &bytes)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        // Drop what already arrived so close() sends FIN, not a RST that could destroy the 503.
        for _ in 0..<4 where recv(fd, readBuffer.baseAddress, readBuffer.count, Int32(MSG_DONTWAIT)) > 0 {}
        close(fd)
        onResponse?(HTTPResponseRecord(method: nil, route: nil, status: .serviceUnavailable, nanoseconds: 0))
        logger.debug("refused a connection: \(maxConnections) open")
    }

    private func stopListening() {
        guard listenFD >= 0 else { return }
        _ = shim_epoll_del(epollFD, listenFD)
        close(listenFD)
        listenFD = -1
    }

    // MARK: Connection events

    private func handle(_ event: shim_epoll_event) {
        guard let connection = connection(event.data) else { return }
        if event.events & (SHIM_EPOLLERR | SHIM_EPOLLHUP) != 0 {
            // Reset, or both directions shut: nobody can read an answer any more.
            connection.machine.connectionFailed()
        } else {
            if event.events & SHIM_EPOLLOUT != 0 { connection.machine.writable() }
            if event.events & (SHIM_EPOLLIN | SHIM_EPOLLRDHUP) != 0 {
                readOnce(connection)
                // The peer's FIN came with (or after) that data: no later edge will announce the EOF
                // the next recv() returns, so read again before waiting.
                if event.events & SHIM_EPOLLRDHUP != 0 && !connection.sawEOF { connection.inputPending = true }
            }
        }
        process(connection)
    }

    /// One recv(). Connections are edge-triggered (as nginx's are): a read shorter than the buffer
    /// emptied the socket, and data arriving later raises a new event, so there is no second recv()
    /// just to see EAGAIN. Only a full buffer leaves `inputPending`.
    private func readOnce(_ connection: Connection) {
        let count = recv(connection.fd, readBuffer.baseAddress, readBuffer.count, 0)
        connection.inputPending = count == readBuffer.count
        if count > 0 {
            connection.machine.received(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), now: now)
        } else if count == 0 {
            connection.sawEOF = true
            connection.machine.peerClosedInput(now: now)
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            connection.machine.connectionFailed()
        }
    }

    /// Carries out the machine's actions until it waits or closes.
    private func process(_ connection: Connection) {
        while true {
            switch connection.machine.nextAction(now: now, date: date.line) {
            case .dispatch:
                let sequence = connection.machine.dispatchedSequence
                dispatch(connection.machine.takeRequest(), sequence: sequence, on: connection)
            case .write:
                write(connection)
            case .report:
                let record = connection.machine.takeReport()
                onResponse?(record)
            case .shutdownWrite:
                shutdown(connection.fd, Int32(SHUT_WR))
            case .close:
                closeConnection(connection)
                return
            case .wait(let read, let write):
                if read && connection.inputPending {
                    readOnce(connection)
                    continue
                }
                // Edge-triggered: a change of interest (EPOLL_CTL_MOD) re-checks readiness, so input
                // that arrived while reading was paused raises an event once reading resumes.
                let interest =
                    (read ? SHIM_EPOLLIN | SHIM_EPOLLRDHUP : 0) | (write ? SHIM_EPOLLOUT : 0) | SHIM_EPOLLET
                if interest != connection.interest {
                    connection.interest = interest
                    _ = shim_epoll_mod(epollFD, connection.fd, interest, connection.id)
                }
                return
            }
        }
    }

    private func dispatch(_ request: consuming HTTPRequest, sequence: UInt64, on connection: Connection) {
        let reply = responder.respond(to: request)
        connection.machine.recycle(request)
        switch reply.kind {
        case .response(let response):
            connection.machine.responseReady(
                sequence: sequence, reply: .response(response), route: reply.routeTemplate, now: .monotonic())
        case .deferred(let start):
            start(
                ResponsePromise(
                    mailbox: mailbox, connection: connection.id, sequence: sequence, route: reply.routeTemplate))
        case .stream(let head, let start):
            let stream = ResponseStream(mailbox: mailbox, connection: connection.id)
            connection.stream?.terminate()
            connection.stream = stream
            connection.machine.responseReady(
                sequence: sequence, reply: .stream(head), route: reply.routeTemplate, now: .monotonic())
            start(stream)
        }
    }

    private func write(_ connection: Connection) {
        let count = connection.machine.withPendingOutput { bytes in
            send(connection.fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        }
        if count > 0 {
            connection.machine.wrote(count, now: now)
        } else if count == 0 || errno == EAGAIN || errno == EWOULDBLOCK {
            connection.machine.writeBlocked(now: now)
        } else if errno != EINTR {
            connection.machine.connectionFailed()
        }
    }

    private func closeConnection(_ connection: Connection) {
        guard Int(connection.fd) < connections.count, connections[Int(connection.fd)] === connection else { return }
        connections[Int(connection.fd)] = nil
        openCount -= 1
        _ = shim_epoll_del(epollFD, connection.fd)
        close(connection.fd)
        counter.value.wrappingSubtract(1, ordering: .relaxed)
        connection.stream?.terminate()
        connection.stream = nil
    }

    private func connection(_ id: UInt64) -> Connection? {
        let fd = Int(id & 0xFFFF_FFFF)
        guard fd < connections.count, let connection = connections[fd], connection.id == id else { return nil }
        return connection
    }

    private func openConnections() -> [Connection] { connections.compactMap { $0 } }

    // MARK: Timers and mail

    private func sweep() {
        if let until = acceptPausedUntil, now >= until, listenFD >= 0 {
            acceptPausedUntil = nil
            _ = shim_epoll_mod(epollFD, listenFD, SHIM_EPOLLIN, EventLoop.listenerID)
        }
        var due: [Connection] = []
        for case let connection? in connections {
            if let deadline = connection.machine.deadline, deadline <= now { due.append(connection) }
        }
        for connection in due {
            connection.machine.timerFired(now: now)
            process(connection)
        }
    }

    private func drainMailbox() {
        for item in mailbox.takeAll() {
            switch item {
            case .response(let id, let sequence, let response, let route):
                guard let connection = connection(id) else { continue }
                connection.machine.responseReady(sequence: sequence, reply: .response(response), route: route, now: now)
                process(connection)
            case .streamData(let id, let bytes):
                guard let connection = connection(id) else { continue }
                connection.machine.streamData(bytes, now: now)
                process(connection)
            case .streamEnd(let id):
                guard let connection = connection(id) else { continue }
                connection.machine.streamFinished()
                process(connection)
            case .shutdown(let deadline):
                stopDeadline = now + (deadline - .now)
                stopListening()
                for connection in openConnections() {
                    connection.machine.beginShutdown()
                    process(connection)
                }
            }
        }
    }
}
