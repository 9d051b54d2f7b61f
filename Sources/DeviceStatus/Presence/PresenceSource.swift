/// Where a device's status came from: the IBM-style status topics or one of the presence conventions a
/// `[[presence]]` block subscribes to. The raw value is stored in every status record (never renumber).
public enum PresenceSource: UInt8, Sendable, CaseIterable, Hashable {
    case mon = 1
    case tasmota = 2
    case esphome = 3
    case shelly = 4
    case zigbee2mqtt = 5
    case homie = 6
    case emqx = 7
    case sparkplug = 8
    case lwt = 9

    /// The name used in the rich view, history, events and metrics: `mon` for the IBM status topics, the
    /// preset's name otherwise. (Versions before presence conventions named the status topics `status`; history
    /// written then is read back as `mon`.)
    public var name: String {
        switch self {
        case .mon: "mon"
        case .tasmota: "tasmota"
        case .esphome: "esphome"
        case .shelly: "shelly"
        case .zigbee2mqtt: "zigbee2mqtt"
        case .homie: "homie"
        case .emqx: "emqx"
        case .sparkplug: "sparkplug"
        case .lwt: "lwt"
        }
    }

    /// How messages of this source are put in order.
    public var ordering: OrderingModel {
        switch self {
        case .mon, .emqx: .timestamp
        case .sparkplug: .birthSequence
        default: .arrival
        }
    }
}

/// What a presence message says of its device.
public enum PresenceStatus: UInt8, Sendable, Equatable, CaseIterable {
    case online = 1
    case offline = 2
    /// The device said it sleeps and will be back (Homie `sleeping`, an `lwt` sleeping payload).
    case sleeping = 3

    public var state: DeviceState {
        switch self {
        case .online: .online
        case .offline: .offline
        case .sleeping: .sleeping
        }
    }
}

/// One presence message, decoded: which device, what it says, and what to keep of it. Formats end here; the
/// registry applies observations without knowing where they came from.
public struct Observation: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case set(PresenceStatus)
        /// An empty payload: what this source said of the device is withdrawn.
        case deleted
    }

    public var key: DeviceKey
    public var source: PresenceSource
    public var status: Status
    /// The source's own time in nanoseconds since the epoch (`mon` `Time`, EMQX `ts`, Sparkplug `timestamp`);
    /// nil for sources that have none (arrival time is used).
    public var sourceTime: Int64?
    /// Why, in a few words (`Connect`, `alert`, EMQX's disconnect reason); kept with the status.
    public var reason: String?
    /// What `GET /<type>/<id>` answers with and the rich view shows as `statusPayload`: the payload as received.
    public var payload: [UInt8]
    /// Sparkplug's `bdSeq` (birth/death sequence) of a node's birth or death; nil elsewhere.
    public var sequence: Int64?
    /// Also applies to every key of the same type whose id starts with this id and `/` (a Sparkplug node's
    /// death takes its devices offline).
    public var cascades: Bool
    /// An IBM organisation learned from the message (the `d:<org>:…` client id of a `mon` payload).
    public var organization: String?

    public init(
        key: DeviceKey, source: PresenceSource, status: Status, sourceTime: Int64? = nil, reason: String? = nil,
        payload: [UInt8], sequence: Int64? = nil, cascades: Bool = false, organization: String? = nil
    ) {
        self.key = key
        self.source = source
        self.status = status
        self.sourceTime = sourceTime
        self.reason = reason
        self.payload = payload
        self.sequence = sequence
        self.cascades = cascades
        self.organization = organization
    }
}

/// What a decoder made of one message.
public enum Decoded: Sendable, Equatable {
    case observation(Observation)
    /// Not a valid message of the convention: counted, logged (rate-limited) and skipped.
    case malformed(String)
    /// Valid but to be ignored by a rule of the convention; the label is the metrics outcome
    /// (e.g. `client_id_reused`).
    case ignored(String)
}
