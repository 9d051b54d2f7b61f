import CSysShims
import Glibc

/// Why the server could not start. Compare with the static members (`error == .addressInUse`);
/// `description` names the address and the system's reason.
public struct HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Sendable, Equatable {
        case addressInUse, permissionDenied, invalidAddress, alreadyStarted, systemCallFailed
    }

    private let code: Code
    /// "host:port" the server tried to use, if any.
    public let address: String
    public let detail: String

    private init(_ code: Code, address: String = "", detail: String = "") {
        self.code = code
        self.address = address
        self.detail = detail
    }

    /// Another socket holds the port.
    public static let addressInUse = HTTPServerError(.addressInUse)
    /// Binding needs a privilege the process lacks (a port below 1024, typically).
    public static let permissionDenied = HTTPServerError(.permissionDenied)
    /// The bind address is not an address of this machine or does not resolve.
    public static let invalidAddress = HTTPServerError(.invalidAddress)
    /// `start()` was called twice.
    public static let alreadyStarted = HTTPServerError(.alreadyStarted)
    /// A socket, epoll or thread call failed (see `detail`).
    public static let systemCallFailed = HTTPServerError(.systemCallFailed)

    public static func == (a: HTTPServerError, b: HTTPServerError) -> Bool { a.code == b.code }

    public var description: String {
        switch code {
        case .addressInUse: "cannot listen on \(address): address already in use (is another server running?)"
        case .permissionDenied: "cannot listen on \(address): permission denied (ports below 1024 need privileges)"
        case .invalidAddress: "cannot listen on \(address): \(detail)"
        case .alreadyStarted: "the HTTP server is already started"
        case .systemCallFailed: "HTTP server: \(detail)"
        }
    }

    static func bindFailed(_ errorNumber: Int32, address: String) -> HTTPServerError {
        switch errorNumber {
        case EADDRINUSE: HTTPServerError(.addressInUse, address: address, detail: errnoText(errorNumber))
        case EACCES, EPERM: HTTPServerError(.permissionDenied, address: address, detail: errnoText(errorNumber))
        case EADDRNOTAVAIL, EAFNOSUPPORT:
            HTTPServerError(.invalidAddress, address: address, detail: errnoText(errorNumber))
        default:
            HTTPServerError(.systemCallFailed, address: address, detail: "bind \(address): \(errnoText(errorNumber))")
        }
    }

    static func invalid(_ address: String, _ detail: String) -> HTTPServerError {
        HTTPServerError(.invalidAddress, address: address, detail: detail)
    }

    static func system(_ call: String, _ errorNumber: Int32) -> HTTPServerError {
        HTTPServerError(.systemCallFailed, detail: "\(call): \(errnoText(errorNumber))")
    }

}

func errnoText(_ errorNumber: Int32) -> String {
    String(cString: strerror(errorNumber))
}

func formatAddress(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// Listening sockets: one per event-loop thread, joined in a `SO_REUSEPORT` group.
enum ListenerSocket {
    /// Connections the kernel queues before accept(); the system caps it at somaxconn.
    static let backlog: Int32 = 1024

    /// Resolves `host` (numeric or a name) to the first socket address for a passive TCP socket.
    static func resolve(_ host: String, port: Int) throws(HTTPServerError) -> sockaddr_storage {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw .invalid(formatAddress(host, port), String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(
                from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return storage
    }

    /// Fails with `.addressInUse` when any socket (ours or not) listens on the address. Listeners
    /// joined by `SO_REUSEPORT` would otherwise silently share the port with another server.
    static func probe(_ address: sockaddr_storage, display: String) throws(HTTPServerError) {
        let fd = socket(Int32(address.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address
        if bindSocket(fd, &address) != 0 { throw .bindFailed(errno, address: display) }
    }

    /// A non-blocking listening socket with `SO_REUSEADDR` and `SO_REUSEPORT`; returns it and its port.
    static func open(_ address: sockaddr_storage, display: String) throws(HTTPServerError) -> (fd: Int32, port: Int) {
        let fd = socket(
            Int32(address.ss_family),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address
        if bindSocket(fd, &address) != 0 {
            let error = errno
            close(fd)
            throw .bindFailed(error, address: display)
        }
        if listen(fd, backlog) != 0 {
            let error = errno
            close(fd)
            throw .bindFailed(error, address: display)
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(port(of: bound)))
    }

    private static func bindSocket(_ fd: Int32, _ address: inout sockaddr_storage) -> Int32 {
        let length =
            Int32(address.ss_family) == AF_INET6
            ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
    }

    static func port(of address: sockaddr_storage) -> UInt16 {
        var address = address
        return withUnsafeBytes(of: &address) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        }
    }

    /// Changes the port of a resolved address.
    static func setPort(_ port: Int, of address: inout sockaddr_storage) {
        withUnsafeMutableBytes(of: &address) { raw in
            raw.storeBytes(of: UInt16(port).bigEndian, toByteOffset: 2, as: UInt16.self)
        }
    }

    static func peer(_ address: sockaddr_storage) -> PeerAddress? {
        var address = address
        let port = ListenerSocket.port(of: address)
        let family = Int32(address.ss_family)
        return withUnsafeBytes(of: &address) { raw -> PeerAddress? in
            switch family {
            case AF_INET:
                // sin_addr follows family (2) and port (2).
                return PeerAddress(bytes: raw[4..<8], isIPv6: false, port: port)
            case AF_INET6:
                // sin6_addr follows family, port and flowinfo (4).
                return PeerAddress(bytes: raw[8..<24], isIPv6: true, port: port)
            default:
                return nil
            }
        }
    }
}

extension Moment {
    /// CLOCK_MONOTONIC read directly: `ContinuousClock.now` and the 128-bit `Duration` arithmetic that
    /// turns it into a `Moment` cost more than the read itself, and the loop reads the clock per request.
    static func monotonic() -> Moment {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Moment(nanoseconds: Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec))
    }
}

/// The `Date: …\r\n` field line, formatted once a second.
struct DateCache {
    private(set) var line: [UInt8] = []
    private var second = -1

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    mutating func refresh() {
        var now = time(nil)
        guard now != second else { return }
        second = now
        var parts = tm()
        gmtime_r(&now, &parts)
        line = Array(DateCache.format(parts).utf8)
    }

    /// IMF-fixdate (RFC 9110 §5.6.7): "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n".
    static func format(_ t: tm) -> String {
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return
            "Date: \(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT\r\n"
    }
}
