/// The order of `GET /devices`.
public enum FleetSort: String, Sendable, CaseIterable {
    /// `type/id` ascending (bytewise); the default.
    case key
    /// Last seen, newest first; devices never seen last.
    case lastSeen
    /// Since (the last status change), newest first.
    case since

    var order: FleetIndex.Order {
        switch self {
        case .key: .key
        case .lastSeen: .lastSeen
        case .since: .since
        }
    }
}

/// `GET /devices?status=&type=&q=&sort=&limit=&cursor=` what one page asks for.
public struct FleetQuery: Sendable, Equatable {
    /// Devices per page when `limit` is not given.
    public static let defaultLimit = 100
    /// Largest `limit`: bounds the work and the answer of one request (a page of 1000 is about 150 KB of JSON).
    public static let maximumLimit = 1000
    /// Longest `q`, in characters (Unicode scalars, as JSON Schema's `maxLength` counts): a search is for a part of a
    /// key, and a topic level longer than this is unusual.
    public static let maximumSearchLength = 256
    /// Every parameter the route knows.
    public static let parameters = ["status", "type", "q", "sort", "limit", "cursor"]

    /// Only devices with this overall status; nil (the default) for all.
    public var status: DeviceState?
    /// Only devices of this type; nil (the default) for all. Also restricts `counts`.
    public var type: String?
    /// Only devices whose `type/id` contains this text, ASCII letters compared without case; nil (the default) for all.
    public var search: String?
    /// The order of the pages; default `key`.
    public var sort: FleetSort
    /// Devices per page, 1...`maximumLimit`; default `defaultLimit`.
    public var limit: Int
    /// The page starts after this device (the decoded cursor); nil (the default) for the first page.
    public var after: FleetCursor?

    public init(
        status: DeviceState? = nil, type: String? = nil, search: String? = nil, sort: FleetSort = .key,
        limit: Int = defaultLimit, after: FleetCursor? = nil
    ) {
        self.status = status
        self.type = type
        self.search = search
        self.sort = sort
        self.limit = limit
        self.after = after
    }

    /// A query parameter the route cannot use; `message` names the parameter.
    public struct Refusal: Error, Sendable, Equatable {
        public let parameter: String
        public let message: String
    }

    /// Reads the parameters; an empty value counts as absent. An unknown parameter, one given twice, or a bad value is
    /// refused, naming it.
    public static func parse(_ items: [(name: String, value: String)]) -> Result<FleetQuery, Refusal> {
        var query = FleetQuery()
        var seen = Set<String>()
        for item in items {
            guard parameters.contains(item.name) else {
                return .failure(
                    Refusal(
                        parameter: item.name,
                        message: "unknown parameter \"\(item.name)\" (known: \(parameters.joined(separator: ", ")))"))
            }
            guard seen.insert(item.name).inserted else {
                return .failure(Refusal(parameter: item.name, message: "\(item.name) is given more than once"))
            }
        }
        func value(_ name: String) -> String? {
            items.first { $0.name == name }.map(\.value).flatMap { $0.isEmpty ? nil : $0 }
        }
        if let text = value("status") {
            guard let status = DeviceState(rawValue: text) else {
                let known = DeviceState.allCases.map(\.rawValue).joined(separator: ", ")
                return .failure(
                    Refusal(parameter: "status", message: "status must be one of \(known), not \"\(text)\""))
            }
            query.status = status
        }
        if let text = value("type") {
            guard !text.contains("/") else {
                return .failure(Refusal(parameter: "type", message: "type must not contain \"/\""))
            }
            query.type = text
        }
        if let text = value("q") {
            guard text.unicodeScalars.count <= maximumSearchLength else {
                return .failure(
                    Refusal(parameter: "q", message: "q must be at most \(maximumSearchLength) characters long"))
            }
            query.search = text
        }
        if let text = value("sort") {
            guard let sort = FleetSort(rawValue: text) else {
                let known = FleetSort.allCases.map(\.rawValue).joined(separator: ", ")
                return .failure(Refusal(parameter: "sort", message: "sort must be one of \(known), not \"\(text)\""))
            }
            query.sort = sort
        }
        if let text = value("limit") {
            guard let limit = Int(text), (1...maximumLimit).contains(limit) else {
                return .failure(
                    Refusal(
                        parameter: "limit",
                        message: "limit must be an integer from 1 to \(maximumLimit), not \"\(text)\""))
            }
            query.limit = limit
        }
        if let text = value("cursor") {
            guard let cursor = FleetCursor.decode(text, sort: query.sort) else {
                return .failure(
                    Refusal(
                        parameter: "cursor",
                        message: "cursor is not one this server gave for sort=\(query.sort.rawValue) "
                            + "(use nextCursor as it is, with the same sort)"))
            }
            query.after = cursor
        }
        return .success(query)
    }
}

/// Where the next page of `GET /devices` starts: after the device at `path`, which had `time` in a time order.
///
/// On the wire it is unpadded base64url, so that it needs no escaping in a query string whatever bytes the device's
/// topic levels hold: of `type/id` for the key order, of `/<sort>/<nanoseconds>/type/id` for the time orders (a key
/// never starts with `/`, so the two cannot be mistaken for each other).
public struct FleetCursor: Sendable, Equatable {
    public var path: String
    /// Wall-clock nanoseconds in the page's time order; nil in the key order or for a device never seen.
    public var time: Int64?

