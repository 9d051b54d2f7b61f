import Synchronization

/// The hand-off between libmosquitto's network thread and one consumer task.
///
/// The network thread only appends to an array under a mutex and wakes the consumer when the array
/// goes from empty to non-empty; the consumer takes everything present at once. At high rates this
/// costs one task wake-up per batch instead of one per message (measured here: ~1.4 M msg/s against ~250 k).
/// The queue is unbounded: dropping messages would be worse than memory held while the consumer
/// catches up, and the broker bounds what it sends anyway.
final class MessageQueue: Sendable {
    private struct State {
        var messages: [MQTTMessage] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Called on the network thread for every message.
    func append(_ message: MQTTMessage) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.messages.append(message)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// After this, the consumer gets what is left, then nil.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Messages waiting right now (for diagnostics and metrics).
    var count: Int { state.withLock { $0.messages.count } }

    /// Everything queued, waiting while there is nothing; nil once finished and drained or when the
    /// task is cancelled.
    func next() async -> [MQTTMessage]? {
        while true {
            enum Taken {
                case batch([MQTTMessage])
                case finished, empty
            }
            let taken = state.withLock { state -> Taken in
                if !state.messages.isEmpty {
                    let batch = state.messages
                    state.messages = []
                    return .batch(batch)
                }
                return state.finished ? .finished : .empty
            }
            switch taken {
            case .batch(let batch): return batch
            case .finished: return nil
            case .empty: break
            }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.messages.isEmpty || state.finished || Task.isCancelled { return true }
                        precondition(state.waiter == nil, "MQTTClient.messageBatches has a single consumer")
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }
}

/// The messages received from the broker, in arrival order, as batches: each element is everything
/// that arrived since the consumer last asked, never empty. Ends after ``MQTTClient/stop()``.
///
/// Single consumer: iterate it from one task only.
public struct MessageBatches: AsyncSequence, Sendable {
    public typealias Element = [MQTTMessage]
    public typealias Failure = Never

    let queue: MessageQueue

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let queue: MessageQueue

        public mutating func next() async -> [MQTTMessage]? {
            await queue.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> [MQTTMessage]? {
            await queue.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: queue)
    }
}
