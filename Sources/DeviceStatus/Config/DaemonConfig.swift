import HTTP1
import Logging
import MQTT

/// Everything `config.toml` can say (docs/behaviour.md §2), with every default stated. `ConfigLoader.defaults`
/// is `DaemonConfig()`; `config.toml.example` documents the same values.
public struct DaemonConfig: Sendable, Equatable {
    /// `[mqtt]`: the broker connection and the topics devstatusd publishes under.
    public var mqtt: MQTTSettings
    /// `[http]`: the REST server.
    public var http: HTTPSettings
    /// `[status]`: IBM-style status topics.
    public var status: StatusSettings
    /// `[storage]`: where LevelDB lives.
    public var storage: StorageSettings
    /// `[operations]`: the pending-operation queue.
    public var operations: OperationSettings
    /// `[device_*]` and `[agent_*]` sections, in file order. Default none.
    public var watched: [WatchedDevice]
    /// `[[presence]]` blocks, in file order. Default none.
    public var presence: [PresenceSettings] = []
    /// `[log]`: log level and access log; both applied again by a reload.
    public var log: LogSettings = .init()
    /// `[availability]`: retained availability topics and Home Assistant discovery; applied again by a reload.
    public var availability: AvailabilitySettings = .init()

    public init(
        mqtt: MQTTSettings = .init(), http: HTTPSettings = .init(), status: StatusSettings = .init(),
        storage: StorageSettings = .init(), operations: OperationSettings = .init(), watched: [WatchedDevice] = []
    ) {
        self.mqtt = mqtt
        self.http = http
        self.status = status
        self.storage = storage
        self.operations = operations
        self.watched = watched
    }
}

/// `[mqtt]`.
public struct MQTTSettings: Sendable, Equatable {
    /// `serverAddress`, default `"tcp://localhost:1883"`; a valid ``BrokerURL``
    /// (`tcp://`/`mqtt://` plain, `ssl://`/`mqtts://` TLS). `--broker` overrides it.
    public var serverAddress: String
    /// `user`, default `""` (anonymous).
    public var user: String
    /// `password`, default `""`; only sent with a user.
    public var password: String
    /// `clientid` (also accepted: `clientId`), default `"devstatusd"`. Two clients with one id
    /// disconnect each other, so give each instance its own.
    public var clientid: String
    /// `baseTopic`, default `"home/monitoring"`: the prefix B of everything devstatusd publishes (docs/behaviour.md §5).
    public var baseTopic: String
    /// `keepAlive`, default 60 seconds, 5...65535.
    public var keepAlive: Int
    /// `protocol`, default `"auto"`: MQTT 5, or 3.1.1 once a broker refuses 5; `"5"` or `"3.1.1"` to insist
    /// (`"311"` and `"5.0"` are accepted too).
    public var protocolVersion: MQTTProtocolVersion
    /// `cafile`, default `""`: the system CA directory. A PEM file that must exist and be readable.
    public var cafile: String
    /// `certfile`, default `""`: no client certificate. Needs `keyfile`.
    public var certfile: String
    /// `keyfile`, default `""`. Needs `certfile`.
    public var keyfile: String

    public init(
        serverAddress: String = "tcp://localhost:1883", user: String = "", password: String = "",
        clientid: String = "devstatusd", baseTopic: String = "home/monitoring", keepAlive: Int = 60,
        protocolVersion: MQTTProtocolVersion = .auto, cafile: String = "", certfile: String = "", keyfile: String = ""
    ) {
        self.serverAddress = serverAddress
        self.user = user
        self.password = password
        self.clientid = clientid
        self.baseTopic = baseTopic
        self.keepAlive = keepAlive
        self.protocolVersion = protocolVersion
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile
    }
}

