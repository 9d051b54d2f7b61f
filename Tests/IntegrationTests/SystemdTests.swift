import Foundation
import TestSupport
import Testing

/// devstatusd as systemd runs it: the test plays systemd (a notify socket, the watchdog variables, a journal
/// stream on stderr, SIGHUP and SIGTERM) against the real binary, a real mosquitto and real sockets.
@Suite(.serialized) struct SystemdTests {
    @Test func notifiesReadyWatchdogReloadingAndStoppingThenExitsZero() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-svc")
        let systemd = try NotifySocket(path: directory.file("notify"))
        // 0.4 s: pings every 0.2 s.
        let service = try ServiceProcess(
            broker: broker, directory: directory,
            environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "400000"])

        let ready = await systemd.next(containing: "READY=1")
        #expect(ready != nil, "no READY=1; log:\n\(service.log)")
        #expect(ready?.contains("STATUS=") == true)
        // READY means the store is loaded and the port bound: the very next request is served.
        #expect(try service.get("/healthz").status == 200)

        let firstPing = await systemd.next(containing: "WATCHDOG=1")
        #expect(firstPing != nil)
        // Periodic: more follow, each a datagram of its own.
        var pings = 0
        for _ in 0..<3 where await systemd.next(containing: "WATCHDOG=1") != nil { pings += 1 }
        #expect(pings == 3, "expected a WATCHDOG=1 every 0.2 s; log:\n\(service.log)")

        // A reload announces itself and ends with READY=1 again.
        systemd.clear()
        kill(service.process.pid, SIGHUP)
        let reloading = await systemd.next(containing: "RELOADING=1")
        #expect(reloading != nil, "no RELOADING=1; log:\n\(service.log)")
        #expect(reloading?.contains("MONOTONIC_USEC=") == true)
        #expect(await systemd.next(containing: "READY=1") != nil)

        // SIGTERM: STOPPING=1, then a clean exit within 5 s.
        systemd.clear()
        let asked = ContinuousClock.now
        service.process.terminate(SIGTERM)
        #expect(await systemd.next(containing: "STOPPING=1") != nil)
        let status = await service.process.waitForExit(timeout: .seconds(5) - (ContinuousClock.now - asked))
        let took = ContinuousClock.now - asked
        #expect(status == .exited(0), "exit \(String(describing: status)) after \(took); log:\n\(service.log)")
        #expect(service.log.contains("stopped"))
    }

    @Test func reloadAppliesTheNewConfigurationAndRefusesABrokenOne() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-svc")
        let systemd = try NotifySocket(path: directory.file("notify"))
        let service = try ServiceProcess(
            broker: broker, directory: directory, config: "[status]\norg = \"first\"\n",
            environment: ["NOTIFY_SOCKET": systemd.path])
        #expect(await systemd.next(containing: "READY=1") != nil, "log:\n\(service.log)")
        #expect(await eventually(timeout: .seconds(20)) { (try? service.get("/readyz").status) == 200 })
        #expect(try service.clientID(of: "/type9/nobody") == "d:first:type9:nobody")

        try "[status]\norg = \"second\"\n".write(toFile: service.configPath, atomically: true, encoding: .utf8)
        systemd.clear()
        kill(service.process.pid, SIGHUP)
        #expect(await systemd.next(containing: "READY=1") != nil)
        #expect(try service.clientID(of: "/type9/nobody") == "d:second:type9:nobody")
        #expect(service.log.contains("configuration reloaded"))

        // A wrong type on line 2: refused, logged with its key and line, and the running configuration stays.
        try "[mqtt]\nkeepAlive = \"sixty\"\n[status]\norg = \"third\"\n".write(
            toFile: service.configPath, atomically: true, encoding: .utf8)
        systemd.clear()
        kill(service.process.pid, SIGHUP)
        let after = await systemd.next(containing: "READY=1")
        #expect(after?.contains("last reload failed") == true, "\(after ?? "no READY=1")")
        #expect(await eventually { service.log.contains("reload refused") })
        #expect(service.log.contains("keepAlive"))
        #expect(try service.clientID(of: "/type9/nobody") == "d:second:type9:nobody")
        #expect(try service.get("/readyz").status == 200)
        #expect(service.process.isRunning)
        #expect(await service.process.stop(grace: .seconds(5)) == .exited(0))
    }

    @Test func speaksToAnAbstractNotifySocket() async throws {
        let broker = try await MosquittoBroker()
        let systemd = try NotifySocket(path: "@devstatusd-test-\(UInt32.random(in: 0...UInt32.max))")
        let service = try ServiceProcess(broker: broker, environment: ["NOTIFY_SOCKET": systemd.path])
        #expect(await systemd.next(containing: "READY=1") != nil, "log:\n\(service.log)")
        #expect(await service.process.stop(grace: .seconds(5)) == .exited(0))
    }

    @Test func sendsNoWatchdogPingsWhenTheWatchdogIsForAnotherProcess() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-svc")
        let systemd = try NotifySocket(path: directory.file("notify"))
        let service = try ServiceProcess(
            broker: broker, directory: directory,
            environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"])
        #expect(await systemd.next(containing: "READY=1") != nil)
        // Sentinel: the first round of the periodic notifications restates the status; a ping would be in it.
        let firstRound = await systemd.next(containing: "STATUS=")
        #expect(firstRound != nil)
        #expect(firstRound?.contains("WATCHDOG=1") == false)
        #expect(!systemd.received.contains { $0.contains("WATCHDOG=1") })
        await service.process.stop(grace: .seconds(5))
    }

    @Test func logLinesCarrySyslogPrioritiesWhenStderrIsTheJournal() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-svc")
        let logPath = directory.file("daemon.log")
        #expect(FileManager.default.createFile(atPath: logPath, contents: nil))
        var info = stat()
        #expect(stat(logPath, &info) == 0)
        // The child's stderr is this very file (opened, not replaced), so its device and inode are the journal's.
        let service = try ServiceProcess(
            broker: broker, directory: directory,
            // No journal socket: the stream fallback (LoggingTests covers the native one).
            environment: [
                "JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)",
                "DEVSTATUSD_JOURNAL_SOCKET": directory.file("no-journal.socket"),
            ])
        #expect(await eventually(timeout: .seconds(20)) { (try? service.get("/readyz").status) == 200 })
        await service.process.stop(grace: .seconds(5))

        let lines = service.log.split(separator: "\n").map(String.init)
        #expect(lines.count >= 3)
        for line in lines {
            #expect(line.wholeMatch(of: /<[0-7]>[^ ].+/) != nil, "not a journal line: \(line)")
        }
        #expect(lines.contains { $0.hasPrefix("<6>HTTP server listening") })
        #expect(lines.contains { $0.hasPrefix("<7>") }, "debug lines are priority 7")
    }

    @Test func logLinesCarryTimestampsWhenStderrIsNotTheJournal() async throws {
        let broker = try await MosquittoBroker()
        let directory = try TemporaryDirectory(prefix: "devstatusd-svc")
        // JOURNAL_STREAM inherited from a parent that was under systemd names another file: ignored.
        let service = try ServiceProcess(
            broker: broker, directory: directory, environment: ["JOURNAL_STREAM": "1:1"])
        #expect(await eventually(timeout: .seconds(20)) { (try? service.get("/readyz").status) == 200 })
        await service.process.stop(grace: .seconds(5))

        let lines = service.log.split(separator: "\n").map(String.init)
        #expect(lines.count >= 3)
        let shape = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL) *[^ ]+: .+/
        for line in lines {
            #expect(line.wholeMatch(of: shape) != nil, "not a timestamped line: \(line)")
        }
    }

    @Test func metricsAreValidPrometheusTextWithEveryFamily() async throws {
        let broker = try await MosquittoBroker()
        let service = try ServiceProcess(broker: broker)
        #expect(await eventually(timeout: .seconds(20)) { (try? service.get("/readyz").status) == 200 })
        let client = try await connectedClient(broker)
        try await client.publish(monTopic("type1", "m2"), "{not json")
        try await client.publish(monTopic("type1", "m1"), mon("Connect", "2021-01-01T00:00:00.000Z", id: "m1"))
        #expect(await eventually { (try? service.get("/type1/m1").text.contains(#""Action":"Connect""#)) == true })
        _ = try service.get("/no/such/route/here")

        let response = try service.get("/metrics")
        #expect(response.status == 200)
        #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let exposition = try PrometheusText(parsing: response.text)
        for family in [
            "devstatusd_messages_total", "devstatusd_devices", "devstatusd_http_requests_total",
            "devstatusd_http_request_duration_seconds", "devstatusd_mqtt_connected", "devstatusd_mqtt_reconnects_total",
            "devstatusd_operations", "devstatusd_store_write_duration_seconds", "devstatusd_store_write_errors_total",
        ] {
            #expect(exposition.types[family] != nil, "family \(family) missing")
        }
        #expect(exposition.types["devstatusd_http_request_duration_seconds"] == "histogram")
        #expect(exposition.value("devstatusd_messages_total", ["outcome": "accepted"]) ?? 0 >= 1)
        // The malformed one was published before the good one, so it was counted by now too.
        #expect(exposition.value("devstatusd_messages_total", ["outcome": "malformed"]) ?? 0 >= 1)
        #expect(exposition.value("devstatusd_devices", ["status": "online"]) == 1)
        #expect(exposition.value("devstatusd_mqtt_connected") == 1)
        #expect(exposition.value("devstatusd_http_requests_total", ["route": "/:type/:id", "code": "200"]) ?? 0 >= 1)
        #expect(exposition.value("devstatusd_http_requests_total", ["route": "unmatched", "code": "404"]) ?? 0 >= 1)
        #expect(exposition.value("devstatusd_operations", ["status": "queued"]) != nil)
        #expect(exposition.value("devstatusd_store_write_duration_seconds_count") ?? 0 >= 1)
        // Histogram buckets are cumulative: never decreasing, +Inf equal to the count.
        let buckets = exposition.samples.filter {
            $0.name == "devstatusd_http_request_duration_seconds_bucket" && $0.labels["route"] == "/:type/:id"
        }
        #expect(buckets.count >= 2)
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value })
        #expect(
            buckets.last?.labels["le"] == "+Inf"
                && buckets.last?.value
                    == exposition.value("devstatusd_http_request_duration_seconds_count", ["route": "/:type/:id"])
        )
        await client.stop()
        #expect(await service.process.stop(grace: .seconds(5)) == .exited(0))
    }

    @Test func everyDocumentedRouteAnswersWithADocumentedStatus() async throws {
        let document = try OpenAPIDocument.load()
        #expect(document.version.hasPrefix("3.1"))
        let broker = try await MosquittoBroker()
        let service = try ServiceProcess(broker: broker)
        #expect(await eventually(timeout: .seconds(20)) { (try? service.get("/readyz").status) == 200 })
        let client = try await connectedClient(broker)
        try await client.publish(monTopic("type1", "ps1"), mon("Connect", "2021-01-01T00:00:00.000Z"))
        #expect(await eventually { (try? service.get("/type1/ps1").text.contains(#""Action":"Connect""#)) == true })

        var checked = 0
        for operation in document.operations where operation.method == "get" && !operation.streams {
            let response = try service.get(operation.examplePath)
            // A planned route may not be served yet; once it answers anything else, that must be documented.
            if operation.planned && response.status == 404 && response.text == #"{"error":"not found"}"# { continue }
            #expect(
                operation.statuses.contains("\(response.status)"),
                "GET \(operation.examplePath) answered \(response.status), documented: \(operation.statuses.sorted())")
            if response.status == 200, let type = operation.contentTypes["200"] {
                #expect(response.header("Content-Type")?.hasPrefix(type) == true, "GET \(operation.examplePath)")
            }
            checked += 1
        }
        #expect(checked >= 5)
        await client.stop()
        await service.process.stop(grace: .seconds(5))
    }
}

