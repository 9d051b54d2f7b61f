import MQTT
import Testing

@Suite struct TopicFilterIndexTests {
    @Test func findsEveryFilterThatMatchesATopic() throws {
        var index = TopicFilterIndex<Int>()
        let filters = [
            "home/esp04/sensors/#", "home/+/sensors/temp", "home/esp04", "#", "+/+", "$SYS/#", "home/esp04/#",
        ]
        for (number, filter) in filters.enumerated() { index.insert(try TopicFilter(filter), number) }
        #expect(Set(index.matches("home/esp04/sensors/temp")) == [0, 1, 3, 6])
        #expect(Set(index.matches("home/esp04/sensors")) == [0, 3, 6])
        #expect(Set(index.matches("home/esp04")) == [2, 3, 4, 6])
        #expect(Set(index.matches("$SYS/broker/uptime")) == [5])
    }

    @Test func doesNotMatchALookalikePrefix() throws {
        var index = TopicFilterIndex<String>()
        index.insert(try TopicFilter("home/esp04/sensors/#"), "esp04")
        #expect(index.matches("home/esp04/sensorsXYZ").isEmpty)
        #expect(index.matches("home/esp04/sensors/a/b") == ["esp04"])
    }

    /// The index must agree with `TopicFilter.matches`, the reference, on every pair.
    @Test func agreesWithTheSingleFilterMatcher() throws {
        let levels = ["a", "b", "", "$SYS", "+", "#"]
        var generator = SystemRandomNumberGenerator()
        var filters: [TopicFilter] = []
        while filters.count < 300 {
            let depth = Int.random(in: 1...4, using: &generator)
            let text = (0..<depth).map { _ in levels.randomElement(using: &generator)! }.joined(separator: "/")
            if let filter = try? TopicFilter(text) { filters.append(filter) }
        }
        var index = TopicFilterIndex<Int>()
        for (number, filter) in filters.enumerated() { index.insert(filter, number) }
        let topicLevels = ["a", "b", "", "$SYS", "c"]
        for _ in 0..<500 {
            let depth = Int.random(in: 1...5, using: &generator)
            let topic = (0..<depth).map { _ in topicLevels.randomElement(using: &generator)! }.joined(separator: "/")
            let expected = Set(filters.indices.filter { filters[$0].matches(topic) })
            #expect(Set(index.matches(topic)) == expected, "topic \(topic)")
        }
    }

    /// A node with many literal children (a watched device's topics each) finds them through its hashed lookup.
    @Test func findsLevelsAmongManySiblingsAndComparesThemByteForByte() throws {
        var index = TopicFilterIndex<Int>()
        for number in 0..<200 { index.insert(try TopicFilter("watch/dev\(number)/+"), number) }
        index.insert(try TopicFilter("watch/caf\u{E9}/x"), 1000)
        #expect(index.matches("watch/dev0/a") == [0])
        #expect(index.matches("watch/dev199/b") == [199])
        #expect(index.matches("watch/dev200/b").isEmpty)
        #expect(index.matches("watch/dev1").isEmpty)
        #expect(index.matches("watch/caf\u{E9}/x") == [1000])
        // The same text decomposed (e + combining acute): other bytes, so another topic, as for TopicFilter.matches.
        let decomposed = "watch/cafe\u{301}/x"
        #expect(index.matches(decomposed).isEmpty)
        #expect(try !TopicFilter("watch/caf\u{E9}/x").matches(decomposed))
    }

    /// 100,000 watched devices under one level (`fleet/d<n>/#`, as a large `[device_*]` configuration makes): each
    /// insert files one child. Refiling every sibling on each insert (n² work) took minutes for 10,000 and would take
    /// hours here, past the time limit; filing one takes well under a second for all.
    @Test(.timeLimit(.minutes(1))) func buildsAnIndexOfHundredsOfThousandsOfSiblings() throws {
        var index = TopicFilterIndex<Int>()
        let count = 100_000
        for number in 0..<count { index.insert(try TopicFilter("fleet/d\(number)/#"), number) }
        for number in stride(from: 0, to: count, by: 997) {
            #expect(index.matches("fleet/d\(number)/temp") == [number])
        }
        #expect(index.matches("fleet/d\(count)/temp").isEmpty)
    }
}
