import MQTT

/// The IBM Watson IoT status topics (`[status] topics`, default `iot-2/type/+/id/+/mon`): type and id from the
/// topic, a strict JSON payload with `Action`, `ClientID`, `Time` (and `CloseCode`), ordered by `Time`.
public struct MonDecoder: PresenceDecoder {
    public let patterns: [StatusTopicPattern]
    public var source: PresenceSource { .mon }
    public var filters: [TopicFilter] { patterns.map(\.filter) }

    public init(patterns: [StatusTopicPattern]) { self.patterns = patterns }

    public func match(topic: String) -> TopicMatch? {
        for pattern in patterns {
            if let key = pattern.device(inTopic: topic) { return TopicMatch(key: key) }
        }
        return nil
    }

    public func decode(_ match: TopicMatch, payload: [UInt8], retained: Bool, context: DecodeContext) -> Decoded {
        let parsed: MonPayload
        do {
            parsed = try MonPayload(parsing: payload, now: context.now, skew: context.clockSkew)
        } catch {
            return .malformed("\(error)")
        }
        // A live Disconnect with CloseCode 288: the client id was taken over by a new connection, which is
        // connected. A retained one is the last word on the device and is accepted.
        if parsed.action == .disconnect, parsed.closeCode == StatusRules.clientIDReusedCloseCode, !retained {
            return .ignored("client_id_reused")
        }
        return .observation(
            Observation(
                key: match.key, source: .mon, status: .set(parsed.action == .connect ? .online : .offline),
                sourceTime: parsed.time, reason: parsed.action == .connect ? "Connect" : "Disconnect",
                payload: payload, organization: StatusRules.organization(ofClientID: parsed.clientID)))
    }
}
