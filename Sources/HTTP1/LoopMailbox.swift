import CSysShims
import Glibc
import Synchronization

/// The only way into an event loop from another thread: items are queued under a lock and the
/// loop is woken through an eventfd.
final class LoopMailbox: Sendable {
    enum Item: Sendable {
        case response(connection: UInt64, sequence: UInt64, response: HTTPResponse, route: String?)
        case streamData(connection: UInt64, bytes: [UInt8])
        case streamEnd(connection: UInt64)
        case shutdown(deadline: ContinuousClock.Instant)
    }

    private struct State {
        var items: [Item] = []
        var eventFD: Int32
    }

    private let state: Mutex<State>

    /// Creates the eventfd; nil when the system refuses one.
    init?() {
        let fd = shim_eventfd()
        guard fd >= 0 else { return nil }
        state = Mutex(State(eventFD: fd))
    }

    /// The descriptor the loop watches; valid until `close()`.
    var eventFD: Int32 { state.withLock { $0.eventFD } }

    /// Queues an item and wakes the loop; dropped once the loop is gone.
    func post(_ item: Item) {
        state.withLock { state in
            guard state.eventFD >= 0 else { return }
            state.items.append(item)
            // One wake-up per batch: the loop drains everything at once. Signalled under the lock so
            // close() cannot free the descriptor (and let it be reused) in between.
            if state.items.count == 1 { _ = shim_eventfd_signal(state.eventFD) }
        }
    }

    func takeAll() -> [Item] {
        state.withLock { state in
            if state.eventFD >= 0 { _ = shim_eventfd_drain(state.eventFD) }
            defer { state.items = [] }
            return state.items
        }
    }

    /// Closes the eventfd; later posts are dropped.
    func close() {
        state.withLock { state in
            if state.eventFD >= 0 { _ = Glibc.close(state.eventFD) }
            state.eventFD = -1
            state.items = []
        }
    }
}