/// `[http]`. Keys map 1:1 to `HTTPServer.Configuration`; durations may be written as integer or
/// fractional seconds.
@dynamicMemberLookup
public struct HTTPSettings: Sendable, Equatable {
    /// The server's keys — `bind`, `port`, `threads`, `maxConnections`, `headerTimeout`, `idleTimeout`,
    /// `writeTimeout`, `maxRequestLine`, `maxHeaderBytes`, `maxHeaders`, `maxBody` — with the defaults
    /// `HTTPServer.Configuration` states; read and set them as `http.port` and so on.
    public var server: HTTPServer.Configuration
    /// `token`, default `""`: no token, so write routes are accepted from loopback peers only (docs/behaviour.md §4.4).
    /// After loading, holds the token read from `tokenFile` when that is set.
    public var token: String
    /// `tokenFile`, default `""`: a file whose content (whitespace trimmed) is the token; keeps the
    /// secret out of a world-readable config. Exclusive with `token`.
    public var tokenFile: String

    public init(
        server: HTTPServer.Configuration = HTTPServer.Configuration(), token: String = "", tokenFile: String = ""
    ) {
        self.server = server
        self.token = token
        self.tokenFile = tokenFile
    }

    public subscript<Value>(dynamicMember keyPath: WritableKeyPath<HTTPServer.Configuration, Value>) -> Value {
        get { server[keyPath: keyPath] }
        set { server[keyPath: keyPath] = newValue }
    }
}

/// `[status]`.
public struct StatusSettings: Sendable, Equatable {
    /// `topics`, default `["iot-2/type/+/id/+/mon"]`: IBM-style status topics. Each must be a valid
    /// filter containing the levels `type/+` and `id/+`, whose `+` levels give the device's type and
    /// id (see `StatusTopicPattern`). `[]` subscribes to no status topic (IotMonitor-only use).
    public var topics: [TopicFilter]
    /// `org`, default `""`: the org in never-connected answers (`d:<org>:<type>:<id>`); empty means
    /// learned from received ClientIDs.
    public var org: String
    /// `maxClockSkew`, default 3600 (0 to 315,360,000): seconds a message's `Time` may lie ahead of the
    /// daemon's clock; a later one is malformed (see `ClockSkewLimit`).
    public var maxClockSkew: Int

    public init(
        topics: [TopicFilter] = StatusSettings.defaultTopics, org: String = "",
        maxClockSkew: Int = ClockSkewLimit.default.seconds
    ) {
        self.topics = topics
        self.org = org
        self.maxClockSkew = maxClockSkew
    }

    /// `["iot-2/type/+/id/+/mon"]`, the IBM Watson IoT status topic.
    public static var defaultTopics: [TopicFilter] {
        // Known valid; checked by ConfigTests.
        [try! TopicFilter("iot-2/type/+/id/+/mon")]
    }
}

/// `[storage]`.
public struct StorageSettings: Sendable, Equatable {
    /// `dataDir`, default `"./data"` (relative to the working directory). `$STATE_DIRECTORY` wins when
    /// systemd sets it, and `--data-dir` wins over both.
    public var dataDir: String

    public init(dataDir: String = "./data") {
        self.dataDir = dataDir
    }
}

/// `[operations]`.
public struct OperationSettings: Sendable, Equatable {
    /// `maxQueuedPerDevice`, default 100: more QUEUED operations for one device are refused with 429,
    /// so an offline device cannot grow the store without bound.
    public var maxQueuedPerDevice: Int
    /// `maxAttempts`, default 3: failed attempts before an operation is FAILED (docs/behaviour.md §4.3).
    public var maxAttempts: Int

    public init(maxQueuedPerDevice: Int = 100, maxAttempts: Int = 3) {
        self.maxQueuedPerDevice = maxQueuedPerDevice
        self.maxAttempts = maxAttempts
    }
}

