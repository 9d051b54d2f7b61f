/// Values captured by a route pattern: `router.get("devices", ":type", ":id")` → `params["type"]`.
/// Built without allocating: it shares the route's parameter names and the request's segments.
public struct RouteParameters: Sendable {
    /// Parameter names, in pattern order, and the segment each was captured from.
    private var names: [String]
    private var positions: [Int]
    private var segments: [String]
    /// Where the segments matched by a trailing `*` begin in `segments`, or nil without one.
    private var catchAllStart: Int?

    public init(values: [(name: String, value: String)] = [], catchAll: [String] = []) {
        self.names = values.map(\.name)
        self.positions = Array(values.indices)
        self.segments = values.map(\.value) + catchAll
        self.catchAllStart = values.count
    }

    init(names: [String], positions: [Int], segments: [String], catchAllStart: Int?) {
        self.names = names
        self.positions = positions
        self.segments = segments
        self.catchAllStart = catchAllStart
    }

    /// The captured parameters in pattern order.
    public var values: [(name: String, value: String)] {
        zip(names, positions).map { (name: $0, value: segments[$1]) }
    }

    /// The segments matched by a trailing `*` (empty when the pattern has none).
    public var catchAll: [String] {
        guard let catchAllStart, catchAllStart < segments.count else { return [] }
        return Array(segments[catchAllStart...])
    }

    public subscript(name: String) -> String? {
        for i in names.indices where names[i] == name { return segments[positions[i]] }
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

    /// A class, so that walking the candidates per request retains one reference per route instead of
    /// copying (and destroying) each of its fields.
    private final class Route: Sendable {
        let method: HTTPMethod
        let pattern: [Segment]
        let template: String
        let acceptsBody: Bool
        let order: Int
        let handler: RouteHandler
        /// The pattern's parameter names and their positions, shared by every `RouteParameters` it captures.
        let parameterNames: [String]
        let parameterPositions: [Int]
        let hasCatchAll: Bool

        /// POST, PUT, PATCH or DELETE: what `writeCheck` guards (decided once, not per request).
        var changesState: Bool {
            switch method {
            case .post, .put, .patch, .delete: true
            default: false
            }
        }

        /// Segments matched by everything but a trailing `*`.
        var fixedCount: Int { hasCatchAll ? pattern.count - 1 : pattern.count }

        init(
            method: HTTPMethod, pattern: [Segment], template: String, acceptsBody: Bool, order: Int,
            handler: @escaping RouteHandler
        ) {
            self.method = method
            self.pattern = pattern
            self.template = template
            self.acceptsBody = acceptsBody
            self.order = order
            self.handler = handler
            var names: [String] = []
            var positions: [Int] = []
            for (index, segment) in pattern.enumerated() {
                if case .parameter(let name) = segment {
                    names.append(name)
                    positions.append(index)
                }
            }
            self.parameterNames = names
            self.parameterPositions = positions
            if case .catchAll = pattern.last { hasCatchAll = true } else { hasCatchAll = false }
        }
    }

    /// Every route, most specific first.
    private var routes: [Route] = []
    /// `candidates[n]`: the routes that can match a path of n segments, in `routes` order; paths longer
    /// than the last entry can match only catch-all routes (`catchAllRoutes`).
    private var candidates: [[Route]] = []
    private var catchAllRoutes: [Route] = []

    /// Run before the handler of every matched route whose method changes state (POST, PUT, PATCH, DELETE): a
    /// response it returns is sent instead of the handler's (e.g. 401 or 403). Default none. One check for every
    /// write route, so no handler has to remember it.
    public var writeCheck: (@Sendable (HTTPRequest) -> HTTPResponse?)?

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
        let longest = routes.map(\.pattern.count).max() ?? 0
        candidates = (0...longest).map { n in
            routes.filter { $0.hasCatchAll ? n >= $0.fixedCount : n == $0.fixedCount }
        }
        catchAllRoutes = routes.filter(\.hasCatchAll)
    }

    /// The routes whose pattern can match `count` segments, most specific first.
    private func routes(forSegmentCount count: Int) -> [Route] {
        count < candidates.count ? candidates[count] : catchAllRoutes
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
        for route in routes(forSegmentCount: pathSegments.count)
        where route.method == method && Router.matches(route.pattern, pathSegments) {
            return route.acceptsBody
        }
        return true
    }

    public func respond(to request: HTTPRequest) -> HTTPReply {
        let segments = request.pathSegments
        var pathKnown = false
        var fallback: Route?
        for route in routes(forSegmentCount: segments.count) where Router.matches(route.pattern, segments) {
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
        for route in routes(forSegmentCount: segments.count)
        where Router.matches(route.pattern, segments) && !methods.contains(route.method) {
            methods.append(route.method)
            if route.method == .get && !methods.contains(.head) { methods.append(.head) }
        }
        let order: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete, .options]
        methods.sort { (order.firstIndex(of: $0) ?? order.count) < (order.firstIndex(of: $1) ?? order.count) }
        return methods.map(\.name).joined(separator: ", ")
    }

    private func run(_ route: Route, _ request: HTTPRequest) -> HTTPReply {
        if let writeCheck, route.changesState, let refusal = writeCheck(request) {
            var reply = HTTPReply.response(refusal)
            reply.routeTemplate = route.template
            return reply
        }
        let parameters = RouteParameters(
            names: route.parameterNames, positions: route.parameterPositions, segments: request.pathSegments,
            catchAllStart: route.hasCatchAll ? route.pattern.count - 1 : nil)
        var reply = route.handler(request, parameters)
        reply.routeTemplate = route.template
        return reply
    }

    /// Whether `segments` fits `pattern`; the caller has checked the segment count.
    private static func matches(_ pattern: [Segment], _ segments: [String]) -> Bool {
        for (segment, value) in zip(pattern, segments) {
            switch segment {
            case .literal(let literal): if literal != value { return false }
            case .parameter: continue
            case .catchAll: return true
            }
        }
        return true
    }
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

    /// Answer now with a JSON body that is a slice of an array kept elsewhere (not copied).
    public static func json(_ status: HTTPStatus, _ body: ArraySlice<UInt8>) -> HTTPReply {
        .response(.json(status, body))
    }
}
