import HTTP1

/// Who may use the write routes (POST, DELETE; docs/behaviour.md §4.4): with a token configured, requests carrying
/// `Authorization: Bearer <token>` (compared in constant time), else 401 with `WWW-Authenticate: Bearer`;
/// without a token, loopback peers only, else 403.
public struct WriteAccess: Sendable {
    private let token: [UInt8]?

    /// - Parameter token: `[http] token` (or the content of `tokenFile`); "" (the default) means loopback only.
    public init(token: String = "") {
        self.token = token.isEmpty ? nil : Array(token.utf8)
    }

    /// nil when `request` may write, else the refusal to send.
    public func refusal(for request: HTTPRequest) -> HTTPResponse? {
        guard let token else {
            if request.peer?.isLoopback == true { return nil }
            return .jsonError(.forbidden, "write routes are open to loopback clients only when no token is configured")
        }
        guard let header = request.headers["Authorization"] else {
            return unauthorized(#"Bearer realm="devstatusd""#, "missing bearer token")
        }
        // RFC 7235 §2.1: the scheme is case-insensitive; one or more spaces before the credentials.
        let bytes = Array(header.utf8)
        let scheme = "bearer "
        guard String(decoding: bytes.prefix(scheme.utf8.count), as: UTF8.self).lowercased() == scheme else {
            return unauthorized(#"Bearer realm="devstatusd""#, "missing bearer token")
        }
        let given = bytes.dropFirst(scheme.utf8.count).drop { $0 == 0x20 }
        guard Self.constantTimeEqual(Array(given), token) else {
            return unauthorized(#"Bearer realm="devstatusd", error="invalid_token""#, "invalid bearer token")
        }
        return nil
    }

    /// Compares in time that depends only on `expected`'s length, so the answer time says nothing of how much of a
    /// guess was right.
    static func constantTimeEqual(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference: UInt8 = given.count == expected.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    private func unauthorized(_ challenge: String, _ message: String) -> HTTPResponse {
        var response = HTTPResponse.jsonError(.unauthorized, message)
        response.headers["WWW-Authenticate"] = challenge
        return response
    }
}
