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
    private let storeFailure = Mutex<(@Sendable () -> String?)?>(nil)
    /// Run once when the replay is through (work that waits for the replay rather than competing with it).
    private let afterReplay = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// nil when ready, else why not (one line for the 503 body).
    public var notReadyReason: String? {
        if let failure = storeFailure.withLock({ $0 })?() {
            return "the store refuses writes until it is reopened and verified: \(failure)"
        }
        return state.withLock { state in
            if !state.storeLoaded { return "loading the store" }
            if !state.everConnected { return "waiting for the MQTT broker" }
            if !state.replayDone { return "receiving the broker's retained status messages" }
            return nil
        }
    }

    public var isMQTTConnected: Bool { state.withLock { $0.mqttConnected } }

    func storeDidLoad() { state.withLock { $0.storeLoaded = true } }
    /// `failure` says why the store refuses writes, nil while it takes them: not ready meanwhile.
    func watchStore(_ failure: @escaping @Sendable () -> String?) { storeFailure.withLock { $0 = failure } }
    func replayDidFinish() {
        state.withLock { $0.replayDone = true }
        let waiting = afterReplay.withLock { waiting in
            defer { waiting = [] }
            return waiting
        }
        for body in waiting { body() }
    }

    /// Runs `body` once the first retained replay is through (at once if it already is).
    func whenReplayFinished(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state in
            afterReplay.withLock { waiting in
                if !state.replayDone { waiting.append(body) }
            }
            return state.replayDone
        }
        if now { body() }
    }
    var replayFinished: Bool { state.withLock { $0.replayDone } }

    func mqtt(connected: Bool) {
        state.withLock {
            $0.mqttConnected = connected
            if connected { $0.everConnected = true }
        }
    }
}
