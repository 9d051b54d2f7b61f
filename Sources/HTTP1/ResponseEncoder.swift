// Pure: turns responses into wire bytes. No Logging, no Glibc.

enum ResponseEncoder {
    // Constant text as StaticString: appending one copies bytes, with no array to retain and release.
    private static let version: StaticString = "HTTP/1.1 "
    private static let ok: StaticString = "HTTP/1.1 200 OK\r\n"
    private static let contentLength: StaticString = "Content-Length: "
    private static let connectionClose: StaticString = "Connection: close\r\n"
    private static let connectionKeepAlive: StaticString = "Connection: keep-alive\r\n"
    private static let crlf: StaticString = "\r\n"
    private static let colonSpace: StaticString = ": "

    /// How the connection goes on after this response.
    enum Persistence {
        /// HTTP/1.1 keep-alive: no `Connection` field needed.
        case keepAlive
        /// HTTP/1.0 keep-alive: says `Connection: keep-alive`.
        case keepAliveHTTP10
        /// Says `Connection: close`.
        case close
    }

    /// Appends status line, fields and (unless `omitBody`, for HEAD) the body.
    /// `date` is a whole preformatted `Date: …\r\n` line.
    static func encode(
        _ response: HTTPResponse, omitBody: Bool, persistence: Persistence, date: [UInt8], into out: inout [UInt8]
    ) {
        let code = response.status.code
        let bodyAllowed = !(code < 200 || code == 204 || code == 304)
        out.reserveCapacity(out.count + 160 + (omitBody ? 0 : response.bodyBytes.count))
        appendStatusLine(response.status, into: &out)
        if bodyAllowed {
            out.append(contentLength)
            appendDecimal(response.bodyBytes.count, into: &out)
            out.append(crlf)
        }
        appendCommonFields(response.headers, persistence: persistence, date: date, into: &out)
        out.append(crlf)
        if bodyAllowed && !omitBody { out.append(contentsOf: response.bodyBytes) }
    }

    /// A head without `Content-Length` for a body delimited by closing the connection (event streams).
    static func encodeStreamHead(_ response: HTTPResponse, date: [UInt8], into out: inout [UInt8]) {
        appendStatusLine(response.status, into: &out)
        appendCommonFields(response.headers, persistence: .close, date: date, into: &out)
        out.append(crlf)
        out.append(contentsOf: response.bodyBytes)
    }

    static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static func appendStatusLine(_ status: HTTPStatus, into out: inout [UInt8]) {
        if status.code == 200 && status.reasonPhrase == "OK" {
            out.append(ok)
            return
        }
        out.append(version)
        appendDecimal(min(max(status.code, 100), 999), into: &out)
        out.append(0x20)
        appendSanitized(status.reasonPhrase, into: &out)
        out.append(crlf)
    }

    private static func appendCommonFields(
        _ headers: HTTPHeaders, persistence: Persistence, date: [UInt8], into out: inout [UInt8]
    ) {
        out.append(contentsOf: date)
        if let wire = headers.wire {
            out.append(contentsOf: wire)
        } else {
            appendFields(headers, into: &out)
        }
        switch persistence {
        case .keepAlive: break
        case .keepAliveHTTP10: out.append(connectionKeepAlive)
        case .close: out.append(connectionClose)
        }
    }

    /// Appends a line per field, leaving out those the server owns (framing, `Date`) and names that
    /// are not tokens; values have CR, LF and NUL replaced.
    static func appendFields(_ headers: HTTPHeaders, into out: inout [UInt8]) {
        for field in headers where !isFramingField(field.name) {
            // A name that is not a token could split the response: drop the field.
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenChar) else { continue }
            appendBytes(of: field.name, into: &out)
            out.append(colonSpace)
            appendSanitized(field.value, into: &out)
            out.append(crlf)
        }
    }

    private static func isFramingField(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: asciiCaseInsensitiveEquals(name, "date")
        case 10: asciiCaseInsensitiveEquals(name, "connection")
        case 14: asciiCaseInsensitiveEquals(name, "content-length")
        case 17: asciiCaseInsensitiveEquals(name, "transfer-encoding")
        default: false
        }
    }

    /// Appends `text`, replacing CR, LF and NUL (response splitting) with spaces.
    private static func appendSanitized(_ text: String, into out: inout [UInt8]) {
        let start = out.count
        appendBytes(of: text, into: &out)
        out.withUnsafeMutableBufferPointer { bytes in
            for i in start..<bytes.count where bytes[i] == 0x0D || bytes[i] == 0x0A || bytes[i] == 0 {
                bytes[i] = 0x20
            }
        }
    }

    /// Appends the UTF-8 of `text` in one copy.
    @inline(__always) private static func appendBytes(of text: String, into out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    static func appendDecimal(_ value: Int, into out: inout [UInt8]) {
        if value < 10 {
            out.append(0x30 + UInt8(value))
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[count] = 0x30 + UInt8(rest % 10)
                rest /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }
}

extension [UInt8] {
    @inline(__always) fileprivate mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }
}
