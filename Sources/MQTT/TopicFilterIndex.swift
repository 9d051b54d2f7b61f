/// Many topic filters, each with a value, looked up by topic: a trie over topic levels, so a message costs a walk
/// along its levels (plus the `+` and `#` branches) however many filters there are.
///
/// Matching follows MQTT 3.1.1 §4.7 like `TopicFilter.matches`: `+` is one level, `#` this level and all below
/// (including the parent), and filters starting with a wildcard don't match `$`-topics.
public struct TopicFilterIndex<Value: Sendable>: Sendable {
    @usableFromInline final class Node: @unchecked Sendable {
        @usableFromInline var children: [Substring: Node] = [:]
        @usableFromInline var plus: Node?
        /// Values of filters ending in `#` at this node.
        @usableFromInline var hashValues: [Value] = []
        /// Values of filters ending exactly here.
        @usableFromInline var values: [Value] = []

        @usableFromInline init() {}
    }

    @usableFromInline var root = Node()
    public private(set) var count = 0

    public init() {}

    /// Adds `value` under `filter`. Several values may share a filter.
    public mutating func insert(_ filter: TopicFilter, _ value: Value) {
        if !isKnownUniquelyReferenced(&root) { root = copy(root) }
        var node = root
        let levels = filter.text.split(separator: "/", omittingEmptySubsequences: false)
        for level in levels {
            if level == "#" {
                node.hashValues.append(value)
                count += 1
                return
            }
            if level == "+" {
                if node.plus == nil { node.plus = Node() }
                node = node.plus!
            } else {
                if let child = node.children[level] {
                    node = child
                } else {
                    let child = Node()
                    node.children[level] = child
                    node = child
                }
            }
        }
        node.values.append(value)
        count += 1
    }

    /// Calls `body` with every value whose filter matches `topic`.
    ///
    /// Runs for every message (a few times each): the levels are found as the walk goes, with no array of them
    /// built, and the code is inlinable so that callers get it specialized for their `Value`.
    @inlinable
    public func forEachMatch(_ topic: String, _ body: (Value) -> Void) {
        // An empty topic name is not a topic (MQTT 3.1.1 §4.7.3): nothing matches it.
        guard !topic.isEmpty else { return }
        let isSystemTopic = topic.utf8.first == UInt8(ascii: "$")
        Self.walk(root, topic, from: topic.startIndex, isFirstLevel: true, isSystemTopic: isSystemTopic, body)
    }

    /// The values whose filters match `topic`.
    public func matches(_ topic: String) -> [Value] {
        var result: [Value] = []
        forEachMatch(topic) { result.append($0) }
        return result
    }

    /// Walks from `node` with the level of `topic` that starts at `start` (nil: no level left; `/` is ASCII, so
    /// positions in its UTF-8 view are String indices).
    @inlinable
    static func walk(
        _ node: Node, _ topic: String, from start: String.Index?, isFirstLevel: Bool, isSystemTopic: Bool,
        _ body: (Value) -> Void
    ) {
        let wildcardsAllowed = !(isFirstLevel && isSystemTopic)
        // '#' matches the parent level and everything below.
        if wildcardsAllowed { for value in node.hashValues { body(value) } }
        guard let start else {
            for value in node.values { body(value) }
            return
        }
        let utf8 = topic.utf8
        let end = utf8[start...].firstIndex(of: UInt8(ascii: "/")) ?? utf8.endIndex
        // After a `/` comes another level, empty when the topic ends there.
        let next = end == utf8.endIndex ? nil : utf8.index(after: end)
        // Most levels under a `+` have no literal children: no hashing of the level then.
        if !node.children.isEmpty, let child = node.children[topic[start..<end]] {
            walk(child, topic, from: next, isFirstLevel: false, isSystemTopic: isSystemTopic, body)
        }
        if wildcardsAllowed, let plus = node.plus {
            walk(plus, topic, from: next, isFirstLevel: false, isSystemTopic: isSystemTopic, body)
        }
    }

    private func copy(_ node: Node) -> Node {
        let result = Node()
        result.values = node.values
        result.hashValues = node.hashValues
        result.plus = node.plus.map(copy)
        for (key, child) in node.children { result.children[key] = copy(child) }
        return result
    }
}
