import Synchronization

/// The operation book behind a lock: `OperationDelivery` is its only writer, HTTP threads and `/metrics` read it
/// with one short lock and never await the actor (an event-loop thread must not hop to an actor per request).
public final class OperationTable: Sendable {
    private let book: Mutex<OperationBook>

    public init(limits: OperationBook.Limits = .init()) {
        book = Mutex(OperationBook(limits: limits))
    }

    public var limits: OperationBook.Limits { book.withLock { $0.limits } }

    /// The device's operations in creation order.
    public func operations(for device: DeviceKey) -> [Operation] { book.withLock { $0.operations(for: device) } }

    /// One operation by its id (16 hex digits).
    public func operation(for device: DeviceKey, id: String) -> Operation? {
        guard let sequence = Operation.sequence(ofID: id) else { return nil }
        return book.withLock { $0.operation(for: device, sequence: sequence) }
    }

    /// The device's operations by status (statuses with none are absent), for `GET /devices/<type>/<id>`.
    public func counts(for device: DeviceKey) -> [OperationStatus: Int] { book.withLock { $0.counts(for: device) } }

    /// All operations kept, by status (every status present, 0 included), for `/metrics`.
    public func totals() -> [OperationStatus: Int] {
        let totals = book.withLock { $0.totals }
        var all: [OperationStatus: Int] = [:]
        for status in OperationStatus.allCases { all[status] = totals[status] ?? 0 }
        return all
    }

    /// Runs `body` on the book under the lock (for `OperationDelivery`).
    func mutate<Result: Sendable, Failure: Error>(_ body: (inout OperationBook) throws(Failure) -> Result)
        throws(Failure) -> Result
    {
        try book.withLock { (book: inout OperationBook) throws(Failure) -> Result in try body(&book) }
    }

    func replace(with newBook: consuming OperationBook) {
        let newBook = newBook
        book.withLock { $0 = newBook }
    }
}
