/// `GET /devices?status=&type=&limit=&cursor=` (SPEC §4.2): one page of the fleet, sorted by `type/id`, and the
/// counts per status.
///
/// A page costs one pass over the devices and no sort of the fleet: the `limit` smallest paths after the cursor are
/// kept in a bounded max-heap (O(n log limit) at worst, O(n) once the heap is full and most paths lose against its
/// top), and only those are sorted. The counts come from the same pass.
public struct FleetQuery: Sendable, Equatable {
    /// Devices per page when `limit` is not given.
    public static let defaultLimit = 100
    /// Largest `limit`: bounds the work and the answer of one request (a page of 1000 is about 150 KB of JSON).
    public static let maximumLimit = 1000

    /// Only devices with this overall status; nil (the default) for all.
    public var status: DeviceState?
    /// Only devices of this type; nil (the default) for all. Also restricts `counts`.
    public var type: String?
    /// Devices per page, 1...`maximumLimit`; default `defaultLimit`.
    public var limit: Int
    /// The page starts after this `type/id` (the decoded cursor); nil (the default) for the first page.
    public var after: String?

    public init(status: DeviceState? = nil, type: String? = nil, limit: Int = defaultLimit, after: String? = nil) {
        self.status = status
        self.type = type
        self.limit = limit
        self.after = after
    }

    /// A query parameter with a value the route cannot use; `message` names the parameter.
    public struct Refusal: Error, Sendable, Equatable {
        public let parameter: String
        public let message: String
    }

    /// Reads `status`, `type`, `limit` and `cursor`; an empty value counts as absent, other parameters are ignored.
    public static func parse(_ items: [(name: String, value: String)]) -> Result<FleetQuery, Refusal> {
        var query = FleetQuery()
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
            guard let path = FleetCursor.decode(text) else {
                return .failure(
                    Refusal(
                        parameter: "cursor", message: "cursor is not one this server gave (use nextCursor as it is)"))
            }
            query.after = path
        }
        return .success(query)
    }
}

/// The cursor of `GET /devices`: the last `type/id` of the previous page in unpadded base64url, so that it needs no
/// escaping in a query string whatever bytes the device's topic levels hold.
public enum FleetCursor {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ path: String) -> String {
        let bytes = Array(path.utf8)
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

    /// The path in `cursor`, or nil when it is not base64url of a valid `type/id`.
    public static func decode(_ cursor: String) -> String? {
        var values: [UInt32] = []
        for byte in cursor.utf8 {
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt32(value))
        }
        guard values.count % 4 != 1 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < values.count {
            let count = min(4, values.count - index)
            var chunk: UInt32 = 0
            for offset in 0..<4 { chunk = chunk << 6 | (offset < count ? values[index + offset] : 0) }
            for position in 0..<(count - 1) { bytes.append(UInt8(chunk >> UInt32(16 - 8 * position) & 0xFF)) }
            index += 4
        }
        guard let path = String(validating: bytes, as: UTF8.self), DeviceKey(storedPath: path) != nil,
            encode(path) == cursor
        else { return nil }
        return path
    }
}

/// Keeps the `capacity` smallest paths offered (with a value each), in a max-heap: the top is the largest kept,
/// which is all a new path is compared with once the heap is full.
struct SmallestPaths<Value> {
    let capacity: Int
    private(set) var heap: [(path: String, value: Value)] = []

    init(capacity: Int) {
        self.capacity = capacity
        heap.reserveCapacity(capacity)
    }

    mutating func offer(_ path: String, _ value: Value) {
        if wouldKeep(path) { keep(path, value) }
    }

    /// Whether `offer` would keep `path`: one comparison once full (the common case in a large fleet).
    func wouldKeep(_ path: String) -> Bool {
        heap.count < capacity || (capacity > 0 && path < heap[0].path)
    }

    /// Keeps `path`, which `wouldKeep` accepted.
    mutating func keep(_ path: String, _ value: Value) {
        if heap.count < capacity {
            heap.append((path, value))
            siftUp(heap.count - 1)
        } else {
            heap[0] = (path, value)
            siftDown(0)
        }
    }

    /// What was kept, smallest path first.
    func sorted() -> [(path: String, value: Value)] { heap.sorted { $0.path < $1.path } }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[parent].path < heap[child].path else { return }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            var largest = left
            if left + 1 < heap.count, heap[largest].path < heap[left + 1].path { largest = left + 1 }
            guard heap[parent].path < heap[largest].path else { return }
            heap.swapAt(parent, largest)
            parent = largest
        }
    }
}

/// One page of `GET /devices`.
public struct FleetPage: Sendable {
    public struct Device: Sendable, Equatable {
        public var key: DeviceKey
        public var judgement: DeviceDirectory.Judgement
    }

