/// What `B/availability/<type>/<id>` says: a device is `online`, or it is not (`offline`, `sleeping`, `expired`,
/// and `unknown`, a watched device not heard from yet, all read `offline`).
public enum AvailabilityValue: UInt8, Sendable, Equatable {
    case online = 1
    case offline = 2

    public init(_ state: DeviceState) {
        self = state == .online ? .online : .offline
    }

    public var payload: String {
        switch self {
        case .online: "online"
        case .offline: "offline"
        }
    }
}

/// One retained publication: a value, or an empty payload that clears the topic.
public struct AvailabilityPublication: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// `B/availability/<type>/<id>` set to `online` or `offline`.
        case availability
        /// The Home Assistant discovery config.
        case discovery
        /// A topic cleared (empty retained payload): the device is gone, no longer selected, or its topic moved.
        case cleared
    }

    public let kind: Kind
    public let topic: String
    public let payload: [UInt8]

    public var description: String { "\(kind.rawValue) \(topic) \(String(decoding: payload, as: UTF8.self))" }
}

/// What devstatusd last got acknowledged by the broker for one device: the topics it holds retained there, the
/// value, and a fingerprint of the discovery config. Kept in the store (`a/<type>/<id>`), so a restart republishes
/// only what differs.
public struct AvailabilityRecord: Sendable, Equatable {
    public var availabilityTopic: String
    public var value: AvailabilityValue
    /// Empty when no discovery config is published.
    public var discoveryTopic: String
    /// FNV-1a of the discovery payload; 0 without one.
    public var discoveryHash: UInt64

    public init(availabilityTopic: String, value: AvailabilityValue, discoveryTopic: String, discoveryHash: UInt64) {
        self.availabilityTopic = availabilityTopic
        self.value = value
        self.discoveryTopic = discoveryTopic
        self.discoveryHash = discoveryHash
    }

    /// The store's key prefix.
    static let prefix: [UInt8] = Array("a/".utf8)
    static func key(path: String) -> [UInt8] { prefix + Array(path.utf8) }

    /// Version 1: `[1][value][u16 length][availability topic][u16 length][discovery topic][u64 hash]`, big-endian.
    var encoded: [UInt8] {
        var bytes: [UInt8] = [1, value.rawValue]
        for text in [availabilityTopic, discoveryTopic] {
            let utf8 = Array(text.utf8)
            bytes += [UInt8(utf8.count >> 8 & 0xFF), UInt8(utf8.count & 0xFF)] + utf8
        }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(discoveryHash >> UInt64(shift) & 0xFF)) }
        return bytes
    }

    /// nil for bytes this version did not write.
    init?(encoded bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        guard bytes.count >= 2 + 2 + 2 + 8, bytes[0] == 1, let value = AvailabilityValue(rawValue: bytes[1]) else {
            return nil
        }
        var offset = 2
        var texts: [String] = []
        for _ in 0..<2 {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            guard offset + length <= bytes.count else { return nil }
            texts.append(String(decoding: bytes[offset..<offset + length], as: UTF8.self))
            offset += length
        }
        guard offset + 8 == bytes.count else { return nil }
        var hash: UInt64 = 0
        for byte in bytes[offset...] { hash = hash << 8 | UInt64(byte) }
        self.init(availabilityTopic: texts[0], value: value, discoveryTopic: texts[1], discoveryHash: hash)
    }
}

/// The pure rules of `[availability]`: which topics a device should hold, and what to publish to get there from
/// what the broker holds now.
public struct AvailabilityPlan: Sendable, Equatable {
    public var settings: AvailabilitySettings
    /// `[mqtt] baseTopic`.
    public var baseTopic: String

    public init(settings: AvailabilitySettings, baseTopic: String) {
        self.settings = settings
        self.baseTopic = baseTopic
    }

    /// Whether anything is published at all.
    public var isActive: Bool { settings.publishesAvailability }

    public func availabilityTopic(_ key: DeviceKey) -> String { baseTopic + "/availability/" + key.path }

    /// What the device should hold: nil when it is gone (`state` nil), not of a selected type, or nothing is
    /// published.
    public func desired(_ key: DeviceKey, state: DeviceState?) -> AvailabilityRecord? {
        guard let state, isActive, settings.selects(type: key.type) else { return nil }
        let topic = availabilityTopic(key)
        guard settings.homeassistant else {
            return AvailabilityRecord(
                availabilityTopic: topic, value: AvailabilityValue(state), discoveryTopic: "", discoveryHash: 0)
        }
        let discovery = HomeAssistantDiscovery.config(key: key, stateTopic: topic, baseTopic: baseTopic)
        return AvailabilityRecord(
            availabilityTopic: topic, value: AvailabilityValue(state),
            discoveryTopic: HomeAssistantDiscovery.topic(prefix: settings.discoveryPrefix, key: key),
            discoveryHash: fnv1a(discovery))
    }