/// A `[device_<name>]` or `[agent_<name>]` section: a device judged by a watchdog on its topics.
public struct WatchedDevice: Sendable, Equatable {
    /// Which section prefix declared it.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// `[device_<name>]`.
        case device
        /// `[agent_<name>]`: a device with a process devstatusd keeps running.
        case agent
    }

    /// The section suffix, e.g. `"esp04"`: `[A-Za-z0-9_.-]+`, unique across devices and agents
    /// (it names the `B/expire/<name>` and `B/status/<name>` topics).
    public var name: String
    public var kind: Kind
    /// `type`, default `"device"` or `"agent"` (the kind); set it, with `id`, to join a status-topic device.
    public var type: String
    /// `id`, default the name.
    public var id: String
    /// `watchTimeOut`, default 30 seconds (IotMonitor's), 1...31536000.
    public var watchTimeOut: Int
    /// `helloTopic`, default none: a topic name (no wildcards) whose messages trigger state restoration.
    public var helloTopic: String?
    /// `watchTopics`, default none: a filter or an array of filters; non-retained messages on them are activity.
    public var watchTopics: [TopicFilter]
    /// `stateTopics`, default none: a filter or an array of filters whose messages are stored and restored.
    public var stateTopics: [TopicFilter]
    /// `exec`, required for agents and not allowed for devices: a `/bin/sh -c` command line.
    public var exec: String?
    /// `restartOnExpire`, default `false`; agents only: also restart the agent when its watchdog expires.
    public var restartOnExpire: Bool

    public init(
        name: String, kind: Kind, type: String? = nil, id: String? = nil,
        watchTimeOut: Int = WatchedDevice.defaultWatchTimeOut,
        helloTopic: String? = nil, watchTopics: [TopicFilter] = [], stateTopics: [TopicFilter] = [],
        exec: String? = nil,
        restartOnExpire: Bool = false
    ) {
        self.name = name
        self.kind = kind
        self.type = type ?? kind.rawValue
        self.id = id ?? name
        self.watchTimeOut = watchTimeOut
        self.helloTopic = helloTopic
        self.watchTopics = watchTopics
        self.stateTopics = stateTopics
        self.exec = exec
        self.restartOnExpire = restartOnExpire
    }

    /// IotMonitor's default watchdog timeout, 30 seconds.
    public static let defaultWatchTimeOut = 30

    /// The section name, e.g. `device_esp04`.
    public var section: String { "\(kind.rawValue)_\(name)" }
}

/// `[log]`.
public struct LogSettings: Sendable, Equatable {
    /// `level`, default `"info"`: trace, debug, info, notice, warning or error. `--log-level` wins over it.
    public var level: Logger.Level = .info
    /// `access`, default false: one line per HTTP response (method, route, status, duration) at info.
    public var access: Bool = false

    public init(level: Logger.Level = .info, access: Bool = false) {
        self.level = level
        self.access = access
    }

    /// The levels a user may name (`critical` is the daemon's own).
    public static func level(named name: String) -> Logger.Level? {
        guard let level = Logger.Level(rawValue: name), level != .critical else { return nil }
        return level
    }
}

/// `[availability]`: what devstatusd publishes per device for other tools (Home Assistant among them).
public struct AvailabilitySettings: Sendable, Equatable {
    /// `publish`, default false: a retained `B/availability/<type>/<id>` (`online` | `offline`) per device.
    public var publish: Bool
    /// `homeassistant`, default false: a Home Assistant MQTT discovery config per device (implies `publish`).
    public var homeassistant: Bool
    /// `discoveryPrefix`, default `"homeassistant"` (Home Assistant's own default): a topic name without
    /// wildcards, not starting with `$`, not ending with `/`.
    public var discoveryPrefix: String
    /// `types`, default `[]` (every type): the device types both publications are limited to.
    public var types: [String]

    public init(
        publish: Bool = false, homeassistant: Bool = false, discoveryPrefix: String = "homeassistant",
        types: [String] = []
    ) {
        self.publish = publish
        self.homeassistant = homeassistant
        self.discoveryPrefix = discoveryPrefix
        self.types = types
    }

    /// Whether availability topics are published (`publish`, or `homeassistant`, which needs them).
    public var publishesAvailability: Bool { publish || homeassistant }

    /// Whether devices of `type` get the publications.
    public func selects(type: String) -> Bool { types.isEmpty || types.contains(type) }
}
