import HTTP1
import Logging
import MQTT
import Storage
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

@Suite struct MetricsTests {
    func render(_ metrics: DaemonMetrics) async -> [String] {
        String(decoding: await metrics.render(), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func countsAgentRestartsPerAgentFromZero() async {
        let metrics = DaemonMetrics()
        metrics.registerAgent("ledbox")
        metrics.registerAgent("idle")
        metrics.agentRestarted("ledbox")
        metrics.agentRestarted("ledbox")
        let lines = await render(metrics)
        #expect(lines.contains(#"devstatusd_agent_restarts_total{agent="ledbox"} 2"#))
        #expect(lines.contains(#"devstatusd_agent_restarts_total{agent="idle"} 0"#))
        #expect(lines.contains("# TYPE devstatusd_agent_restarts_total counter"))
    }

    @Test func messageOutcomesFollowTheRegistryWithoutCountingTwice() async throws {
        let directory = try TemporaryDirectory()
        let store = try LevelDB(path: directory.file("db"))
        let metrics = DaemonMetrics()
        let registry = StatusRegistry(
            store: store, table: DeviceTable(),
            patterns: [try StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))],
            organization: "", logger: Logger(label: "test"), onStoreWrite: { metrics.recordStoreWrite($0) })
        metrics.sample(registry: registry)
        await registry.ingest(try Fixtures.monSamples())
        await registry.ingest([
            MQTTMessage(topic: "iot-2/type/t/id/x/mon", payload: Array("{".utf8), qos: 0, retain: false)
        ])
        let accepted = await registry.counters.accepted
        #expect(accepted > 0)
        // Two scrapes: the second must not add the registry's totals again.
        _ = await render(metrics)
        let lines = await render(metrics)
        #expect(lines.contains(#"devstatusd_messages_total{outcome="accepted"} \#(accepted)"#))
        #expect(lines.contains(#"devstatusd_messages_total{outcome="malformed"} 1"#))
        #expect(lines.contains(#"devstatusd_source_messages_total{source="mon",outcome="accepted"} \#(accepted)"#))
        #expect(lines.contains(#"devstatusd_source_messages_total{source="mon",outcome="malformed"} 1"#))
        let offline = registry.table.statusTopicCountsByState()[.offline] ?? 0
        #expect(offline > 0)
        #expect(lines.contains(#"devstatusd_devices{status="offline"} \#(Double(offline))"#))
        #expect(lines.contains("devstatusd_store_write_duration_seconds_count 1"))
    }

    @Test func responsesWithoutARouteCountAsUnmatched() async {
        let metrics = DaemonMetrics()
        metrics.record(HTTPResponseRecord(method: nil, route: nil, status: .serviceUnavailable, duration: .zero))
        metrics.record(HTTPResponseRecord(method: .get, route: "/healthz", status: .ok, duration: .milliseconds(2)))
        let lines = await render(metrics)
        #expect(lines.contains(#"devstatusd_http_requests_total{route="unmatched",code="503"} 1"#))
        #expect(lines.contains(#"devstatusd_http_requests_total{route="/healthz",code="200"} 1"#))
        // 2 ms falls in the 2.5 ms bucket, not in the 1 ms one.
        #expect(lines.contains(#"devstatusd_http_request_duration_seconds_bucket{route="/healthz",le="0.001"} 0"#))
        #expect(lines.contains(#"devstatusd_http_request_duration_seconds_bucket{route="/healthz",le="0.0025"} 1"#))
    }

    @Test func latencyBucketsAreCumulativeWithSumAndCountPerRoute() async {
        let metrics = DaemonMetrics()
        for milliseconds in [0.05, 0.3, 0.3, 7.0, 9000.0] {
            metrics.record(
                HTTPResponseRecord(
                    method: .get, route: "/:type/:id", status: .ok, duration: .milliseconds(milliseconds)))
        }
        metrics.record(HTTPResponseRecord(method: .get, route: "/:type/:id", status: .notFound, duration: .zero))
        let lines = await render(metrics)
        let bucket = #"devstatusd_http_request_duration_seconds_bucket{route="/:type/:id","#
        #expect(lines.contains(bucket + #"le="0.0001"} 2"#))  // 0.05 ms and the 404's 0
        #expect(lines.contains(bucket + #"le="0.0005"} 4"#))
        #expect(lines.contains(bucket + #"le="0.01"} 5"#))
        #expect(lines.contains(bucket + #"le="5.0"} 5"#))
        #expect(lines.contains(bucket + #"le="+Inf"} 6"#))
        #expect(lines.contains(#"devstatusd_http_request_duration_seconds_count{route="/:type/:id"} 6"#))
        #expect(lines.contains(#"devstatusd_http_requests_total{route="/:type/:id",code="200"} 5"#))
        #expect(lines.contains(#"devstatusd_http_requests_total{route="/:type/:id",code="404"} 1"#))
        let sum = lines.first { $0.hasPrefix(#"devstatusd_http_request_duration_seconds_sum{route="/:type/:id"}"#) }
        let seconds = sum.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(abs(seconds - 9.00765) < 1e-9)
        // Each family is written once, as the text format requires.
        #expect(lines.filter { $0 == "# TYPE devstatusd_http_request_duration_seconds histogram" }.count == 1)
        #expect(lines.filter { $0 == "# TYPE devstatusd_http_requests_total counter" }.count == 1)
    }

    @Test func operationStatusesAreReportedFromTheStart() async {
        let metrics = DaemonMetrics()
        metrics.setOperations(["QUEUED": 4])
        let lines = await render(metrics)
        // Label values are lowercase, although the API spells operation statuses in capitals.
        #expect(lines.contains(#"devstatusd_operations{status="queued"} 4.0"#))
        for status in ["sending", "confirmed", "failed", "cancelled", "expired"] {
            #expect(lines.contains(#"devstatusd_operations{status="\#(status)"} 0.0"#))
        }
    }

    @Test func statusLineSummarisesDevicesAndTheBroker() async throws {
        let directory = try TemporaryDirectory()
        let registry = StatusRegistry(
            store: try LevelDB(path: directory.file("db")), table: DeviceTable(), patterns: [], organization: "",
            logger: Logger(label: "test"))
        let health = ServiceHealth()
        let readiness = Readiness()
        let seen = Mutex<[ServiceHealth.Phase]>([])
        health.observe { phase in seen.withLock { $0.append(phase) } }
        #expect(health.summary().hasPrefix("starting"))
        health.attach(registry: registry, readiness: readiness, devices: { [.online: 2, .expired: 1] })
        health.enter(.ready(port: 5000))
        #expect(health.summary() == "3 devices: 2 online, 1 expired; MQTT connecting")
        readiness.mqtt(connected: true)
        #expect(health.summary() == "3 devices: 2 online, 1 expired; MQTT connected")
        readiness.mqtt(connected: false)
        #expect(health.summary() == "3 devices: 2 online, 1 expired; MQTT disconnected, reconnecting")
        #expect(await health.registryResponds(within: .seconds(5)))
        health.enter(.stopping)
        #expect(seen.withLock { $0 } == [.ready(port: 5000), .stopping])
    }
}
