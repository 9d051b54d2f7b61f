import HTTP1

/// Builds small JSON answers by hand: they are on the request path, and Foundation's encoder would cost more
/// than the whole lookup.
enum JSONText {
    /// `text` as a JSON string literal, quotes included (RFC 8259 §7).
    static func quote(_ text: String) -> String { jsonQuoted(text) }

    /// An object from already-encoded member values, in order.
    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    static func error(_ message: String) -> String { object([("error", quote(message))]) }
}
