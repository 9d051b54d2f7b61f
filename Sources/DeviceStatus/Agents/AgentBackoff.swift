/// When to start a dead agent again (docs/behaviour.md §7): 1 s after its first quick death, doubling with every further one
/// up to 60 s, and back to 1 s once a run has lasted 60 s.
///
/// A pure rule: the caller passes the times in (from `ContinuousClock` in the daemon, made up in tests), and
/// carries out the delay it returns.
public struct AgentBackoff: Sendable, Equatable {
    /// The first delay, default 1 s: long enough that a crash loop cannot spin a core, short enough to go unnoticed.
    public var initialDelay: Duration
    /// The longest delay, default 60 s: a broken agent is still retried every minute, so fixing its cause is enough.
    public var maximumDelay: Duration
    /// How long a run must last for the delay to start over at `initialDelay`, default 60 s.
    public var stableUptime: Duration

    /// The delay the next death will be given, unless the run it ends lasted `stableUptime`.
    public private(set) var pendingDelay: Duration
    /// When the current run started; nil while the agent is not running.
    public private(set) var runStartedAt: ContinuousClock.Instant?

    public init(
        initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(60),
        stableUptime: Duration = .seconds(60)
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.stableUptime = stableUptime
        self.pendingDelay = initialDelay
    }

    /// The agent was started (or adopted) at `now`.
    public mutating func started(at now: ContinuousClock.Instant) {
        runStartedAt = now
    }

    /// The agent died at `now`: returns how long to wait before starting it again.
    public mutating func exited(at now: ContinuousClock.Instant) -> Duration {
        if let runStartedAt, now - runStartedAt >= stableUptime {
            pendingDelay = initialDelay
        }
        runStartedAt = nil
        let delay = pendingDelay
        pendingDelay = min(pendingDelay * 2, maximumDelay)
        return delay
    }
}
