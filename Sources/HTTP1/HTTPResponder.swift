import Dispatch
import Synchronization

/// Answers requests for an `HTTPServer`. Both methods are called on an event-loop thread and must
/// not block: answer from a snapshot now, or return `.deferred`/`.task` and answer later from any thread.
public protocol HTTPResponder: Sendable {
    /// Called once a request head announces a body (`Content-Length` > 0), before the body is read.
    /// `false` refuses the request with 413 and closes. Default: true for POST, PUT and PATCH.
    func acceptsBody(method: HTTPMethod, pathSegments: [String]) -> Bool

    /// The answer to one request. Pipelined requests are answered in order whatever order
    /// their replies complete in.
    func respond(to request: HTTPRequest) -> HTTPReply
}

extension HTTPResponder {
    public func acceptsBody(method: HTTPMethod, pathSegments: [String]) -> Bool {
        method == .post || method == .put || method == .patch
    }
}

/// A responder's answer: a response now, a promise fulfilled later, or an event stream.
public struct HTTPReply: Sendable {
    enum Kind: Sendable {
        case response(HTTPResponse)
        case deferred(@Sendable (ResponsePromise) -> Void)
        case stream(HTTPResponse, @Sendable (ResponseStream) -> Void)
    }

    let kind: Kind
    /// The route pattern that produced this reply (e.g. "/devices/:type/:id"), for `onResponse`; set by `Router`.
    public var routeTemplate: String?

    init(kind: Kind, routeTemplate: String? = nil) {
        self.kind = kind
        self.routeTemplate = routeTemplate
    }

    /// Answer now.
    public static func response(_ response: HTTPResponse) -> HTTPReply {
        HTTPReply(kind: .response(response))
    }

    /// Answer later: `start` runs on the event loop right away and must not block; complete the
    /// promise from any thread. A promise dropped uncompleted answers 500.
    public static func deferred(_ start: @escaping @Sendable (ResponsePromise) -> Void) -> HTTPReply {
        HTTPReply(kind: .deferred(start))
    }

    /// Answer with the result of `body`, computed off the event loop on one background thread shared by all
    /// such answers (so they run one at a time): for work that walks a whole collection and would otherwise
    /// hold up every other connection of the loop.
    public static func offLoop(_ body: @escaping @Sendable () -> HTTPResponse) -> HTTPReply {
        .deferred { promise in
            offLoopQueue.async { promise.complete(body()) }
        }
    }

    private static let offLoopQueue = DispatchQueue(label: "http-off-loop", qos: .utility)

    /// Answer with the result of `body`, run in a new `Task` (e.g. awaiting an actor or a durable write).
    public static func task(_ body: @escaping @Sendable () async -> HTTPResponse) -> HTTPReply {
        .deferred { promise in
            Task { promise.complete(await body()) }
        }
    }

    /// An event stream: `head` (status and fields; its body is sent first) now, then whatever is sent
    /// through the `ResponseStream` until `finish()` or the client goes away. The body is delimited by
    /// closing the connection (`Connection: close`, no `Content-Length`), so it is the last answer on it.
    public static func eventStream(
        _ head: HTTPResponse, _ start: @escaping @Sendable (ResponseStream) -> Void
    ) -> HTTPReply {
        HTTPReply(kind: .stream(head, start))
    }
}

/// A response to deliver later, from any thread. The first `complete` wins; the event loop is woken
/// and the response goes out in pipeline order.
public final class ResponsePromise: Sendable {
    private let mailbox: LoopMailbox
    private let connection: UInt64
    private let sequence: UInt64
    private let route: String?
    private let completed = Atomic<Bool>(false)

    init(mailbox: LoopMailbox, connection: UInt64, sequence: UInt64, route: String?) {
        self.mailbox = mailbox
        self.connection = connection
        self.sequence = sequence
        self.route = route
    }

    public func complete(_ response: HTTPResponse) {
        guard !completed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        mailbox.post(.response(connection: connection, sequence: sequence, response: response, route: route))
    }

    deinit {
        if !completed.load(ordering: .acquiring) {
            mailbox.post(
                .response(
                    connection: connection, sequence: sequence,
                    response: .jsonError(.internalServerError, "no response"), route: route))
        }
    }
}

/// The body of an event stream, written from any thread.
public final class ResponseStream: Sendable {
    private let mailbox: LoopMailbox
    private let connection: UInt64
    private let state = Mutex<(open: Bool, onTermination: (@Sendable () -> Void)?)>((true, nil))

    init(mailbox: LoopMailbox, connection: UInt64) {
        self.mailbox = mailbox
        self.connection = connection
    }

    /// False once the client is gone or the stream finished: stop producing.
    public var isOpen: Bool { state.withLock { $0.open } }

    /// Queues bytes for the client; returns false (and drops them) once the stream is closed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        guard isOpen else { return false }
        mailbox.post(.streamData(connection: connection, bytes: bytes))
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Ends the body: the connection closes once everything sent is out.
    public func finish() {
        guard close() else { return }
        mailbox.post(.streamEnd(connection: connection))
    }

    /// `handler` runs once, on an event-loop thread, when the stream ends for any reason
    /// (immediately if it already has).
    public func onTermination(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.open { state.onTermination = handler }
            return !state.open
        }
        if runNow { handler() }
    }

    /// Called by the event loop when the connection closes.
    func terminate() {
        _ = close()
    }

    private func close() -> Bool {
        let (wasOpen, handler) = state.withLock { state in
            let result = (state.open, state.onTermination)
            state.open = false
            state.onTermination = nil
            return result
        }
        handler?()
        return wasOpen
    }
}
