import DeviceStatus
import Foundation
import Logging
import MQTT
import Storage
import TestSupport

// `make bench`'s measurements of the core (issue 2), each printed beside a reference measured in the same run.
// Usage: devstatusd-bench <ingest|presence|retained|judge|memory|restart|watchdog|availability|all> [--daemon PATH] [--devices N] [--messages N]
//        [--raised-only] (retained: only the run with the broker's queue raised) [--repeat N] (availability, retained:
//        runs; judge: runs in one process, default 5) [--batch N] (judge: messages per batch, default 2,000)

let arguments = CommandLine.arguments.dropFirst()
let mode = arguments.first ?? "all"
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.endIndex else { return fallback }
    return Int(arguments[index + 1]) ?? fallback
}
let daemonPath: String = {
    if let index = arguments.firstIndex(of: "--daemon"), index + 1 < arguments.endIndex { return arguments[index + 1] }
    return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("devstatusd").path
}()

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

/// A Disconnect payload the size IBM sends.
func disconnect(type: String, id: String, time: String) -> [UInt8] {
    Array(
        (#"{"WriteMsg":0,"ClientAddr":"195.212.29.65","Protocol":"mqtt3","Secure":false,"CloseCode":91,"#
            + #""ClientID":"d:7gnple:\#(type):\#(id)","ReadMsg":0,"Reason":"Connection closed by client","#
            + #""ReadBytes":127,"ConnectTime":"2018-01-02T16:51:10.557Z","Time":"\#(time)","#
            + #""Action":"Disconnect","WriteBytes":9,"Port":1883}"#).utf8)
}

func timeString(_ index: Int) -> String {
    RFC3339.format(nanoseconds: 1_600_000_000_000_000_000 + Int64(index) * 1_000_000)
}

func startDaemon(
    broker: MosquittoBroker?, data: String, directory: TemporaryDirectory, config: String? = nil,
    logLevel: String = "warning"
) throws -> (ChildProcess, Int) {
    let port = try FreePort.next()
    var configArguments: [String] = []
    if let config {
        try config.write(toFile: directory.file("config.toml"), atomically: true, encoding: .utf8)
        configArguments = ["--config", directory.file("config.toml")]
    }
    let process = try ChildProcess(
        executable: daemonPath,
        arguments: configArguments + [
            "--port", "\(port)", "--broker", broker?.url ?? "tcp://127.0.0.1:1", "--data-dir", data, "--log-level",
            logLevel,
        ], environment: ["STATE_DIRECTORY": ""], outputPath: directory.file("daemon.log"))
    return (process, port)
}

func waitUntil(timeout: Duration = .seconds(120), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return false
}

func body(_ port: Int, _ path: String) -> String? {
    (try? httpGet(port: port, path: path, timeout: .seconds(2))).map { $0.text }
}

func mosquittoSub(_ broker: MosquittoBroker, count: Int, directory: TemporaryDirectory) throws -> ChildProcess {
    try ChildProcess(
        executable: "/usr/bin/mosquitto_sub",
        arguments: [
            "-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "iot-2/type/+/id/+/mon", "-q", "0", "-C", "\(count)",
        ],
        outputPath: directory.file("sub.out"))
}

func publisher(_ broker: MosquittoBroker) async throws -> MQTTClient {
    let client = try MQTTClient(
        configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "bench-pub"))
    client.start()
    guard waitUntil(timeout: .seconds(10), { client.isConnected }) else {
        throw TestSupportError("publisher not connected")
    }
    return client
}

/// 100,000 live messages for 10,000 devices: time until the daemon holds the last, beside mosquitto_sub.
func ingest() async throws {
    let messages = option("--messages", 100_000)
    let devices = option("--devices", 10_000)
    // Room in the broker's per-client queue for a burst faster than any subscriber drains (both subscribers alike).
    let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 1000000"])
    let directory = try TemporaryDirectory(prefix: "bench-ingest")
    let (daemon, port) = try startDaemon(broker: broker, data: directory.file("data"), directory: directory)
    guard waitUntil({ body(port, "/readyz")?.contains("\"ready\"") == true }) else {
        throw TestSupportError("daemon not ready")
    }
    let sub = try mosquittoSub(broker, count: messages, directory: directory)
    try await Task.sleep(for: .milliseconds(500))
    let client = try await publisher(broker)
    let lastIndex = messages - 1
    let lastPath = "/bench\(lastIndex % devices % 10)/d\(lastIndex % devices)"
    let start = ContinuousClock.now
    for index in 0..<messages {
        let device = index % devices
        let type = "bench\(device % 10)"
        client.publishNoWait(
            topic: "iot-2/type/\(type)/id/d\(device)/mon",
            payload: disconnect(type: type, id: "d\(device)", time: timeString(index)))
    }
    var daemonElapsed: Duration?
    var subElapsed: Duration?
    let lastTime = timeString(lastIndex)
    _ = waitUntil {
        if daemonElapsed == nil, body(port, lastPath)?.contains(lastTime) == true {
            daemonElapsed = ContinuousClock.now - start
        }
        if subElapsed == nil, sub.exitStatus != nil { subElapsed = ContinuousClock.now - start }
        return daemonElapsed != nil && subElapsed != nil
    }
    await client.stop()
    _ = await daemon.stop(grace: .seconds(5))
    guard let daemonElapsed, let subElapsed else {
        print(
            "ingest: FAILED (daemon \(daemonElapsed.map(seconds) ?? -1) s, mosquitto_sub \(subElapsed.map(seconds) ?? -1) s)"
        )
        return
    }
    let ours = Double(messages) / seconds(daemonElapsed)
    let reference = Double(messages) / seconds(subElapsed)
    print(
        "ingest: \(messages) live messages, \(devices) devices: devstatusd \(format(seconds(daemonElapsed))) s "
            + "(\(Int(ours)) msg/s), mosquitto_sub \(format(seconds(subElapsed))) s (\(Int(reference)) msg/s), "
            + "ratio \(format(ours / reference)) (target >= 0.95)")
}

/// 100,000 live presence messages of five conventions (Tasmota, Zigbee2MQTT JSON with two-level names, Homie, EMQX
/// JSON with `ts`, a generic lwt with a JSON field), 10,000 devices each flipping online/offline: time until the
/// daemon holds the last, beside mosquitto_sub subscribed to the same topics.
func presenceIngest() async throws {
    let messages = option("--messages", 100_000)
    let devices = option("--devices", 10_000)
    let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 1000000"])
    let directory = try TemporaryDirectory(prefix: "bench-presence")
    let config = """
        [[presence]]
        preset = "tasmota"
        [[presence]]
        preset = "zigbee2mqtt"
        [[presence]]
        preset = "homie"
        [[presence]]
        preset = "emqx"
        prefix = "benchsys/brokers"
        [[presence]]
        preset = "lwt"
        type = "sensor"
        topic = "devices/{id}/status"
        online = ["up"]
        offline = ["down"]
        field = "state"
        """
    let (daemon, port) = try startDaemon(
        broker: broker, data: directory.file("data"), directory: directory, config: config)
    guard waitUntil({ body(port, "/readyz")?.contains("\"ready\"") == true }) else {
        throw TestSupportError("daemon not ready")
    }
    let filters = [
        "tele/+/LWT", "zigbee2mqtt/+/+/availability", "homie/+/$state", "benchsys/brokers/+/clients/+/connected",
        "benchsys/brokers/+/clients/+/disconnected", "devices/+/status",
    ]
    let sub = try ChildProcess(
        executable: "/usr/bin/mosquitto_sub",
        arguments: ["-h", "127.0.0.1", "-p", "\(broker.port)", "-q", "0", "-C", "\(messages)"]
            + filters.flatMap { ["-t", $0] },
        outputPath: directory.file("sub.out"))
    try await Task.sleep(for: .milliseconds(500))
    let client = try await publisher(broker)
    /// The topic, payload, and (type, id, status) a message sets.
    func message(_ index: Int) -> (String, [UInt8], String, String, Bool) {
        let device = index % devices
        let online = (index / devices) % 2 == 0
        switch device % 5 {
        case 0:
            return ("tele/t\(device)/LWT", Array((online ? "Online" : "Offline").utf8), "tasmota", "t\(device)", online)
        case 1:
            return (
                "zigbee2mqtt/room\(device % 100)/lamp\(device)/availability",
                Array(#"{"state":"\#(online ? "online" : "offline")"}"#.utf8), "zigbee2mqtt",
                "room\(device % 100)%2Flamp\(device)", online
            )
        case 2:
            return (
                "homie/h\(device)/$state", Array((online ? "ready" : "lost").utf8), "homie", "h\(device)", online
            )
        case 3:
            let ts = 1_700_000_000_000 + index
            let payload =
                online
                ? #"{"username":"u","ts":\#(ts),"sockport":1883,"proto_ver":4,"proto_name":"MQTT","keepalive":60,"ipaddress":"127.0.0.1","clientid":"c\#(device)","clean_start":true}"#
                : #"{"username":"u","ts":\#(ts),"sockport":1883,"reason":"tcp_closed","proto_ver":4,"proto_name":"MQTT","ipaddress":"127.0.0.1","clientid":"c\#(device)"}"#
            return (
                "benchsys/brokers/emqx@127.0.0.1/clients/c\(device)/\(online ? "connected" : "disconnected")",
                Array(payload.utf8), "emqx", "c\(device)", online
            )
        default:
            return (
                "devices/s\(device)/status", Array(#"{"state":"\#(online ? "up" : "down")","battery":91}"#.utf8),
                "sensor", "s\(device)", online
            )
        }
    }
    // The last message is the only one of its device: its status is answered only once everything before it was
    // taken in (a flipping device's final status was already answered a fifth of the way through the stream).
    let lastPath = "/devices/tasmota/tlast"
    let expected = #""status":"online""#
    let start = ContinuousClock.now
    for index in 0..<messages {
        let (topic, payload, _, _, _) =
            index == messages - 1 ? ("tele/tlast/LWT", Array("Online".utf8), "", "", true) : message(index)
        client.publishNoWait(topic: topic, payload: payload)
    }
    var daemonElapsed: Duration?
    var subElapsed: Duration?
    _ = waitUntil {
        if daemonElapsed == nil, body(port, lastPath)?.contains(expected) == true {
            daemonElapsed = ContinuousClock.now - start
        }
        if subElapsed == nil, sub.exitStatus != nil { subElapsed = ContinuousClock.now - start }
        return daemonElapsed != nil && subElapsed != nil
    }
    let metrics = body(port, "/metrics") ?? ""
    let malformed = metrics.split(separator: "\n").filter {
        $0.hasPrefix("devstatusd_source_messages_total") && $0.contains("malformed")
    }
    await client.stop()
    _ = await daemon.stop(grace: .seconds(5))
    guard let daemonElapsed, let subElapsed else {
        print(
            "presence: FAILED (daemon \(daemonElapsed.map(seconds) ?? -1) s, mosquitto_sub \(subElapsed.map(seconds) ?? -1) s)"
        )
        return
    }
    let ours = Double(messages) / seconds(daemonElapsed)
    let reference = Double(messages) / seconds(subElapsed)
    print(
        "presence: \(messages) live messages of 5 conventions, \(devices) devices: devstatusd "
            + "\(format(seconds(daemonElapsed))) s (\(Int(ours)) msg/s), mosquitto_sub \(format(seconds(subElapsed))) s "
            + "(\(Int(reference)) msg/s), ratio \(format(ours / reference)) (target >= 0.95)"
            + (malformed.isEmpty ? "" : "; MALFORMED: \(malformed)"))
}

/// 100,000 retained devices: time until all answer, beside mosquitto_sub receiving them; once with the broker's
/// default settings and once with `max_queued_messages` above the device count.
/// `--raised-only` skips the default-settings run (where `mosquitto_sub` waits a minute for what the broker dropped).
/// `--repeat N` (default 1) runs the raised-queue case N times and prints the median ratio: single runs move by ±10%
/// on a 2-core machine.
func retained() async throws {
    if !arguments.contains("--raised-only") {
        _ = try await retained(extraConfig: [], label: "default broker settings")
    }
    var ratios: [Double] = []
    for _ in 0..<max(1, option("--repeat", 1)) {
        ratios.append(
            try await retained(extraConfig: ["max_queued_messages 1000000"], label: "max_queued_messages 1000000"))
    }
    print(
        "retained: mosquitto_sub's time over devstatusd's, \(ratios.count) run(s): median \(format(percentile(ratios, 0.5))) "
            + "(\(ratios.map { format($0) }.joined(separator: ", "))) (target >= 0.8)")
}

/// One run; returns `mosquitto_sub`'s time over the daemon's.
func retained(extraConfig: [String], label: String) async throws -> Double {
    let devices = option("--devices", 100_000)
    let broker = try await MosquittoBroker(extraConfig: extraConfig)
    let directory = try TemporaryDirectory(prefix: "bench-retained")
    let client = try await publisher(broker)
    for device in 0..<devices {
        let type = "bench\(device % 10)"
        client.publishNoWait(
            topic: "iot-2/type/\(type)/id/d\(device)/mon",
            payload: disconnect(type: type, id: "d\(device)", time: timeString(device)),
            qos: 0, retain: true)
        if device % 5000 == 4999 { try await Task.sleep(for: .milliseconds(20)) }
    }
    try await client.publish(topic: "bench/flush", payload: [1], qos: 1)
    await client.stop()

    let subStart = ContinuousClock.now
    let sub = try mosquittoSub(broker, count: devices, directory: directory)
    _ = waitUntil(timeout: .seconds(60)) { sub.exitStatus != nil }
    let subElapsed = ContinuousClock.now - subStart
    let subReceived =
        (try? String(contentsOfFile: directory.file("sub.out"), encoding: .utf8))?.split(separator: "\n").count ?? 0

    let start = ContinuousClock.now
    let (daemon, port) = try startDaemon(
        broker: broker, data: directory.file("data"), directory: directory, logLevel: "info")
    // The line the daemon logs as /readyz turns ready, watched in its log file: asking /readyz every 2 ms cost the
    // daemon (and this process) CPU on the cores the replay runs on, which mosquitto_sub's run did not pay.
    let log = directory.file("daemon.log")
    _ = waitUntil { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("retained replay received") == true }
    let elapsed = ContinuousClock.now - start
    // CPU the daemon spent until ready: steadier than the time when other processes share the machine.
    let cpu = cpuSeconds(daemon.pid)
    let byThread = threadCPUSeconds(daemon.pid).sorted { $0.value > $1.value }.prefix(4)
        .map { "\($0.key) \(format($0.value))" }.joined(separator: ", ")
    let ready = body(port, "/readyz")?.contains("\"ready\"") == true
    var missing = 0
    for device in 0..<devices where body(port, "/bench\(device % 10)/d\(device)")?.contains("\"Disconnect\"") != true {
        missing += 1
    }
    _ = await daemon.stop(grace: .seconds(5))
    print(
        "retained (\(label)): \(devices) retained devices: devstatusd ready in \(format(seconds(elapsed))) s (from process start, "
            + "\(ready ? "ready" : "NOT READY"), CPU \(format(cpu)) s: \(byThread)), \(missing) missing; "
            + "mosquitto_sub received \(subReceived) in "
            + "\(format(seconds(subElapsed))) s (from process start); broker dropped: "
            + "\(broker.log.contains("being dropped") ? "yes" : "no")")
    return seconds(subElapsed) / seconds(elapsed)
}

/// The daemon's side of a retained replay without the broker and the network: `--devices` (100,000) retained `mon`
/// Disconnects, in batches of `--batch` (2,000), judged, stored in a new LevelDB data directory and announced to the
/// history and the event stream (as the daemon wires them), until the table serves every one. Prints the CPU time and
/// the wall time of `--repeat` (5) runs: the figure to compare when changing the ingestion path, steadier than
/// `retained`, whose broker and network thread share the machine's cores with it.
func judge() async throws {
    let devices = option("--devices", 100_000)
    let batchSize = option("--batch", 2_000)
    let runs = option("--repeat", 5)
    let pattern = try StatusTopicPattern(TopicFilter("iot-2/type/+/id/+/mon"))
    let messages = (0..<devices).map { device in
        let type = "bench\(device % 10)"
        return MQTTMessage(
            topic: "iot-2/type/\(type)/id/d\(device)/mon",
            payload: disconnect(type: type, id: "d\(device)", time: timeString(device)), retain: true)
    }
    var cpu: [Double] = []
    var wall: [Double] = []
    for _ in 0..<runs {
        let directory = try TemporaryDirectory(prefix: "bench-judge")
        let store = try LevelDB(
            path: directory.file("data"), options: LevelDB.Options(paranoidChecks: true, verifyChecksums: true))
        let logger = Logger(label: "bench")
        let events = DeviceEvents()
        let history = HistoryLog(store: store, logger: logger)
        history.observe(events)
        history.hold()
        StatusEventStream().observe(events)
        let table = DeviceTable()
        let registry = StatusRegistry(
            store: store, table: table, patterns: [pattern], organization: "", events: events, logger: logger)
        let cpuStart = cpuSeconds(getpid())
        let start = ContinuousClock.now
        var offset = 0
        while offset < messages.count {
            await registry.consume(Array(messages[offset..<min(offset + batchSize, messages.count)]))
            offset += batchSize
        }
        await registry.drain()
        wall.append(seconds(ContinuousClock.now - start))
        cpu.append(cpuSeconds(getpid()) - cpuStart)
        // The history stays held, as in the daemon until the replay is through; its entries are dropped with it.
        guard table.count == devices else { throw BenchFailure("judge: \(table.count) of \(devices) devices served") }
    }
    print(
        "judge: \(devices) retained Disconnects in batches of \(batchSize), \(runs) runs: CPU median "
            + "\(format(percentile(cpu, 0.5), 3)) s (min \(format(cpu.min()!, 3))), wall median "
            + "\(format(percentile(wall, 0.5), 3)) s (min \(format(wall.min()!, 3)))")
}

/// Writes `devices` Disconnect-sized statuses straight into a LevelDB data directory, as the daemon stores them.
/// Devices are `bench<n % 10>/d<n>`, or with `httpNames` `type<n % 10>/dev<n>` (what bench-http.sh asks for).
func seed(_ path: String, devices: Int, httpNames: Bool = false) throws {
    let store = try LevelDB(path: path)
    var batch = WriteBatch()
    for device in 0..<devices {
        let type = httpNames ? "type\(device % 10)" : "bench\(device % 10)"
        let id = httpNames ? "dev\(device)" : "d\(device)"
        // As the daemon writes a `mon` Disconnect: source, status, time, reason, the payload as received.
        let record = StatusRecord(
            source: .mon, status: .offline, time: 1_600_000_000_000_000_000 + Int64(device), reason: "Disconnect",
            payload: disconnect(type: type, id: id, time: timeString(device)))
        batch.put(Array("s/\(type)/\(id)".utf8), record.encoded)
        if batch.count == 10_000 {
            try store.write(batch)
            batch.clear()
        }
    }
    // As the daemon keeps it: the device count, which sizes the table when loading.
    batch.put(Array("m/count".utf8), Array("\(devices)".utf8))
    try store.write(batch)
    store.close()
}

func residentBytes(_ pid: pid_t) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
    }
    return 0
}

/// RSS per device at 1,000,000 devices, and time from start to the first correct answer.
func memoryAndRestart() async throws {
    let devices = option("--devices", 1_000_000)
    let directory = try TemporaryDirectory(prefix: "bench-restart")
    let seedStart = ContinuousClock.now
    try seed(directory.file("data"), devices: devices)
    print("seeded \(devices) devices in \(format(seconds(ContinuousClock.now - seedStart))) s")

    // Baseline: the same daemon with an empty store.
    let (empty, emptyPort) = try startDaemon(broker: nil, data: directory.file("empty"), directory: directory)
    _ = waitUntil { body(emptyPort, "/healthz") != nil }
    let baseline = residentBytes(empty.pid)
    _ = await empty.stop(grace: .seconds(5))

    let probe = "/bench\((devices - 1) % 10)/d\(devices - 1)"
    let expected = timeString(devices - 1)
    let start = ContinuousClock.now
    let (daemon, port) = try startDaemon(broker: nil, data: directory.file("data"), directory: directory)
    let answered = waitUntil { body(port, probe)?.contains(expected) == true }
    let elapsed = ContinuousClock.now - start
    // With the fleet index built (a page of `GET /devices` waits for its first build), which holds memory too.
    _ = try? httpGet(port: port, path: "/devices?limit=1", timeout: .seconds(60))
    try await Task.sleep(for: .seconds(1))
    let loaded = residentBytes(daemon.pid)
    _ = await daemon.stop(grace: .seconds(5))
    print(
        "restart: \(devices) devices in LevelDB: first correct answer \(format(seconds(elapsed))) s after start "
            + "(\(answered ? "correct" : "NEVER ANSWERED")) (target <= 2 s)")
    print(
        "memory: RSS \(loaded / 1_048_576) MiB with \(devices) devices, \(baseline / 1_048_576) MiB empty: "
            + "\((loaded - baseline) / max(devices, 1)) bytes per device (target <= 600)")
}

/// CPU seconds (user + system) the process has used so far.
func cpuSeconds(_ pid: pid_t) -> Double {
    taskCPU("/proc/\(pid)/stat")?.seconds ?? 0
}

/// CPU seconds each thread name of the process has used so far (threads of one name added up).
func threadCPUSeconds(_ pid: pid_t) -> [String: Double] {
    var seconds: [String: Double] = [:]
    for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
        guard let (name, used) = taskCPU("/proc/\(pid)/task/\(task)/stat") else { continue }
        seconds[name, default: 0] += used
    }
    return seconds
}

