import HTTP1

/// The HTTP routes of SPEC §4, over the registry's `DeviceTable` and the daemon's `Readiness`.
/// Every handler answers from what those publish; none awaits an actor.
public struct StatusAPI: Sendable {
    let table: DeviceTable
    let readiness: Readiness

    public init(table: DeviceTable, readiness: Readiness) {
        self.table = table
        self.readiness = readiness
    }

    public var router: Router {
        var router = Router()
        let table = table
        let readiness = readiness
        router.get("healthz") { _, _ in .json(.ok, #"{"status":"ok"}"#) }
        router.get("readyz") { _, _ in
            if let reason = readiness.notReadyReason {
                return .json(.serviceUnavailable, JSONText.object([("status", "\"not ready\""), ("reason", JSONText.quote(reason))]))
            }
            return .json(.ok, #"{"status":"ready"}"#)
        }
        // SPEC §4.1: exactly two segments, as the IBM service answered.
        router.get(":type", ":id") { _, parameters in
            .json(.ok, SeedLookup.body(type: parameters["type"]!, id: parameters["id"]!, table: table))
        }
        return router
    }
}
