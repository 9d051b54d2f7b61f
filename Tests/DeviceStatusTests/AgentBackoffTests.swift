import Foundation
import Testing

@testable import DeviceStatus

@Suite struct AgentBackoffTests {
    let t0 = ContinuousClock.now

    /// Runs `count` quick deaths (each run 100 ms long) and returns the delays the backoff answered.
    func quickDeaths(_ backoff: inout AgentBackoff, count: Int, from start: ContinuousClock.Instant) -> [Duration] {
        var now = start
        var delays: [Duration] = []
        for _ in 0..<count {
            backoff.started(at: now)
            now += .milliseconds(100)
            let delay = backoff.exited(at: now)
            delays.append(delay)
            now += delay
        }
        return delays
    }

    @Test func doublesFromOneSecondUpToSixtySeconds() {
        var backoff = AgentBackoff()
        let delays = quickDeaths(&backoff, count: 9, from: t0)
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
    }

    @Test func startsOverAfterSixtySecondsUp() {
        var backoff = AgentBackoff()
        _ = quickDeaths(&backoff, count: 5, from: t0)
        backoff.started(at: t0 + .seconds(100))
        #expect(backoff.exited(at: t0 + .seconds(160)) == .seconds(1))
        // And doubles again from there.
        backoff.started(at: t0 + .seconds(161))
        #expect(backoff.exited(at: t0 + .seconds(162)) == .seconds(2))
    }

    @Test func keepsDoublingWhenARunLastsJustUnderSixtySeconds() {
        var backoff = AgentBackoff()
        _ = quickDeaths(&backoff, count: 3, from: t0)  // 1, 2, 4
        backoff.started(at: t0 + .seconds(100))
        #expect(backoff.exited(at: t0 + .seconds(159.9)) == .seconds(8))
    }

    @Test func aFailedStartBacksOffLikeADeath() {
        var backoff = AgentBackoff()
        // Never started (spawn failed): no uptime, so no reset.
        #expect(backoff.exited(at: t0) == .seconds(1))
        #expect(backoff.exited(at: t0 + .seconds(100)) == .seconds(2))
        #expect(backoff.runStartedAt == nil)
    }

    @Test func anAdoptedAgentBackdatedPastSixtySecondsRestartsAfterOneSecond() {
        var backoff = AgentBackoff()
        _ = quickDeaths(&backoff, count: 4, from: t0)
        backoff.started(at: t0 + .seconds(100) - .seconds(3600))
        #expect(backoff.exited(at: t0 + .seconds(101)) == .seconds(1))
    }

    // MARK: Identity

    func environ(_ entries: [String]) -> [UInt8] { entries.flatMap { Array($0.utf8) + [0] } }

    @Test func findsTheExactTagAmongEnvironmentEntries() {
        let text = environ(["PATH=/usr/bin", "DEVSTATUSD_AGENT=ledbox", "HOME=/root"])
        #expect(AgentIdentity.environ(text, isTaggedWith: "ledbox"))
    }

    @Test func neverMatchesTheTagBySubstring() {
        #expect(!AgentIdentity.environ(environ(["DEVSTATUSD_AGENT=ledbox2"]), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ(environ(["DEVSTATUSD_AGENT=led"]), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ(environ(["XDEVSTATUSD_AGENT=ledbox"]), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ(environ(["DEVSTATUSD_AGENT=ledbox "]), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ(environ(["OTHER=DEVSTATUSD_AGENT=ledbox"]), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ(Array("PATH=/bin DEVSTATUSD_AGENT=ledbox".utf8), isTaggedWith: "ledbox"))
        // The last entry may lack its NUL; it still counts whole.
        #expect(AgentIdentity.environ(Array("A=1\0DEVSTATUSD_AGENT=ledbox".utf8), isTaggedWith: "ledbox"))
        #expect(!AgentIdentity.environ([], isTaggedWith: "ledbox"))
    }

    @Test func readsStartTimeAfterACommandNameWithSpacesAndParentheses() throws {
        let line =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 148 0 0 0 0 0 0 0 20 0 1 0 987654 5849088 222 "
            + "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        let stat = try #require(AgentIdentity.ProcessStat(parsing: line))
        #expect(stat == AgentIdentity.ProcessStat(state: "S", processGroup: 4242, startTime: 987654))
        #expect(!stat.hasExited)
        let zombie = line.replacingOccurrences(of: ") S ", with: ") Z ")
        #expect(AgentIdentity.ProcessStat(parsing: zombie)?.hasExited == true)
        #expect(AgentIdentity.ProcessStat(parsing: "4242 (sh) S 1 4242") == nil)
        #expect(AgentIdentity.ProcessStat(parsing: "garbage") == nil)
    }

    @Test func parsesItsOwnStatLine() throws {
        let text = try #require(ProcFS.readAll("/proc/self/stat"))
        let stat = try #require(AgentIdentity.ProcessStat(parsing: String(decoding: text, as: UTF8.self)))
        #expect(stat.processGroup == getpgrp())
        #expect(!stat.hasExited)
        #expect(stat.startTime > 0)
    }

    @Test func pidFileRoundTripsAndRejectsGarbage() {
        let file = AgentIdentity.PidFile(pid: 4242, startTime: 987654, startedAt: 1_700_000_000_123_456_789)
        #expect(AgentIdentity.PidFile(parsing: file.text) == file)
        #expect(AgentIdentity.PidFile(parsing: "4242\n") == nil)
        #expect(AgentIdentity.PidFile(parsing: "pid=4242\nstarttime=1\n") == nil)
        #expect(AgentIdentity.PidFile(parsing: "pid=-1\nstarttime=1\nstarted=1\n") == nil)
        #expect(AgentIdentity.PidFile(parsing: "pid=x\nstarttime=1\nstarted=1\n") == nil)
    }

    @Test func adoptsOnlyALiveTaggedProcessStartedWhenThePidFileSays() {
        let file = AgentIdentity.PidFile(pid: 4242, startTime: 987654, startedAt: 0)
        let alive = AgentIdentity.ProcessStat(state: "S", processGroup: 4242, startTime: 987654)
        let tagged = environ(["DEVSTATUSD_AGENT=ledbox"])
        #expect(AgentIdentity.verdict(pidFile: file, stat: alive, environ: tagged, name: "ledbox") == .adopt)
        #expect(AgentIdentity.verdict(pidFile: file, stat: nil, environ: tagged, name: "ledbox") == .gone)
        var zombie = alive
        zombie.state = "Z"
        #expect(AgentIdentity.verdict(pidFile: file, stat: zombie, environ: tagged, name: "ledbox") == .gone)
        var reused = alive
        reused.startTime = 987655
        #expect(AgentIdentity.verdict(pidFile: file, stat: reused, environ: tagged, name: "ledbox") == .pidReused)
        #expect(AgentIdentity.verdict(pidFile: file, stat: alive, environ: tagged, name: "ledbox2") == .untagged)
        #expect(
            AgentIdentity.verdict(pidFile: file, stat: alive, environ: environ(["PATH=/bin"]), name: "ledbox")
                == .untagged)
    }
}