    /// The publications that take the broker from `held` to `target`, in order: topics that are no longer wanted
    /// cleared first, then the discovery config (so Home Assistant knows the entity before its state), then the
    /// value. Empty when the broker holds the target already.
    public static func publications(
        from held: AvailabilityRecord?, to target: AvailabilityRecord?, key: DeviceKey, baseTopic: String
    ) -> [AvailabilityPublication] {
        var result: [AvailabilityPublication] = []
        if let held {
            if held.availabilityTopic != target?.availabilityTopic {
                result.append(.init(kind: .cleared, topic: held.availabilityTopic, payload: []))
            }
            if !held.discoveryTopic.isEmpty, held.discoveryTopic != target?.discoveryTopic {
                result.append(.init(kind: .cleared, topic: held.discoveryTopic, payload: []))
            }
        }
        guard let target else { return result }
        if !target.discoveryTopic.isEmpty,
            held?.discoveryTopic != target.discoveryTopic || held?.discoveryHash != target.discoveryHash
        {
            let config = HomeAssistantDiscovery.config(
                key: key, stateTopic: target.availabilityTopic, baseTopic: baseTopic)
            result.append(.init(kind: .discovery, topic: target.discoveryTopic, payload: Array(config.utf8)))
        }
        if held?.availabilityTopic != target.availabilityTopic || held?.value != target.value {
            result.append(
                .init(kind: .availability, topic: target.availabilityTopic, payload: Array(target.value.payload.utf8)))
        }
        return result
    }
}

/// Home Assistant MQTT discovery: one `binary_sensor` of device class `connectivity` per device, each its own Home
/// Assistant device.
public enum HomeAssistantDiscovery {
    /// `<prefix>/binary_sensor/<object id>/config`.
    public static func topic(prefix: String, key: DeviceKey) -> String {
        prefix + "/binary_sensor/" + objectID(key) + "/config"
    }

    /// `devstatusd_<type>_<id>`, safe for a discovery topic level, which Home Assistant limits to
    /// `[a-zA-Z0-9_-]`: every other byte (the `/` of Zigbee2MQTT names and Sparkplug `node/device` ids, spaces, dots,
    /// non-ASCII letters) becomes `_`. Then two keys could meet in one object id (`room/lamp` and `room lamp`; or
    /// type `a_b` id `c` and type `a` id `b_c`): so when any byte was replaced, or the type contains `_`, 16 hex
    /// digits of a hash (FNV-1a 64) of the exact `type/id` are appended. Also the entity's `unique_id`.
    public static func objectID(_ key: DeviceKey) -> String {
        let type = Array(key.type.utf8)
        let id = Array(key.id.utf8)
        var bytes = Array("devstatusd_".utf8)
        var replaced = type.contains(UInt8(ascii: "_"))
        for (index, part) in [type, id].enumerated() {
            if index == 1 { bytes.append(UInt8(ascii: "_")) }
            for byte in part {
                if isSafe(byte) {
                    bytes.append(byte)
                } else {
                    bytes.append(UInt8(ascii: "_"))
                    replaced = true
                }
            }
        }
        var text = String(decoding: bytes, as: UTF8.self)
        if replaced {
            let hex = String(fnv1a(key.path), radix: 16)
            text += "_" + String(repeating: "0", count: 16 - hex.count) + hex
        }
        return text
    }

    private static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    /// The discovery config (JSON, full key names, members in a fixed order so that its hash is stable):
    /// the binary sensor reads `stateTopic` (`online` on, `offline` off) and is available while `B/daemon` says
    /// `online` (the daemon's Last Will and clean stop say `offline`). `name` is null: the entity is named after
    /// its device, `type/id`.
    public static func config(key: DeviceKey, stateTopic: String, baseTopic: String) -> String {
        let id = objectID(key)
        return JSONText.object([
            ("name", "null"),
            ("unique_id", JSONText.quote(id)),
            ("device_class", JSONText.quote("connectivity")),
            ("state_topic", JSONText.quote(stateTopic)),
            ("payload_on", JSONText.quote(AvailabilityValue.online.payload)),
            ("payload_off", JSONText.quote(AvailabilityValue.offline.payload)),
            ("availability_topic", JSONText.quote(baseTopic + "/daemon")),
            ("payload_available", JSONText.quote("online")),
            ("payload_not_available", JSONText.quote("offline")),
            ("qos", "1"),
            (
                "device",
                JSONText.object([
                    ("identifiers", "[" + JSONText.quote(id) + "]"),
                    ("name", JSONText.quote(key.path)),
                    ("model", JSONText.quote(key.type)),
                ])
            ),
            (
                "origin",
                JSONText.object([
                    ("name", JSONText.quote("devstatusd")),
                    ("sw_version", JSONText.quote(DeviceStatusVersion.string)),
                ])
            ),
        ])
    }
}

/// FNV-1a, 64 bits: a stable fingerprint (Swift's `Hasher` is seeded per process).
func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash
}
