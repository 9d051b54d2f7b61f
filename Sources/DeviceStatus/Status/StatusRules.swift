/// What to do with one status message, by docs/behaviour.md §3's status-topic rules. Pure: no clock, no storage.
public enum StatusDecision: Sendable, Equatable {
    /// Store it: it is newer than what is stored (or nothing is).
    case accept
    /// The same action at the same `Time` as stored: a replay (e.g. the broker's retained copy after a restart).
    case unchanged
    /// An empty payload: the status was cleared.
    case delete
    /// Older than the stored status.
    case ignoreOutOfOrder
    /// A Connect at the same `Time` as a stored Disconnect: Disconnect wins ties.
    case ignoreTieLost
    /// A live Disconnect with CloseCode 288 (the client id was reused): the device is connected elsewhere.
    case ignoreClientIDReused
}

public enum StatusRules {
    /// The CloseCode IBM sends when a second connection with the same client id takes over.
    public static let clientIDReusedCloseCode = 288

    /// Judges `incoming` against what is stored for the device.
    /// - Parameter retained: whether the broker delivered the message as retained (a replay of the last state).
    public static func decide(
        stored: (action: MonPayload.Action, time: Int64)?, incoming: MonPayload, retained: Bool
    ) -> StatusDecision {
        if incoming.action == .disconnect, incoming.closeCode == clientIDReusedCloseCode, !retained {
            return .ignoreClientIDReused
        }
        let status: (MonPayload.Action) -> PresenceStatus = { $0 == .connect ? .online : .offline }
        switch TimestampOrdering.decide(
            stored: stored.map { (status($0.action), $0.time) }, incoming: status(incoming.action), time: incoming.time)
        {
        case .accept, .restate: return .accept
        case .unchanged: return .unchanged
        case .ignoreOutOfOrder: return .ignoreOutOfOrder
        case .ignoreTieLost, .ignoreStale: return .ignoreTieLost
        }
    }

    /// The organisation part of an IBM client id `d:<org>:<type>:<id>` (also `g:` gateways and `a:` apps).
    public static func organization(ofClientID clientID: String) -> String? {
        // Byte searches (`:` is ASCII, so its UTF-8 positions are String indices): this runs for every message.
        let utf8 = clientID.utf8
        guard let first = utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        // One character before the `:`: one ASCII byte settles it without breaking graphemes (a tenth of a `mon`
        // payload's decoding went into counting that one character).
        let prefixBytes = utf8.distance(from: utf8.startIndex, to: first)
        let oneCharacter = prefixBytes == 1 ? utf8.first! < 0x80 : prefixBytes > 1 && clientID[..<first].count == 1
        guard oneCharacter else { return nil }
        let rest = clientID[utf8.index(after: first)...]
        guard let second = rest.utf8.firstIndex(of: UInt8(ascii: ":")), second != rest.startIndex else { return nil }
        return String(rest[..<second])
    }
}
