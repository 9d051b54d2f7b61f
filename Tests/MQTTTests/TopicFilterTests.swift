import MQTT
import Testing

@Suite struct TopicFilterTests {
    private func filter(_ text: String) throws -> TopicFilter { try TopicFilter(text) }

    @Test func multiLevelWildcardDoesNotMatchLookalikePrefix() throws {
        let f = try filter("home/esp04/sensors/#")
        #expect(!f.matches("home/esp04/sensorsXYZ"))
        #expect(!f.matches("home/esp04/sensorsXYZ/a"))
        #expect(!f.matches("home/esp04/sensor"))
        #expect(!f.matches("home/esp04"))
        #expect(!f.matches("home/esp05/sensors/a"))
    }

    @Test func multiLevelWildcardMatchesParentAndEverythingBelow() throws {
        let f = try filter("home/esp04/sensors/#")
        #expect(f.matches("home/esp04/sensors"))
        #expect(f.matches("home/esp04/sensors/"))
        #expect(f.matches("home/esp04/sensors/a"))
        #expect(f.matches("home/esp04/sensors/a/b"))
        #expect(try filter("#").matches("a/b/c"))
        #expect(try filter("#").matches("/"))
    }

    @Test func singleLevelWildcardMatchesExactlyOneLevel() throws {
        let f = try filter("iot-2/type/+/id/+/mon")
        #expect(f.matches("iot-2/type/esp/id/42/mon"))
        #expect(f.matches("iot-2/type//id//mon"))  // an empty level is a level
        #expect(!f.matches("iot-2/type/esp/x/id/42/mon"))
        #expect(!f.matches("iot-2/type/esp/id/42"))
        #expect(!f.matches("iot-2/type/esp/id/42/mon/x"))
        #expect(!f.matches("iot-2/type/esp/id/42/monx"))
        #expect(try filter("a/+").matches("a/"))
        #expect(!(try filter("a/+").matches("a")))
        #expect(try filter("+").matches("a"))
        #expect(!(try filter("+").matches("a/b")))
        #expect(try filter("+/+").matches("/finance"))
        #expect(try filter("/+").matches("/finance"))
        #expect(try filter("+/#").matches("a"))
        #expect(try filter("a/+/#").matches("a/b"))
        #expect(!(try filter("a/+/#").matches("a")))
    }

    @Test func emptyLevelsAreSignificant() throws {
        let f = try filter("a//b")
        #expect(f.matches("a//b"))
        #expect(!f.matches("a/b"))
        #expect(try filter("a/+/b").matches("a//b"))
        #expect(!(try filter("a/b").matches("a/b/")))
        #expect(!(try filter("a/b/").matches("a/b")))
        #expect(try filter("/").matches("/"))
        #expect(!(try filter("/a").matches("a")))
    }

    @Test func exactFilterMatchesOnlyItself() throws {
        let f = try filter("home/esp04")
        #expect(!f.containsWildcards)
        #expect(f.matches("home/esp04"))
        #expect(!f.matches("home/esp0"))
        #expect(!f.matches("home/esp044"))
        #expect(!f.matches("Home/esp04"))  // topics are case-sensitive
        #expect(!f.matches(""))
    }

    @Test func wildcardsInFirstLevelDoNotMatchDollarTopics() throws {
        #expect(!(try filter("#").matches("$SYS/broker/uptime")))
        #expect(!(try filter("+/broker/uptime").matches("$SYS/broker/uptime")))
        #expect(!(try filter("+").matches("$SYS")))
        #expect(try filter("$SYS/#").matches("$SYS/broker/uptime"))
        #expect(try filter("$SYS/+/uptime").matches("$SYS/broker/uptime"))
        #expect(try filter("a/#").matches("a/$b"))  // '$' only matters in the first level
    }

    @Test func matchesMultiByteUTF8Levels() throws {
        #expect(try filter("maison/+/température").matches("maison/cuisine/température"))
        #expect(!(try filter("maison/+/température").matches("maison/cuisine/temperature")))
        #expect(try filter("é/#").matches("é"))
    }

    @Test(arguments: [
        ("", TopicFilterError.Reason.empty),
        ("a/#/b", .multiLevelWildcardNotLast),
        ("#/a", .multiLevelWildcardNotLast),
        ("a/b#", .multiLevelWildcardNotWholeLevel),
        ("a/##", .multiLevelWildcardNotWholeLevel),
        ("a/b+", .singleLevelWildcardNotWholeLevel),
        ("a/+b/c", .singleLevelWildcardNotWholeLevel),
        ("++", .singleLevelWildcardNotWholeLevel),
        ("a/\u{0}/b", .containsNul),
    ])
    func rejectsInvalidFilterWithReason(text: String, reason: TopicFilterError.Reason) {
        #expect(throws: TopicFilterError(filter: text, reason: reason)) { try TopicFilter(text) }
    }

    @Test func rejectsFilterLongerThan65535Bytes() {
        let long = String(repeating: "a", count: 65_536)
        #expect(throws: TopicFilterError(filter: long, reason: .tooLong(bytes: 65_536))) { try TopicFilter(long) }
        #expect((try? TopicFilter(String(repeating: "a", count: 65_535))) != nil)
    }

    @Test func errorDescriptionNamesFilterAndRule() {
        do {
            _ = try TopicFilter("a/#/b")
            Issue.record("expected an error")
        } catch {
            #expect(
                error.description
                    == "invalid topic filter 'a/#/b': '#' must be the last level (e.g. 'a/b/#', not 'a/#/b')")
        }
    }

    @Test func equalityAndHashingFollowText() throws {
        let set: Set<TopicFilter> = [try filter("a/+"), try filter("a/+"), try filter("a/#")]
        #expect(set.count == 2)
    }

    @Test func topicNamesRejectWildcardsNulAndEmpty() {
        #expect(isValidTopicName("home/monitoring/up"))
        #expect(isValidTopicName("/"))
        #expect(isValidTopicName("a//b"))
        #expect(!isValidTopicName(""))
        #expect(!isValidTopicName("home/+/up"))
        #expect(!isValidTopicName("home/#"))
        #expect(!isValidTopicName("a\u{0}b"))
        #expect(!isValidTopicName(String(repeating: "x", count: 65_536)))
    }

    /// Matching runs for every message against every configured filter: it must not allocate.
    @Test func matchingIsFastEnoughForPerMessageUse() throws {
        let filters = try (0..<100).map { try TopicFilter("home/dev\($0)/sensors/#") }
        let topic = "home/dev99/sensors/temperature/living-room"
        let clock = ContinuousClock()
        var hits = 0
        let elapsed = clock.measure {
            for _ in 0..<10_000 {
                for f in filters where f.matches(topic) { hits += 1 }
            }
        }
        #expect(hits == 10_000)
        // A figure, not a verdict: speed is judged by the benchmarks (`make bench`), never by a timed assertion.
        print("TopicFilter: 1,000,000 matches in \(elapsed)")
    }
}
