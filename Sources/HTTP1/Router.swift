/// Values captured by a route pattern: `router.get("devices", ":type", ":id")` → `params["type"]`.
public struct RouteParameters: Sendable {
    public private(set) var values: [(name: String, value: String)] = []
    /// The segments matched by a trailing `*` (empty when the pattern has none).
    public private(set) var catchAll: [String] = []

    public init(values: [(name: String, value: String)] = [], catchAll: [String] = []) {
        self.values = values
        self.catchAll = catchAll
    }

    public subscript(name: String) -> String? {
        for item in values where item.name == name { return item.value }
        return nil
    }
}

/// A route handler; it runs on an event-loop thread and must not block (see `HTTPResponder`).
public typealias RouteHandler = @Sendable (HTTPRequest, RouteParameters) -> HTTPReply

/// Routes requests by method and path pattern. A pattern is a list of segments: a literal, a
/// `:name` parameter (one segment), or a final `*` matching any number of remaining segments.
/// The most specific pattern wins (a literal beats a parameter beats `*`, position by position).
///
/// Unknown path → 404 `{"error":"not found"}`; known path, other method → 405 with `Allow`
/// (OPTIONS without a route of its own → 204 with `Allow`). HEAD is served by the GET route
/// (the server drops the body).
public struct Router: HTTPResponder {
    private enum Segment: Sendable {
        case literal(String)
        case parameter(String)
        case catchAll

        var rank: Int {
            switch self {
            case .literal: 0
            case .parameter: 1
            case .catchAll: 2
            }
        }
    }

    private struct Route: Sendable {
        let method: HTTPMethod
        let pattern: [Segment]
        let template: String
        let acceptsBody: Bool
        let order: Int
        let handler: RouteHandler
    }

    private var routes: [Route] = []

    public init() {}

    /// Registers `handler` for `method` and `path`. `path` segments may also be given as one
    /// string with slashes: `["devices", ":type"]` or `["/devices/:type"]`.
    /// - Parameter acceptsBody: whether requests may carry a body; default true for POST, PUT and PATCH.
    public mutating func on(
        _ method: HTTPMethod, _ path: [String], acceptsBody: Bool? = nil, _ handler: @escaping RouteHandler
    ) {
        let segments = path.flatMap { $0.split(separator: "/", omittingEmptySubsequences: true).map(String.init) }
        let pattern: [Segment] = segments.enumerated().map { index, segment in
            if segment == "*" {
                precondition(index == segments.count - 1, "'*' must be the last segment of \(path)")
                return .catchAll
            }
            if segment.hasPrefix(":") && segment.count > 1 { return .parameter(String(segment.dropFirst())) }
            return .literal(segment)
        }
        let route = Route(
            method: method, pattern: pattern, template: "/" + segments.joined(separator: "/"),
            acceptsBody: acceptsBody ?? (method == .post || method == .put || method == .patch),
            order: routes.count, handler: handler)
        routes.append(route)
        routes.sort { a, b in
            for (x, y) in zip(a.pattern, b.pattern) where x.rank != y.rank { return x.rank < y.rank }
            if a.pattern.count != b.pattern.count { return a.pattern.count < b.pattern.count }
            return a.order < b.order
        }
    }

    public mutating func get(_ path: String..., handler: @escaping RouteHandler) { on(.get, path, handler) }
    public mutating func head(_ path: String..., handler: @escaping RouteHandler) { on(.head, path, handler) }
    public mutating func post(_ path: String..., acceptsBody: Bool = true, handler: @escaping RouteHandler) {
        on(.post, path, acceptsBody: acceptsBody, handler)
    }
    public mutating func put(_ path: String..., acceptsBody: Bool = true, handler: @escaping RouteHandler) {
        on(.put, path, acceptsBody: acceptsBody, handler)
    }
    public mutating func patch(_ path: String..., acceptsBody: Bool = true, handler: @escaping RouteHandler) {
        on(.patch, path, acceptsBody: acceptsBody, handler)
    }
    public mutating func delete(_ path: String..., acceptsBody: Bool = false, handler: @escaping RouteHandler) {
        on(.delete, path, acceptsBody: acceptsBody, handler)
    }

    // MARK: HTTPResponder

    /// The matching route's choice; true when no route matches, so that 404/405 are answered
    /// after reading a (bounded) body rather than 413.
    public func acceptsBody(method: HTTPMethod, pathSegments: [String]) -> Bool {
        for route in routes where route.method == method && Router.matches(route.pattern, pathSegments) {
            return route.acceptsBody
        }
        return true
    }

    public func respond(to request: HTTPRequest) -> HTTPReply {
        let segments = request.pathSegments
        var pathKnown = false
        var fallback: Route?
        for route in routes where Router.matches(route.pattern, segments) {
            pathKnown = true
            if route.method == request.method {
                return run(route, request)
            }
            if request.method == .head && route.method == .get && fallback == nil { fallback = route }
        }
        if let fallback { return run(fallback, request) }
        guard pathKnown else {
            return .json(.notFound, #"{"error":"not found"}"#)
        }
        let allow = allowedMethods(for: segments)
        if request.method == .options {
            return .response(HTTPResponse(status: .noContent, headers: ["Allow": allow]))
        }
        var response = HTTPResponse.json(.methodNotAllowed, #"{"error":"method not allowed"}"#)
        response.headers["Allow"] = allow
        return .response(response)
    }

    /// "GET, HEAD, POST" for the methods routed at this path.
    public func allowedMethods(for segments: [String]) -> String {
        var methods: [HTTPMethod] = []
        for route in routes where Router.matches(route.pattern, segments) && !methods.contains(route.method) {
            methods.append(route.method)
            if route.method == .get && !methods.contains(.head) { methods.append(.head) }
        }
        let order: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete, .options]
        methods.sort { (order.firstIndex(of: $0) ?? order.count) < (order.firstIndex(of: $1) ?? order.count) }
        return methods.map(\.name).joined(separator: ", ")
    }

    private func run(_ route: Route, _ request: HTTPRequest) -> HTTPReply {
        var reply = route.handler(request, Router.capture(route.pattern, request.pathSegments))
        reply.routeTemplate = route.template
        return reply
    }

    private static func matches(_ pattern: [Segment], _ segments: [String]) -> Bool {
        if case .catchAll = pattern.last {
            guard segments.count >= pattern.count - 1 else { return false }
        } else if segments.count != pattern.count {
            return false
        }
        for (segment, value) in zip(pattern, segments) {
            switch segment {
            case .literal(let literal): if literal != value { return false }
            case .parameter: continue
            case .catchAll: return true
            }
        }
        return true
    }

    private static func capture(_ pattern: [Segment], _ segments: [String]) -> RouteParameters {
        var parameters = RouteParameters()
        for (index, segment) in pattern.enumerated() {
            switch segment {
            case .literal: continue
            case .parameter(let name): parameters.append(name: name, value: segments[index])
            case .catchAll: parameters.setCatchAll(Array(segments[index...]))
            }
        }
        return parameters
    }
}

extension RouteParameters {
    fileprivate mutating func append(name: String, value: String) { values.append((name: name, value: value)) }
    fileprivate mutating func setCatchAll(_ segments: [String]) { catchAll = segments }
}

extension HTTPReply {
    /// Answer now with a JSON body (`Content-Type: application/json`).
    public static func json(_ status: HTTPStatus, _ body: String) -> HTTPReply {
        .response(.json(status, body))
    }

    /// Answer now with a JSON body (`Content-Type: application/json`).
    public static func json(_ status: HTTPStatus, _ body: [UInt8]) -> HTTPReply {
        .response(.json(status, body))
    }
}
