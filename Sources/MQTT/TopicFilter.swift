/// Why a topic filter was rejected.
public struct TopicFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rule the filter breaks.
    public enum Reason: Sendable, Equatable {
        /// The filter is the empty string.
        case empty
        /// Longer than MQTT's 65,535-byte string limit.
        case tooLong(bytes: Int)
        /// Contains U+0000, which MQTT forbids in topics.
        case containsNul
        /// `#` is not alone in its level (e.g. `a/b#`).
        case multiLevelWildcardNotWholeLevel
        /// `#` is followed by more levels (e.g. `a/#/b`).
        case multiLevelWildcardNotLast
        /// `+` is not alone in its level (e.g. `a/b+/c`).
        case singleLevelWildcardNotWholeLevel
    }

    /// The rejected filter, as given.
    public var filter: String
    public var reason: Reason

    public init(filter: String, reason: Reason) {
        self.filter = filter
        self.reason = reason
    }

    /// What is wrong, without the filter: `'#' must be the last level`.
    public var reasonText: String {
        switch reason {
        case .empty: "a topic filter must not be empty"
        case .tooLong(let bytes): "topic filter is \(bytes) bytes long (MQTT allows at most 65535)"
        case .containsNul: "topic filter contains a NUL character"
        case .multiLevelWildcardNotWholeLevel: "'#' must occupy a whole level (e.g. 'a/#', not 'a/b#')"
        case .multiLevelWildcardNotLast: "'#' must be the last level (e.g. 'a/b/#', not 'a/#/b')"
        case .singleLevelWildcardNotWholeLevel: "'+' must occupy a whole level (e.g. 'a/+/c', not 'a/b+/c')"
        }
    }

    public var description: String { "invalid topic filter '\(filter)': \(reasonText)" }
}

/// MQTT's limit on any UTF-8 string, topics included (2-byte length prefix; MQTT 3.1.1 §1.5.3).
let maximumTopicBytes = 65_535

/// A validated MQTT subscription filter (`home/+/sensors/#`).
///
/// Matching follows MQTT 3.1.1 §4.7 exactly: `+` matches one whole level (possibly empty), `#`
/// matches its parent level and everything below (`a/#` matches `a`, `a/` and `a/b/c`), and
/// filters that start with a wildcard never match topics starting with `$` (`$SYS/...`).
/// Matching works on UTF-8 bytes and allocates nothing.
public struct TopicFilter: Sendable, Hashable, CustomStringConvertible {
    /// The filter as given.
    public let text: String
    /// `text`'s UTF-8 bytes, kept so matching never re-encodes.
    private let bytes: [UInt8]
    /// `true` when the filter contains `+` or `#`; a filter without wildcards matches only itself.
    public let containsWildcards: Bool

    /// Validates `text` as a subscription filter; throws with the broken rule otherwise.
    public init(_ text: String) throws(TopicFilterError) {
        let bytes = Array(text.utf8)
        if let reason = Self.validate(bytes) { throw TopicFilterError(filter: text, reason: reason) }
        self.text = text
        self.bytes = bytes
        self.containsWildcards = bytes.contains { $0 == asciiPlus || $0 == asciiHash }
    }

    public var description: String { text }

    public static func == (lhs: TopicFilter, rhs: TopicFilter) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }

    /// `true` when a message published on `topic` is delivered to a subscription with this filter.
    /// An empty topic matches nothing.
    public func matches(_ topic: String) -> Bool {
        var topic = topic
        return topic.withUTF8 { topicBytes in
            bytes.withUnsafeBufferPointer { filterBytes in
                Self.match(filter: filterBytes, topic: topicBytes)
            }
        }
    }

    /// `true` when `topic` (UTF-8) matches; the byte-level form for callers holding raw bytes.
    public func matches(utf8 topic: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.withUnsafeBufferPointer { Self.match(filter: $0, topic: topic) }
    }

    /// The matcher: walks filter and topic level by level in one pass.
    @inline(__always)
    static func match(filter f: UnsafeBufferPointer<UInt8>, topic t: UnsafeBufferPointer<UInt8>) -> Bool {
        let fc = f.count
        let tc = t.count
        if tc == 0 || fc == 0 { return false }
        // MQTT 3.1.1 §4.7.2: wildcards in the first level do not match '$' topics.
        if t[0] == asciiDollar && (f[0] == asciiPlus || f[0] == asciiHash) { return false }
        var fi = 0
        var ti = 0
        while true {
            // At the start of a level in both; the filter's last level may be empty ("a/").
            let c = fi < fc ? f[fi] : asciiSlash
            if c == asciiHash { return true }
            if c == asciiPlus {
                while ti < tc && t[ti] != asciiSlash { ti += 1 }
                fi += 1
            } else {
                while fi < fc && f[fi] != asciiSlash {
                    if ti >= tc || t[ti] != f[fi] { return false }
                    fi += 1
                    ti += 1
                }
                if ti < tc && t[ti] != asciiSlash { return false }
            }
            // Both at the end of a level: at '/' or at the end.
            if fi == fc { return ti == tc }
            if ti == tc {
                // The topic ended; only a trailing "/#" still matches (the parent level).
                return fc - fi == 2 && f[fi + 1] == asciiHash
            }
            fi += 1
            ti += 1
        }
    }

    static func validate(_ b: [UInt8]) -> TopicFilterError.Reason? {
        if b.isEmpty { return .empty }
        if b.count > maximumTopicBytes { return .tooLong(bytes: b.count) }
        for i in b.indices {
            switch b[i] {
            case 0:
                return .containsNul
            case asciiHash:
                if i > 0 && b[i - 1] != asciiSlash { return .multiLevelWildcardNotWholeLevel }
                if i != b.count - 1 {
                    return b[i + 1] == asciiSlash ? .multiLevelWildcardNotLast : .multiLevelWildcardNotWholeLevel
                }
            case asciiPlus:
                if i > 0 && b[i - 1] != asciiSlash { return .singleLevelWildcardNotWholeLevel }
                if i < b.count - 1 && b[i + 1] != asciiSlash { return .singleLevelWildcardNotWholeLevel }
            default:
                continue
            }
        }
        return nil
    }
}

/// `true` when `topic` may be published to: non-empty, at most 65,535 UTF-8 bytes, and free of
/// `+`, `#` and NUL (MQTT 3.1.1 §4.7.3).
public func isValidTopicName(_ topic: String) -> Bool {
    let count = topic.utf8.count
    if count == 0 || count > maximumTopicBytes { return false }
    return !topic.utf8.contains { $0 == asciiPlus || $0 == asciiHash || $0 == 0 }
}

private let asciiSlash = UInt8(ascii: "/")
private let asciiPlus = UInt8(ascii: "+")
private let asciiHash = UInt8(ascii: "#")
private let asciiDollar = UInt8(ascii: "$")
