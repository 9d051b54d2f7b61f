import Foundation

/// The data directory, created with its missing parents when needed.
enum DataDirectory {
    /// Creates `path` and its missing parents; on failure, a sentence that names `path` once and says why in the
    /// system's words (`data directory /srv/x/data cannot be created: Permission denied (in /srv/x)`), never a
    /// Foundation error domain and code.
    static func create(_ path: String) -> String? {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var prefix = ""
        for component in absolute.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o755) == 0 { continue }
            let failure = errno
            var info = stat()
            if stat(prefix, &info) == 0 {
                if info.st_mode & S_IFMT == S_IFDIR { continue }
                return describe(path, at: prefix, absolute: absolute, reason: "not a directory")
            }
            return describe(path, at: prefix, absolute: absolute, reason: String(cString: strerror(failure)))
        }
        return nil
    }

    private static func describe(_ path: String, at prefix: String, absolute: String, reason: String) -> String {
        let place = prefix == absolute ? "" : " (at \(prefix))"
        return "data directory \(path) cannot be created: \(reason)\(place)"
    }
}
