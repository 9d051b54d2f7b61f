/// A device's identity: `(type, id)`, kept as the single string `type/id`. The type never contains `/`; an id
/// may (a Zigbee2MQTT friendly name over several topic levels, a Sparkplug `node/device`), and routes address
/// such an id with the `/` written `%2F`.
public struct DeviceKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// `type/id`.
    public let path: String

    public init(type: String, id: String) { path = type + "/" + id }

    /// `type/id` already joined (the type has no `/`).
    init(typeSlashID path: String) { self.path = path }

    /// Accepts `type/id` with both parts non-empty and no further `/` (a route's two segments).
    public init?(path: String) {
        let parts = path.slashLevels
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.path = path
    }

    /// Accepts a stored `type/id` whose id may contain `/`: the type ends at the first `/`; both parts non-empty.
    public init?(storedPath path: String) {
        guard let slash = path.utf8.firstIndex(of: UInt8(ascii: "/")), slash != path.utf8.startIndex,
            path.utf8.index(after: slash) != path.utf8.endIndex
        else { return nil }
        self.path = path
    }

    public var type: String { String(path.splitAtFirstSlash!.head) }
    public var id: String { String(path.splitAtFirstSlash!.tail) }
    public var description: String { path }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.path < rhs.path }
}

/// The last accepted status of a device: its source, status, time, reason, and the payload exactly as received.
///
/// One contiguous buffer holds all of it (a header, then the payload), which is also the LevelDB value: a million
/// devices cost one allocation each, and loading them is a copy.
///
/// Two layouts are read. Records written before presence conventions existed (every `mon` record of an older
/// version, kept in place by an upgrade): action (1 byte: 1 Connect, 2 Disconnect), `Time` (8 bytes, little
/// endian), payload. Records written now: `0x80 | status` (1 byte), source (1), time (8), sequence (8),
/// reason length (1), reason, payload. The first byte tells them apart (an old action is never ≥ 0x80).
public struct StatusRecord: Sendable, Equatable {
    /// The old layout's header: action, time.
    static let legacyHeaderSize = 9
    /// The current layout's header before the reason.
    static let fixedHeaderSize = 19
    static let currentMarker: UInt8 = 0x80
    /// A reason longer than this is cut (it is a few words; the bound keeps its length in one byte).
    public static let maximumReasonLength = 255

    public let encoded: [UInt8]

    /// A `mon` record (the status topics): online for Connect, offline for Disconnect.
    public init(action: MonPayload.Action, time: Int64, payload: some Collection<UInt8>) {
        self.init(
            source: .mon, status: action == .connect ? .online : .offline, time: time, reason: nil,
            payload: payload)
    }

    public init(
        source: PresenceSource, status: PresenceStatus, time: Int64, sequence: Int64 = 0, reason: String?,
        payload: some Collection<UInt8>
    ) {
        var reasonText = reason ?? ""
        // Cut by characters, never inside a UTF-8 sequence.
        while reasonText.utf8.count > Self.maximumReasonLength { reasonText.removeLast() }
        let reasonLength = reasonText.utf8.count
        let payloadCount = payload.count
        let size = Self.fixedHeaderSize + reasonLength + payloadCount
        // Written in place: one allocation and three copies per record (a retained replay makes one per device).
        encoded = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw[0] = Self.currentMarker | status.rawValue
            raw[1] = source.rawValue
            raw.storeBytes(of: time.littleEndian, toByteOffset: 2, as: Int64.self)
            raw.storeBytes(of: sequence.littleEndian, toByteOffset: 10, as: Int64.self)
            raw[18] = UInt8(reasonLength)
            _ = UnsafeMutableBufferPointer(rebasing: buffer[Self.fixedHeaderSize...]).initialize(from: reasonText.utf8)
            let payloadStart = Self.fixedHeaderSize + reasonLength
            let copied = payload.withContiguousStorageIfAvailable { source in
                UnsafeMutableBufferPointer(rebasing: buffer[payloadStart...]).initialize(from: source).1
            }
            if copied == nil {
                _ = UnsafeMutableBufferPointer(rebasing: buffer[payloadStart...]).initialize(from: payload)
            }
            initialized = size
        }
    }

    /// Decodes a stored value of either layout; nil when it is neither.
    public init?(encoded: [UInt8]) {
        guard let first = encoded.first else { return nil }
        if first & Self.currentMarker == 0 {
            guard encoded.count >= Self.legacyHeaderSize, MonPayload.Action(rawValue: first) != nil else { return nil }
        } else {
            guard PresenceStatus(rawValue: first & 0x7F) != nil, encoded.count >= Self.fixedHeaderSize,
                PresenceSource(rawValue: encoded[1]) != nil,
                encoded.count >= Self.fixedHeaderSize + Int(encoded[Self.fixedHeaderSize - 1])
            else { return nil }
        }
        self.encoded = encoded
    }

    private var isLegacy: Bool { encoded[0] & Self.currentMarker == 0 }

    public var status: PresenceStatus {
        isLegacy
            ? (encoded[0] == MonPayload.Action.connect.rawValue ? .online : .offline)
            : PresenceStatus(rawValue: encoded[0] & 0x7F)!
    }

    public var source: PresenceSource { isLegacy ? .mon : PresenceSource(rawValue: encoded[1])! }

    /// What an IBM status message would have said: Connect when online, Disconnect otherwise.
    public var action: MonPayload.Action { status == .online ? .connect : .disconnect }

    /// The source's time of the status (arrival time for sources without one), in nanoseconds since the epoch.
    public var time: Int64 { integer(at: isLegacy ? 1 : 2) }

    /// Sparkplug's `bdSeq` of the node's last birth; 0 elsewhere.
    public var sequence: Int64 { isLegacy ? 0 : integer(at: 10) }

    public var reason: String? {
        guard !isLegacy else { return nil }
        let length = Int(encoded[Self.fixedHeaderSize - 1])
        guard length > 0 else { return nil }
        return String(decoding: encoded[Self.fixedHeaderSize..<Self.fixedHeaderSize + length], as: UTF8.self)
    }

    public var payload: ArraySlice<UInt8> {
        encoded[(isLegacy ? Self.legacyHeaderSize : Self.fixedHeaderSize + Int(encoded[Self.fixedHeaderSize - 1]))...]
    }

    /// What the ordering rules compare.
    public var stored: StoredPresence {
        StoredPresence(source: source, status: status, time: time, sequence: sequence)
    }

    private func integer(at offset: Int) -> Int64 {
        var value: Int64 = 0
        for index in (offset..<offset + 8).reversed() { value = value << 8 | Int64(encoded[index]) }
        return value
    }
}
