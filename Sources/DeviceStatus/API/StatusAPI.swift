import HTTP1

/// The HTTP routes of docs/behaviour.md §4, over the snapshots the daemon's actors publish (`DeviceDirectory`, `Readiness`).
/// Every handler answers from those and none awaits an actor; the two that walk the whole fleet (`GET /`,
/// `GET /devices`) run off the event loop.
public struct StatusAPI: Sendable {
    let directory: DeviceDirectory
    let readiness: Readiness
    /// The operation routes of docs/behaviour.md §4.3 (none when nil).
    let operations: OperationRoutes?
    /// The fleet list, history and event stream of docs/behaviour.md §4.2; none when nil.
    let fleet: FleetRoutes?
    var table: DeviceTable { directory.table }

    public init(
        directory: DeviceDirectory, readiness: Readiness, operations: OperationRoutes? = nil, fleet: FleetRoutes? = nil
    ) {
        self.directory = directory
        self.readiness = readiness
        self.operations = operations
        self.fleet = fleet
    }

    public var router: Router {
        var router = Router()
        let table = table
        let readiness = readiness
        let directory = directory
        router.get("healthz") { _, _ in .json(.ok, #"{"status":"ok"}"#) }
        router.get("readyz") { _, _ in
            // `broker`: whether the MQTT connection is up now (the dashboard shows it).
            let broker = readiness.isMQTTConnected ? "\"connected\"" : "\"disconnected\""
            if let reason = readiness.notReadyReason {
                return .json(
                    .serviceUnavailable,
                    JSONText.object([
                        ("status", "\"not ready\""), ("reason", JSONText.quote(reason)), ("broker", broker),
                    ]))
            }
            return .json(.ok, JSONText.object([("status", "\"ready\""), ("broker", broker)]))
        }
        // docs/behaviour.md §4.1: exactly two segments, as the IBM service answered.
        router.get(":type", ":id") { _, parameters in
            .json(.ok, SeedLookup.body(type: parameters["type"]!, id: parameters["id"]!, table: table))
        }
        router.get("devices", ":type", ":id") { _, parameters in
            let key = DeviceKey(type: parameters["type"]!, id: parameters["id"]!)
            // A type is one topic level: with a `/` (sent as %2F) it would name another device's path.
            guard !parameters["type"]!.contains("/"), let view = directory.viewJSON(for: key) else {
                return .json(.notFound, JSONText.error("no device \(key.path) is known or configured"))
            }
            return .json(.ok, view)
        }
        router.get { request, _ in
            if Dashboard.prefersHTML(request.headers["Accept"]) { return Dashboard.pageResponse() }
            // The whole fleet in one body: built off the loop, so lookups on it go on meanwhile.
            return .offLoop { .json(.ok, directory.iotMonitorListJSON()) }
        }
        Dashboard.registerAssets(in: &router)
        operations?.register(in: &router)
        fleet?.register(in: &router)
        return router
    }
}
