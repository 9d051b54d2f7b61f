// Pure: request-target validation and percent-decoding (RFC 9112 §3.2, RFC 3986).
// Compiled into the fuzzer as well: no Logging, no Glibc.

/// A request-target split into decoded path segments and query items.
struct RequestTarget {
    var pathSegments: [String]
    var query: [(name: String, value: String)]

    /// Parses an origin-form (`/a/b?q`), absolute-form (`http://h/a?q`) or asterisk-form (`*`) target.
    /// - Parameter storage: an empty array whose capacity the segments reuse; it is moved into the result.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, storage: inout [String])
        throws(RequestParseError) -> RequestTarget
    {
        guard let first = bytes.first else { throw .invalidTarget }
        if first == UInt8(ascii: "*") {
            guard bytes.count == 1 else { throw .invalidTarget }
            return RequestTarget(pathSegments: moveOut(&storage), query: [])
        }
        var pathStart = 0
        if first != UInt8(ascii: "/") {
            pathStart = try absoluteFormPathStart(bytes)
        }
        var queryStart = bytes.count
        for i in pathStart..<bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "?") {
                queryStart = i
                break
            }
            guard isPathChar(byte) else { throw .invalidTarget }
        }
        if queryStart < bytes.count {
            for i in (queryStart + 1)..<bytes.count where !isPathChar(bytes[i]) && bytes[i] != UInt8(ascii: "?") {
                throw .invalidTarget
            }
        }
        try decodePath(UnsafeBufferPointer(rebasing: bytes[pathStart..<queryStart]), into: &storage)
        let segments = moveOut(&storage)
        let query =
            queryStart < bytes.count
            ? try decodeQuery(UnsafeBufferPointer(rebasing: bytes[(queryStart + 1)...])) : []
        return RequestTarget(pathSegments: segments, query: query)
    }

    /// Index of the path in `http://authority/path`; a missing path means "/".
    private static func absoluteFormPathStart(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestParseError) -> Int {
        var schemeEnd = 0
        while schemeEnd < bytes.count, bytes[schemeEnd] != UInt8(ascii: ":") { schemeEnd += 1 }
        let scheme = UnsafeBufferPointer(rebasing: bytes[0..<schemeEnd])
        guard asciiCaseInsensitiveEquals(scheme, "http".utf8) || asciiCaseInsensitiveEquals(scheme, "https".utf8),
            bytes.count >= schemeEnd + 3, bytes[schemeEnd + 1] == UInt8(ascii: "/"),
            bytes[schemeEnd + 2] == UInt8(ascii: "/")
        else { throw .invalidTarget }
        var i = schemeEnd + 3
        let authorityStart = i
        while i < bytes.count, bytes[i] != UInt8(ascii: "/"), bytes[i] != UInt8(ascii: "?") {
            guard isHostChar(bytes[i]) else { throw .invalidTarget }
            i += 1
        }
        guard i > authorityStart else { throw .invalidTarget }
        return i
    }

    /// "/a/b%20c" → ["a", "b c"]; "/" → []; "/a%2Fb/c" → ["a/b", "c"]: split at "/" first, then each segment is
    /// decoded, so an encoded "/" belongs to its segment.
    static func decodePath(_ path: UnsafeBufferPointer<UInt8>, into segments: inout [String])
        throws(RequestParseError)
    {
        // An absolute-form target without a path ("http://h?x") means "/".
        if path.count <= 1 { return }
        var slashes = 0
        for byte in path where byte == UInt8(ascii: "/") { slashes += 1 }
        segments.reserveCapacity(slashes)
        var segmentStart = 1
        for i in 1...path.count where i == path.count || path[i] == UInt8(ascii: "/") {
            segments.append(try decodeSegment(UnsafeBufferPointer(rebasing: path[segmentStart..<i])))
            segmentStart = i + 1
        }
    }

    private static func decodeSegment(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestParseError) -> String {
        guard bytes.contains(UInt8(ascii: "%")) else { return String(decoding: bytes, as: UTF8.self) }
        let decoded = try percentDecode(bytes, plusIsSpace: false)
        // An encoded "/" stays inside its segment (the path was split first): ids such as "room/lamp" are
        // addressed as "room%2Flamp". Control characters are never part of a name.
        for byte in decoded where byte < 0x20 || byte == 0x7F { throw .invalidPercentEncoding }
        guard let string = String(validating: decoded, as: UTF8.self) else { throw .invalidPercentEncoding }
        return string
    }

    static func decodeQuery(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestParseError) -> [(
        name: String, value: String
    )] {
        var items: [(name: String, value: String)] = []
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: "&") {
            defer { start = i + 1 }
            if i == start { continue }
            let item = UnsafeBufferPointer(rebasing: bytes[start..<i])
            let equals = item.firstIndex(of: UInt8(ascii: "=")) ?? item.count
            let name = try decodeQueryComponent(UnsafeBufferPointer(rebasing: item[0..<equals]))
            let value =
                equals < item.count
                ? try decodeQueryComponent(UnsafeBufferPointer(rebasing: item[(equals + 1)...])) : ""
            items.append((name: name, value: value))
        }
        return items
    }

    private static func decodeQueryComponent(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestParseError) -> String {
        if !bytes.contains(UInt8(ascii: "%")) && !bytes.contains(UInt8(ascii: "+")) {
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let string = String(validating: try percentDecode(bytes, plusIsSpace: true), as: UTF8.self) else {
            throw .invalidPercentEncoding
        }
        return string
    }

    static func percentDecode(_ bytes: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool) throws(RequestParseError)
        -> [UInt8]
    {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) else {
                    throw .invalidPercentEncoding
                }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                i += 1
            }
        }
        return out
    }
}

@inline(__always) func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// pchar or "/" (RFC 3986): unreserved, sub-delims, ":", "@", "%" and "/".
@inline(__always) func isPathChar(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
        true
    case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
        UInt8(ascii: ")"),
        UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
        true
    case UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "/"):
        true
    default:
        false
    }
}

/// Characters of an authority or Host value: reg-name, IP-literal brackets, port, userinfo.
@inline(__always) func isHostChar(_ byte: UInt8) -> Bool {
    isPathChar(byte) && byte != UInt8(ascii: "/") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
}
