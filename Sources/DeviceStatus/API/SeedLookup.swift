/// `GET /<type>/<id>` as the IBM device status service answered it (docs/behaviour.md §4.1): the last accepted status payload
/// exactly as received, or a "Never Connected" object naming the device's client id.
public enum SeedLookup {
    /// The body for `type/id`; always 200.
    /// A known device's body is its stored payload itself, a slice of the record (no copy).
    public static func body(type: String, id: String, table: DeviceTable) -> ArraySlice<UInt8> {
        // A type is one topic level: with a `/` (sent as %2F) it would name another device's path.
        if !type.contains("/"), let record = table.record(forPath: type + "/" + id) {
            return record.source == .mon ? record.payload : Array(ibmShaped(id: id, record: record).utf8)[...]
        }
        let clientID = "d:\(table.organizationForUnknownDevices):\(type):\(id)"
        return Array(
            JSONText.object([("ClientID", JSONText.quote(clientID)), ("Action", "\"Never Connected\"")]).utf8)[...]
    }

    /// The answer for a device known from a presence convention: what an IBM status message would have said,
    /// `Time` being the source's own time where it has one, else the arrival time of the last accepted message.
    static func ibmShaped(id: String, record: StatusRecord) -> String {
        var members: [(String, String)] = [
            ("ClientID", JSONText.quote(id)),
            ("Time", JSONText.quote(RFC3339.format(nanoseconds: record.time))),
            ("Action", record.status == .online ? "\"Connect\"" : "\"Disconnect\""),
            ("Source", JSONText.quote(record.source.name)),
        ]
        if record.status == .sleeping { members.append(("Reason", "\"sleeping\"")) }
        return JSONText.object(members)
    }
}
