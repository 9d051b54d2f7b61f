import DeviceStatus
import Foundation
import MQTT
import Storage
import TestSupport

// `make bench`'s measurements of the core (issue 2), each printed beside a reference measured in the same run.
// Usage: devstatusd-bench <ingest|retained|memory|restart|all> [--daemon PATH] [--devices N] [--messages N]

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

func startDaemon(broker: MosquittoBroker?, data: String, directory: TemporaryDirectory) throws -> (ChildProcess, Int) {
    let port = try FreePort.next()
    let process = try ChildProcess(
        executable: daemonPath,
        arguments: [
            "--port", "\(port)", "--broker", broker?.url ?? "tcp://127.0.0.1:1", "--data-dir", data, "--log-level",
            "warning",
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
        arguments: ["-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "iot-2/type/+/id/+/mon", "-q", "0", "-C", "\(count)"],
        outputPath: directory.file("sub.out"))
}

func publisher(_ broker: MosquittoBroker) async throws -> MQTTClient {
    let client = try MQTTClient(
        configuration: MQTTConfiguration(broker: BrokerURL(parsing: broker.url), clientID: "bench-pub"))
    client.start()
    guard waitUntil(timeout: .seconds(10), { client.isConnected }) else { throw TestSupportError("publisher not connected") }
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
    guard waitUntil({ body(port, "/readyz")?.contains("\"ready\"") == true }) else { throw TestSupportError("daemon not ready") }
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
        if daemonElapsed == nil, body(port, lastPath)?.contains(lastTime) == true { daemonElapsed = ContinuousClock.now - start }
        if subElapsed == nil, sub.exitStatus != nil { subElapsed = ContinuousClock.now - start }
        return daemonElapsed != nil && subElapsed != nil
    }
    await client.stop()
    _ = await daemon.stop(grace: .seconds(5))
    guard let daemonElapsed, let subElapsed else {
        print("ingest: FAILED (daemon \(daemonElapsed.map(seconds) ?? -1) s, mosquitto_sub \(subElapsed.map(seconds) ?? -1) s)")
        return
    }
    let ours = Double(messages) / seconds(daemonElapsed)
    let reference = Double(messages) / seconds(subElapsed)
    print(
        "ingest: \(messages) live messages, \(devices) devices: devstatusd \(format(seconds(daemonElapsed))) s "
            + "(\(Int(ours)) msg/s), mosquitto_sub \(format(seconds(subElapsed))) s (\(Int(reference)) msg/s), "
            + "ratio \(format(ours / reference)) (target >= 0.95)")
}

/// 100,000 retained devices: time until all answer, beside mosquitto_sub receiving them. Default broker settings.
func retained() async throws {
    let devices = option("--devices", 100_000)
    let broker = try await MosquittoBroker()
    let directory = try TemporaryDirectory(prefix: "bench-retained")
    let client = try await publisher(broker)
    for device in 0..<devices {
        let type = "bench\(device % 10)"
        client.publishNoWait(
            topic: "iot-2/type/\(type)/id/d\(device)/mon", payload: disconnect(type: type, id: "d\(device)", time: timeString(device)),
            qos: 0, retain: true)
        if device % 5000 == 4999 { try await Task.sleep(for: .milliseconds(20)) }
    }
    try await client.publish(topic: "bench/flush", payload: [1], qos: 1)
    await client.stop()

    let subStart = ContinuousClock.now
    let sub = try mosquittoSub(broker, count: devices, directory: directory)
    _ = waitUntil(timeout: .seconds(60)) { sub.exitStatus != nil }
    let subElapsed = ContinuousClock.now - subStart
    let subReceived = (try? String(contentsOfFile: directory.file("sub.out"), encoding: .utf8))?.split(separator: "\n").count ?? 0

    let start = ContinuousClock.now
    let (daemon, port) = try startDaemon(broker: broker, data: directory.file("data"), directory: directory)
    let ready = waitUntil { body(port, "/readyz")?.contains("\"ready\"") == true }
    let elapsed = ContinuousClock.now - start
    var missing = 0
    for device in 0..<devices where body(port, "/bench\(device % 10)/d\(device)")?.contains("\"Disconnect\"") != true {
        missing += 1
    }
    _ = await daemon.stop(grace: .seconds(5))
    print(
        "retained: \(devices) retained devices: devstatusd ready in \(format(seconds(elapsed))) s (from process start, "
            + "\(ready ? "ready" : "NOT READY")), \(missing) missing; mosquitto_sub received \(subReceived) in "
            + "\(format(seconds(subElapsed))) s (from process start); broker dropped: "
            + "\(broker.log.contains("being dropped") ? "yes" : "no")")
}

/// Writes `devices` Disconnect-sized statuses straight into a LevelDB data directory, as the daemon stores them.
func seed(_ path: String, devices: Int) throws {
    let store = try LevelDB(path: path)
    var batch = WriteBatch()
    for device in 0..<devices {
        let type = "bench\(device % 10)"
        let record = StatusRecord(
            action: .disconnect, time: 1_600_000_000_000_000_000 + Int64(device),
            payload: disconnect(type: type, id: "d\(device)", time: timeString(device)))
        batch.put(Array("s/\(type)/d\(device)".utf8), record.encoded)
        if batch.count == 10_000 {
            try store.write(batch)
            batch.clear()
        }
    }
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

switch mode {
case "ingest": try await ingest()
case "retained": try await retained()
case "memory", "restart": try await memoryAndRestart()
case "all":
    try await ingest()
    try await retained()
    try await memoryAndRestart()
default:
    print("usage: devstatusd-bench <ingest|retained|memory|restart|all> [--daemon PATH] [--devices N] [--messages N]")
    exit(1)
}
