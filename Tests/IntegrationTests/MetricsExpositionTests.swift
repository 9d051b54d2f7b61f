import Foundation
import MQTT
import TestSupport
import Testing

/// `GET /metrics` as Prometheus reads it: every family, values that follow what happened, and `promtool check
/// metrics` (Debian's `prometheus` package; `make test` installs it) accepting the whole exposition.
@Suite(.serialized) struct MetricsExpositionTests {
    static let config = """
        [device_esp]
        watchTimeOut = 1
        helloTopic = "home/esp/hello"
        watchTopics = "home/esp/sensors/#"
        stateTopics = "home/esp/actuators/#"
        """

    @Test func everyFamilyFollowsWhatHappenedAndPromtoolAcceptsTheExposition() async throws {
        let broker = try await MosquittoBroker()
        let daemon = try await Daemon(brokerURL: broker.url, config: Self.config)
        let client = try await connectedClient(broker)
        let events = try await EventStreamReader(port: daemon.port)
        defer { events.close() }

        // The device expires after 1 s without activity, then a message brings it back.
        #expect(await eventually(timeout: .seconds(10)) { (try? daemon.metric("devstatusd_expirations_total")) == 1 })
        try await client.publish("home/esp/actuators/relay", "on")
        try await client.publish("home/esp/hello", "hi")
        try await client.publish("home/esp/sensors/temp", "21.5")
        #expect(await eventually { (try? daemon.metric("devstatusd_recoveries_total")) == 1 })
        #expect(await eventually { (try? daemon.metric("devstatusd_watched_messages_total", ["kind": "watch"])) == 1 })
        #expect(try daemon.metric("devstatusd_watched_messages_total", ["kind": "state"]) == 1)
        #expect(try daemon.metric("devstatusd_watched_messages_total", ["kind": "hello"]) == 1)

        let text = try daemon.get("/metrics").text
        let exposition = try PrometheusText(parsing: text)
        #expect(exposition.value("devstatusd_sse_clients") == 1)
        // The event stream's connection and this scrape's.
        #expect(exposition.value("devstatusd_http_connections") ?? 0 >= 2)
        #expect(exposition.value("devstatusd_store_size_bytes") ?? 0 > 0)
        let build = exposition.samples.first { $0.name == "devstatusd_build_info" }
        #expect(build?.value == 1 && build?.labels["version"] != nil && build?.labels["revision"] != nil)
        #expect(exposition.types["process_cpu_seconds_total"] == "counter")
        #expect(exposition.value("process_resident_memory_bytes") ?? 0 > 1_000_000)
        #expect(exposition.value("process_virtual_memory_bytes") ?? 0 > 1_000_000)
        #expect(exposition.value("process_open_fds") ?? 0 > 3)
        #expect(exposition.value("process_max_fds") ?? 0 >= exposition.value("process_open_fds") ?? 0)
        let started = exposition.value("process_start_time_seconds") ?? 0
        #expect(abs(started - Date().timeIntervalSince1970) < 120)
        // Label values are lowercase, operation statuses included.
        #expect(exposition.value("devstatusd_operations", ["status": "queued"]) == 0)
        for sample in exposition.samples {
            for (name, value) in sample.labels where !["route", "revision", "agent", "le"].contains(name) {
                #expect(value == value.lowercased(), "\(sample.name){\(name)=\"\(value)\"}")
            }
        }

        let file = daemon.directory.file("metrics.txt")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let promtool = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "promtool check metrics < '\(file)'"],
            outputPath: daemon.directory.file("promtool.out"))
        let status = await promtool.waitForExit(timeout: .seconds(30))
        #expect(status == .exited(0), "promtool (apt install prometheus): \(promtool.output)")
        #expect(promtool.output.isEmpty, "\(promtool.output)")
        await client.stop()
        #expect(await daemon.stop() == .exited(0))
    }
}

extension Daemon {
    /// One sample of `/metrics`.
    func metric(_ name: String, _ labels: [String: String] = [:]) throws -> Double? {
        try PrometheusText(parsing: get("/metrics").text).value(name, labels)
    }
}
