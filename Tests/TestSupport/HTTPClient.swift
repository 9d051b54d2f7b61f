import Glibc

/// A parsed HTTP/1.1 response, as read by ``httpGet(port:path:headers:timeout:)``.
public struct HTTPResponse: Sendable {
    /// The status code, e.g. 200.
    public var status: Int
    /// The reason phrase, e.g. "OK".
    public var reason: String
    /// Header fields in arrival order, names as sent.
    public var headers: [(name: String, value: String)]
    /// The body (de-chunked when the response was chunked).
    public var body: [UInt8]

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Parses one complete response from `bytes`; nil if it is incomplete or not HTTP.
    /// A body without Content-Length or chunked encoding runs to the end of `bytes`.
    public static func parse(_ bytes: [UInt8]) -> HTTPResponse? {
        parsePrefix(bytes, atEOF: true)?.response
    }

    /// Parses the response at the start of `bytes`; returns it and the bytes it used, or nil if
    /// more bytes are needed. `atEOF` says no more bytes will come.
    static func parsePrefix(_ bytes: [UInt8], atEOF: Bool) -> (response: HTTPResponse, length: Int)? {
        guard let headEnd = bytes.firstRange(of: [13, 10, 13, 10]) else { return nil }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2).map(String.init)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else {
            return nil
        }
        var response = HTTPResponse(
            status: status, reason: statusLine.count > 2 ? statusLine[2] : "", headers: [], body: [])
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = String(line[line.index(after: colon)...]).trimmingBlanks()
            response.headers.append((String(line[..<colon]), value))
        }
        let bodyStart = headEnd.upperBound
        // 1xx, 204 and 304 carry no body.
        if (100..<200).contains(status) || status == 204 || status == 304 {
            return (response, bodyStart)
        }
        if response.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            var index = bodyStart
            while true {
                guard let lineEnd = bytes[index...].firstRange(of: [13, 10]) else { return nil }
                let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return nil }
                index = lineEnd.upperBound
                if size == 0 {
                    // Skip trailers up to the empty line.
                    while true {
                        guard let end = bytes[index...].firstRange(of: [13, 10]) else { return nil }
                        let empty = end.lowerBound == index
                        index = end.upperBound
                        if empty { return (response, index) }
                    }
                }
                guard bytes.count >= index + size + 2 else { return nil }
                response.body += bytes[index..<index + size]
                index += size + 2
            }
        }
        if let lengthText = response.header("Content-Length"), let length = Int(lengthText) {
            guard bytes.count >= bodyStart + length else { return nil }
            response.body = Array(bytes[bodyStart..<bodyStart + length])
            return (response, bodyStart + length)
        }
        guard atEOF else { return nil }
        response.body = Array(bytes[bodyStart...])
        return (response, bytes.count)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    fileprivate func trimmingBlanks() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}

/// Sends `GET path` to 127.0.0.1:`port` and reads the whole response (Content-Length, chunked, or
/// until close). Blocking, plain POSIX sockets.
/// - Parameters:
///   - headers: extra request headers; `Host` and `Connection: close` are added unless given.
///   - timeout: for connect, each send and each read; default 5 s, far above a local round trip.
public func httpGet(
    port: Int, path: String, headers: [(String, String)] = [], timeout: Duration = .seconds(5)
) throws -> HTTPResponse {
    try httpRequest(port: port, method: "GET", path: path, headers: headers, timeout: timeout)
}

/// Sends one request to 127.0.0.1:`port` and reads the whole response. `Content-Length` is added when a
/// body is given; otherwise like ``httpGet(port:path:headers:timeout:)``.
public func httpRequest(
    port: Int,
    method: String,
    path: String,
    headers: [(String, String)] = [],
    body: [UInt8] = [],
    timeout: Duration = .seconds(5)
) throws -> HTTPResponse {
    var fields = headers
    let names = Set(headers.map { $0.0.lowercased() })
    if !names.contains("host") { fields.insert(("Host", "127.0.0.1:\(port)"), at: 0) }
    if !names.contains("connection") { fields.append(("Connection", "close")) }
    if !body.isEmpty && !names.contains("content-length") { fields.append(("Content-Length", "\(body.count)")) }
    var request = "\(method) \(path) HTTP/1.1\r\n"
    for (name, value) in fields { request += "\(name): \(value)\r\n" }
    request += "\r\n"

    let connection = try LoopbackConnection(port: port, timeout: timeout)
    try connection.send(Array(request.utf8) + body)
    var received: [UInt8] = []
    while true {
        let chunk = try connection.receive()
        received += chunk
        if let parsed = HTTPResponse.parsePrefix(received, atEOF: chunk.isEmpty) {
            return parsed.response
        }
        if chunk.isEmpty {
            throw TestSupportError(
                "connection closed before a full response (\(received.count) bytes: "
                    + "\(String(decoding: received.prefix(200), as: UTF8.self)))")
        }
    }
}