// MARK: - Playing systemd

/// The daemon's side of `NOTIFY_SOCKET`: a bound `AF_UNIX` datagram socket (a path, or `@name` for an abstract
/// one) that collects every notification.
final class NotifySocket: @unchecked Sendable {  // `messages` only under `lock`; `fd` is fixed
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var messages: [String] = []

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(
            MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            close(fd)
            throw TestSupportError("bind \(path): errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Everything received so far, oldest first.
    var received: [String] {
        drain()
        return lock.withLock { messages }
    }

    func clear() {
        drain()
        lock.withLock { messages.removeAll() }
    }

    /// The first message containing `text`, waiting up to `timeout` (default 20 s: a cold daemon start on a busy
    /// two-core machine). Messages before it stay in `received`.
    func next(containing text: String, timeout: Duration = .seconds(20)) async -> String? {
        var found: String?
        _ = await eventually(timeout: timeout) {
            found = received.first { $0.contains(text) }
            return found != nil
        }
        if let found {
            lock.withLock {
                if let index = messages.firstIndex(of: found) { messages.removeSubrange(...index) }
            }
        }
        return found
    }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count > 0 else { return }
            let message = String(decoding: buffer[..<count], as: UTF8.self)
            lock.withLock { messages.append(message) }
        }
    }
}

