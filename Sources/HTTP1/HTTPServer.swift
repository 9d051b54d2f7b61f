import CSysShims
import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on epoll: `threads` event loops, each with its own `SO_REUSEPORT` listener.
/// Responses are built on the loop threads (see `HTTPResponder`); nothing awaits per request.
public final class HTTPServer: Sendable {
    /// Every limit and timeout of the server. Field names match the `[http]` config keys.
    public struct Configuration: Sendable, Equatable {
        /// Address to listen on (numeric IPv4/IPv6 or a resolvable name). Default "127.0.0.1".
        public var bind: String
        /// TCP port; 0 picks a free one (see `start()`'s result). Default 5000.
        public var port: Int
        /// Event-loop threads; 0 means one per online CPU. Default 0.
        public var threads: Int
        /// Open connections across all threads; beyond it a client gets 503 and a close, so a flood
        /// cannot exhaust descriptors. Default 1024.
        public var maxConnections: Int
        /// A whole request (head and body) must arrive within this time of its first byte, so slow-drip
        /// clients cannot hold connections: 408 and close. Default 10 s.
        public var headerTimeout: Duration
        /// A keep-alive connection with nothing in flight is closed after this long, to free its slot. Default 5 s.
        public var idleTimeout: Duration
        /// A client that reads nothing of a pending answer for this long is cut off, so it cannot pin
        /// buffers. Default 10 s.
        public var writeTimeout: Duration
        /// Longest request line, CRLF excluded (414 beyond). Default 8192: URLs are short here.
        public var maxRequestLine: Int
        /// Largest header section (431 beyond). Default 16384.
        public var maxHeaderBytes: Int
        /// Most header fields (431 beyond). Default 64.
        public var maxHeaders: Int
        /// Largest request body (413 beyond). Default 65536: the API takes small JSON documents.
        public var maxBody: Int

        public init(
            bind: String = "127.0.0.1", port: Int = 5000, threads: Int = 0, maxConnections: Int = 1024,
            headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(5),
            writeTimeout: Duration = .seconds(10), maxRequestLine: Int = 8192, maxHeaderBytes: Int = 16384,
            maxHeaders: Int = 64, maxBody: Int = 65536
        ) {
            self.bind = bind
            self.port = port
            self.threads = threads
            self.maxConnections = maxConnections
            self.headerTimeout = headerTimeout
            self.idleTimeout = idleTimeout
            self.writeTimeout = writeTimeout
            self.maxRequestLine = maxRequestLine
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaders = maxHeaders
            self.maxBody = maxBody
        }

        /// The request limits as the parser takes them.
        public var limits: RequestLimits {
            RequestLimits(
                maxRequestLine: maxRequestLine, maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders, maxBody: maxBody
            )
        }

        /// `threads`, with 0 resolved to the number of online CPUs.
        public var effectiveThreads: Int {
            threads > 0 ? threads : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        }
    }

    private struct Loop: Sendable {
        let mailbox: LoopMailbox
        let thread: pthread_t
    }

    private enum Phase: Sendable {
        case idle
        case running(port: Int, loops: [Loop])
        case stopped
    }

    public let configuration: Configuration
    private let responder: any HTTPResponder
    private let logger: Logger
    private let connections = ConnectionCounter()
    private let onResponse: (@Sendable (HTTPResponseRecord) -> Void)?
    private let phase = Mutex(Phase.idle)

