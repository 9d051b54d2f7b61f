/// A failure of a test fixture, with the detail a person needs to see what went wrong
/// (the command, the port, the broker's log).
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
