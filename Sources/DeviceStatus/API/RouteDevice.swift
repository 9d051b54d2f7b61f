import HTTP1

extension DeviceKey {
    /// Why a route's `:type` and `:id` name no device.
    public struct RouteRefusal: Error, Sendable, Equatable {
        public let message: String
    }

    /// The device a route's `:type` and `:id` parameters name: the one place that reads them. A type is one topic
    /// level, so it holds no `/` (sent as %2F); an id may (Zigbee2MQTT names, Sparkplug devices). Neither may be
    /// empty or hold the MQTT wildcards `+`, `#` or NUL. Write routes answer a refusal with 400; read routes
    /// with 404 (no such device can be known).
    public static func fromRoute(_ parameters: RouteParameters) -> Result<DeviceKey, RouteRefusal> {
        let type = parameters["type"] ?? ""
        let id = parameters["id"] ?? ""
        for part in [type, id] where part.utf8.contains(where: { [0, 0x23, 0x2B].contains($0) }) {
            return .failure(RouteRefusal(message: "device type and id must not contain '+', '#' or NUL"))
        }
        guard !type.utf8.contains(0x2F) else {
            return .failure(RouteRefusal(message: "a device type must not contain '/'"))
        }
        guard !type.isEmpty, !id.isEmpty, let key = DeviceKey(storedPath: type + "/" + id) else {
            return .failure(RouteRefusal(message: "device type and id must not be empty"))
        }
        return .success(key)
    }
}
