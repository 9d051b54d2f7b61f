// Pure, incremental HTTP/1.1 request parser (RFC 9112): bytes in, requests or a refusal out.
// Compiled into the fuzzer as well: no Logging, no Glibc, no sockets, no clock.

/// The size limits a request must fit in; each has its own refusal status.
public struct RequestLimits: Sendable, Hashable {
    /// Longest request line, CRLF excluded; longer → 414. Default 8192: browsers and proxies cap URLs near 8 KiB.
    public var maxRequestLine: Int
    /// Largest header section (field lines and the final CRLF); larger → 431. Default 16384.
    public var maxHeaderBytes: Int
    /// Most header fields; more → 431. Default 64: real clients send about ten.
    public var maxHeaders: Int
    /// Largest body; larger → 413. Default 65536: the API takes small JSON documents only.
    public var maxBody: Int

    public init(maxRequestLine: Int = 8192, maxHeaderBytes: Int = 16384, maxHeaders: Int = 64, maxBody: Int = 65536) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.maxBody = maxBody
    }
}

/// Why a request was refused. The server answers with `status` and closes the connection.
public enum RequestParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 414: the request line is longer than `maxRequestLine`.
    case requestLineTooLong
    /// 431: the header section is larger than `maxHeaderBytes`.
    case headerSectionTooLarge
    /// 431: more than `maxHeaders` fields.
    case tooManyHeaderFields
    /// 413: `Content-Length` is over `maxBody`.
    case contentTooLarge
    /// 413: a body was sent to a route that takes none.
    case bodyNotAllowed
    /// 501: `Transfer-Encoding` (chunked bodies) is not supported.
    case transferEncodingNotImplemented
    /// 505: a well-formed version other than HTTP/1.0 or HTTP/1.1.
    case versionNotSupported
    /// 417: an `Expect` other than `100-continue`.
    case unsupportedExpectation
    /// 400: a line ended with LF alone (CRLF only).
    case bareLineFeed
    /// 400: not `method SP target SP version`.
    case malformedRequestLine
    /// 400: the method is not a token.
    case invalidMethod
    /// 400: the request-target has characters outside RFC 3986 or an unsupported form.
    case invalidTarget
    /// 400: the version is not `HTTP/DIGIT.DIGIT`.
    case invalidVersion
    /// 400: a field line without a colon or with a name that is not a token.
    case invalidFieldName
    /// 400: whitespace between a field name and its colon (a request-smuggling shape).
    case whitespaceBeforeColon
    /// 400: a field line starting with whitespace (obs-fold).
    case obsoleteLineFolding
    /// 400: a control character (other than HTAB) in a field value.
    case invalidFieldValue
    /// 400: an HTTP/1.1 request without `Host`.
    case missingHost
    /// 400: more than one `Host`.
    case repeatedHost
    /// 400: a `Host` value that is not an authority.
    case invalidHost
    /// 400: `Content-Length` together with `Transfer-Encoding` (a request-smuggling shape).
    case contentLengthWithTransferEncoding
    /// 400: several `Content-Length` values that differ.
    case conflictingContentLength
    /// 400: a `Content-Length` that is not a decimal number.
    case invalidContentLength
    /// 400: a bad `%XX` escape, or one that decodes to a control character or invalid UTF-8.
    case invalidPercentEncoding

    /// The status the server answers with.
    public var status: HTTPStatus {
        switch self {
        case .requestLineTooLong: .uriTooLong
        case .headerSectionTooLarge, .tooManyHeaderFields: .requestHeaderFieldsTooLarge
        case .contentTooLarge, .bodyNotAllowed: .contentTooLarge
        case .transferEncodingNotImplemented: .notImplemented
        case .versionNotSupported: .httpVersionNotSupported
        case .unsupportedExpectation: .expectationFailed
        default: .badRequest
        }
    }

    public var description: String {
        switch self {
        case .requestLineTooLong: "request line too long"
        case .headerSectionTooLarge: "header section too large"
        case .tooManyHeaderFields: "too many header fields"
        case .contentTooLarge: "body too large"
        case .bodyNotAllowed: "this route takes no body"
        case .transferEncodingNotImplemented: "transfer-encoding not supported"
        case .versionNotSupported: "http version not supported"
        case .unsupportedExpectation: "unsupported expectation"
        case .bareLineFeed: "lines must end with CRLF"
        case .malformedRequestLine: "malformed request line"
        case .invalidMethod: "invalid method"
        case .invalidTarget: "invalid request target"
        case .invalidVersion: "invalid http version"
        case .invalidFieldName: "invalid header field name"
        case .whitespaceBeforeColon: "whitespace before colon in header field"
        case .obsoleteLineFolding: "obsolete line folding"
        case .invalidFieldValue: "control character in header field value"
        case .missingHost: "missing host header"
        case .repeatedHost: "repeated host header"
        case .invalidHost: "invalid host header"
        case .contentLengthWithTransferEncoding: "content-length with transfer-encoding"
        case .conflictingContentLength: "conflicting content-length"
        case .invalidContentLength: "invalid content-length"
        case .invalidPercentEncoding: "invalid percent-encoding"
        }
    }
}