    /// The devices of the page, sorted by `type/id`.
    public var devices: [Device]
    /// The cursor of the next page; nil when this page holds the last matching device.
    public var nextCursor: String?
    /// Devices per overall status, over the whole fleet or over the query's `type`; every status is present.
    public var counts: [DeviceState: Int]
    /// Devices matching every filter (`status` and `type`), on all pages.
    public var total: Int

    /// The answer's JSON: `{"devices":[{type,id,status,since,lastSeen}…],"nextCursor":…,"counts":{…},"total":n}`.
    public var json: String {
        var text = "{\"devices\":["
        text.reserveCapacity(64 + devices.count * 140)
        for (index, device) in devices.enumerated() {
            if index > 0 { text += "," }
            text += JSONText.object([
                ("type", JSONText.quote(device.key.type)), ("id", JSONText.quote(device.key.id)),
                ("status", JSONText.quote(device.judgement.state.rawValue)),
                ("since", DeviceDirectory.time(device.judgement.since)),
                ("lastSeen", DeviceDirectory.time(device.judgement.lastSeen)),
            ])
        }
        text += "],\"nextCursor\":" + (nextCursor.map(JSONText.quote) ?? "null")
        text +=
            ",\"counts\":"
            + JSONText.object(
                DeviceState.allCases.filter { $0 != .sleeping || counts[$0] != nil }.map {
                    ($0.rawValue, "\(counts[$0] ?? 0)")
                })
        return text + ",\"total\":\(total)}"
    }
}

extension DeviceDirectory {
    /// One page of the fleet: status-topic records and configured devices, each judged as `judgement(for:)` does.
    ///
    /// One pass over the status table under its lock, then one over the configured devices. A device that changes
    /// between the pass and the building of the page is shown as it is now (and dropped if it was deleted meanwhile).
    public func fleetPage(_ query: FleetQuery) -> FleetPage {
        let watched = watch.all
        let watchedPaths = Set(watched.map(\.key.path))
        let typePrefix = query.type.map { $0 + "/" }
        var counts = [0, 0, 0, 0, 0]  // DeviceState.allCases order: online, offline, expired, unknown, sleeping
        var total = 0
        var selection = SmallestPaths<Void>(capacity: query.limit + 1)
        let wanted = query.status
        let after = query.after

        func consider(_ path: String, _ state: DeviceState) {
            counts[Self.countIndex(state)] += 1
            if let wanted, state != wanted { return }
            total += 1
            // Most paths fail the first test once a page is kept; a String comparison costs as much as the rest.
            guard selection.wouldKeep(path) else { return }
            if let after, path <= after { return }
            selection.keep(path, ())
        }

        let checkWatched = !watchedPaths.isEmpty
        table.forEachStatus { path, status in
            // Configured devices are judged below, from both signals.
            if checkWatched, watchedPaths.contains(path) { return }
            if let typePrefix, !path.hasPrefix(typePrefix) { return }
            consider(path, status.state)
        }
        for info in watched {
            if let typePrefix, !info.key.path.hasPrefix(typePrefix) { continue }
            let state = Self.judge(record: table.record(for: info.key), watch: info)?.state ?? .unknown
            consider(info.key.path, state)
        }

        // One more than a page was kept: whether it exists says if there is a next page.
        var chosen = selection.sorted()
        let hasMore = chosen.count > query.limit
        if hasMore { chosen.removeLast() }
        var devices: [FleetPage.Device] = []
        devices.reserveCapacity(chosen.count)
        for (path, _) in chosen {
            guard let key = DeviceKey(storedPath: path) else { continue }
            let judgement =
                Self.judge(record: table.record(forPath: path), watch: checkWatched ? watch.info(forPath: path) : nil)
            if let judgement { devices.append(FleetPage.Device(key: key, judgement: judgement)) }
        }
        var byState: [DeviceState: Int] = [:]
        for (index, state) in DeviceState.allCases.enumerated() { byState[state] = counts[index] }
        // `sleeping` exists only where a convention reports it: listed when some device sleeps, so fleets of
        // `mon` and watched devices keep the counts they always had.
        if byState[.sleeping] == 0 { byState[.sleeping] = nil }
        return FleetPage(
            devices: devices, nextCursor: hasMore ? chosen.last.map { FleetCursor.encode($0.path) } : nil,
            counts: byState, total: total)
    }

    private static func countIndex(_ state: DeviceState) -> Int {
        switch state {
        case .online: 0
        case .offline: 1
        case .expired: 2
        case .unknown: 3
        case .sleeping: 4
        }
    }
}
