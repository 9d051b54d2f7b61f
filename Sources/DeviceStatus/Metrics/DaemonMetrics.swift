import Foundation
import HTTP1
import MQTT
import Prometheus
import Synchronization

/// Everything `GET /metrics` reports, in the Prometheus text format (docs/behaviour.md §4.5), kept in swift-prometheus's
/// `PrometheusCollectorRegistry` (used directly: no global metrics bootstrap).
///
/// Two kinds of inputs:
/// - events counted where they happen, from any thread: HTTP responses (`record(_:)`), store writes
///   (`recordStoreWrite(_:)`), agent restarts (`agentRestarted(_:)`), operation counts (`setOperations(_:)`);
/// - values owned elsewhere (the registry actor's counters, the device table, the MQTT client), read by
///   samplers that `render()` runs before each scrape, so nothing is polled between scrapes.
///
/// Families (all prefixed `devstatusd_`): `messages_total{outcome}`, `source_messages_total{source,outcome}`,
/// `store_write_errors_total`,
/// `devices{status}`, `http_requests_total{route,code}`, `http_request_duration_seconds{route}`,
/// `mqtt_connected`, `mqtt_reconnects_total`, `operations{status}`, `agent_restarts_total{agent}`,
/// `store_write_duration_seconds`, `start_time_seconds`, `build_info{version,revision}`, `store_size_bytes`,
/// `watched_messages_total{kind}`, `sse_clients`, `http_connections`, `expirations_total`, `recoveries_total`,
/// `availability_publications_total{kind}`, `availability_pending`;
/// and the standard `process_*` families (``ProcessMetrics``).
///
/// Label values are lowercase throughout (`operations{status="queued"}`), although the API's JSON spells
/// operation statuses in capitals.
public final class DaemonMetrics: Sendable {
    /// The underlying collectors; add families of your own here if you need them.
    public let collectors = PrometheusCollectorRegistry()

    /// Operation statuses of docs/behaviour.md §4.3, each reported (at 0 until told otherwise) so dashboards see every series.
    public static let operationStatuses = ["queued", "sending", "confirmed", "failed", "cancelled", "expired"]

