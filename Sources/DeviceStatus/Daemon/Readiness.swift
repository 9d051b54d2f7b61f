import Synchronization

/// What `/readyz` answers: ready once the store is loaded and the first subscription's retained replay is through.
public final class Readiness: Sendable {
    private struct State {
        var storeLoaded = false
        var replayDone = false
        var mqttConnected = false
        var everConnected = false
    }

    private let state = Mutex(State())

    public init() {}

    /// nil when ready, else why not (one line for the 503 body).
    public var notReadyReason: String? {
        state.withLock { state in
            if !state.storeLoaded { return "loading the store" }
            if !state.everConnected { return "waiting for the MQTT broker" }
            if !state.replayDone { return "receiving the broker's retained status messages" }
            return nil
        }
    }

    public var isMQTTConnected: Bool { state.withLock { $0.mqttConnected } }

    func storeDidLoad() { state.withLock { $0.storeLoaded = true } }
    func replayDidFinish() { state.withLock { $0.replayDone = true } }
    var replayFinished: Bool { state.withLock { $0.replayDone } }

    func mqtt(connected: Bool) {
        state.withLock {
            $0.mqttConnected = connected
            if connected { $0.everConnected = true }
        }
    }
}
