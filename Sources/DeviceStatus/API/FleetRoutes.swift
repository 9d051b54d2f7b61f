import HTTP1

/// The fleet routes of docs/behaviour.md §4.2:
/// - `GET /devices?status=&type=&q=&sort=&limit=&cursor=` → `{"devices":[{type,id,status,source,since,lastSeen}…],
///   "nextCursor":"…"|null,"counts":{"online":n,…},"total":n,"types":{"<type>":n,…}}`, in `type/id` order or newest
///   first by `lastSeen` or `since`; `limit` default 100, at most 1000; 400 naming the parameter at fault, unknown
///   ones included (see `FleetQuery`), answered from the fleet index (`Fleet`);
/// - `GET /devices/<type>/<id>/history?limit=` → `{"type","id","transitions":[{time,from,to,source,reason}…]}`,
///   newest first, `limit` default and maximum 100; 404 when the device is neither known, configured, nor has a
///   stored transition;
/// - `GET /events` → Server-Sent Events of status transitions (see `StatusEventStream`).
///
/// Every handler answers from snapshots and none awaits an actor. A page is a seek and a short walk in the index, but
/// a search (`q`) over a large fleet reads every key once, and the index waits for its first build: pages are
/// computed off the event loop (`HTTPReply.offLoop`).
public struct FleetRoutes: Sendable {
    let directory: DeviceDirectory
    let fleet: Fleet
    let history: HistoryLog?
    let events: StatusEventStream?

    /// Without `history` or `events`, their routes are not registered.
    public init(
        directory: DeviceDirectory, fleet: Fleet, history: HistoryLog? = nil, events: StatusEventStream? = nil
    ) {
        self.directory = directory
        self.fleet = fleet
        self.history = history
        self.events = events
    }

    public func register(in router: inout Router) {
        let directory = directory
        let fleet = fleet
        router.get("devices") { request, _ in
            switch FleetQuery.parse(request.query) {
            case .failure(let refusal): return .json(.badRequest, JSONText.error(refusal.message))
            case .success(let query): return .offLoop { .json(.ok, fleet.page(query).json) }
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
        guard case .success(let key) = DeviceKey.fromRoute(parameters) else {
            let path = (parameters["type"] ?? "") + "/" + (parameters["id"] ?? "")
            return .json(.notFound, JSONText.error("no device \(path) is known or configured"))
        }
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
