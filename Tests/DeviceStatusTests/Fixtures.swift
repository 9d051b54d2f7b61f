import Foundation
import MQTT

/// The shared sample inputs, copied from `shared/fixtures` into `Tests/Fixtures`.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// `mon-samples.jsonl`: one status message per line (`topic`, `retained`, `payload`).
    static func monSamples() throws -> [MQTTMessage] {
        let text = try String(contentsOf: directory.appendingPathComponent("mon-samples.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let payload = try JSONSerialization.data(withJSONObject: object["payload"]!, options: [.sortedKeys])
            return MQTTMessage(
                topic: object["topic"] as! String, payload: Array(payload), qos: 0, retain: object["retained"] as! Bool)
        }
    }

    /// A status payload with the given fields, as IBM sends them.
    static func mon(
        _ action: String, time: String, clientID: String = "d:org1:type1:dev1", closeCode: Int? = nil
    ) -> [UInt8] {
        var fields = [
            "\"ClientAddr\":\"10.0.0.1\"", "\"Protocol\":\"mqtt3\"", "\"ClientID\":\"\(clientID)\"",
            "\"Time\":\"\(time)\"", "\"Action\":\"\(action)\"", "\"Port\":1883",
        ]
        if let closeCode { fields.append("\"CloseCode\":\(closeCode)") }
        return Array(("{" + fields.joined(separator: ",") + "}").utf8)
    }
}
