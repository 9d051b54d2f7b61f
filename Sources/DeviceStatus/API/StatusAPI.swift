import HTTP1

/// The HTTP routes of docs/behaviour.md §4, over the snapshots the daemon's actors publish (`DeviceDirectory`, `Readiness`).
/// Every handler answers from those and none awaits an actor; the two that walk the whole fleet (`GET /`,
/// `GET /devices`) run off the event loop.
public struct StatusAPI: Sendable {
    let directory: DeviceDirectory
    let readiness: Readiness
    /// The operation routes of docs/behaviour.md §4.3 (none when nil).
    let operations: OperationRoutes?
    /// Who may use the write routes: one check for all of them (docs/behaviour.md §4.4).
    let access: WriteAccess
    /// The fleet list, history and event stream of docs/behaviour.md §4.2; none when nil.
    let fleet: FleetRoutes?
    var table: DeviceTable { directory.table }

    /// - Parameter access: default `WriteAccess()`: no token, loopback peers only.
    public init(
        directory: DeviceDirectory, readiness: Readiness, operations: OperationRoutes? = nil, fleet: FleetRoutes? = nil,
        access: WriteAccess = WriteAccess()
    ) {
        self.access = access
        self.directory = directory
        self.readiness = readiness
        self.operations = operations
        self.fleet = fleet
    }

    public var router: Router {
        var router = Router()
        router.writeCheck = { [access] request in access.refusal(for: request) }
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
            guard case .success(let key) = DeviceKey.fromRoute(parameters), let view = directory.viewJSON(for: key)
            else {
                let path = (parameters["type"] ?? "") + "/" + (parameters["id"] ?? "")
                return .json(.notFound, JSONText.error("no device \(path) is known or configured"))
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
