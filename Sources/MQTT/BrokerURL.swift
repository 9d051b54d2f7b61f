/// Why a broker URL was rejected; `description` is one line naming the input and the problem.
public struct BrokerURLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text that failed to parse, as given.
    public var input: String
    /// What exactly is wrong, e.g. `unsupported scheme 'http' (use tcp://, mqtt://, ssl:// or mqtts://)`.
    public var reason: String

    public init(input: String, reason: String) {
        self.input = input
        self.reason = reason
    }

    public var description: String { "invalid broker URL '\(input)': \(reason)" }
}

/// The address of an MQTT broker, parsed from a URL such as `tcp://localhost:1883` or `mqtts://[::1]`.
///
/// Accepted forms (scheme is case-insensitive and stored lowercased):
/// - `tcp://` and `mqtt://`: plain TCP, default port 1883;
/// - `ssl://` and `mqtts://`: TLS, default port 8883.
///
/// The host is required: a DNS name, an IPv4 address, or an IPv6 address in brackets (`[::1]`,
/// stored without the brackets). An optional `:port` must be in 1...65535. A single trailing `/`
/// is tolerated; any other path, a query, a fragment or credentials (`user@`) are rejected, because
/// libmosquitto would not use them.
public struct BrokerURL: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address, without IPv6 brackets.
    public var host: String
    /// TCP port; 1883 or 8883 when the URL has none.
    public var port: Int
    /// `true` for `ssl://` and `mqtts://`.
    public var useTLS: Bool
    /// The scheme as written, lowercased: `tcp`, `mqtt`, `ssl` or `mqtts`.
    public var scheme: String

    /// Default port of plain MQTT (IANA).
    public static let defaultPlainPort = 1883
    /// Default port of MQTT over TLS (IANA).
    public static let defaultTLSPort = 8883

    /// Creates a URL from parts; `port` defaults to the scheme's default port.
    public init(scheme: String = "tcp", host: String, port: Int? = nil) {
        let scheme = scheme.lowercased()
        self.scheme = scheme
        self.host = host
        self.useTLS = scheme == "ssl" || scheme == "mqtts"
        self.port = port ?? (useTLS ? Self.defaultTLSPort : Self.defaultPlainPort)
    }

    /// Parses `scheme://host[:port][/]`. Throws a `BrokerURLError` whose `reason` says exactly what is wrong.
    public init(parsing input: String) throws(BrokerURLError) {
        func fail(_ reason: String) -> BrokerURLError { BrokerURLError(input: input, reason: reason) }

        if input.isEmpty { throw fail("empty (expected e.g. tcp://localhost:1883)") }
        if input.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw fail("contains whitespace or control characters")
        }
        guard let separator = input.firstRange(of: "://") else {
            throw fail("missing scheme (expected e.g. tcp://\(input))")
        }
        let scheme = input[..<separator.lowerBound].lowercased()
        let useTLS: Bool
        switch scheme {
        case "tcp", "mqtt": useTLS = false
        case "ssl", "mqtts": useTLS = true
        case "": throw fail("missing scheme before '://' (use tcp://, mqtt://, ssl:// or mqtts://)")
        default: throw fail("unsupported scheme '\(scheme)' (use tcp://, mqtt://, ssl:// or mqtts://)")
        }

        var rest = input[separator.upperBound...]
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if let bad = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            let what = rest[bad] == "/" ? "a path" : rest[bad] == "?" ? "a query" : "a fragment"
            throw fail("\(what) is not allowed ('\(rest[bad...])'); use scheme://host[:port]")
        }
        if rest.contains("@") {
            throw fail("credentials in the URL are not supported; set [mqtt] user and password")
        }

        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("missing ']' after IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw fail("unexpected '\(after)' after IPv6 address (expected ':port')")
                }
                portText = after.dropFirst()
            }
            if host.isEmpty { throw fail("empty IPv6 address in brackets") }
            // An optional zone follows '%' (fe80::1%eth0).
            let address = host.prefix { $0 != "%" }
            let zone = host.dropFirst(address.count)
            guard address.contains(":"), address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }),
                zone.isEmpty || (zone.count > 1 && zone.dropFirst().utf8.allSatisfy { Self.isHostByte($0) })
            else { throw fail("'\(host)' is not an IPv6 address") }
        } else {
            let colons = rest.filter { $0 == ":" }.count
            if colons > 1 { throw fail("IPv6 addresses must be written in brackets, e.g. tcp://[::1]:1883") }
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
            if host.isEmpty { throw fail("missing host (expected e.g. \(scheme)://localhost)") }
            guard host.utf8.allSatisfy({ Self.isHostByte($0) }) else {
                throw fail("invalid character in host '\(host)' (letters, digits, '-', '_' and '.' only)")
            }
        }

        var port = useTLS ? Self.defaultTLSPort : Self.defaultPlainPort
        if let portText {
            guard !portText.isEmpty else { throw fail("empty port after ':'") }
            guard portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(portText), (1...65535).contains(value)
            else { throw fail("port '\(portText)' is not a number in 1...65535") }
            port = value
        }

        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.useTLS = useTLS
    }

    /// `scheme://host:port`, with IPv6 hosts in brackets; parses back to an equal value.
    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(shownHost):\(port)"
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }
}
