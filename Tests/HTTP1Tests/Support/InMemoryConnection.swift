@testable import HTTP1

/// Drives a `ConnectionStateMachine` the way the epoll loop does, with a hand-moved clock and
/// no socket: what the server would write is collected in `written`.
struct InMemoryConnection {
    typealias Instant = Moment

    /// How the test answers a dispatched request: now, or later through `complete`.
    enum Answer {
        case now(HTTPResponse)
        case later
    }

    var machine: ConnectionStateMachine
    var now: Instant
    var written: [UInt8] = []
    var records: [HTTPResponseRecord] = []
    var dispatched: [(request: HTTPRequest, sequence: UInt64)] = []
    private(set) var writeShutdown = false
    private(set) var closed = false
    private(set) var watching = (read: true, write: false)
    /// Bytes the fake socket accepts per write; nil = everything.
    var socketCapacity: Int?
    let date = Array("Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n".utf8)
    let answer: (HTTPRequest) -> Answer

    init(
        settings: ConnectionStateMachine.Settings, acceptsBody: RequestParser.BodyPolicy? = nil,
        answer: @escaping (HTTPRequest) -> Answer
    ) {
        now = Moment(nanoseconds: 0)  // the in-memory clock only moves when a test advances it
        machine = ConnectionStateMachine(settings: settings, peer: nil, now: now, acceptsBody: acceptsBody)
        self.answer = answer
        run()
    }

    mutating func send(_ text: String) { send(Array(text.utf8)) }

    mutating func send(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { machine.received($0, now: now) }
        run()
    }

    mutating func peerCloses() {
        machine.peerClosedInput(now: now)
        run()
    }

    mutating func complete(_ sequence: UInt64, _ response: HTTPResponse) {
        machine.responseReady(sequence: sequence, reply: .response(response), route: nil, now: now)
        run()
    }

    /// Moves the clock, firing the machine's timer when a deadline passes (as the sweep does).
    mutating func advance(by duration: Duration) {
        now = now + duration
        if let deadline = machine.deadline, deadline <= now {
            machine.timerFired(now: now)
            run()
        }
    }

    /// The socket became writable with `capacity` bytes of room.
    mutating func drain(capacity: Int? = nil) {
        socketCapacity = capacity
        machine.writable()
        run()
    }

    var responses: [ParsedResponse] { ParsedResponse.parseAll(written).responses }

    /// Done writing: the write side was shut down or the connection closed.
    var finished: Bool { writeShutdown || closed }

    private mutating func run() {
        while true {
            switch machine.nextAction(now: now, date: date) {
            case .dispatch:
                let sequence = machine.dispatchedSequence
                let request = machine.takeRequest()
                dispatched.append((request, sequence))
                if case .now(let response) = answer(request) {
                    machine.responseReady(sequence: sequence, reply: .response(response), route: nil, now: now)
                }
            case .write:
                let taken = machine.withPendingOutput { bytes -> [UInt8] in
                    Array(bytes.prefix(socketCapacity ?? bytes.count))
                }
                if taken.isEmpty {
                    machine.writeBlocked(now: now)
                } else {
                    written += taken
                    if let capacity = socketCapacity { socketCapacity = capacity - taken.count }
                    machine.wrote(taken.count, now: now)
                }
            case .report:
                records.append(machine.takeReport())
            case .shutdownWrite:
                writeShutdown = true
            case .close:
                closed = true
                return
            case .wait(let read, let write):
                watching = (read, write)
                return
            }
        }
    }
}