/// The real binary with a config, data directory and log of its own; `environment` is what systemd would set.
final class ServiceProcess: Sendable {
    let directory: TemporaryDirectory
    let port: Int
    let process: ChildProcess
    var configPath: String { directory.file("config.toml") }
    var log: String { (try? String(contentsOfFile: directory.file("daemon.log"), encoding: .utf8)) ?? "" }

    init(
        broker: MosquittoBroker, directory: TemporaryDirectory? = nil, config: String = "",
        environment: [String: String] = [:]
    ) throws {
        self.directory = try directory ?? TemporaryDirectory(prefix: "devstatusd-svc")
        port = try FreePort.next()
        let configPath = self.directory.file("config.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        // What the test runner may have inherited from a systemd unit of its own must not leak in: removed, not
        // emptied (an empty WATCHDOG_PID is an invalid one, which turns the watchdog off, as in sd_watchdog_enabled).
        var inherited = ProcessInfo.processInfo.environment
        for name in ["STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"] {
            inherited.removeValue(forKey: name)
        }
        process = try ChildProcess(
            executable: Daemon.executable,
            arguments: [
                "--config", configPath, "--port", "\(port)", "--broker", broker.url,
                "--data-dir", self.directory.file("data"), "--log-level", "debug",
            ],
            environment: inherited.merging(environment) { $1 }, inheritEnvironment: false,
            outputPath: self.directory.file("daemon.log"))
    }

    func get(_ path: String) throws -> HTTPResponse { try httpGet(port: port, path: path) }

    func clientID(of path: String) throws -> String? {
        let object = try JSONSerialization.jsonObject(with: Data(try get(path).body)) as? [String: Any]
        return object?["ClientID"] as? String
    }
}

// MARK: - Prometheus text format

/// A strict reader of the Prometheus text exposition format 0.0.4: every line must be a `# HELP`, a `# TYPE`, a
/// comment or a sample; every sample must belong to a family with a `TYPE` line before it.
struct PrometheusText {
    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(parsing text: String) throws {
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(line)
            if line.isEmpty { continue }
            let fail = { (why: String) in TestSupportError("line \(number + 1): \(why): \(line)") }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 4, Self.isMetricName(parts[2]),
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                else { throw fail("bad TYPE line") }
                guard types[String(parts[2])] == nil else { throw fail("second TYPE for a family") }
                types[String(parts[2])] = String(parts[3])
            } else if line.hasPrefix("# HELP ") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard parts.count >= 3, Self.isMetricName(parts[2]) else { throw fail("bad HELP line") }
            } else if line.hasPrefix("#") {
                continue
            } else {
                let sample = try Self.sample(line, fail)
                guard Self.family(of: sample.name, in: types) != nil else { throw fail("sample before its TYPE line") }
                samples.append(sample)
            }
        }
    }

    /// The value of the sample `name` whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }?.value
    }

    private static func family(of name: String, in types: [String: String]) -> String? {
        if types[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || type == "summary" { return base }
        }
        return nil
    }

    private static func isMetricName(_ text: Substring) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter || first == "_" || first == ":" else {
            return false
        }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    private static func sample(_ line: String, _ fail: (String) -> TestSupportError) throws -> Sample {
        var rest = Substring(line)
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
        let name = rest[..<nameEnd]
        guard isMetricName(name) else { throw fail("bad metric name") }
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                guard let equals = rest.firstIndex(of: "=") else { throw fail("label without '='") }
                let label = rest[..<equals]
                guard isMetricName(label), !label.contains(":") else { throw fail("bad label name") }
                rest = rest[equals...].dropFirst()
                guard rest.first == "\"" else { throw fail("unquoted label value") }
                rest = rest.dropFirst()
                var value = ""
                while true {
                    guard let character = rest.first else { throw fail("unterminated label value") }
                    rest = rest.dropFirst()
                    if character == "\"" { break }
                    if character == "\\" {
                        switch rest.first {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw fail("bad escape in a label value")
                        }
                        rest = rest.dropFirst()
                    } else {
                        value.append(character)
                    }
                }
                guard labels.updateValue(value, forKey: String(label)) == nil else { throw fail("repeated label") }
                if rest.first == "," {
                    rest = rest.dropFirst()
                } else if rest.first != "}" {
                    throw fail("bad label list")
                }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw fail("no value") }
        let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(fields.count) else { throw fail("bad value") }
        let value: Double
        switch fields[0] {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let number = Double(fields[0]) else { throw fail("bad value") }
            value = number
        }
        if fields.count == 2, Int64(fields[1]) == nil { throw fail("bad timestamp") }
        return Sample(name: String(name), labels: labels, value: value)
    }
}

