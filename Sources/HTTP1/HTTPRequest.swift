// Pure: compiled into the fuzzer as well (no Logging, no Glibc).

/// Takes the value out of `slot`, leaving nil: a move, where `let x = slot!; slot = nil` copies the
/// value (retaining each of its references) and then destroys the original (releasing them again).
@inline(__always) func moveOut<Value>(_ slot: inout Value?) -> Value {
    var taken: Value? = nil
    swap(&taken, &slot)
    return taken!
}

/// Takes an array out of `slot`, leaving it empty (without storage).
@inline(__always) func moveOut<Element>(_ slot: inout [Element]) -> [Element] {
    var taken: [Element] = []
    swap(&taken, &slot)
    return taken
}

/// A parsed request: head, decoded path, query and body.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The request-target exactly as received, e.g. `/devices/t%201/x?limit=5`.
    public var target: String
    /// Percent-decoded path segments: "/a/b" → ["a", "b"], "/" → [], "/a/" → ["a", ""].
    public var pathSegments: [String]
    /// Decoded query items in order (`+` is a space); "?a&b=1" → [("a", ""), ("b", "1")].
    public var query: [(name: String, value: String)]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var version: HTTPVersion
    /// The client's address; nil when not known (in-memory tests).
    public var peer: PeerAddress?
    /// `wantsKeepAlive` as the parser found it from the `Connection` lines it read (nil when the
    /// request was built by hand); the connection uses it instead of searching the fields again.
    var parsedKeepAlive: Bool?

    public init(
        method: HTTPMethod, target: String, pathSegments: [String], query: [(name: String, value: String)] = [],
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], version: HTTPVersion = .http1_1,
        peer: PeerAddress? = nil
    ) {
        self.method = method
        self.target = target
        self.pathSegments = pathSegments
        self.query = query
        self.headers = headers
        self.body = body
        self.version = version
        self.peer = peer
    }

    /// The first value of query item `name`, or nil.
    public func queryValue(_ name: String) -> String? {
        for item in query where item.name == name { return item.value }
        return nil
    }

    /// Whether the client wants the connection kept open after this request: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    public var wantsKeepAlive: Bool {
        Self.keepsAlive(
            version: version, close: headers.containsToken("close", in: "Connection"),
            keepAlive: headers.containsToken("keep-alive", in: "Connection"))
    }

    /// The rule behind `wantsKeepAlive`, from the `Connection` tokens found (the parser notes them on bytes).
    static func keepsAlive(version: HTTPVersion, close: Bool, keepAlive: Bool) -> Bool {
        version.minor >= 1 ? !close : keepAlive && !close
    }
}