    public init(path: String, time: Int64? = nil) {
        self.path = path
        self.time = time
    }

    /// The cursor's text for a page in `sort`.
    public func encoded(sort: FleetSort) -> String {
        switch sort {
        case .key: return Self.encode(path)
        case .lastSeen, .since: return Self.encode("/\(sort.rawValue)/\(time ?? FleetIndex.noTime)/" + path)
        }
    }

    /// The cursor in `text`, or nil when it is not one `encoded(sort:)` gave for `sort`.
    public static func decode(_ text: String, sort: FleetSort) -> FleetCursor? {
        guard let plain = decode(text) else { return nil }
        switch sort {
        case .key:
            guard !plain.hasPrefix("/"), isPath(plain) else { return nil }
            return FleetCursor(path: plain)
        case .lastSeen, .since:
            let prefix = "/\(sort.rawValue)/"
            guard plain.hasPrefix(prefix) else { return nil }
            let rest = plain.dropFirst(prefix.count)
            guard let (head, tail) = rest.splitAtFirstSlash, let time = Int64(head) else { return nil }
            let path = String(tail)
            guard isPath(path) else { return nil }
            return FleetCursor(path: path, time: time == FleetIndex.noTime ? nil : time)
        }
    }

    /// A device key: a non-empty type, `/`, a non-empty id.
    private static func isPath(_ text: String) -> Bool {
        guard let (type, id) = text.splitAtFirstSlash else { return false }
        return !type.isEmpty && !id.isEmpty
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// `text` in unpadded base64url.
    public static func encode(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var chunk: UInt32 = 0
            for offset in 0..<3 { chunk = chunk << 8 | UInt32(offset < count ? bytes[index + offset] : 0) }
            for position in 0...count { out.append(alphabet[Int(chunk >> UInt32(18 - 6 * position) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The text in unpadded base64url `cursor`, or nil when it is not that (or not UTF-8, or not canonical).
    public static func decode(_ cursor: String) -> String? {
        var values: [UInt32] = []
        for byte in cursor.utf8 {
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt32(value))
        }
        guard !values.isEmpty, values.count % 4 != 1 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < values.count {
            let count = min(4, values.count - index)
            var chunk: UInt32 = 0
            for offset in 0..<4 { chunk = chunk << 6 | (offset < count ? values[index + offset] : 0) }
            for position in 0..<(count - 1) { bytes.append(UInt8(chunk >> UInt32(16 - 8 * position) & 0xFF)) }
            index += 4
        }
        guard let text = String(validating: bytes, as: UTF8.self), encode(text) == cursor else { return nil }
        return text
    }
}

/// One page of `GET /devices`.
public struct FleetPage: Sendable {
    public struct Device: Sendable, Equatable {
        /// `type/id`.
        public var path: String
        public var entry: FleetEntry

        public var type: String { String(FleetIndex.type(of: path)) }
        public var id: String { String(path.splitAtFirstSlash?.tail ?? "") }
    }

    /// The devices of the page, in the query's order.
    public var devices: [Device]
    /// The cursor of the next page; nil when this page holds the last matching device.
    public var nextCursor: String?
    /// Devices per overall status, over the whole fleet or over the query's `type`; every status is present.
    public var counts: [DeviceState: Int]
    /// Devices matching every filter (`status`, `type`, `q`), on all pages.
    public var total: Int
    /// The device count of every type in the fleet (whatever the filters), by type name in key order.
    public var types: [(type: String, count: Int)]

    /// The answer's JSON: `{"devices":[{type,id,status,source,since,lastSeen}…],"nextCursor":…,"counts":{…},
    /// "total":n,"types":{…}}`.
    public var json: String {
        var text = "{\"devices\":["
        text.reserveCapacity(96 + devices.count * 160 + types.count * 24)
        for (index, device) in devices.enumerated() {
            if index > 0 { text += "," }
            text += JSONText.object([
                ("type", JSONText.quote(device.type)), ("id", JSONText.quote(device.id)),
                ("status", JSONText.quote(device.entry.state.rawValue)),
                ("source", device.entry.source.map(JSONText.quote) ?? "null"),
                ("since", DeviceDirectory.time(device.entry.since)),
                ("lastSeen", DeviceDirectory.time(device.entry.lastSeen)),
            ])
        }
        text += "],\"nextCursor\":" + (nextCursor.map(JSONText.quote) ?? "null")
        // `sleeping` exists only where a convention reports it: listed when some device sleeps, so fleets of `mon` and
        // watched devices keep the counts they always had.
        text +=
            ",\"counts\":"
            + JSONText.object(
                DeviceState.allCases.filter { $0 != .sleeping || (counts[$0] ?? 0) > 0 }.map {
                    ($0.rawValue, "\(counts[$0] ?? 0)")
                })
        text += ",\"total\":\(total)"
        text += ",\"types\":" + JSONText.object(types.map { ($0.type, "\($0.count)") })
        return text + "}"
    }
}
