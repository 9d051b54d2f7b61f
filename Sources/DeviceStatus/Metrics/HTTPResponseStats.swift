/// `http_requests_total{route,code}` and `http_request_duration_seconds{route}`, counted on the event-loop
/// threads and written out in the Prometheus text format at scrape time.
///
/// Kept apart from swift-prometheus's collectors because of its cost per request: a labelled series there
/// is found by hashing its labels and a histogram takes a lock per observation, which together were ~5%
/// of an event loop's CPU on the status lookup (perf, and the bench with recording switched off). Here one
/// lock covers the whole observation and the route is found by comparing template strings (the same
/// instances each time), most recent first.
struct HTTPResponseStats: Sendable {
    private struct Route: Sendable {
        let name: String
        var codes: [(code: Int, count: Int)] = []
        /// Observations per bucket (not cumulative), the last one past every bound (+Inf).
        var buckets: [Int]
        var sum: Double = 0
        var count = 0
    }

    /// Upper bounds of the latency buckets, in seconds, ascending.
    let bounds: [Double]
    private var routes: [Route] = []
    private var last = 0

    init(bounds: [Double]) {
        self.bounds = bounds
    }

    mutating func record(route name: String, code: Int, seconds: Double) {
        let index = routeIndex(name)
        routes[index].count += 1
        routes[index].sum += seconds
        var bucket = 0
        while bucket < bounds.count && seconds > bounds[bucket] { bucket += 1 }
        routes[index].buckets[bucket] += 1
        if let slot = routes[index].codes.firstIndex(where: { $0.code == code }) {
            routes[index].codes[slot].count += 1
        } else {
            routes[index].codes.append((code, 1))
        }
    }

    private mutating func routeIndex(_ name: String) -> Int {
        if last < routes.count && routes[last].name == name { return last }
        if let found = routes.firstIndex(where: { $0.name == name }) {
            last = found
        } else {
            routes.append(Route(name: name, buckets: Array(repeating: 0, count: bounds.count + 1)))
            last = routes.count - 1
        }
        return last
    }

    /// Both families, or nothing before the first response.
    func render(into out: inout [UInt8]) {
        guard !routes.isEmpty else { return }
        var text = """
            # HELP devstatusd_http_requests_total HTTP responses by route and status code.
            # TYPE devstatusd_http_requests_total counter

            """
        for route in routes {
            for (code, count) in route.codes.sorted(by: { $0.code < $1.code }) {
                text += "devstatusd_http_requests_total{route=\(Self.label(route.name)),code=\"\(code)\"} \(count)\n"
            }
        }
        text += """
            # HELP devstatusd_http_request_duration_seconds From a complete request to its response being queued, by route.
            # TYPE devstatusd_http_request_duration_seconds histogram

            """
        for route in routes {
            let labels = "route=\(Self.label(route.name))"
            var cumulative = 0
            for (index, bound) in bounds.enumerated() {
                cumulative += route.buckets[index]
                text += "devstatusd_http_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            text += "devstatusd_http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(route.count)\n"
            text += "devstatusd_http_request_duration_seconds_sum{\(labels)} \(route.sum)\n"
            text += "devstatusd_http_request_duration_seconds_count{\(labels)} \(route.count)\n"
        }
        out.append(contentsOf: text.utf8)
    }

    /// A quoted label value with `\`, `"` and newlines escaped (the text format's rules).
    private static func label(_ value: String) -> String {
        var quoted = "\""
        for character in value {
            switch character {
            case "\\": quoted += "\\\\"
            case "\"": quoted += "\\\""
            case "\n": quoted += "\\n"
            default: quoted.append(character)
            }
        }
        return quoted + "\""
    }
}
