import Logging
import Synchronization

/// A log handler that hands every message to a test as it is logged: what a component logs is an event to wait
/// for ("agent exited; restarting it"), not something to sleep until.
public final class LogRecorder: Sendable {
    public struct Entry: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    public let entries: AsyncStream<Entry>
    private let input: AsyncStream<Entry>.Continuation

    public init() { (entries, input) = AsyncStream.makeStream() }

    /// A logger whose every message (all levels) this recorder receives.
    public var logger: Logger { Logger(label: "test") { _ in Handler(recorder: self) } }

    /// The next entry whose message contains `text`; nil if the stream ended first.
    public func next(containing text: String, in iterator: inout AsyncStream<Entry>.Iterator) async -> Entry? {
        while let entry = await iterator.next() {
            if entry.message.contains(text) { return entry }
        }
        return nil
    }

    fileprivate func record(_ entry: Entry) { input.yield(entry) }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.record(
                Entry(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}
