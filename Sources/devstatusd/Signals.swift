import Foundation
import ServiceLifecycle
import UnixSignals

/// Where SIGTERM and SIGINT go: a graceful shutdown of the daemon's service group. A signal that arrives while the
/// daemon is still being assembled (loading a big store, say) is remembered, and the group stops as soon as it
/// has started.
actor StopRequests {
    private var group: ServiceGroup?
    private var requested = false

    func request() async {
        requested = true
        await group?.triggerGracefulShutdown()
    }

    func attach(_ group: ServiceGroup) async {
        self.group = group
        if requested { await group.triggerGracefulShutdown() }
    }
}

/// SIGHUP: one configuration reload per signal, in signal order, while the daemon runs.
struct ReloadService: Service {
    let signals: UnixSignalsSequence
    let reloader: ConfigReloader

    func run() async {
        for await _ in signals.cancelOnGracefulShutdown() { await reloader.reload() }
    }
}

/// The signals the daemon handles, trapped from the start so that none is lost while it starts: their default
/// actions (ending the process) are turned off, and each is delivered to a sequence instead.
struct DaemonSignals {
    let stop: UnixSignalsSequence
    let reload: UnixSignalsSequence

    static func trap() async -> DaemonSignals {
        // The default action of SIGPIPE kills the process on a write to a closed socket; errors are handled instead.
        signal(SIGPIPE, SIG_IGN)
        for number in [SIGTERM, SIGINT, SIGHUP] { signal(number, SIG_IGN) }
        return DaemonSignals(
            stop: await UnixSignalsSequence(trapping: .sigterm, .sigint),
            reload: await UnixSignalsSequence(trapping: .sighup))
    }
}
