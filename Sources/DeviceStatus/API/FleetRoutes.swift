import HTTP1

/// The fleet routes of SPEC §4.2:
/// - `GET /devices?status=&type=&limit=&cursor=` → `{"devices":[{type,id,status,since,lastSeen}…],
///   "nextCursor":"…"|null,"counts":{"online":n,"offline":n,"expired":n,"unknown":n},"total":n}`, sorted by
///   `type/id`; `limit` default 100, at most 1000; 400 naming the parameter at fault (see `FleetQuery`);
/// - `GET /devices/<type>/<id>/history?limit=` → `{"type","id","transitions":[{time,from,to,source,reason}…]}`,
///   newest first, `limit` default and maximum 100; 404 when the device is neither known, configured, nor has a
///   stored transition;
/// - `GET /events` → Server-Sent Events of status transitions (see `StatusEventStream`).
///
/// Every handler answers from snapshots and none awaits an actor; the list, which walks the whole table, is
/// computed off the event loop (`HTTPReply.offLoop`).
public struct FleetRoutes: Sendable {
    let directory: DeviceDirectory
    let history: HistoryLog?
    let events: StatusEventStream?

    /// Without `history` or `events`, their routes are not registered.
    public init(directory: DeviceDirectory, history: HistoryLog? = nil, events: StatusEventStream? = nil) {
        self.directory = directory
        self.history = history
        self.events = events
    }

    public func register(in router: inout Router) {
        let directory = directory
        router.get("devices") { request, _ in
            switch FleetQuery.parse(request.query) {
            case .failure(let refusal): return .json(.badRequest, JSONText.error(refusal.message))
            // A page walks the whole table: off the loop, so lookups on it go on meanwhile.
            case .success(let query): return .offLoop { .json(.ok, directory.fleetPage(query).json) }
            }
        }
        if let history {
            router.get("devices", ":type", ":id", "history") { request, parameters in
                Self.history(request, parameters, history: history, directory: directory)
            }
        }
        if let events {
            router.get("events") { request, _ in events.reply(lastEventID: request.headers["Last-Event-ID"]) }
        }
    }

    static func history(
        _ request: HTTPRequest, _ parameters: RouteParameters, history: HistoryLog, directory: DeviceDirectory
    ) -> HTTPReply {
        let (type, id) = (parameters["type"]!, parameters["id"]!)
        // A type is one topic level: no `/` (sent as %2F). An id may have one (Zigbee2MQTT names, Sparkplug devices).
        guard !type.contains("/") else {
            return .json(.notFound, JSONText.error("no device \(type)/\(id) is known or configured"))
        }
        let key = DeviceKey(type: type, id: id)
        var limit = HistoryLog.maximumPerDevice
        if let text = request.queryValue("limit"), !text.isEmpty {
            guard let value = Int(text), (1...HistoryLog.maximumPerDevice).contains(value) else {
                return .json(
                    .badRequest,
                    JSONText.error("limit must be an integer from 1 to \(HistoryLog.maximumPerDevice), not \"\(text)\"")
                )
            }
            limit = value
        }
        let entries: [HistoryEntry]
        do {
            entries = try history.entries(for: key, limit: limit)
        } catch {
            return .json(.internalServerError, JSONText.error("history not readable: \(error)"))
        }
        if entries.isEmpty && directory.judgement(for: key) == nil {
            return .json(.notFound, JSONText.error("no device \(key.path) is known or configured"))
        }
        let body = JSONText.object([
            ("type", JSONText.quote(key.type)), ("id", JSONText.quote(key.id)),
            ("transitions", "[" + entries.map(\.json).joined(separator: ",") + "]"),
        ])
        return .json(.ok, body)
    }
}
