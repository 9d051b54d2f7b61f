/// A LevelDB failure, classified so callers can act on it (the daemon exits with code 2 on
/// `.locked`, `.corrupt` and `.io` at open). `description` is one line that names the directory.
public struct StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Kind: Sendable, Equatable {
        /// Another process (or another `LevelDB` in this one) holds the directory's LOCK file.
        case locked
        /// LevelDB found damaged data ("Corruption: …").
        case corrupt
        /// The file system failed ("IO error: …"): permissions, disk full, missing directory.
        case io
        /// The database does not exist and `createIfMissing` is false, or a file is missing.
        case notFound
        /// LevelDB rejected an argument ("Invalid argument: …"), e.g. `errorIfExists` on an existing database.
        case invalidArgument
        /// The `LevelDB` was closed before the call.
        case closed
        /// Anything else LevelDB reports.
        case other
        /// A write refused because an earlier failure poisoned the handle (see ``LevelDB/failure``); `message`
        /// is that failure's.
        case poisoned
    }

    public var kind: Kind
    /// LevelDB's own text (or ours for `.closed`), unmodified.
    public var message: String
    /// The database directory.
    public var path: String

    public init(kind: Kind, message: String, path: String) {
        self.kind = kind
        self.message = message
        self.path = path
    }

    /// Classifies one of LevelDB's status strings.
    public init(leveldbMessage message: String, path: String) {
        self.init(kind: Self.classify(message), message: message, path: path)
    }

    static func classify(_ message: String) -> Kind {
        // LevelDB 1.23 reports a held lock as "IO error: lock <dir>/LOCK: Resource temporarily unavailable"
        // (another process) or "IO error: lock <dir>/LOCK: already held by process" (this process).
        if message.hasPrefix("IO error: lock ") || message.contains("already held by process") { return .locked }
        if message.hasPrefix("Corruption") { return .corrupt }
        if message.contains("does not exist (create_if_missing is false)") || message.hasPrefix("NotFound") {
            return .notFound
        }
        if message.hasPrefix("Invalid argument") { return .invalidArgument }
        if message.hasPrefix("IO error") { return .io }
        return .other
    }

    public var description: String {
        switch kind {
        case .locked: "data directory \(path) is locked by another devstatusd (LevelDB LOCK held)"
        case .corrupt: "data directory \(path) is corrupt: \(message)"
        case .io: "data directory \(path) is unusable: \(message)"
        case .notFound: "data directory \(path) has no database: \(message)"
        case .invalidArgument: "data directory \(path): invalid argument: \(message)"
        case .closed: "data directory \(path): database is closed"
        case .other: "data directory \(path): \(message)"
        case .poisoned:
            "data directory \(path): writes refused until the store is reopened and verified, after: \(message)"
        }
    }
}
