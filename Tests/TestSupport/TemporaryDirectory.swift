import Foundation
import Synchronization

/// A fresh directory under `/tmp` (mkdtemp), removed with its contents on deinit or by ``remove()``.
public final class TemporaryDirectory: Sendable {
    /// The absolute path, without a trailing slash.
    public let path: String
    private let removed = Mutex(false)

    /// Creates `/tmp/<prefix>.XXXXXX`. `prefix` defaults to `"devstatusd-test"`.
    public init(prefix: String = "devstatusd-test") throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else { throw TestSupportError("mkdtemp(/tmp/\(prefix).XXXXXX) failed: errno \(errno)") }
        path = made
    }

    /// `path/name`.
    public func file(_ name: String) -> String {
        "\(path)/\(name)"
    }

    /// Removes the directory and everything in it; later calls do nothing.
    public func remove() {
        let first = removed.withLock { done in
            defer { done = true }
            return !done
        }
        if first {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    deinit {
        remove()
    }
}