/// Sends `bytes` as they are to 127.0.0.1:`port`, then reads until the server closes the connection or
/// `timeout` (default 5 s) passes without data; returns everything read (maybe several responses).
/// - Parameter shutdownWrite: half-close after sending (default false), for servers that answer at EOF.
public func rawHTTP(
    port: Int, _ bytes: [UInt8], timeout: Duration = .seconds(5), shutdownWrite: Bool = false
) throws -> [UInt8] {
    let connection = try LoopbackConnection(port: port, timeout: timeout)
    try connection.send(bytes)
    if shutdownWrite { shutdown(connection.fd, Int32(SHUT_WR)) }
    var received: [UInt8] = []
    while true {
        guard let chunk = try? connection.receive() else { return received }  // timed out or reset
        if chunk.isEmpty { return received }
        received += chunk
    }
}

/// A blocking TCP connection to 127.0.0.1 with send and receive timeouts.
public final class LoopbackConnection {
    /// The socket descriptor.
    public let fd: Int32

    /// Connects to 127.0.0.1:`port`; `timeout` (default 5 s) applies to every later send and receive.
    public init(port: Int, timeout: Duration = .seconds(5)) throws {
        fd = connectLoopback(port: port)
        guard fd >= 0 else {
            throw TestSupportError("connect(127.0.0.1:\(port)) failed: \(String(cString: strerror(errno)))")
        }
        let (seconds, attoseconds) = timeout.components
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all of `bytes`.
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestSupportError("send failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads what is available (blocking up to the timeout); an empty array means the peer closed.
    public func receive(max: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
            if n >= 0 { return Array(buffer.prefix(n)) }
            if errno == EINTR { continue }
            throw TestSupportError("recv failed: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(fd)
    }
}

/// GET requests one after another on a kept-alive connection to 127.0.0.1:`port` (a new one whenever the
/// server closes it): for tests that ask thousands of questions, without a connection per question.
public final class KeepAliveClient {
    private let port: Int
    private let timeout: Duration
    private var connection: LoopbackConnection?
    private var pending: [UInt8] = []

    public init(port: Int, timeout: Duration = .seconds(5)) {
        self.port = port
        self.timeout = timeout
    }

    /// GETs every path, pipelined in groups of `group`; the responses in request order.
    public func get(_ paths: [String], group: Int = 200) throws -> [HTTPResponse] {
        var responses: [HTTPResponse] = []
        responses.reserveCapacity(paths.count)
        var start = 0
        while start < paths.count {
            let batch = paths[start..<min(start + group, paths.count)]
            if connection == nil {
                connection = try LoopbackConnection(port: port, timeout: timeout)
                pending = []
            }
            var requests: [UInt8] = []
            for path in batch { requests += Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8) }
            try connection!.send(requests)
            var answered = 0
            while answered < batch.count {
                if let parsed = HTTPResponse.parsePrefix(pending, atEOF: false) {
                    pending.removeFirst(parsed.length)
                    responses.append(parsed.response)
                    answered += 1
                    continue
                }
                let chunk = try connection!.receive()
                if chunk.isEmpty { throw TestSupportError("closed after \(answered) of \(batch.count) pipelined") }
                pending += chunk
            }
            start += batch.count
        }
        return responses
    }

    public func get(_ path: String) throws -> HTTPResponse {
        for attempt in 0..<2 {
            if connection == nil {
                connection = try LoopbackConnection(port: port, timeout: timeout)
                pending = []
            }
            let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n"
            do {
                try connection!.send(Array(request.utf8))
                while true {
                    if let parsed = HTTPResponse.parsePrefix(pending, atEOF: false) {
                        pending.removeFirst(parsed.length)
                        if parsed.response.header("Connection")?.lowercased() == "close" { connection = nil }
                        return parsed.response
                    }
                    let chunk = try connection!.receive()
                    if chunk.isEmpty { throw TestSupportError("closed") }
                    pending += chunk
                }
            } catch {
                // The server closed an idle or exhausted connection: ask again on a new one, once.
                connection = nil
                if attempt == 1 { throw error }
            }
        }
        throw TestSupportError("unreachable")
    }
}
