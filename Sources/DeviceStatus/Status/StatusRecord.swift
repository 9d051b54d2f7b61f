/// A device's identity: `(type, id)`, kept as the single string `type/id` (neither part can contain `/`,
/// both being MQTT topic levels), which is also how the seed-compatible route names it.
public struct DeviceKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// `type/id`.
    public let path: String

    public init(type: String, id: String) { path = type + "/" + id }

    /// Accepts `type/id` with both parts non-empty and no further `/`.
    public init?(path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.path = path
    }

    public var type: String { String(path[..<separator]) }
    public var id: String { String(path[path.index(after: separator)...]) }
    public var description: String { path }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.path < rhs.path }

    private var separator: String.Index { path.firstIndex(of: "/")! }
}

/// The last accepted status message of a device: its action, its `Time`, and its payload exactly as received.
///
/// One contiguous buffer holds all three (a 9-byte header, then the payload), which is also the LevelDB value:
/// a million devices cost one allocation each, and loading them is a copy.
public struct StatusRecord: Sendable, Equatable {
    /// Header layout: action (1 byte), `Time` in nanoseconds (8 bytes, little endian).
    static let headerSize = 9

    public let encoded: [UInt8]

    public init(action: MonPayload.Action, time: Int64, payload: some Collection<UInt8>) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.headerSize + payload.count)
        bytes.append(action.rawValue)
        withUnsafeBytes(of: time.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: payload)
        encoded = bytes
    }

    /// Decodes a stored value; nil when it is not one this version wrote.
    public init?(encoded: [UInt8]) {
        guard encoded.count >= Self.headerSize, MonPayload.Action(rawValue: encoded[0]) != nil else { return nil }
        self.encoded = encoded
    }

    public var action: MonPayload.Action { MonPayload.Action(rawValue: encoded[0])! }

    public var time: Int64 {
        var value: Int64 = 0
        for index in (1...8).reversed() { value = value << 8 | Int64(encoded[index]) }
        return value
    }

    public var payload: ArraySlice<UInt8> { encoded[Self.headerSize...] }
}