    /// HTTP latencies span a cached lookup (tens of µs) to a durable write (ms); 5 s is past any route's budget.
    /// Upper bounds in seconds.
    static let httpBuckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
    ]
    /// A non-sync LevelDB batch takes µs; a sync one (fsync) ms; past 1 s the disk is in trouble.
    static let storeBuckets: [Duration] = [
        .microseconds(10), .microseconds(50), .microseconds(100), .microseconds(500), .milliseconds(1),
        .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1),
    ]

    private let http = Mutex(HTTPResponseStats(bounds: DaemonMetrics.httpBuckets))
    private let storeWrites: DurationHistogram
    private let mqttConnected: Gauge
    private let samplers = Mutex<[@Sendable () async -> Void]>([])
    private let deltas = Mutex<[ObjectIdentifier: Int]>([:])

    public init() {
        storeWrites = collectors.makeDurationHistogram(
            descriptor: Self.name("store_write", unit: "duration_seconds", help: "LevelDB write latency."),
            buckets: Self.storeBuckets)
        mqttConnected = collectors.makeGauge(
            descriptor: Self.name("mqtt", unit: "connected", help: "1 while connected to the MQTT broker, else 0."))
        mqttConnected.set(Int64(0))
        _ = mqttReconnects
        _ = storeWriteErrors
        for outcome in StatusRegistry.Counters().byOutcome { _ = messages(outcome.0) }
        for state in DeviceState.allCases { devices(state).set(Int64(0)) }
        for status in Self.operationStatuses { operations(status).set(Int64(0)) }
        collectors.makeGauge(
            descriptor: Self.name("start_time", unit: "seconds", help: "When the daemon started, in Unix seconds.")
        ).set(Double(wallClockNanoseconds()) / 1e9)
        collectors.makeGauge(
            descriptor: Self.name("build_info", unit: "", help: "Always 1; the labels say which build runs."),
            labels: [("version", DeviceStatusVersion.string), ("revision", DeviceStatusVersion.revision)]
        ).set(Int64(1))
        _ = expirations
        _ = recoveries
    }

    /// Counts watchdog expirations (a transition to `expired`) and recoveries (a transition out of `expired`).
    public func observe(_ events: DeviceEvents) {
        events.observe { [self] event in
            guard case .transition(let from, let to) = event.kind else { return }
            if to == .expired && from != .expired { expirations.increment() }
            if from == .expired && to != .expired { recoveries.increment() }
        }
    }

    /// `store_size_bytes`: the bytes of every file under the data directory, at each scrape.
    public func sample(storeDirectory: String) {
        let size = collectors.makeGauge(
            descriptor: Self.name("store_size", unit: "bytes", help: "Bytes on disk under the data directory."))
        addSampler { size.set(Int64(Self.diskUsage(storeDirectory))) }
    }

    /// `watched_messages_total{kind}`: messages on watched devices' `watch`, `state` and `hello` topics.
    public func sample(watchTraffic traffic: WatchTraffic) {
        addSampler { [self] in
            advance(watchedMessages("watch"), to: traffic.watch.load(ordering: .relaxed))
            advance(watchedMessages("state"), to: traffic.state.load(ordering: .relaxed))
            advance(watchedMessages("hello"), to: traffic.hello.load(ordering: .relaxed))
        }
    }

    /// `availability_publications_total{kind}` (acknowledged by the broker: `availability`, `discovery`,
    /// `cleared`) and `availability_pending` (devices waiting to be looked at), at each scrape.
    public func sample(availability: AvailabilityPublisher) {
        let pending = collectors.makeGauge(
            descriptor: Self.name(
                "availability_pending", unit: "", help: "Devices whose availability topics wait to be published."))
        let kinds: [AvailabilityPublication.Kind] = [.availability, .discovery, .cleared]
        for kind in kinds { _ = availabilityPublications(kind.rawValue) }
        addSampler { [self] in
            pending.set(Int64(availability.pending))
            for kind in kinds {
                advance(availabilityPublications(kind.rawValue), to: availability.published.value(kind))
            }
        }
    }

    private func availabilityPublications(_ kind: String) -> Counter {
        collectors.makeCounter(
            descriptor: Self.name(
                "availability_publications", unit: "total",
                help: "Retained availability, discovery and clearing publications acknowledged by the broker."),
            labels: [("kind", kind)])
    }

    /// `sse_clients` and `http_connections`, at each scrape.
    public func sample(server: HTTPServer, eventStreams: StatusEventStream) {
        let clients = collectors.makeGauge(
            descriptor: Self.name("sse_clients", unit: "", help: "Clients connected to GET /events."))
        let connections = collectors.makeGauge(
            descriptor: Self.name("http_connections", unit: "", help: "Open HTTP connections."))
        addSampler {
            clients.set(Int64(eventStreams.streamCount))
            connections.set(Int64(server.openConnections))
        }
    }

    static func diskUsage(_ path: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let name = walker.nextObject() as? String {
            var info = stat()
            if lstat(path + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG { total += Int(info.st_size) }
        }
        return total
    }

    // MARK: Events

    /// Counts one HTTP response by route template and status code, and its latency by route. Called by
    /// `HTTPServer`'s `onResponse` on a loop thread: one lock, no hashing, no allocation once warm (`HTTPResponseStats`).
    /// Responses without a route (404, the server's own refusals) count under `route="unmatched"`.
    public func record(_ response: HTTPResponseRecord) {
        let route = response.route ?? "unmatched"
        let code = response.status.code
        let seconds = response.seconds
        http.withLock { $0.record(route: route, code: code, seconds: seconds) }
    }

    /// One LevelDB write took `duration`.
    public func recordStoreWrite(_ duration: Duration) { storeWrites.record(duration) }

    /// Hook for the operation queue: the number of operations in each status (docs/behaviour.md §4.3). Statuses not
    /// given keep their last value; every status of `operationStatuses` is reported from the start at 0.
    public func setOperations(_ countsByStatus: [String: Int]) {
        for (status, count) in countsByStatus { operations(status.lowercased()).set(Int64(count)) }
    }

    /// Hook for agent supervision: makes `agent`'s series exist at 0 (call it for each configured agent).
    public func registerAgent(_ agent: String) { _ = agentRestarts(agent) }

    /// Hook for agent supervision: `agent` was started again after it died (or expired).
    public func agentRestarted(_ agent: String) { agentRestarts(agent).increment() }

    // MARK: Sampled values

    /// Runs `sampler` before each scrape, to copy values owned elsewhere into the collectors.
    public func addSampler(_ sampler: @escaping @Sendable () async -> Void) {
        samplers.withLock { $0.append(sampler) }
    }

    /// Sets `devices{status}`; statuses not given are set to 0.
    public func setDevices(_ countsByState: [DeviceState: Int]) {
        for state in DeviceState.allCases { devices(state).set(Int64(countsByState[state] ?? 0)) }
    }

    /// Samples the status registry on each scrape: message outcomes and store errors (from its counters),
    /// and `devices{status}` from `devices` (default: the status-topic table's Connect/Disconnect counts).
    public func sample(
        registry: StatusRegistry, devices: (@Sendable () -> [DeviceState: Int])? = nil
    ) {
        addSampler { [self] in
            let counters = await registry.counters
            for (outcome, value) in counters.byOutcome { advance(messages(outcome), to: value) }
            for (label, value) in counters.bySource {
                advance(sourceMessages(source: label.source, outcome: label.outcome), to: value)
            }
            advance(storeWriteErrors, to: counters.storeErrors)
            setDevices(devices?() ?? registry.table.statusTopicCountsByState())
        }
    }

    /// Samples the MQTT client on each scrape: `mqtt_connected` and `mqtt_reconnects_total`.
    public func sample(client: MQTTClient) {
        addSampler { [self] in
            mqttConnected.set(Int64(client.isConnected ? 1 : 0))
            advance(mqttReconnects, to: client.reconnectCount)
        }
    }

    /// The whole exposition, after running every sampler.
    public func render() async -> [UInt8] {
        let current = samplers.withLock { $0 }
        for sampler in current { await sampler() }
        var exposition = collectors.emitToBuffer()
        http.withLock { $0.render(into: &exposition) }
        ProcessMetrics.render(ProcessMetrics.sample(), into: &exposition)
        return exposition
    }

    /// `Content-Type` of `render()`'s output: the Prometheus text format 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    // MARK: Families

    private var mqttReconnects: Counter {
        collectors.makeCounter(
            descriptor: Self.name("mqtt_reconnects", unit: "total", help: "Connections to the broker after the first."))
    }

    private var storeWriteErrors: Counter {
        collectors.makeCounter(
            descriptor: Self.name("store_write_errors", unit: "total", help: "Status batches LevelDB failed to write."))
    }

    private var expirations: Counter {
        collectors.makeCounter(
            descriptor: Self.name("expirations", unit: "total", help: "Transitions to expired (watchdog)."))
    }

    private var recoveries: Counter {
        collectors.makeCounter(
            descriptor: Self.name("recoveries", unit: "total", help: "Transitions out of expired."))
    }

    private func watchedMessages(_ kind: String) -> Counter {
        collectors.makeCounter(
            descriptor: Self.name(
                "watched_messages", unit: "total", help: "Messages on watched devices' watch, state and hello topics."),
            labels: [("kind", kind)])
    }

    private func messages(_ outcome: String) -> Counter {
        collectors.makeCounter(
            descriptor: Self.name("messages", unit: "total", help: "Status messages by what became of them."),
            labels: [("outcome", outcome)])
    }

    private func sourceMessages(source: String, outcome: String) -> Counter {
        collectors.makeCounter(
            descriptor: Self.name(
                "source_messages", unit: "total", help: "Presence messages by source and by what became of them."),
            labels: [("source", source), ("outcome", outcome)])
    }

    private func devices(_ state: DeviceState) -> Gauge {
        collectors.makeGauge(
            descriptor: Self.name("devices", unit: "", help: "Known devices by status."),
            labels: [("status", state.rawValue)])
    }

    private func operations(_ status: String) -> Gauge {
        collectors.makeGauge(
            descriptor: Self.name("operations", unit: "", help: "Pending and finished operations by status."),
            labels: [("status", status)])
    }

    private func agentRestarts(_ agent: String) -> Counter {
        collectors.makeCounter(
            descriptor: Self.name("agent_restarts", unit: "total", help: "Agent process restarts."),
            labels: [("agent", agent)])
    }

    /// Brings a Prometheus counter up to a monotonic `value` counted elsewhere. A value below the last one
    /// seen (its source was recreated) starts a new baseline instead of going backwards.
    private func advance(_ counter: Counter, to value: Int) {
        let delta = deltas.withLock { seen -> Int in
            let key = ObjectIdentifier(counter)
            let previous = seen[key] ?? 0
            seen[key] = value
            return value >= previous ? value - previous : value
        }
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    private static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "devstatusd", metricName: metric, unitName: unit, helpText: help)
    }
}

extension Router {
    /// Adds `GET /metrics`, answered off the event loop (its samplers await the registry actor).
    public mutating func addMetricsRoute(_ metrics: DaemonMetrics) {
        get("metrics") { _, _ in
            .task {
                HTTPResponse(
                    status: .ok, headers: ["Content-Type": DaemonMetrics.contentType], body: await metrics.render())
            }
        }
    }
}