/// The command name and CPU seconds (user + system) of a `/proc/…/stat` file.
func taskCPU(_ path: String) -> (name: String, seconds: Double)? {
    guard let stat = try? String(contentsOfFile: path, encoding: .utf8),
        let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    guard fields.count > 12 else { return nil }
    let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    return (String(stat[stat.index(after: open)..<close]), ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// 100,000 watched devices, timeouts 5–60 s, a stream keeping 95% alive: CPU idle and under the stream, and how
/// late expiry publications are against their deadlines.
func watchdog() async throws {
    let devices = option("--devices", 100_000)
    let silentEvery = 20  // every 20th device never speaks: 5% expire
    let directory = try TemporaryDirectory(prefix: "bench-watchdog")
    var config = "[mqtt]\nbaseTopic = \"bench/monitoring\"\n"
    for index in 0..<devices {
        config += "[device_d\(index)]\nwatchTimeOut = \(5 + index % 56)\nwatchTopics = \"fleet/d\(index)/#\"\n"
    }
    try config.write(toFile: directory.file("config.toml"), atomically: true, encoding: .utf8)
    let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 1000000"])
    let recorder = try MQTTClient(
        configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "bench-expiry"))
    let arrivals = ArrivalLog()
    recorder.start()
    guard waitUntil(timeout: .seconds(10), { recorder.isConnected }) else { throw TestSupportError("recorder") }
    try await recorder.subscribe("bench/monitoring/expire/#", qos: 1)
    let recording = Task {
        for await batch in recorder.messageBatches {
            let now = wallClockNanoseconds()
            arrivals.add(batch.filter { !$0.payload.isEmpty && !$0.retain }.map { ($0.topic, now) })
        }
    }

    let port = try FreePort.next()
    let start = ContinuousClock.now
    let daemon = try ChildProcess(
        executable: daemonPath,
        arguments: [
            "--config", directory.file("config.toml"), "--port", "\(port)", "--broker", broker.url,
            "--data-dir", directory.file("data"), "--log-level", "warning",
        ],
        environment: ["STATE_DIRECTORY": ""], outputPath: directory.file("daemon.log"))
    guard waitUntil({ body(port, "/readyz")?.contains("\"ready\"") == true }) else {
        throw TestSupportError("daemon not ready")
    }
    print(
        "watchdog: \(devices) devices configured, ready \(format(seconds(ContinuousClock.now - start))) s after start")
    // Deadlines that pass before the daemon is connected and subscribed cannot be published on time; lateness is
    // measured for those after it.
    let readyWall = wallClockNanoseconds()
    // Deadlines of the silent devices, as the daemon reports them, before they pass.
    var deadlines: [String: Int64] = [:]
    for index in stride(from: 0, to: devices, by: silentEvery) {
        guard let view = body(port, "/devices/device/d\(index)"),
            let range = view.range(of: #""deadline":""#),
            let end = view[range.upperBound...].firstIndex(of: "\""),
            let deadline = RFC3339.parse(String(view[range.upperBound..<end]))
        else { continue }
        deadlines["bench/monitoring/expire/d\(index)"] = deadline
    }

    // The stream: every device but the silent ones, round robin, ~30,000 msg/s (each alive device every ~3 s).
    let publisher = try await publisher(broker)
    let alive = (0..<devices).filter { $0 % silentEvery != 0 }
    let streamSeconds = 20
    let cpuBefore = cpuSeconds(daemon.pid)
    let streamStart = ContinuousClock.now
    let streamStartWall = wallClockNanoseconds()
    var sent = 0
    for second in 0..<streamSeconds {
        for step in 0..<30_000 {
            let device = alive[(second * 30_000 + step) % alive.count]
            publisher.publishNoWait(topic: "fleet/d\(device)/temp", payload: Array("21.5".utf8))
            sent += 1
            if step % 1000 == 999 { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await Task.sleep(until: streamStart + .seconds(second + 1), clock: .continuous)
    }
    let streamCPU = cpuSeconds(daemon.pid) - cpuBefore
    let streamEndWall = wallClockNanoseconds()
    let streamElapsed = seconds(ContinuousClock.now - streamStart)
    // Idle: once every device has expired (the streamed ones up to 60 s after the stream ends), nothing is due.
    try await Task.sleep(until: streamStart + .seconds(streamSeconds + 65), clock: .continuous)
    let idleBefore = cpuSeconds(daemon.pid)
    let idleStart = ContinuousClock.now
    try await Task.sleep(for: .seconds(10))
    let idleCPU = cpuSeconds(daemon.pid) - idleBefore
    let idleElapsed = seconds(ContinuousClock.now - idleStart)

    let seen = arrivals.all
    var lateness: [Double] = []
    var beforeReady = 0
    var expiredAlive = 0
    // Every streamed device has had a message 4 s into the stream (a round is about 3.2 s).
    let streamSteady = streamStartWall + 4_000_000_000
    for (topic, time) in seen {
        if let deadline = deadlines[topic] {
            if deadline > readyWall { lateness.append(Double(time - deadline) / 1e6) } else { beforeReady += 1 }
        } else if let index = Int(topic.split(separator: "/").last!.dropFirst()), index % silentEvery != 0,
            time > streamSteady, time < streamEndWall
        {
            expiredAlive += 1
        }
    }
    _ = await daemon.stop(grace: .seconds(5))
    recording.cancel()
    await recorder.stop()
    await publisher.stop()
    print(
        "watchdog: CPU under a \(Int(Double(sent) / streamElapsed)) msg/s stream: \(format(100 * streamCPU / streamElapsed, 1))% of a core; "
            + "idle: \(format(100 * idleCPU / idleElapsed, 2))% of a core (target < 1%)")
    print(
        "watchdog: \(lateness.count + beforeReady) of \(deadlines.count) silent devices expired (\(beforeReady) before the "
            + "daemon was subscribed); lateness of the other \(lateness.count) against their deadlines: "
            + "p50 \(format(percentile(lateness, 0.5), 1)) ms, p99 \(format(percentile(lateness, 0.99), 1)) ms, "
            + "max \(format(lateness.max() ?? .nan, 1)) ms (target p99 < 100 ms); streamed devices expired while the stream ran: \(expiredAlive)"
    )
}

/// `[availability]` with Home Assistant discovery at 100,000 devices, beside the same run without it: two waves of
/// 100,000 live status messages (every device connects, then every device disconnects), each timed until the last
/// is answered (ingestion while the availability publisher works), and the time until every device's discovery
/// config and final `offline` reached a subscriber.
func availability() async throws {
    let devices = option("--devices", 100_000)
    let base = "home/monitoring"
    func run(homeassistant: Bool, waitForTopics: Bool) async throws -> (
        waves: [Duration], topics: Duration?, published: Int, peak: Int
    ) {
        let broker = try await MosquittoBroker(extraConfig: ["max_queued_messages 1000000"])
        let directory = try TemporaryDirectory(prefix: "bench-availability")
        let config = homeassistant ? "[availability]\nhomeassistant = true\n" : ""
        let (daemon, port) = try startDaemon(
            broker: broker, data: directory.file("data"), directory: directory, config: config)
        guard waitUntil({ body(port, "/readyz")?.contains("\"ready\"") == true }) else {
            throw TestSupportError("daemon not ready")
        }
        // What Home Assistant would see: every availability and discovery topic, last payload per topic.
        let seen = TopicTally(base: base)
        let subscriber = try MQTTClient(
            configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "bench-ha"))
        subscriber.start()
        guard waitUntil(timeout: .seconds(10), { subscriber.isConnected }) else {
            throw TestSupportError("subscriber not connected")
        }
        let reader = Task { for await batch in subscriber.messageBatches { seen.add(batch) } }
        try await subscriber.subscribe("\(base)/availability/#", qos: 1)
        try await subscriber.subscribe("homeassistant/#", qos: 1)
        let client = try await publisher(broker)
        let start = ContinuousClock.now
        var waves: [Duration] = []
        for (wave, action) in ["Connect", "Disconnect"].enumerated() {
            let waveStart = ContinuousClock.now
            for device in 0..<devices {
                let type = "bench\(device % 10)"
                let time = timeString(wave * devices + device)
                var payload = disconnect(type: type, id: "d\(device)", time: time)
                if action == "Connect" {
                    payload = Array(
                        #"{"ClientID":"d:7gnple:\#(type):d\#(device)","Time":"\#(time)","Action":"Connect"}"#.utf8)
                }
                client.publishNoWait(topic: "iot-2/type/\(type)/id/d\(device)/mon", payload: payload)
            }
            let last = devices - 1
            let lastTime = timeString(wave * devices + last)
            guard waitUntil({ body(port, "/bench\(last % 10)/d\(last)")?.contains(lastTime) == true }) else {
                throw TestSupportError("wave \(wave) not ingested")
            }
            waves.append(ContinuousClock.now - waveStart)
        }
        var topics: Duration?
        if homeassistant && waitForTopics {
            if waitUntil(timeout: .seconds(600), { seen.complete(devices: devices) }) {
                topics = ContinuousClock.now - start
            }
        }
        let published = seen.count
        let peak = seen.peakPerSecond
        if topics != nil {
            // Restart with nothing changed: every device is looked at, nothing is published.
            _ = await daemon.stop(grace: .seconds(5))
            let restarted = ContinuousClock.now
            let (again, _) = try startDaemon(
                broker: broker, data: directory.file("data"), directory: directory, config: config, logLevel: "notice")
            let line = "availability topics up to date"
            let log = { (try? String(contentsOfFile: directory.file("daemon.log"), encoding: .utf8)) ?? "" }
            if waitUntil(timeout: .seconds(300), { log().contains(line) }) {
                let summary = log().split(separator: "\n").first { $0.contains(line) }.map(String.init) ?? ""
                print(
                    "availability: restart with nothing changed: \(format(seconds(ContinuousClock.now - restarted))) s "
                        + "from process start to \"\(summary.split(separator: ":").dropFirst(3).joined(separator: ":"))\"; "
                        + "\(seen.count - published) messages on the availability and discovery topics")
            } else {
                print("availability: restart: no \"\(line)\" within 300 s")
            }
            _ = await again.stop(grace: .seconds(5))
        }
        reader.cancel()
        await subscriber.stop()
        await client.stop()
        _ = await daemon.stop(grace: .seconds(5))
        return (waves, topics, published, peak)
    }
    // Alternating runs, medians: on a shared machine one pair of runs says little.
    let repeats = max(option("--repeat", 1), 1)
    var references: [[Duration]] = []
    var measures: [[Duration]] = []
    var measured: (waves: [Duration], topics: Duration?, published: Int, peak: Int)?
    for round in 0..<repeats {
        references.append(try await run(homeassistant: false, waitForTopics: false).waves)
        let result = try await run(homeassistant: true, waitForTopics: round == 0)
        measures.append(result.waves)
        if round == 0 { measured = result }
        print(
            "availability: run \(round + 1): waves with \(result.waves.map { format(seconds($0)) }) s, without "
                + "\(references[round].map { format(seconds($0)) }) s")
    }
    func median(_ values: [Duration]) -> Duration { values.sorted()[values.count / 2] }
    func rate(_ duration: Duration) -> String { "\(Int(Double(devices) / seconds(duration))) msg/s" }
    for wave in 0..<2 {
        let with = median(measures.map { $0[wave] })
        let without = median(references.map { $0[wave] })
        print(
            "availability: ingestion wave \(wave + 1) (\(devices) devices \(wave == 0 ? "connect" : "disconnect")), "
                + "median of \(repeats): with [availability] homeassistant \(format(seconds(with))) s (\(rate(with))), "
                + "without \(format(seconds(without))) s (\(rate(without))), ratio "
                + format(seconds(without) / seconds(with)))
    }
    guard let measured else { return }
    let load =
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
        .joined(separator: " ") ?? "?"
    print(
        "availability: every discovery config and final offline of \(devices) devices received \(measured.topics.map { format(seconds($0)) + " s" } ?? "NOT within 600 s") "
            + "after the first wave began; \(measured.published) messages on the availability and discovery topics, "
            + "at most \(measured.peak) in one second; "
            + "load average \(load)")
}

/// Last payload per availability / discovery topic, as a subscriber sees them.
final class TopicTally: @unchecked Sendable {
    private let lock = NSLock()
    private var offline = 0
    private var configs = 0
    private var values: [String: Bool] = [:]
    private var messages = 0
    /// Messages per whole second since the first one.
    private var perSecond: [Int] = []
    private var first: ContinuousClock.Instant?
    let availabilityPrefix: String

    init(base: String) { availabilityPrefix = base + "/availability/" }

    func add(_ batch: [MQTTMessage]) {
        lock.withLock {
            let now = ContinuousClock.now
            let origin = first ?? now
            first = origin
            let second = Int(seconds(now - origin))
            while perSecond.count <= second { perSecond.append(0) }
            perSecond[second] += batch.count
            for message in batch {
                messages += 1
                if message.topic.hasPrefix(availabilityPrefix) {
                    let isOffline = message.payload == Array("offline".utf8)
                    let was = values.updateValue(isOffline, forKey: message.topic)
                    if was == true { offline -= 1 }
                    if isOffline { offline += 1 }
                } else if message.topic.hasPrefix("homeassistant/"), !message.payload.isEmpty {
                    configs += 1
                }
            }
        }
    }

    func complete(devices: Int) -> Bool { lock.withLock { offline >= devices && configs >= devices } }
    var count: Int { lock.withLock { messages } }
    /// The busiest whole second's message count.
    var peakPerSecond: Int { lock.withLock { perSecond.max() ?? 0 } }
}

final class ArrivalLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, Int64)] = []
    func add(_ new: [(String, Int64)]) { lock.withLock { entries += new } }
    var all: [(String, Int64)] { lock.withLock { entries } }
}

switch mode {
case "ingest": try await ingest()
case "presence": try await presenceIngest()
case "retained": try await retained()
case "judge": try await judge()
case "memory", "restart": try await memoryAndRestart()
case "watchdog": try await watchdog()
case "availability": try await availability()
case "seed":
    // devstatusd-bench seed DIR [--devices N] [--http-names]: a data directory with N Disconnect-sized statuses.
    try seed(
        String(arguments.dropFirst().first ?? "bench-data"), devices: option("--devices", 1_000_000),
        httpNames: arguments.contains("--http-names"))
case "all":
    try await ingest()
    try await presenceIngest()
    try await retained()
    try await memoryAndRestart()
    try await watchdog()
    try await availability()
default:
    print(
        "usage: devstatusd-bench <ingest|presence|retained|judge|memory|restart|watchdog|availability|all> [--daemon PATH] [--devices N] [--messages N] [--repeat N]"
    )
    exit(1)
}
