/// Many topic filters, each with a value, looked up by topic: a trie over topic levels, so a message costs a walk
/// along its levels (plus the `+` and `#` branches) however many filters there are.
///
/// Matching follows MQTT 3.1.1 §4.7 like `TopicFilter.matches`: `+` is one level, `#` this level and all below
/// (including the parent), and filters starting with a wildcard don't match `$`-topics.
public struct TopicFilterIndex<Value: Sendable>: Sendable {
    @usableFromInline final class Node: @unchecked Sendable {
        /// The literal levels below this one, each with its bytes: compared byte by byte, as `TopicFilter.matches`
        /// compares levels, and found without hashing while there are few.
        @usableFromInline var children: [Child] = []
        /// With more than `linearLimit` children: their positions by a hash of the level's bytes.
        @usableFromInline var lookup: [UInt64: [Int]]?
        @usableFromInline var plus: Node?
        /// Values of filters ending in `#` at this node.
        @usableFromInline var hashValues: [Value] = []
        /// Values of filters ending exactly here.
        @usableFromInline var values: [Value] = []

        @usableFromInline init() {}

        /// Children looked up by a linear walk up to this many; beyond, through `lookup`.
        @usableFromInline static var linearLimit: Int { 8 }

        /// The child for the level `bytes`, if a filter has that literal level here.
        @inlinable func child(_ bytes: UnsafeBufferPointer<UInt8>) -> Node? {
            if let lookup {
                guard let positions = lookup[TopicFilterIndex.hash(bytes)] else { return nil }
                for position in positions where TopicFilterIndex.equal(children[position].key, bytes) {
                    return children[position].node
                }
                return nil
            }
            for child in children where TopicFilterIndex.equal(child.key, bytes) { return child.node }
            return nil
        }

        /// The child for `key`, created if missing.
        func child(adding key: [UInt8]) -> Node {
            if let existing = key.withUnsafeBufferPointer({ child($0) }) { return existing }
            let node = Node()
            children.append(Child(key: key, node: node))
            if lookup != nil {
                // Filed alone: refiling every child on each insert made n siblings cost n² (100,000 watched devices
                // under one level took minutes to start).
                lookup![key.withUnsafeBufferPointer { TopicFilterIndex.hash($0) }, default: []].append(
                    children.count - 1)
            } else if children.count > Self.linearLimit {
                var lookup: [UInt64: [Int]] = [:]
                for (position, child) in children.enumerated() {
                    lookup[child.key.withUnsafeBufferPointer { TopicFilterIndex.hash($0) }, default: []].append(
                        position)
                }
                self.lookup = lookup
            }
            return node
        }
    }

    @usableFromInline struct Child {
        @usableFromInline let key: [UInt8]
        @usableFromInline let node: Node
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
                node = node.child(adding: Array(level.utf8))
            }
        }
        node.values.append(value)
        count += 1
    }

    /// Calls `body` with every value whose filter matches `topic`.
    ///
    /// Runs for every message (a few times each): the walk goes over the topic's UTF-8 bytes, finding the levels as
    /// it goes, with no array, substring or hash of them made while a node has few literal children; the code is
    /// inlinable so that callers get it specialized for their `Value`.
    @inlinable
    public func forEachMatch(_ topic: String, _ body: (Value) -> Void) {
        // An empty topic name is not a topic (MQTT 3.1.1 §4.7.3): nothing matches it.
        guard !topic.isEmpty else { return }
        var topic = topic
        topic.withUTF8 { bytes in
            let isSystemTopic = bytes[0] == UInt8(ascii: "$")
            Self.walk(root, bytes, from: 0, isFirstLevel: true, isSystemTopic: isSystemTopic, body)
        }
    }

    /// The values whose filters match `topic`.
    public func matches(_ topic: String) -> [Value] {
        var result: [Value] = []
        forEachMatch(topic) { result.append($0) }
        return result
    }

    /// Walks from `node` with the level of `topic` that starts at `start` (nil: no level left).
    @inlinable
    static func walk(
        _ node: Node, _ topic: UnsafeBufferPointer<UInt8>, from start: Int?, isFirstLevel: Bool, isSystemTopic: Bool,
        _ body: (Value) -> Void
    ) {
        let wildcardsAllowed = !(isFirstLevel && isSystemTopic)
        // '#' matches the parent level and everything below.
        if wildcardsAllowed { for value in node.hashValues { body(value) } }
        guard let start else {
            for value in node.values { body(value) }
            return
        }
        var end = start
        while end < topic.count && topic[end] != UInt8(ascii: "/") { end += 1 }
        // After a `/` comes another level, empty when the topic ends there.
        let next = end == topic.count ? nil : end + 1
        if !node.children.isEmpty, let child = node.child(UnsafeBufferPointer(rebasing: topic[start..<end])) {
            walk(child, topic, from: next, isFirstLevel: false, isSystemTopic: isSystemTopic, body)
        }
        if wildcardsAllowed, let plus = node.plus {
            walk(plus, topic, from: next, isFirstLevel: false, isSystemTopic: isSystemTopic, body)
        }
    }

    /// Whether a child's level is `bytes`.
    @inlinable static func equal(_ key: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard key.count == bytes.count else { return false }
        return key.withUnsafeBufferPointer { key in
            for index in 0..<key.count where key[index] != bytes[index] { return false }
            return true
        }
    }

    /// FNV-1a of a level's bytes (for nodes with many literal children).
    @inlinable static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    private func copy(_ node: Node) -> Node {
        let result = Node()
        result.values = node.values
        result.hashValues = node.hashValues
        result.plus = node.plus.map(copy)
        result.children = node.children.map { Child(key: $0.key, node: copy($0.node)) }
        result.lookup = node.lookup
        return result
    }
}
