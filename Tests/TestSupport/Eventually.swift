/// Polls `condition` until it returns true or `timeout` passes; returns the last answer.
///
/// Use it for effects that happen on another thread or process:
/// `#expect(await eventually { client.isConnected })`.
/// - Parameters:
///   - timeout: how long to keep trying; default 5 s, longer than any local broker or socket round trip.
///   - poll: the pause between tries; default 20 ms.
public func eventually(
    timeout: Duration = .seconds(5),
    poll: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: poll)
    }
}
