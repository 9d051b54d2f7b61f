import Foundation

/// Hands chunks from one producer thread to one consumer, blocking: for loading the store, where reading LevelDB
/// and filling the table run on two cores at once.
final class ChunkChannel<Element>: @unchecked Sendable {  // all state is guarded by `condition`
    /// Records per chunk: large enough that the hand-off costs nothing, small enough to start inserting early.
    static var chunkSize: Int { 16_384 }
    /// Chunks in flight at most: bounds the memory held between the two threads.
    static var capacity: Int { 8 }

    private let condition = NSCondition()
    private var chunks: [[Element]] = []
    private var finished = false
    private var failure: (any Error)?

    func put(_ chunk: [Element]) {
        condition.lock()
        while chunks.count >= Self.capacity { condition.wait() }
        chunks.append(chunk)
        condition.broadcast()
        condition.unlock()
    }

    func finish(error: (any Error)?) {
        condition.lock()
        finished = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// The next chunk, or nil once the producer has finished and everything was taken.
    func take() -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished { condition.wait() }
        guard !chunks.isEmpty else { return nil }
        let chunk = chunks.removeFirst()
        condition.broadcast()
        return chunk
    }

    var error: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }
}
