import Dispatch
import Synchronization

/// Hands chunks from one producer on the disk queue to one consumer task: for loading the store, where reading
/// LevelDB (on the store's disk queue) and filling the table (on the consumer's task) run on two cores at once.
///
/// The producer blocks while `capacity` chunks wait (it runs on the disk queue, never on the cooperative pool); the
/// consumer suspends, without holding a thread, while none does.
final class ChunkChannel<Element: Sendable>: Sendable {
    /// Records per chunk: large enough that the hand-off costs nothing, small enough to start inserting early.
    static var chunkSize: Int { 16_384 }
    /// Chunks in flight at most: bounds the memory held between the two sides.
    static var capacity: Int { 8 }

    private struct State {
        var chunks: [[Element]] = []
        var finished = false
        var failure: (any Error)?
        var consumer: CheckedContinuation<[Element]?, Never>?
    }

    private let state = Mutex(State())
    /// One permit per chunk that may wait; the consumer gives one back for each chunk it takes.
    private let space = DispatchSemaphore(value: capacity)

    /// Hands over a chunk; blocks while `capacity` chunks wait. Producer side only.
    func put(_ chunk: [Element]) {
        space.wait()
        let consumer = state.withLock { state -> CheckedContinuation<[Element]?, Never>? in
            guard let consumer = state.consumer else {
                state.chunks.append(chunk)
                return nil
            }
            state.consumer = nil
            return consumer
        }
        consumer?.resume(returning: chunk)
    }

    /// Ends the stream; `error` is what the producer failed with, if it did.
    func finish(error: (any Error)?) {
        let consumer = state.withLock { state in
            state.finished = true
            state.failure = error
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// The next chunk, or nil once the producer has finished and everything was taken.
    func take() async -> [Element]? {
        let chunk: [Element]? = await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [Element]?? in
                if !state.chunks.isEmpty { return .some(state.chunks.removeFirst()) }
                if state.finished { return .some(nil) }
                state.consumer = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
        if chunk != nil { space.signal() }
        return chunk
    }

    /// What the producer failed with, once it has finished.
    var error: (any Error)? { state.withLock { $0.failure } }
}
