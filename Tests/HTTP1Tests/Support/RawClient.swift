import Glibc

struct ClientError: Error, CustomStringConvertible {
    var description: String
}

/// A blocking TCP client on 127.0.0.1 for driving the server with exact bytes.
/// `@unchecked Sendable`: each test uses a client from one task at a time.
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private(set) var received: [UInt8] = []
    private(set) var sawEOF = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw ClientError(description: "connect to \(port): \(String(cString: strerror(error)))")
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError(description: "send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Sends without failing the test when the server already closed (returns false then).
    @discardableResult
    func trySend(_ text: String) -> Bool { (try? send(text)) != nil }

    /// Reads what is available within `timeout`; returns false on timeout without data.
    @discardableResult
    func readSome(timeout: Duration) throws -> Bool {
        guard !sawEOF else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout / .milliseconds(1))
        guard poll(&poller, 1, ms) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            received.append(contentsOf: buffer[0..<n])
        } else if n == 0 {
            sawEOF = true
        } else if errno == ECONNRESET {
            sawEOF = true
        } else {
            throw ClientError(description: "recv: \(String(cString: strerror(errno)))")
        }
        return true
    }

    /// Reads until `count` complete responses are buffered (or EOF/timeout) and returns them all.
    func responses(_ count: Int, bodiless: Bool = false, timeout: Duration = .seconds(5)) throws -> [ParsedResponse] {
        let deadline = ContinuousClock.now + timeout
        while ParsedResponse.parseAll(received, bodiless: bodiless).responses.count < count, !sawEOF,
            ContinuousClock.now < deadline
        {
            try readSome(timeout: .milliseconds(50))
        }
        return ParsedResponse.parseAll(received, bodiless: bodiless).responses
    }

    func response(bodiless: Bool = false, timeout: Duration = .seconds(5)) throws -> ParsedResponse {
        guard let first = try responses(1, bodiless: bodiless, timeout: timeout).first else {
            throw ClientError(
                description: "no response; got \(String(decoding: received, as: UTF8.self).debugDescription)")
        }
        return first
    }

    /// True when the server closes the connection within `timeout` (data before EOF is kept).
    func closedByServer(within timeout: Duration = .seconds(5)) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        repeat {
            try readSome(timeout: .milliseconds(timeout == .zero ? 0 : 20))
        } while !sawEOF && ContinuousClock.now < deadline
        return sawEOF
    }

    func clear() { received = [] }

    /// Sends FIN both ways now (the descriptor itself is closed on deinit).
    func close() { shutdown(fd, Int32(SHUT_RDWR)) }
}
