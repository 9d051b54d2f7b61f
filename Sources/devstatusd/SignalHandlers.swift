import Dispatch
import Foundation
import Synchronization

/// SIGTERM/SIGINT and SIGHUP, delivered as callbacks on a dispatch queue instead of in a signal handler.
final class SignalHandlers: @unchecked Sendable {  // sources are only touched under `lock`
    private let queue = DispatchQueue(label: "devstatusd.signals")
    private let lock = NSLock()
    private var sources: [any DispatchSourceSignal] = []

    init() {
        // The default action of SIGPIPE kills the process on a write to a closed socket; errors are handled instead.
        signal(SIGPIPE, SIG_IGN)
    }

    /// `body` runs on SIGTERM and SIGINT.
    func onTerminate(_ body: @escaping @Sendable () -> Void) {
        install(SIGTERM, body)
        install(SIGINT, body)
    }

    /// `body` runs on SIGHUP.
    func onReload(_ body: @escaping @Sendable () -> Void) { install(SIGHUP, body) }

    private func install(_ number: Int32, _ body: @escaping @Sendable () -> Void) {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
        source.setEventHandler(handler: body)
        source.resume()
        lock.withLock { sources.append(source) }
    }
}
