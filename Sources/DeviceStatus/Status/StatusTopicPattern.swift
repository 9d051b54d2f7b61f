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
        let levels = filter.text.slashLevels
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
        var topic = topic
        return topic.withUTF8 { bytes -> DeviceKey? in
            guard filter.matches(utf8: bytes) else { return nil }
            // The bytes of the type and id levels, found in one pass; the key's path is made from them at once.
            var type: Range<Int>?
            var id: Range<Int>?
            var level = 0
            var start = 0
            for index in 0...bytes.count where index == bytes.count || bytes[index] == UInt8(ascii: "/") {
                if level == typeLevel { type = start..<index }
                if level == idLevel { id = start..<index }
                if type != nil && id != nil { break }
                level += 1
                start = index + 1
            }
            guard let type, let id, !type.isEmpty, !id.isEmpty else { return nil }
            let path = String(unsafeUninitializedCapacity: type.count + 1 + id.count) { buffer in
                _ = buffer.initialize(from: bytes[type])
                buffer[type.count] = UInt8(ascii: "/")
                _ = UnsafeMutableBufferPointer(rebasing: buffer[(type.count + 1)...]).initialize(from: bytes[id])
                return type.count + 1 + id.count
            }
            return DeviceKey(typeSlashID: path)
        }
    }
}
