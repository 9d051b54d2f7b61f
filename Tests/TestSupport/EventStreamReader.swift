import Foundation

/// A `GET /events` (Server-Sent Events) client on a plain socket, keeping everything it read as text.
public final class EventStreamReader {
    public let connection: LoopbackConnection
    public private(set) var text = ""

    /// Connects to 127.0.0.1:`port`, sends the request and waits for the response head.
    /// - Parameter lastEventID: sent as `Last-Event-ID`, to resume; default none.
    public init(port: Int, lastEventID: String? = nil) async throws {
        // Short socket timeouts: waiting for data sleeps the task instead of blocking a pool thread.
        connection = try LoopbackConnection(port: port, timeout: .milliseconds(20))
        var request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        try connection.send(Array((request + "\r\n").utf8))
        try await read(until: "\r\n\r\n")
    }

    /// The status line and fields.
    public var head: String { text.components(separatedBy: "\r\n\r\n").first ?? "" }

    /// Reads until `marker` has arrived. Throws "stream closed…" when the server closes first, or
    /// "… not received within …" after `timeout` (default 10 s, far above a local round trip).
    public func read(until marker: String, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(marker) {
            guard let chunk = try? connection.receive() else {
                guard ContinuousClock.now < deadline else {
                    throw TestSupportError("\(marker) not received within \(timeout); read so far: \(text)")
                }
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            if chunk.isEmpty { throw TestSupportError("stream closed; read so far: \(text)") }
            text += String(decoding: chunk, as: UTF8.self)
        }
    }

    /// The events read so far: (id, event, data).
    public var events: [(id: Int64, event: String, data: String)] {
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return body.components(separatedBy: "\n\n").compactMap { block in
            var id: Int64?
            var event = ""
            var data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = Int64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return id.map { ($0, event, data) }
        }
    }

    public func close() { shutdown(connection.fd, Int32(SHUT_RDWR)) }
}
