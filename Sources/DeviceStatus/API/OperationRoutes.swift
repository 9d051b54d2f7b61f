import HTTP1

/// The routes of docs/behaviour.md §4.3 over `OperationDelivery`:
/// - `POST /devices/<type>/<id>/operations` → 201 with the operation once it is on disk (synced write), 400 naming
///   the member at fault, 413 above the server's body limit (64 KiB by default), 429 when the device has
///   `maxQueuedPerDevice` unfinished operations;
/// - `GET /devices/<type>/<id>/operations[?status=QUEUED]` → `{"operations":[…],"counts":{"QUEUED":n,…}}`, oldest
///   first (an unknown device has none);
/// - `GET …/operations/<opid>` → the operation, or 404;
/// - `DELETE …/operations/<opid>` → 200 with the CANCELLED operation; 409 unless it was QUEUED.
///
/// Writes pass the router's one `WriteAccess` check (docs/behaviour.md §4.4) first; reads answer from the `OperationTable` without awaiting the actor.
public struct OperationRoutes: Sendable {
    let delivery: OperationDelivery

    public init(delivery: OperationDelivery) {
        self.delivery = delivery
    }

    public func register(in router: inout Router) {
        let delivery = delivery
        let table = delivery.table
        router.post("devices", ":type", ":id", "operations") { request, parameters in
            let device: DeviceKey
            switch Self.device(parameters) {
            case .success(let key): device = key
            case .failure(let refusal): return .response(.jsonError(.badRequest, refusal.message))
            }
            let draft: OperationDraft
            do throws(OperationRequest.Refusal) {
                draft = try OperationRequest.parse(request.body, for: device)
            } catch {
                return .response(Self.badRequest(error))
            }
            return .task {
                switch await delivery.create(draft, for: device) {
                case .success(let operation):
                    var response = HTTPResponse.json(.created, operation.json)
                    response.headers["Location"] = Self.location(of: operation)
                    return response
                case .failure(.deviceQueueFull(let limit)):
                    return .jsonError(
                        .tooManyRequests,
                        "device \(device) already has \(limit) unfinished operations (maxQueuedPerDevice)")
                case .failure(.storage(let reason)):
                    return Self.storeUnavailable("operation not stored: \(reason)")
                }
            }
        }
        router.get("devices", ":type", ":id", "operations") { request, parameters in
            guard case .success(let device) = Self.device(parameters) else {
                return .json(.notFound, JSONText.error("no such device"))
            }
            var statusFilter: OperationStatus?
            if let value = request.queryValue("status") {
                guard let status = OperationStatus(rawValue: value.uppercased()) else {
                    let known = OperationStatus.allCases.map(\.rawValue).joined(separator: ", ")
                    return .response(Self.badRequest(field: "status", "status must be one of \(known)"))
                }
                statusFilter = status
            }
            let operations = table.operations(for: device)
            var counts: [(String, String)] = []
            for status in OperationStatus.allCases {
                counts.append((status.rawValue, "\(operations.count { $0.status == status })"))
            }
            let listed = operations.lazy.filter { statusFilter == nil || $0.status == statusFilter }.map(\.json)
            let body =
                "{\"operations\":[" + listed.joined(separator: ",") + "],\"counts\":" + JSONText.object(counts) + "}"
            return .json(.ok, body)
        }
        router.get("devices", ":type", ":id", "operations", ":operation") { _, parameters in
            guard case .success(let device) = Self.device(parameters),
                let operation = table.operation(for: device, id: parameters["operation"]!)
            else { return .json(.notFound, JSONText.error("no such operation")) }
            return .json(.ok, operation.json)
        }
        router.delete("devices", ":type", ":id", "operations", ":operation") { request, parameters in
            guard case .success(let device) = Self.device(parameters) else {
                return .json(.notFound, JSONText.error("no such operation"))
            }
            let id = parameters["operation"]!
            return .task {
                switch await delivery.cancel(device: device, id: id) {
                case .success(let operation): return .json(.ok, operation.json)
                case .failure(.notFound): return .jsonError(.notFound, "no such operation")
                case .failure(.notQueued(let status)):
                    return .jsonError(
                        .conflict, "operation is \(status.rawValue); only QUEUED operations can be cancelled")
                case .failure(.storage(let reason)):
                    return Self.storeUnavailable("cancellation not stored: \(reason)")
                }
            }
        }
    }

    /// 503 with the reason: the store refused the write (a failed disk, a full one); nothing was acknowledged, and
    /// the same request may succeed once the store is back.
    static func storeUnavailable(_ reason: String) -> HTTPResponse {
        var response = HTTPResponse.jsonError(.serviceUnavailable, reason)
        response.headers["Retry-After"] = "30"
        return response
    }

    /// The device named by the path: type and id go into MQTT topics and store keys, so `+`, `#` and NUL
    /// (possible after percent-decoding) are refused, and `/` in the type. An id may contain `/` (written `%2F`:
    /// a Zigbee2MQTT friendly name, a Sparkplug `node/device`).
    static func device(_ parameters: RouteParameters) -> Result<DeviceKey, DeviceKey.RouteRefusal> {
        DeviceKey.fromRoute(parameters)
    }

    static func badRequest(_ refusal: OperationRequest.Refusal) -> HTTPResponse {
        badRequest(field: refusal.field, refusal.message)
    }

    static func badRequest(field: String?, _ message: String) -> HTTPResponse {
        var members = [("error", JSONText.quote(message))]
        if let field { members.append(("field", JSONText.quote(field))) }
        return .json(.badRequest, JSONText.object(members))
    }

    static func location(of operation: Operation) -> String {
        "/devices/\(percentEncoded(operation.device.type))/\(percentEncoded(operation.device.id))/operations/\(operation.id)"
    }

    /// RFC 3986 unreserved characters as they are, every other byte as `%XX`.
    static func percentEncoded(_ segment: String) -> String {
        var result = ""
        for byte in segment.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return result
    }
}
