// Pure: no Logging, no Glibc.

/// A complete response. The server adds `Content-Length`, `Date` and `Connection` itself.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    /// Extra header fields. `Content-Length`, `Transfer-Encoding`, `Date` and `Connection` set here are
    /// ignored (the server owns framing), except `Connection: close`, which closes after this response.
    public var headers: HTTPHeaders
    /// The body as stored: possibly a slice of a larger array its owner keeps (no copy to answer).
    public var bodyBytes: ArraySlice<UInt8>

    public var body: [UInt8] {
        get { Array(bodyBytes) }
        set { bodyBytes = newValue[...] }
    }

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.init(status: status, headers: headers, bodyBytes: body[...])
    }

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), bodyBytes: ArraySlice<UInt8>) {
        self.status = status
        self.headers = headers
        self.bodyBytes = bodyBytes
    }

    /// A response with `Content-Type: application/json`, its body a slice of an array kept elsewhere.
    public static func json(_ status: HTTPStatus, _ body: ArraySlice<UInt8>) -> HTTPResponse {
        HTTPResponse(status: status, headers: jsonHeaders, bodyBytes: body)
    }

    /// A response with `Content-Type: application/json`.
    public static func json(_ status: HTTPStatus, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: jsonHeaders, body: body)
    }

    /// Built once and shared: a JSON answer allocates no header storage of its own.
    private static let jsonHeaders = HTTPHeaders([("Content-Type", "application/json")]).preencoded()

    /// A response with `Content-Type: application/json`.
    public static func json(_ status: HTTPStatus, _ body: String) -> HTTPResponse {
        json(status, Array(body.utf8))
    }

    /// `{"error":"<message>"}` with the given status; `message` is JSON-escaped.
    public static func jsonError(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        json(status, "{\"error\":\(jsonQuoted(message))}")
    }

    /// A response with `Content-Type: text/plain; charset=utf-8`.
    public static func text(_ status: HTTPStatus, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(body.utf8))
    }
}

/// `s` as a JSON string literal, quotes included.
public func jsonQuoted(_ s: String) -> String {
    var out = "\""
    out.reserveCapacity(s.utf8.count + 2)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