// MARK: - OpenAPI document

/// `docs/openapi.json` read just enough to check it against the running server: its operations, the statuses
/// and content types each documents, and a concrete path built from the parameters' examples.
struct OpenAPIDocument {
    struct Operation {
        let path: String
        let method: String
        /// Marked `x-planned: true`: documented ahead of its implementation (may still answer 404).
        let planned: Bool
        /// Answers `text/event-stream`: an endless body, not requested.
        var streams: Bool { contentTypes["200"] == "text/event-stream" }
        let statuses: Set<String>
        /// Status → the first documented media type.
        let contentTypes: [String: String]
        let examplePath: String
    }

    let version: String
    let operations: [Operation]

    static func load() throws -> OpenAPIDocument {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/openapi.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
        guard let version = root["openapi"] as? String, let paths = root["paths"] as? [String: Any] else {
            throw TestSupportError("\(url.path): no openapi version or paths")
        }
        let components = root["components"] as? [String: Any] ?? [:]
        var operations: [Operation] = []
        for (path, item) in paths {
            guard let item = item as? [String: Any] else { throw TestSupportError("\(path): not an object") }
            let shared = (item["parameters"] as? [Any] ?? []).compactMap { resolve($0, components) }
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                guard let operation = item[method] as? [String: Any] else { continue }
                guard let responses = operation["responses"] as? [String: Any], !responses.isEmpty else {
                    throw TestSupportError("\(method) \(path): no responses")
                }
                let parameters =
                    shared + (operation["parameters"] as? [Any] ?? []).compactMap { resolve($0, components) }
                var example = path
                var query: [String] = []
                for parameter in parameters {
                    guard let name = parameter["name"] as? String, let location = parameter["in"] as? String else {
                        throw TestSupportError("\(method) \(path): a parameter without name or in")
                    }
                    let value = parameter["example"].map { "\($0)" }
                    if location == "path" {
                        guard let value else {
                            throw TestSupportError("\(method) \(path): path parameter \(name) has no example")
                        }
                        example = example.replacingOccurrences(of: "{\(name)}", with: value)
                    } else if location == "query", let value, parameter["required"] as? Bool == true {
                        query.append("\(name)=\(value)")
                    }
                }
                guard !example.contains("{") else {
                    throw TestSupportError("\(method) \(path): a path template without a declared parameter")
                }
                if !query.isEmpty { example += "?" + query.joined(separator: "&") }
                var contentTypes: [String: String] = [:]
                for (status, response) in responses {
                    let response = resolve(response, components) ?? [:]
                    if let content = response["content"] as? [String: Any], let first = content.keys.sorted().first {
                        contentTypes[status] = first
                    }
                }
                let planned = (operation["x-planned"] as? Bool ?? false) || (item["x-planned"] as? Bool ?? false)
                operations.append(
                    Operation(
                        path: path, method: method, planned: planned, statuses: Set(responses.keys),
                        contentTypes: contentTypes, examplePath: example))
            }
        }
        return OpenAPIDocument(version: version, operations: operations.sorted { $0.path < $1.path })
    }

    /// Follows one `$ref` of the form `#/components/<kind>/<name>`.
    private static func resolve(_ value: Any, _ components: [String: Any]) -> [String: Any]? {
        guard let object = value as? [String: Any] else { return nil }
        guard let reference = object["$ref"] as? String else { return object }
        let parts = reference.split(separator: "/").map(String.init)
        guard parts.count == 4, parts[0] == "#", parts[1] == "components" else { return nil }
        return (components[parts[2]] as? [String: Any])?[parts[3]] as? [String: Any]
    }
}
