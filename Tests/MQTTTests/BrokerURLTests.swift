import MQTT
import Testing

@Suite struct BrokerURLTests {
    @Test func plainSchemesDefaultToPort1883() throws {
        let tcp = try BrokerURL(parsing: "tcp://localhost")
        #expect(tcp == BrokerURL(scheme: "tcp", host: "localhost", port: 1883))
        #expect(!tcp.useTLS)
        let mqtt = try BrokerURL(parsing: "mqtt://broker.example.com")
        #expect(mqtt.port == 1883 && mqtt.scheme == "mqtt" && !mqtt.useTLS)
    }

    @Test func tlsSchemesDefaultToPort8883() throws {
        let ssl = try BrokerURL(parsing: "ssl://broker")
        #expect(ssl.port == 8883 && ssl.useTLS && ssl.scheme == "ssl")
        let mqtts = try BrokerURL(parsing: "MQTTS://broker:443")
        #expect(mqtts.port == 443 && mqtts.useTLS && mqtts.scheme == "mqtts")
    }

    @Test func explicitPortAndTrailingSlash() throws {
        #expect(try BrokerURL(parsing: "tcp://10.0.0.5:1884/") == BrokerURL(host: "10.0.0.5", port: 1884))
        #expect(try BrokerURL(parsing: "tcp://h:1").port == 1)
        #expect(try BrokerURL(parsing: "tcp://h:65535").port == 65535)
    }

    @Test func ipv6InBrackets() throws {
        let url = try BrokerURL(parsing: "tcp://[::1]:1884")
        #expect(url.host == "::1" && url.port == 1884)
        #expect(url.description == "tcp://[::1]:1884")
        #expect(try BrokerURL(parsing: "mqtts://[fe80::1%eth0]").host == "fe80::1%eth0")
    }

    @Test func descriptionRoundTrips() throws {
        for text in ["tcp://localhost:1883", "ssl://[2001:db8::2]:8883", "mqtt://a.b-c_d:7"] {
            let url = try BrokerURL(parsing: text)
            #expect(url.description == text)
            #expect(try BrokerURL(parsing: url.description) == url)
        }
    }

    @Test(arguments: [
        ("http://localhost", "unsupported scheme 'http' (use tcp://, mqtt://, ssl:// or mqtts://)"),
        ("localhost:1883", "missing scheme (expected e.g. tcp://localhost:1883)"),
        ("", "empty (expected e.g. tcp://localhost:1883)"),
        ("://h", "missing scheme before '://' (use tcp://, mqtt://, ssl:// or mqtts://)"),
        ("tcp://", "missing host (expected e.g. tcp://localhost)"),
        ("tcp://:1883", "missing host (expected e.g. tcp://localhost)"),
        ("tcp://h:0", "port '0' is not a number in 1...65535"),
        ("tcp://h:65536", "port '65536' is not a number in 1...65535"),
        ("tcp://h:-1", "port '-1' is not a number in 1...65535"),
        ("tcp://h:+80", "port '+80' is not a number in 1...65535"),
        ("tcp://h:abc", "port 'abc' is not a number in 1...65535"),
        ("tcp://h:", "empty port after ':'"),
        ("tcp://h/path", "a path is not allowed ('/path'); use scheme://host[:port]"),
        ("tcp://h?x=1", "a query is not allowed ('?x=1'); use scheme://host[:port]"),
        ("tcp://u:p@h", "credentials in the URL are not supported; set [mqtt] user and password"),
        ("tcp://::1", "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:1883"),
        ("tcp://[::1", "missing ']' after IPv6 address"),
        ("tcp://[]:1", "empty IPv6 address in brackets"),
        ("tcp://[::1]x", "unexpected 'x' after IPv6 address (expected ':port')"),
        ("tcp://[zz]", "'zz' is not an IPv6 address"),
        ("tcp://ho st", "contains whitespace or control characters"),
        ("tcp://h!st", "invalid character in host 'h!st' (letters, digits, '-', '_' and '.' only)"),
    ])
    func rejectsWithExactReason(input: String, reason: String) {
        #expect(throws: BrokerURLError(input: input, reason: reason)) { try BrokerURL(parsing: input) }
    }

    @Test func errorDescriptionQuotesInput() {
        #expect(
            BrokerURLError(input: "http://x", reason: "r").description == "invalid broker URL 'http://x': r")
    }
}
