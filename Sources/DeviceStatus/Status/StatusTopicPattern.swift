import MQTT

/// A configured status-topic filter (`[status] topics`, default `iot-2/type/+/id/+/mon`) and where in a matching
/// topic the device's type and id stand: the `+` levels that follow the literal levels `type` and `id`.
public struct StatusTopicPattern: Sendable, Hashable {
    public let filter: TopicFilter
    let typeLevel: Int
    let idLevel: Int

    /// Why a filter cannot name devices.
    public struct ShapeError: Error, Sendable, CustomStringConvertible {
        public let filter: String
        public var description: String {
            "status topic '\(filter)' must contain the levels 'type/+' and 'id/+' so each message names its device"
        }
    }

    public init(_ filter: TopicFilter) throws(ShapeError) {
        let levels = filter.text.split(separator: "/", omittingEmptySubsequences: false)
        var typeLevel: Int?
        var idLevel: Int?
        for index in levels.indices.dropFirst() where levels[index] == "+" {
            if levels[index - 1] == "type", typeLevel == nil { typeLevel = index }
            if levels[index - 1] == "id", idLevel == nil { idLevel = index }
        }
        guard let typeLevel, let idLevel else { throw ShapeError(filter: filter.text) }
        self.filter = filter
        self.typeLevel = typeLevel
        self.idLevel = idLevel
    }

    /// The device a topic names, if the topic matches this filter and both levels are non-empty.
    public func device(inTopic topic: String) -> DeviceKey? {
        guard filter.matches(topic) else { return nil }
        let utf8 = topic.utf8
        var type: Substring.UTF8View?
        var id: Substring.UTF8View?
        var level = 0
        var start = utf8.startIndex
        var index = utf8.startIndex
        while true {
            let atEnd = index == utf8.endIndex
            if atEnd || utf8[index] == UInt8(ascii: "/") {
                if level == typeLevel { type = topic[start..<index].utf8 }
                if level == idLevel { id = topic[start..<index].utf8 }
                if atEnd || (type != nil && id != nil) { break }
                level += 1
                start = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        guard let type, let id, !type.isEmpty, !id.isEmpty else { return nil }
        return DeviceKey(type: String(Substring(type)), id: String(Substring(id)))
    }
}
