import HTTP1
import MQTT

extension HTTPSettings {
    /// The HTTP server's settings from `[http]`.
    public var serverConfiguration: HTTPServer.Configuration {
        HTTPServer.Configuration(
            bind: bind, port: port, threads: threads, maxConnections: maxConnections, headerTimeout: headerTimeout,
            idleTimeout: idleTimeout, writeTimeout: writeTimeout, maxRequestLine: maxRequestLine,
            maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders, maxBody: maxBody)
    }
}

extension DaemonConfig {
    /// `--broker`: the URL replaces `[mqtt] serverAddress` once it parses.
    public mutating func setBroker(_ url: String) throws(BrokerURLError) {
        _ = try BrokerURL(parsing: url)
        mqtt.serverAddress = url
    }
}