/// An incremental request parser: `append` bytes as they arrive, then call `next()` until it
/// answers `.needMore`. Feeding the same bytes in any chunking yields the same steps.
/// After an `.error` the parser stays failed (the connection must be closed).
public struct RequestParser: Sendable {
    public enum Step: Sendable {
        case request(HTTPRequest)
        case needMore
        case error(RequestParseError)
    }

    /// Asked once a head is complete and announces a body: may this method and path take one?
    public typealias BodyPolicy = @Sendable (HTTPMethod, [String]) -> Bool

    public let limits: RequestLimits
    private let acceptsBody: BodyPolicy

    private var buffer: [UInt8] = []
    /// First unconsumed byte.
    private var start = 0
    /// Where the search for the next LF resumes (everything before it was searched).
    private var scan = 0
    private var stage = Stage.requestLine
    /// Empty lines skipped before the request line; they count towards `maxRequestLine`.
    private var leadingBytes = 0
    private var headerBytes = 0
    private var pending: HTTPRequest?
    /// The framing fields of the head being read, noted as its lines arrive (on bytes, not strings).
    private var framing = Framing()
    private var expectsContinue = false
    private var failure: RequestParseError?
    /// Emptied storage of answered requests (`recycle(_:)`) that the next request reuses, so a
    /// keep-alive connection parses without allocating.
    private var spareSegments: [String] = []
    private var spareHeaders = HTTPHeaders()

    private struct Framing {
        var hosts = 0
        var contentLength: Int?
        var transferEncoding = false
        var expectation = false
        /// Tokens of the `Connection` lines.
        var close = false
        var keepAlive = false
    }

    private enum Stage {
        case requestLine, headerFields
        case body(Int)
    }

    /// - Parameters:
    ///   - limits: size limits (defaults: 8 KiB line, 16 KiB header section, 64 fields, 64 KiB body).
    ///   - acceptsBody: whether a method and path may carry a body; by default POST, PUT and PATCH.
    public init(limits: RequestLimits = RequestLimits(), acceptsBody: BodyPolicy? = nil) {
        self.limits = limits
        self.acceptsBody =
            acceptsBody ?? { method, _ in
                method == .post || method == .put || method == .patch
            }
    }

