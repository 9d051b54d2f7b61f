// Pure value types shared by the parser, the router and the server.
// This file is compiled into the fuzzer as well: it must not import Logging or Glibc.

/// A request method. Methods are case-sensitive tokens (RFC 9110 §9.1): `get` is `.other("get")`.
public enum HTTPMethod: Sendable, Hashable, CustomStringConvertible {
    case get, head, post, put, delete, options, patch
    case other(String)

    /// The method for a token as it appears on the wire.
    public init(_ name: String) {
        switch name {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "DELETE": self = .delete
        case "OPTIONS": self = .options
        case "PATCH": self = .patch
        default: self = .other(name)
        }
    }

    init(bytes: UnsafeBufferPointer<UInt8>) {
        switch bytes.count {
        case 3 where bytes[0] == 0x47 && bytes[1] == 0x45 && bytes[2] == 0x54: self = .get
        case 3 where bytes[0] == 0x50 && bytes[1] == 0x55 && bytes[2] == 0x54: self = .put
        case 4 where bytes[0] == 0x50 && bytes[1] == 0x4F && bytes[2] == 0x53 && bytes[3] == 0x54: self = .post
        case 4 where bytes[0] == 0x48 && bytes[1] == 0x45 && bytes[2] == 0x41 && bytes[3] == 0x44: self = .head
        default: self.init(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// The token as sent on the wire, e.g. `"GET"`.
    public var name: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .patch: "PATCH"
        case .other(let name): name
        }
    }

    public var description: String { name }
}

/// An HTTP version. The parser accepts 1.0 and 1.1 only (others: 505).
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }
}

/// A response status: a three-digit code and its reason phrase.
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var reasonPhrase: String

    /// A status with the standard reason phrase for `code` (or "Unknown").
    public init(code: Int) {
        self.code = code
        self.reasonPhrase = HTTPStatus.standardReason(code)
    }

    public init(code: Int, reasonPhrase: String) {
        self.code = code
        self.reasonPhrase = reasonPhrase
    }

    public var description: String { "\(code) \(reasonPhrase)" }

    public static let `continue` = HTTPStatus(code: 100)
    public static let ok = HTTPStatus(code: 200)
    public static let created = HTTPStatus(code: 201)
    public static let accepted = HTTPStatus(code: 202)
    public static let noContent = HTTPStatus(code: 204)
    public static let notModified = HTTPStatus(code: 304)
    public static let badRequest = HTTPStatus(code: 400)
    public static let unauthorized = HTTPStatus(code: 401)
    public static let forbidden = HTTPStatus(code: 403)
    public static let notFound = HTTPStatus(code: 404)
    public static let methodNotAllowed = HTTPStatus(code: 405)
    public static let requestTimeout = HTTPStatus(code: 408)
    public static let conflict = HTTPStatus(code: 409)
    public static let gone = HTTPStatus(code: 410)
    public static let contentTooLarge = HTTPStatus(code: 413)
    public static let uriTooLong = HTTPStatus(code: 414)
    public static let unsupportedMediaType = HTTPStatus(code: 415)
    public static let expectationFailed = HTTPStatus(code: 417)
    public static let unprocessableContent = HTTPStatus(code: 422)
    public static let tooManyRequests = HTTPStatus(code: 429)
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431)
    public static let internalServerError = HTTPStatus(code: 500)
    public static let notImplemented = HTTPStatus(code: 501)
    public static let serviceUnavailable = HTTPStatus(code: 503)
    public static let httpVersionNotSupported = HTTPStatus(code: 505)

    static func standardReason(_ code: Int) -> String {
        switch code {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Unknown"
        }
    }
}