    /// - Parameters:
    ///   - onResponse: called on a loop thread for every response sent, the server's own refusals
    ///     (400, 408, 413, 414, 431, 501, 503, 505) included; must be quick (count, don't log).
    public init(
        configuration: Configuration, responder: some HTTPResponder, logger: Logger,
        onResponse: (@Sendable (HTTPResponseRecord) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        self.onResponse = onResponse
    }

    /// Open connections across every loop, now.
    public var openConnections: Int { connections.value.load(ordering: .relaxed) }

    /// The bound port while running, else nil.
    public var port: Int? {
        phase.withLock { if case .running(let port, _) = $0 { port } else { nil } }
    }

    /// Binds (port 0 → a free port), starts the loop threads and returns the bound port.
    /// Throws `HTTPServerError` (`.addressInUse`, `.permissionDenied`, `.invalidAddress`…) with a
    /// description fit for the user.
    @discardableResult
    public func start() throws(HTTPServerError) -> Int {
        try phase.withLock { phase throws(HTTPServerError) -> Int in
            guard case .idle = phase else { throw .alreadyStarted }
            // A vanished client must cost an EPIPE, never the process (sends also use MSG_NOSIGNAL).
            signal(SIGPIPE, SIG_IGN)
            let (port, loops) = try startLoops()
            phase = .running(port: port, loops: loops)
            return port
        }
    }

    private func startLoops() throws(HTTPServerError) -> (Int, [Loop]) {
        let config = configuration
        let display = formatAddress(config.bind, config.port)
        guard (0...65535).contains(config.port) else { throw .invalid(display, "port out of range") }
        var address = try ListenerSocket.resolve(config.bind, port: config.port)
        if config.port != 0 { try ListenerSocket.probe(address, display: display) }

        var listeners: [Int32] = []
        var port = config.port
        do throws(HTTPServerError) {
            for _ in 0..<config.effectiveThreads {
                let listener = try ListenerSocket.open(address, display: formatAddress(config.bind, port))
                listeners.append(listener.fd)
                if port == 0 {
                    port = listener.port
                    ListenerSocket.setPort(port, of: &address)
                }
            }
        } catch {
            for fd in listeners { close(fd) }
            throw error
        }

        let settings = ConnectionStateMachine.Settings(
            limits: config.limits, headerTimeout: config.headerTimeout, idleTimeout: config.idleTimeout,
            writeTimeout: config.writeTimeout)
        let counter = connections
        var loops: [Loop] = []
        for (index, listener) in listeners.enumerated() {
            let loop: EventLoop
            do {
                loop = try EventLoop(
                    index: index, listenFD: listener, settings: settings, responder: responder, onResponse: onResponse,
                    counter: counter, maxConnections: config.maxConnections, logger: logger)
            } catch {
                stop(loops, deadline: .now)
                for fd in listeners[index...] { close(fd) }
                throw error
            }
            guard let thread = spawnThread(name: "http-loop-\(index)", { loop.run() }) else {
                let error = errno
                loop.mailbox.post(.shutdown(deadline: .now))
                stop(loops, deadline: .now)
                throw .system("pthread_create", error)
            }
            loops.append(Loop(mailbox: loop.mailbox, thread: thread))
        }
        logger.info(
            "HTTP server listening",
            metadata: ["address": "\(formatAddress(config.bind, port))", "threads": "\(loops.count)"])
        return (port, loops)
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, closes every
    /// connection and joins the loop threads. Blocks until done; safe to call more than once.
    public func shutdown(gracePeriod: Duration = .seconds(5)) {
        let loops = phase.withLock { phase -> [Loop] in
            defer { phase = .stopped }
            if case .running(_, let loops) = phase { return loops }
            return []
        }
        guard !loops.isEmpty else { return }
        stop(loops, deadline: .now + gracePeriod)
        logger.info("HTTP server stopped")
    }

    /// `shutdown(gracePeriod:)` without blocking a thread of the Swift concurrency pool: the waiting
    /// happens on a thread of its own, so deferred responses that need the pool can still finish.
    public func gracefulShutdown(gracePeriod: Duration = .seconds(5)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let started = spawnThread(name: "http-shutdown") {
                self.shutdown(gracePeriod: gracePeriod)
                continuation.resume()
            }
            if started == nil {
                shutdown(gracePeriod: gracePeriod)
                continuation.resume()
            } else if let started {
                pthread_detach(started)
            }
        }
    }

    private func stop(_ loops: [Loop], deadline: ContinuousClock.Instant) {
        for loop in loops { loop.mailbox.post(.shutdown(deadline: deadline)) }
        for loop in loops { pthread_join(loop.thread, nil) }
    }

    deinit {
        shutdown(gracePeriod: .zero)
    }
}

private final class ThreadBody {
    let name: String
    let run: @Sendable () -> Void
    init(name: String, _ run: @escaping @Sendable () -> Void) {
        self.name = name
        self.run = run
    }
}

/// Starts a named pthread (names are cut to 15 bytes); nil when the system refuses.
private func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t? {
    let context = Unmanaged.passRetained(ThreadBody(name: String(name.prefix(15)), body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(
        &thread, nil,
        { raw in
            let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            _ = shim_set_thread_name(body.name)
            body.run()
            return nil
        }, context)
    guard result == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        errno = result
        return nil
    }
    return thread
}