    /// Adds received bytes (ignored once the parser has failed).
    public mutating func append<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        guard failure == nil else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
            scan = 0
        } else if start >= 4096 {
            buffer.removeSubrange(0..<start)
            scan -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received but not yet consumed by a returned request.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True once any byte of the next request has arrived (leading empty lines included).
    public var hasPartialRequest: Bool {
        if case .requestLine = stage { return leadingBytes > 0 || start < buffer.count }
        return true
    }

    /// Takes back an answered request's storage for the next request to reuse (nothing is shared:
    /// storage still referenced elsewhere is copied on reuse, as arrays are).
    public mutating func recycle(_ request: consuming HTTPRequest) {
        var request = request
        swap(&spareSegments, &request.pathSegments)
        swap(&spareHeaders, &request.headers)
        spareSegments.removeAll(keepingCapacity: true)
        spareHeaders.removeAllKeepingCapacity()
    }

    /// True once, right after a head with `Expect: 100-continue` whose body is still to come.
    public mutating func takeContinueRequest() -> Bool {
        defer { expectsContinue = false }
        return expectsContinue
    }

    /// The next complete request, `.needMore`, or the reason the input is refused.
    public mutating func next() -> Step {
        if let failure { return .error(failure) }
        do throws(RequestParseError) {
            while true {
                switch stage {
                case .requestLine:
                    guard let lf = findLineFeed() else {
                        // +1: the CR of a line of exactly maxRequestLine bytes may already be here.
                        if leadingBytes + buffer.count - start > limits.maxRequestLine + 1 { throw .requestLineTooLong }
                        return .needMore
                    }
                    let length = lf - start
                    if leadingBytes + length > limits.maxRequestLine + 1 { throw .requestLineTooLong }
                    guard length > 0, buffer[lf - 1] == 0x0D else { throw .bareLineFeed }
                    if length == 1 {
                        // RFC 9112 §2.2: ignore empty lines before the request line.
                        leadingBytes += 2
                        consume(through: lf)
                        continue
                    }
                    pending = try buffer.withUnsafeBufferPointer { all throws(RequestParseError) in
                        try Self.parseRequestLine(
                            UnsafeBufferPointer(rebasing: all[start..<(lf - 1)]), spareSegments: &spareSegments,
                            spareHeaders: &spareHeaders)
                    }
                    consume(through: lf)
                    headerBytes = 0
                    framing = Framing()
                    stage = .headerFields
                case .headerFields:
                    guard let lf = findLineFeed() else {
                        if headerBytes + buffer.count - start > limits.maxHeaderBytes { throw .headerSectionTooLarge }
                        return .needMore
                    }
                    let length = lf - start
                    headerBytes += length + 1
                    if headerBytes > limits.maxHeaderBytes { throw .headerSectionTooLarge }
                    guard length > 0, buffer[lf - 1] == 0x0D else { throw .bareLineFeed }
                    if length == 1 {
                        consume(through: lf)
                        if let request = try finishHead() { return .request(request) }
                        continue
                    }
                    if buffer[start] == 0x20 || buffer[start] == 0x09 { throw .obsoleteLineFolding }
                    if pending!.headers.count >= limits.maxHeaders { throw .tooManyHeaderFields }
                    let field = try buffer.withUnsafeBufferPointer { all throws(RequestParseError) in
                        try Self.parseFieldLine(UnsafeBufferPointer(rebasing: all[start..<(lf - 1)]), framing: &framing)
                    }
                    pending!.headers.add(name: field.name, value: field.value)
                    consume(through: lf)
                case .body(let length):
                    guard buffer.count - start >= length else { return .needMore }
                    pending!.body = Array(buffer[start..<(start + length)])
                    consume(through: start + length - 1)
                    return .request(emit())
                }
            }
        } catch {
            failure = error
            buffer = []
            start = 0
            scan = 0
            pending = nil
            return .error(error)
        }
    }

    private mutating func findLineFeed() -> Int? {
        let from = max(scan, start)
        let found = buffer.withUnsafeBufferPointer { all -> Int? in
            var i = from
            while i < all.count {
                if all[i] == 0x0A { return i }
                i += 1
            }
            return nil
        }
        scan = found ?? buffer.count
        return found
    }

    private mutating func consume(through index: Int) {
        start = index + 1
        scan = start
    }

    private mutating func emit() -> HTTPRequest {
        let request = moveOut(&pending)
        stage = .requestLine
        leadingBytes = 0
        expectsContinue = false
        return request
    }

    /// Static, like the other line parsers: a method would capture (and copy) the whole parser in the
    /// closure that lends it the buffer. The spare storage is moved into the request (inout, not
    /// consuming: a value consumed inside that closure would be a copy, and the first append would
    /// reallocate it).
    private static func parseRequestLine(
        _ line: UnsafeBufferPointer<UInt8>, spareSegments: inout [String], spareHeaders: inout HTTPHeaders
    ) throws(RequestParseError) -> HTTPRequest {
        guard let methodEnd = line.firstIndex(of: 0x20) else { throw .malformedRequestLine }
        guard methodEnd > 0 else { throw .malformedRequestLine }
        for byte in line[0..<methodEnd] where !isTokenChar(byte) { throw .invalidMethod }
        let targetStart = methodEnd + 1
        guard let targetEnd = line[targetStart...].firstIndex(of: 0x20), targetEnd > targetStart else {
            throw .malformedRequestLine
        }
        let version = try parseVersion(UnsafeBufferPointer(rebasing: line[(targetEnd + 1)...]))
        let targetBytes = UnsafeBufferPointer(rebasing: line[targetStart..<targetEnd])
        for byte in targetBytes where byte <= 0x20 || byte >= 0x7F { throw .invalidTarget }
        let target = try RequestTarget.parse(targetBytes, storage: &spareSegments)
        var headers = HTTPHeaders()
        swap(&headers, &spareHeaders)
        headers.reserveCapacity(8)
        return HTTPRequest(
            method: HTTPMethod(bytes: UnsafeBufferPointer(rebasing: line[0..<methodEnd])),
            target: String(decoding: targetBytes, as: UTF8.self),
            pathSegments: target.pathSegments,
            query: target.query,
            headers: headers,
            version: version
        )
    }

    private static func parseVersion(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestParseError) -> HTTPVersion {
        guard bytes.count == 8, bytes[0] == 0x48, bytes[1] == 0x54, bytes[2] == 0x54, bytes[3] == 0x50,
            bytes[4] == 0x2F, bytes[6] == 0x2E, isDigit(bytes[5]), isDigit(bytes[7])
        else { throw .invalidVersion }
        let version = HTTPVersion(major: Int(bytes[5] - 0x30), minor: Int(bytes[7] - 0x30))
        guard version == .http1_1 || version == .http1_0 else { throw .versionNotSupported }
        return version
    }

    private static func parseFieldLine(_ line: UnsafeBufferPointer<UInt8>, framing: inout Framing)
        throws(RequestParseError) -> (name: String, value: String)
    {
        guard let colon = line.firstIndex(of: 0x3A), colon > 0 else { throw .invalidFieldName }
        let last = line[colon - 1]
        if last == 0x20 || last == 0x09 { throw .whitespaceBeforeColon }
        for byte in line[0..<colon] where !isTokenChar(byte) { throw .invalidFieldName }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        for byte in line[valueStart..<valueEnd] where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            throw .invalidFieldValue
        }
        try Self.noteFraming(
            name: UnsafeBufferPointer(rebasing: line[0..<colon]),
            value: UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd]), into: &framing)
        return (
            String(decoding: UnsafeBufferPointer(rebasing: line[0..<colon]), as: UTF8.self),
            String(decoding: UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd]), as: UTF8.self)
        )
    }

    /// Notes a field that frames the message (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`,
    /// `Expect`), on its bytes.
    private static func noteFraming(
        name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, into framing: inout Framing
    ) throws(RequestParseError) {
        switch name.count {
        case 4 where asciiCaseInsensitiveEquals(name, lowercase: "host"):
            framing.hosts += 1
            if framing.hosts > 1 { throw .repeatedHost }
            for byte in value where !isHostChar(byte) { throw .invalidHost }
        case 14 where asciiCaseInsensitiveEquals(name, lowercase: "content-length"):
            for part in value.split(separator: 0x2C, omittingEmptySubsequences: false) {
                let value = try parseContentLength(trimmingOWS(part))
                if let known = framing.contentLength, known != value { throw .conflictingContentLength }
                framing.contentLength = value
            }
        case 17 where asciiCaseInsensitiveEquals(name, lowercase: "transfer-encoding"):
            framing.transferEncoding = true
        case 10 where asciiCaseInsensitiveEquals(name, lowercase: "connection"):
            for part in value.split(separator: UInt8(ascii: ",")) {
                let token = UnsafeBufferPointer(rebasing: trimmingOWS(part))
                if asciiCaseInsensitiveEquals(token, lowercase: "close") { framing.close = true }
                if asciiCaseInsensitiveEquals(token, lowercase: "keep-alive") { framing.keepAlive = true }
            }
        case 6 where asciiCaseInsensitiveEquals(name, lowercase: "expect"):
            guard asciiCaseInsensitiveEquals(value, lowercase: "100-continue") else { throw .unsupportedExpectation }
            framing.expectation = true
        default:
            break
        }
    }

    /// Checks the framing fields of a complete head; returns the request when it has no body.
    private mutating func finishHead() throws(RequestParseError) -> HTTPRequest? {
        if framing.transferEncoding {
            throw framing.contentLength != nil ? .contentLengthWithTransferEncoding : .transferEncodingNotImplemented
        }
        if framing.hosts == 0 && pending!.version == .http1_1 { throw .missingHost }
        pending!.parsedKeepAlive = HTTPRequest.keepsAlive(
            version: pending!.version, close: framing.close, keepAlive: framing.keepAlive)
        let length = framing.contentLength ?? 0
        guard length > 0 else { return emit() }
        if length > limits.maxBody { throw .contentTooLarge }
        if !acceptsBody(pending!.method, pending!.pathSegments) { throw .bodyNotAllowed }
        expectsContinue = framing.expectation
        stage = .body(length)
        return nil
    }

    private static func parseContentLength(_ digits: Slice<UnsafeBufferPointer<UInt8>>) throws(RequestParseError)
        -> Int
    {
        guard !digits.isEmpty else { throw .invalidContentLength }
        var value = 0
        for byte in digits {
            guard isDigit(byte) else { throw .invalidContentLength }
            // Saturate instead of overflowing: anything this large is refused as too large anyway.
            value = value > Int.max / 20 ? Int.max / 2 : value * 10 + Int(byte - 0x30)
        }
        return value
    }
}

@inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

/// tchar (RFC 9110 §5.6.2).
@inline(__always) func isTokenChar(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
        UInt8(ascii: "'"),
        UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"),
        UInt8(ascii: "_"),
        UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        true
    default:
        false
    }
}
