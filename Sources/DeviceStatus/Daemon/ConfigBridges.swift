import MQTT

extension DaemonConfig {
    /// `--broker`: the URL replaces `[mqtt] serverAddress` once it parses.
    public mutating func setBroker(_ url: String) throws(BrokerURLError) {
        _ = try BrokerURL(parsing: url)
        mqtt.serverAddress = url
    }
}