/// Header fields in arrival order with ASCII case-insensitive name lookup.
///
/// `headers["accept"]` returns the first value; `values(for:)` returns all of them.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public typealias Element = (name: String, value: String)

    /// Changed only through `add`, `remove` and the subscript, which drop `wire`.
    @usableFromInline private(set) var fields: [Element]
    /// The fields as response lines (`Name: value\r\n`…), when encoded ahead by `preencoded()`;
    /// any change drops it.
    private(set) var wire: [UInt8]?
    /// With `wire`: whether these fields ask to close.
    private var wireAsksClose = false

    public init() { fields = [] }

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { (name: $0.0, value: $0.1) }
    }

    public var count: Int { fields.count }

    /// These fields with their response lines built once, for headers shared by many responses.
    func preencoded() -> HTTPHeaders {
        var copy = self
        var bytes: [UInt8] = []
        ResponseEncoder.appendFields(self, into: &bytes)
        copy.wire = bytes
        copy.wireAsksClose = containsToken("close", in: "Connection")
        return copy
    }

    /// `Connection: close` among the fields (a response asking the server to close after it).
    var asksToClose: Bool {
        if wire != nil { return wireAsksClose }
        return fields.isEmpty ? false : containsToken("close", in: "Connection")
    }

    mutating func reserveCapacity(_ count: Int) { fields.reserveCapacity(count) }

    mutating func removeAllKeepingCapacity() {
        fields.removeAll(keepingCapacity: true)
        wire = nil
    }
    public var isEmpty: Bool { fields.isEmpty }

    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    /// The first value of the field `name` (case-insensitive), or nil. Setting replaces every
    /// field of that name with one (or removes them all when nil).
    public subscript(name: String) -> String? {
        get {
            for field in fields where asciiCaseInsensitiveEquals(field.name, name) { return field.value }
            return nil
        }
        set {
            remove(name: name)
            if let newValue { fields.append((name: name, value: newValue)) }
            wire = nil
        }
    }

    /// Every value of the field `name` (case-insensitive), in arrival order.
    public func values(for name: String) -> [String] {
        fields.compactMap { asciiCaseInsensitiveEquals($0.name, name) ? $0.value : nil }
    }

    public func contains(_ name: String) -> Bool {
        fields.contains { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// Appends a field, keeping any earlier one of the same name.
    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
        wire = nil
    }

    public mutating func remove(name: String) {
        fields.removeAll { asciiCaseInsensitiveEquals($0.name, name) }
        wire = nil
    }

    /// True when the comma-separated list in field `name` holds `token` (case-insensitive).
    public func containsToken(_ token: String, in name: String) -> Bool {
        for field in fields where asciiCaseInsensitiveEquals(field.name, name) {
            for part in field.value.utf8.split(separator: UInt8(ascii: ",")) {
                if asciiCaseInsensitiveEquals(trimmingOWS(part), token.utf8) { return true }
            }
        }
        return false
    }

    public var description: String {
        fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }
}

/// ASCII case-insensitive comparison, without allocating.
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    var a = a
    var b = b
    return a.withUTF8 { x in
        b.withUTF8 { y in
            for i in 0..<x.count where x[i] != y[i] && asciiLowercased(x[i]) != asciiLowercased(y[i]) { return false }
            return true
        }
    }
}

func asciiCaseInsensitiveEquals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) where x != y {
        if asciiLowercased(x) != asciiLowercased(y) { return false }
    }
    return true
}

/// Whether `a` is the lowercase ASCII `lowercase`, ignoring the case of `a`.
@inline(__always) func asciiCaseInsensitiveEquals(_ a: UnsafeBufferPointer<UInt8>, lowercase: StaticString) -> Bool {
    guard a.count == lowercase.utf8CodeUnitCount else { return false }
    let b = lowercase.utf8Start
    for i in 0..<a.count where asciiLowercased(a[i]) != b[i] { return false }
    return true
}

@inline(__always) func asciiLowercased(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
}

func trimmingOWS<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> Bytes.SubSequence {
    var slice = bytes[...]
    while let first = slice.first, first == 0x20 || first == 0x09 { slice.removeFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice.removeLast() }
    return slice
}

/// The address of the client at the other end of a connection. Stored inline (no array), so copying
/// a request that carries it costs no reference counting.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address bytes in network order; an IPv4 address uses the first 4.
    private var high: UInt64 = 0
    private var low: UInt64 = 0
    private var isIPv6: Bool
    public var port: UInt16

    public init(ipv4 address: [UInt8], port: UInt16) {
        precondition(address.count == 4)
        self.init(bytes: address, isIPv6: false, port: port)
    }

    public init(ipv6 address: [UInt8], port: UInt16) {
        precondition(address.count == 16)
        self.init(bytes: address, isIPv6: true, port: port)
    }

    /// `bytes`: 4 (IPv4) or 16 (IPv6) address bytes in network order.
    init<Bytes: Collection<UInt8>>(bytes: Bytes, isIPv6: Bool, port: UInt16) {
        self.isIPv6 = isIPv6
        self.port = port
        withUnsafeMutableBytes(of: &high) { high in
            withUnsafeMutableBytes(of: &low) { low in
                for (i, byte) in bytes.enumerated() {
                    if i < 8 { high[i] = byte } else { low[i - 8] = byte }
                }
            }
        }
    }

    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public var address: [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        withUnsafeBytes(of: high) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: low) { bytes.append(contentsOf: $0) }
        return Array(bytes.prefix(isIPv6 ? 16 : 4))
    }

    /// True for 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8 (::ffff:127.x.y.z).
    public var isLoopback: Bool {
        let address = self.address
        if address.count == 4 { return address[0] == 127 }
        if address.count == 16 {
            if address[0..<15].allSatisfy({ $0 == 0 }) && address[15] == 1 { return true }
            let mapped = address[0..<10].allSatisfy { $0 == 0 } && address[10] == 0xFF && address[11] == 0xFF
            return mapped && address[12] == 127
        }
        return false
    }

    /// The address without the port: "127.0.0.1" or "::1"-style (uncompressed groups).
    public var host: String {
        let address = self.address
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(address[i]) << 8 | UInt16(address[i + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }

    public var description: String {
        isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
