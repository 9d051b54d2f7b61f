import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A tmpfs of a few MiB mounted on a fresh temporary directory, for full-disk tests; unmounted on deinit or by
/// ``unmount()``. Mounting needs root (tests run as root); ``unavailableReason`` says why it cannot be done here.
public final class SmallFilesystem: Sendable {
    /// The mount point.
    public let path: String
    private let directory: TemporaryDirectory
    private let mounted = Mutex(true)

    /// Mounts a tmpfs of `megabytes` MiB.
    public init(megabytes: Int) throws {
        directory = try TemporaryDirectory(prefix: "devstatusd-smallfs")
        path = directory.path
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(megabytes)m,mode=0755") == 0 else {
            let reason = String(cString: strerror(errno))
            mounted.withLock { $0 = false }
            throw TestSupportError("cannot mount a tmpfs on \(path): \(reason)")
        }
    }

    deinit { unmount() }

    /// Nil when a tmpfs can be mounted here, else why not (not root, no CAP_SYS_ADMIN in a container).
    public static let unavailableReason: String? = {
        do {
            _ = try SmallFilesystem(megabytes: 1)
            return nil
        } catch {
            return "\(error)"
        }
    }()

    /// Unmounts (lazily, so that a file still open does not keep it) and removes the mount point; later calls do
    /// nothing.
    public func unmount() {
        let wasMounted = mounted.withLock { state in
            defer { state = false }
            return state
        }
        if wasMounted { umount2(path, Int32(MNT_DETACH)) }
        directory.remove()
    }

    /// Writes `name` (a file in the file system) with zeros until the file system is full, leaving `keep` bytes
    /// free when given (a write of that size then still succeeds). Returns the bytes written.
    @discardableResult
    public func fill(_ name: String = "filler", keep: Int = 0) throws -> Int {
        let file = "\(path)/\(name)"
        let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TestSupportError("cannot create \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var total = 0
        var chunk = 64 << 10
        let zeros = [UInt8](repeating: 0, count: chunk)
        while chunk > 0 {
            if keep > 0, freeBytes() - chunk < keep {
                chunk /= 2
                continue
            }
            let count = zeros.withUnsafeBytes { write(fd, $0.baseAddress, chunk) }
            if count > 0 {
                total += count
            } else {
                chunk /= 2
            }
        }
        return total
    }

    /// Bytes still free.
    public func freeBytes() -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Removes a file written by ``fill(_:keep:)``: the space is free again.
    public func free(_ name: String = "filler") {
        unlink("\(path)/\(name)")
    }
}
