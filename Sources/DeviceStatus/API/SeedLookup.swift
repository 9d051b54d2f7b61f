/// `GET /<type>/<id>` as the IBM device status service answered it (SPEC §4.1): the last accepted status payload
/// exactly as received, or a "Never Connected" object naming the device's client id.
public enum SeedLookup {
    /// The body for `type/id`; always 200.
    /// A known device's body is its stored payload itself, a slice of the record (no copy).
    public static func body(type: String, id: String, table: DeviceTable) -> ArraySlice<UInt8> {
        if let record = table.record(forPath: type + "/" + id) {
            return record.payload
        }
        let clientID = "d:\(table.organizationForUnknownDevices):\(type):\(id)"
        return Array(
            JSONText.object([("ClientID", JSONText.quote(clientID)), ("Action", "\"Never Connected\"")]).utf8)[...]
    }
}
