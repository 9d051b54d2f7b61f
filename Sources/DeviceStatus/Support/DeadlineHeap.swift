/// A binary min-heap of deadlines (monotonic or wall nanoseconds) with what each is for: the watchdog's and the
/// operation book's timers. Entries are never updated in place; owners file a new one and skip stale ones when
/// they come due, which keeps every operation O(log n).
struct DeadlineHeap<Payload: Sendable>: Sendable {
    private var entries: [(time: Int64, payload: Payload)] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The earliest entry.
    var first: (time: Int64, payload: Payload)? { entries.first }

    mutating func reserveCapacity(_ capacity: Int) { entries.reserveCapacity(capacity) }

    mutating func removeAll() { entries.removeAll(keepingCapacity: true) }

    mutating func push(_ time: Int64, _ payload: Payload) {
        entries.append((time, payload))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].time < entries[parent].time else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry.
    @discardableResult
    mutating func popFirst() -> (time: Int64, payload: Payload)? {
        guard !entries.isEmpty else { return nil }
        let top = entries[0]
        let last = entries.removeLast()
        guard !entries.isEmpty else { return top }
        entries[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count, entries[left].time < entries[smallest].time { smallest = left }
            if right < entries.count, entries[right].time < entries[smallest].time { smallest = right }
            guard smallest != parent else { return top }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
