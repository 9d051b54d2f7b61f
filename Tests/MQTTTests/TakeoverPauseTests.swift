import Testing

@testable import MQTT

struct TakeoverPauseTests {
    @Test func takeoverPausesDoubleFromThirtySecondsToTenMinutes() {
        #expect((1...7).map { ClientCore.takeoverPause($0) } == [30, 60, 120, 240, 480, 600, 600])
    }
}
