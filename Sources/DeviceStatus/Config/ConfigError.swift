/// One problem in a config file, with what a person needs to fix it:
/// `config.toml:7: [mqtt] keepAlive: expected an integer, found a string ("60")`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as given to the loader.
    public var file: String
    /// 1-based line, when known (nil for an unreadable file).
    public var line: Int?
    /// 1-based column, for TOML syntax errors only.
    public var column: Int?
    /// The section (`mqtt`, `device_esp04`), or nil for a whole-file problem or a key outside any section.
    public var section: String?
    /// The key inside `section` (or a top-level key), nil for a problem with a whole section.
    public var name: String?
    /// What is wrong and what was expected.
    public var message: String

    public init(file: String, line: Int?, column: Int? = nil, section: String?, name: String?, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.section = section
        self.name = name
        self.message = message
    }

    /// The dotted key, e.g. `mqtt.keepAlive`, `device_esp04`, or `""` for a whole-file problem.
    public var key: String { [section, name].compactMap { $0 }.joined(separator: ".") }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        switch (section, name) {
        case (let section?, let name?): return "\(location): [\(section)] \(name): \(message)"
        case (let section?, nil): return "\(location): [\(section)]: \(message)"
        case (nil, let name?): return "\(location): \(name): \(message)"
        case (nil, nil): return "\(location): \(message)"
        }
    }
}

/// Every problem found in one config file, in line order; `description` prints one per line.
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
