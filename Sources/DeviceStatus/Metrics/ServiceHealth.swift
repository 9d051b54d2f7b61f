import MQTT
import Synchronization

/// What the daemon tells its service manager (systemd's sd_notify, in `devstatusd`): where it is in its life,
/// a one-line status, and whether the registry actor still answers (the watchdog's proof of life).
/// `Daemon` feeds it; observers are told every phase change.
public final class ServiceHealth: Sendable {
    public enum Phase: Sendable, Equatable {
        /// Opening and loading the store, binding the port.
        case starting
        /// The store is loaded and the HTTP port bound (`port` is the bound one): serving.
        case ready(port: Int)
        /// Asked to stop: no new connections; finishing in-flight work.
        case stopping
    }

    private struct State {
        var phase = Phase.starting
        var registry: StatusRegistry?
        var readiness: Readiness?
        var client: MQTTClient?
        var devices: (@Sendable () -> [DeviceState: Int])?
        var everConnected = false
        var observers: [@Sendable (Phase) -> Void] = []
    }

    private let state = Mutex(State())

    public init() {}

    public var phase: Phase { state.withLock { $0.phase } }

    /// `observer` runs (on the thread that changes the phase) for every later phase change. Return quickly.
    public func observe(_ observer: @escaping @Sendable (Phase) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    /// - Parameter devices: devices by overall status, for the status line.
    func attach(
        registry: StatusRegistry, readiness: Readiness, client: MQTTClient? = nil,
        devices: @escaping @Sendable () -> [DeviceState: Int]
    ) {
        state.withLock {
            $0.registry = registry
            $0.readiness = readiness
            $0.client = client
            $0.devices = devices
        }
    }

    func enter(_ phase: Phase) {
        let observers = state.withLock { state -> [@Sendable (Phase) -> Void] in
            guard state.phase != phase else { return [] }
            state.phase = phase
            return state.observers
        }
        for observer in observers { observer(phase) }
    }

    /// One line for `systemctl status` (`STATUS=`): devices by status and the MQTT state, e.g.
    /// `3 devices: 2 online, 1 offline; MQTT connected`.
    public func summary() -> String {
        let (phase, devices, readiness, client) = state.withLock { ($0.phase, $0.devices, $0.readiness, $0.client) }
        switch phase {
        case .starting: return "starting: " + (readiness?.notReadyReason ?? "loading the store")
        case .stopping: return "stopping"
        case .ready: break
        }
        var line = ""
        if let devices {
            let counts = devices()
            let total = counts.values.reduce(0, +)
            let parts = DeviceState.allCases.compactMap { state -> String? in
                guard let count = counts[state], count > 0 else { return nil }
                return "\(count) \(state.rawValue)"
            }
            line =
                "\(total) device\(total == 1 ? "" : "s")" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
        }
        let connected = client?.isConnected ?? readiness?.isMQTTConnected ?? false
        let everConnected = state.withLock { state in
            if connected { state.everConnected = true }
            return state.everConnected
        }
        let mqtt = connected ? "MQTT connected" : everConnected ? "MQTT disconnected, reconnecting" : "MQTT connecting"
        return line.isEmpty ? mqtt : line + "; " + mqtt
    }

    /// Whether the registry actor answers a request within `timeout`: it serializes every status change, so
    /// an actor that does not answer means a stuck daemon, which the watchdog must not hide. True before the
    /// registry exists (nothing can be stuck yet).
    public func registryResponds(within timeout: Duration) async -> Bool {
        guard let registry = state.withLock({ $0.registry }) else { return true }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer = FirstAnswer(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                answer.give(false)
            }
            Task {
                _ = await registry.counters
                answer.give(true)
                timer.cancel()
            }
        }
    }
}

/// Resumes a continuation with the first answer given; later ones are dropped.
private final class FirstAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) { self.continuation = Mutex(continuation) }

    func give(_ value: Bool) {
        let waiting = continuation.withLock { current -> CheckedContinuation<Bool, Never>? in
            defer { current = nil }
            return current
        }
        waiting?.resume(returning: value)
    }
}

extension DeviceTable {
    /// Devices by overall status as far as the status table knows (every presence source): the default device
    /// count of `/metrics` and the service status line.
    public func statusTopicCountsByState() -> [DeviceState: Int] {
        var counts: [DeviceState: Int] = [:]
        for (status, count) in countsByStatus() { counts[status.state] = count }
        return counts
    }
}
