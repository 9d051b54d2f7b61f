import MQTT

/// The presence conventions a `[[presence]]` block can name (`preset = "…"`).
public enum PresencePreset: String, Sendable, CaseIterable {
    case tasmota, esphome, shelly, zigbee2mqtt, homie, emqx, sparkplug, lwt

    public var source: PresenceSource {
        switch self {
        case .tasmota: .tasmota
        case .esphome: .esphome
        case .shelly: .shelly
        case .zigbee2mqtt: .zigbee2mqtt
        case .homie: .homie
        case .emqx: .emqx
        case .sparkplug: .sparkplug
        case .lwt: .lwt
        }
    }

    /// The first topic level(s) by default; nil for conventions without a prefix (`prefix` is then an error).
    public var defaultPrefix: String? {
        switch self {
        case .tasmota: "tele"
        case .esphome, .lwt: nil
        case .shelly: "shellies"
        case .zigbee2mqtt: "zigbee2mqtt"
        case .homie: "homie"
        case .emqx: "$SYS/brokers"
        case .sparkplug: "spBv1.0"
        }
    }
}

/// One `[[presence]]` block, validated.
public struct PresenceSettings: Sendable, Equatable {
    public var preset: PresencePreset
    /// `type`, default the preset's name (Sparkplug: the group id of each message).
    public var type: String?
    /// `prefix`, default `preset.defaultPrefix`.
    public var prefix: String?
    /// `lwt` only: `topic` (required), a template with `{id}` for one whole level.
    public var topic: String
    /// `lwt` only: payloads meaning online, offline, sleeping (exact bytes).
    public var online: [String]
    public var offline: [String]
    public var sleeping: [String]
    /// `lwt` only: when set, the payload is a JSON object and this member holds the value.
    public var field: String

    public init(
        preset: PresencePreset, type: String? = nil, prefix: String? = nil, topic: String = "",
        online: [String] = [], offline: [String] = [], sleeping: [String] = [], field: String = ""
    ) {
        self.preset = preset
        self.type = type
        self.prefix = prefix
        self.topic = topic
        self.online = online
        self.offline = offline
        self.sleeping = sleeping
        self.field = field
    }

    /// The prefix in effect.
    public var effectivePrefix: String { prefix ?? preset.defaultPrefix ?? "" }

    /// The device type the block's keys get; nil for Sparkplug without `type` (the group id then).
    public var effectiveType: String? {
        if let type { return type }
        return preset == .sparkplug ? nil : preset.rawValue
    }

    /// The decoder this block feeds (the settings were validated by the config loader).
    public func makeDecoder() -> any PresenceDecoder {
        let prefix = effectivePrefix
        let type = effectiveType ?? preset.rawValue
        switch preset {
        case .tasmota:
            return LevelTemplateDecoder(
                source: .tasmota, type: type, template: prefix + "/{id}/LWT",
                payloads: [("Online", .online, nil), ("Offline", .offline, nil)])
        case .esphome:
            return LevelTemplateDecoder(
                source: .esphome, type: type, template: "{id}/status",
                payloads: [("online", .online, nil), ("offline", .offline, nil)])
        case .shelly:
            return LevelTemplateDecoder(
                source: .shelly, type: type, template: prefix + "/{id}/online",
                payloads: [("true", .online, nil), ("false", .offline, nil)])
        case .zigbee2mqtt:
            return LevelTemplateDecoder(
                source: .zigbee2mqtt, type: type, template: prefix + "/{name}/availability",
                payloads: [("online", .online, nil), ("offline", .offline, nil)], jsonField: "state",
                jsonOptional: true)
        case .homie:
            var payloads: [(String, PresenceStatus, String?)] = [
                ("ready", .online, nil), ("init", .online, "init"), ("disconnected", .offline, nil),
                ("lost", .offline, nil), ("sleeping", .sleeping, nil),
            ]
            // `alert` is Homie 3/4's; Homie 5 (prefix `…/5`) dropped it.
            if !prefix.hasSuffix("/5") { payloads.append(("alert", .online, "alert")) }
            return LevelTemplateDecoder(
                source: .homie, type: type, template: prefix + "/{id}/$state", payloads: payloads)
        case .emqx:
            return EMQXDecoder(type: type, prefix: prefix)
        case .sparkplug:
            return SparkplugDecoder(type: self.type, prefix: prefix)
        case .lwt:
            return LevelTemplateDecoder(
                source: .lwt, type: type, template: topic,
                payloads: online.map { ($0, .online, nil) } + offline.map { ($0, .offline, nil) }
                    + sleeping.map { ($0, .sleeping, nil) }, jsonField: field.isEmpty ? nil : field)
        }
    }
}
