import Logging
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import DeviceStatus

/// The latest moment the fleet index and the history's writes wait for the first retained replay.
@Suite struct ReplayHoldServiceTests {
    private static func group(_ service: ReplayHoldService) -> ServiceGroup {
        ServiceGroup(configuration: .init(services: [.init(service: service)], logger: Logger(label: "test")))
    }

    @Test func releasesWhatWaitsOnceItsPatienceIsOver() async throws {
        let released = Atomic<Int>(0)
        let group = Self.group(ReplayHoldService(patience: .milliseconds(20)) { released.add(1, ordering: .relaxed) })
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { released.load(ordering: .relaxed) == 1 })
            await group.triggerGracefulShutdown()
        }
        #expect(released.load(ordering: .relaxed) == 1)
    }

    @Test func releasesWhatWaitsAtOnceWhenTheDaemonStops() async throws {
        let released = Atomic<Int>(0)
        let group = Self.group(ReplayHoldService(patience: .seconds(3600)) { released.add(1, ordering: .relaxed) })
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
        }
        // The group ended (an hour's patience did not hold up the stop) and released once.
        #expect(released.load(ordering: .relaxed) == 1)
    }
}
