import MQTT
import TOMLKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads `config.toml` (docs/behaviour.md §2) into a ``DaemonConfig``: first TOML syntax (TOMLKit), then every
/// section and key, collecting all errors instead of stopping at the first. Each error names the
/// file, line, key and what was expected.
public enum ConfigLoader {
    /// The built-in configuration, used when there is no config file; every key at its default.
    public static var defaults: DaemonConfig { DaemonConfig() }

    /// Keys of the fixed sections, in documentation order.
    public static let sectionKeys: KeyValuePairs<String, [String]> = [
        "mqtt": [
            "serverAddress", "user", "password", "clientid", "baseTopic", "keepAlive", "protocol", "cafile", "certfile",
            "keyfile",
        ],
        "http": [
            "bind", "port", "token", "tokenFile", "threads", "maxConnections", "headerTimeout", "idleTimeout",
            "writeTimeout",
            "maxRequestLine", "maxHeaderBytes", "maxHeaders", "maxBody",
        ],
        "status": ["topics", "org", "maxClockSkew"],
        "storage": ["dataDir"],
        "operations": ["maxQueuedPerDevice", "maxAttempts"],
        "log": ["level", "access"],
        "availability": ["publish", "homeassistant", "discoveryPrefix", "types"],
    ]
    /// Keys of a `[[presence]]` block; the last five only with `preset = "lwt"`.
    public static let presenceKeys = ["preset", "type", "prefix", "topic", "online", "offline", "sleeping", "field"]
    static let lwtOnlyKeys = ["topic", "online", "offline", "sleeping", "field"]
    /// Keys of a `[device_<name>]` section.
    public static let deviceKeys = ["type", "id", "watchTimeOut", "helloTopic", "watchTopics", "stateTopics"]
    /// Keys of an `[agent_<name>]` section: a device's plus the process to run.
    public static let agentKeys = deviceKeys + ["exec", "restartOnExpire"]

    // A config is a few kilobytes, or a few megabytes for a fleet of 100,000 watched devices (about 65 bytes a
    // section); far bigger is the wrong file (a log, a binary), not a config.
    static let maximumFileBytes = 64 << 20
    // A token file holds one line; anything bigger is the wrong file.
    static let maximumTokenFileBytes = 64 << 10

    /// Reads and parses the file at `path`. An unreadable file is one error without a line.
    public static func load(path: String) -> Result<DaemonConfig, ConfigErrors> {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, limit: maximumFileBytes)
        } catch {
            return .failure(
                ConfigErrors([
                    ConfigError(file: path, line: nil, section: nil, name: nil, message: "cannot read: \(error.reason)")
                ]))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(
                ConfigErrors([
                    ConfigError(
                        file: path, line: nil, section: nil, name: nil,
                        message: "not valid UTF-8 (TOML files are UTF-8)")
                ]))
        }
        return parse(text: text, fileName: path)
    }

    /// Parses config text; `fileName` only labels the errors. Relative paths inside (`cafile`,
    /// `tokenFile`) are checked relative to the working directory.
    public static func parse(text: String, fileName: String) -> Result<DaemonConfig, ConfigErrors> {
        // The TOML library aborts the process on some malformed text rather than reporting it: it only ever reads
        // text that TOMLGuard found to be TOML 1.0.0.
        if let problem = TOMLGuard.firstProblem(in: text) {
            return .failure(
                ConfigErrors([
                    ConfigError(
                        file: fileName, line: problem.line, column: problem.column, section: problem.section,
                        name: problem.key, message: "TOML syntax error: \(problem.message)")
                ]))
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            return .failure(
                ConfigErrors([
                    ConfigError(
                        file: fileName, line: error.source.begin.line, column: error.source.begin.column, section: nil,
                        name: nil,
                        message: "TOML syntax error: \(error.description)")
                ]))
        } catch {
            return .failure(
                ConfigErrors([
                    ConfigError(
                        file: fileName, line: nil, section: nil, name: nil, message: "TOML syntax error: \(error)")
                ]))
        }
        var parser = ConfigParser(file: fileName, locator: SourceLocator(text))
        let config = parser.parse(table)
        if parser.errors.isEmpty { return .success(config) }
        // Line order; errors without a line (none today) last.
        let sorted = parser.errors.enumerated().sorted { a, b in
            let (la, lb) = (a.element.line ?? .max, b.element.line ?? .max)
            return la != lb ? la < lb : a.offset < b.offset
        }
        return .failure(ConfigErrors(sorted.map(\.element)))
    }
}

/// The semantic pass: walks the TOML tables, converts and checks every value, records errors.
struct ConfigParser {
    let file: String
    let locator: SourceLocator
    private(set) var errors: [ConfigError] = []

    init(file: String, locator: SourceLocator) {
        self.file = file
        self.locator = locator
    }

    private static let fixedSections = ConfigLoader.sectionKeys.map(\.key)

    mutating func parse(_ root: TOMLTable) -> DaemonConfig {
        var config = DaemonConfig()
        var watched: [(line: Int, device: WatchedDevice)] = []
        let names = root.keys.sorted { (locator.line(section: $0) ?? .max) < (locator.line(section: $1) ?? .max) }
        for name in names {
            guard let value = root[name] else { continue }
            if name == "presence" {
                config.presence = parsePresenceBlocks(value)
                continue
            }
            let kind: WatchedDevice.Kind? =
                name.hasPrefix("device_") ? .device : name.hasPrefix("agent_") ? .agent : nil
            guard Self.fixedSections.contains(name) || kind != nil else {
                if value.type == .table {
                    sectionError(
                        name,
                        "unknown section\(suggestion(for: name, among: Self.fixedSections + ["device_<name>", "agent_<name>"])); "
                            + "expected [mqtt], [http], [status], [storage], [operations], [log], [availability], [device_<name>] or [agent_<name>]"
                    )
                } else {
                    errors.append(
                        ConfigError(
                            file: file, line: locator.line(topLevelKey: name), section: nil, name: name,
                            message: "keys must be inside a section such as [mqtt]"))
                }
                continue
            }
            guard let table = value.table else {
                sectionError(name, "expected a table ([\(name)]), found \(describe(value))")
                continue
            }
            let section = Section(name: name, table: table)
            switch name {
            case "mqtt": config.mqtt = parseMQTT(section)
            case "http": config.http = parseHTTP(section)
            case "status": config.status = parseStatus(section)
            case "storage": config.storage = parseStorage(section)
            case "operations": config.operations = parseOperations(section)
            case "log": config.log = parseLog(section)
            case "availability": config.availability = parseAvailability(section)
            default:
                if let kind, let device = parseWatched(section, kind: kind) {
                    watched.append((locator.line(section: name) ?? .max, device))
                }
            }
        }
        config.watched = watched.map(\.device)
        checkUniqueness(watched)
        return config
    }

    // MARK: - Sections

    private mutating func parseMQTT(_ s: Section) -> MQTTSettings {
        var m = MQTTSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "mqtt" }!.value + ["clientId"])
        if let url = string(s, "serverAddress") {
            do throws(BrokerURLError) {
                _ = try BrokerURL(parsing: url)
                m.serverAddress = url
            } catch {
                keyError(s, "serverAddress", error.description)
            }
        }
        if let user = string(s, "user") { m.user = user }
        if let password = string(s, "password") {
            m.password = password
            if !password.isEmpty && m.user.isEmpty {
                keyError(s, "password", "a password needs a user (MQTT sends no password without a user name)")
            }
        }
        if s.table["clientid"] != nil && s.table["clientId"] != nil {
            keyError(s, "clientId", "both clientid and clientId are set; keep one")
        }
        for key in ["clientid", "clientId"] {
            guard let id = string(s, key) else { continue }
            if id.isEmpty {
                keyError(s, key, "must not be empty (two clients without an id cannot be told apart by the broker)")
            } else if id.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") || $0 == 0 }) {
                keyError(
                    s, key,
                    "must not contain '+', '#' or NUL (the client id appears in topic names), found \(quote(id))")
            } else {
                m.clientid = id
            }
        }
        if let base = string(s, "baseTopic") {
            if !isValidTopicName(base) {
                keyError(s, "baseTopic", "expected a topic name without wildcards ('+', '#'), found \(quote(base))")
            } else if base.hasPrefix("$") {
                keyError(s, "baseTopic", "must not start with '$' (brokers reserve those topics), found \(quote(base))")
            } else if base.hasSuffix("/") {
                keyError(
                    s, "baseTopic", "must not end with '/' (topics are built as <baseTopic>/up), found \(quote(base))")
            } else {
                m.baseTopic = base
            }
        }
        // libmosquitto refuses keep-alives under 5 s; MQTT's field is 16 bits.
        if let keepAlive = integer(s, "keepAlive", in: 5...65535, unit: "seconds") { m.keepAlive = keepAlive }
        if let value = s.table["protocol"] {
            switch value.string {
            case "3.1.1", "311": m.protocolVersion = .v311
            case "5", "5.0": m.protocolVersion = .v5
            case "auto": m.protocolVersion = .auto
            default: keyError(s, "protocol", "expected \"auto\", \"5\" or \"3.1.1\", found \(describe(value))")
            }
        }
        for key in ["cafile", "certfile", "keyfile"] {
            guard let path = string(s, key), !path.isEmpty else { continue }
            if let reason = checkReadable(path) {
                keyError(s, key, "cannot read \(quote(path)): \(reason)")
            }
            switch key {
            case "cafile": m.cafile = path
            case "certfile": m.certfile = path
            default: m.keyfile = path
            }
        }
        if m.certfile.isEmpty != m.keyfile.isEmpty {
            let (set, missing) = m.certfile.isEmpty ? ("keyfile", "certfile") : ("certfile", "keyfile")
            keyError(s, set, "needs \(missing) too (a client certificate and its key go together)")
        }
        return m
    }

    private mutating func parseHTTP(_ s: Section) -> HTTPSettings {
        var h = HTTPSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "http" }!.value)
        if let bind = string(s, "bind") {
            if isIPAddress(bind) {
                h.bind = bind
            } else {
                keyError(
                    s, "bind", "expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::, found \(quote(bind))"
                )
            }
        }
        // 0 asks the kernel for a free port (tests).
        if let port = integer(s, "port", in: 0...65535) { h.port = port }
        if let token = string(s, "token") {
            if token.isEmpty || isValidToken(token) {
                h.token = token
            } else {
                keyError(s, "token", "must be printable ASCII without spaces (it is sent in an Authorization header)")
            }
        }
        if let tokenFile = string(s, "tokenFile"), !tokenFile.isEmpty {
            h.tokenFile = tokenFile
            if !h.token.isEmpty {
                keyError(s, "tokenFile", "token and tokenFile are both set; keep one")
            } else {
                do throws(FileReadError) {
                    let content = trimmingWhitespace(try readFile(tokenFile, limit: ConfigLoader.maximumTokenFileBytes))
                    if content.isEmpty {
                        keyError(s, "tokenFile", "\(quote(tokenFile)) is empty")
                    } else if let token = String(validating: content, as: UTF8.self), isValidToken(token) {
                        h.token = token
                    } else {
                        keyError(
                            s, "tokenFile", "the token in \(quote(tokenFile)) must be printable ASCII without spaces")
                    }
                } catch {
                    keyError(s, "tokenFile", "cannot read \(quote(tokenFile)): \(error.reason)")
                }
            }
        }
        // 0 means one thread per core; more than 1024 event loops is a typo, not a machine.
        if let threads = integer(s, "threads", in: 0...1024) { h.threads = threads }
        // Beyond a million the file-descriptor limit is reached long before.
        if let value = integer(s, "maxConnections", in: 1...1_000_000) { h.maxConnections = value }
        // A timeout of 0 would disable the defence against slow clients; over an hour no client is that slow.
        if let value = seconds(s, "headerTimeout", in: 0.001...3600) { h.headerTimeout = value }
        if let value = seconds(s, "idleTimeout", in: 0.001...3600) { h.idleTimeout = value }
        if let value = seconds(s, "writeTimeout", in: 0.001...3600) { h.writeTimeout = value }
        // Below these floors ordinary requests fail; above 1 MiB the limits no longer limit.
        if let value = integer(s, "maxRequestLine", in: 256...1_048_576, unit: "bytes") { h.maxRequestLine = value }
        if let value = integer(s, "maxHeaderBytes", in: 1024...1_048_576, unit: "bytes") { h.maxHeaderBytes = value }
        if let value = integer(s, "maxHeaders", in: 8...10_000) { h.maxHeaders = value }
        // Operation bodies are small JSON; 64 MiB is already far beyond any of them.
        if let value = integer(s, "maxBody", in: 0...67_108_864, unit: "bytes") { h.maxBody = value }
        return h
    }

    private mutating func parseStatus(_ s: Section) -> StatusSettings {
        var st = StatusSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "status" }!.value)
        if let filters = topicFilters(s, "topics") {
            var valid: [TopicFilter] = []
            for filter in filters {
                do throws(StatusTopicPattern.ShapeError) {
                    _ = try StatusTopicPattern(filter)
                    if valid.contains(filter) {
                        keyError(s, "topics", "\(quote(filter.text)) is listed twice")
                    } else {
                        valid.append(filter)
                    }
                } catch {
                    keyError(s, "topics", error.description)
                }
            }
            st.topics = valid
        }
        if let org = string(s, "org") {
            if org.utf8.contains(where: { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "/") || $0 <= 0x20 }) {
                keyError(
                    s, "org",
                    "must not contain ':', '/' or spaces (it is part of d:<org>:<type>:<id>), found \(quote(org))")
            } else {
                st.org = org
            }
        }
        // 0 accepts no time ahead of the daemon's clock; beyond ten years the limit no longer protects anything.
        if let skew = integer(s, "maxClockSkew", in: 0...315_360_000, unit: "seconds") { st.maxClockSkew = skew }
        return st
    }

    private mutating func parseStorage(_ s: Section) -> StorageSettings {
        var st = StorageSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "storage" }!.value)
        if let dir = string(s, "dataDir") {
            if dir.isEmpty {
                keyError(s, "dataDir", "must not be empty (use \".\" for the working directory)")
            } else {
                st.dataDir = dir
            }
        }
        return st
    }

    private mutating func parseLog(_ s: Section) -> LogSettings {
        var l = LogSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "log" }!.value)
        if let text = string(s, "level") {
            if let level = LogSettings.level(named: text) {
                l.level = level
            } else {
                keyError(s, "level", "expected trace, debug, info, notice, warning or error, found \"\(text)\"")
            }
        }
        if let value = s.table["access"] {
            if let flag = value.bool {
                l.access = flag
            } else {
                keyError(s, "access", "expected a boolean (true or false), found \(describe(value))")
            }
        }
        return l
    }

    private mutating func parseAvailability(_ s: Section) -> AvailabilitySettings {
        var a = AvailabilitySettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "availability" }!.value)
        for key in ["publish", "homeassistant"] {
            guard let value = s.table[key] else { continue }
            guard let flag = value.bool else {
                keyError(s, key, "expected a boolean (true or false), found \(describe(value))")
                continue
            }
            if key == "publish" { a.publish = flag } else { a.homeassistant = flag }
        }
        if let prefix = string(s, "discoveryPrefix") {
            if prefix.isEmpty || !isValidTopicName(prefix) {
                keyError(
                    s, "discoveryPrefix",
                    "expected a non-empty topic name without wildcards ('+', '#'), found \(quote(prefix))")
            } else if prefix.hasPrefix("$") {
                keyError(
                    s, "discoveryPrefix",
                    "must not start with '$' (brokers reserve those topics), found \(quote(prefix))")
            } else if prefix.hasSuffix("/") {
                keyError(
                    s, "discoveryPrefix",
                    "must not end with '/' (topics are built as <discoveryPrefix>/binary_sensor/…), found \(quote(prefix))"
                )
            } else {
                a.discoveryPrefix = prefix
            }
        }
        if let value = s.table["types"] {
            if let array = value.array {
                var types: [String] = []
                for (index, element) in array.enumerated() {
                    guard let type = element.string else {
                        keyError(
                            s, "types", "expected an array of strings, found \(describe(element)) at index \(index)")
                        continue
                    }
                    if type.isEmpty
                        || type.utf8.contains(where: {
                            $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") || $0 == 0
                        })
                    {
                        keyError(
                            s, "types",
                            "a device type is one non-empty topic level without '/', '+' or '#', found \(quote(type))")
                    } else if types.contains(type) {
                        keyError(s, "types", "\(quote(type)) is listed twice")
                    } else {
                        types.append(type)
                    }
                }
                a.types = types
            } else {
                keyError(s, "types", "expected an array of device types (e.g. [\"tasmota\"]), found \(describe(value))")
            }
        }
        return a
    }

    private mutating func parseOperations(_ s: Section) -> OperationSettings {
        var o = OperationSettings()
        checkKeys(s, allowed: ConfigLoader.sectionKeys.first { $0.key == "operations" }!.value)
        // A cap is what keeps an offline device from growing the store without bound.
        if let value = integer(s, "maxQueuedPerDevice", in: 1...100_000) { o.maxQueuedPerDevice = value }
        // At least one attempt; a hundred retries of the same failure help nobody.
        if let value = integer(s, "maxAttempts", in: 1...100) { o.maxAttempts = value }
        return o
    }

    private mutating func parseWatched(_ s: Section, kind: WatchedDevice.Kind) -> WatchedDevice? {
        let name = String(s.name.dropFirst(kind.rawValue.count + 1))
        var ok = true
        if name.isEmpty || !name.utf8.allSatisfy(isNameByte) {
            sectionError(
                s.name,
                "the name after '\(kind.rawValue)_' must be letters, digits, '_', '.' or '-' (it names the topic B/expire/<name>)"
            )
            ok = false
        }
        let allowed = kind == .agent ? ConfigLoader.agentKeys : ConfigLoader.deviceKeys
        for key in s.table.keys where !allowed.contains(key) {
            if kind == .device && ConfigLoader.agentKeys.contains(key) {
                keyError(s, key, "only allowed in [agent_*] sections (a device has no process to run)")
            } else {
                keyError(s, key, unknownKeyMessage(key, allowed: allowed))
            }
            ok = false
        }
        var device = WatchedDevice(name: name, kind: kind)
        for key in ["type", "id"] {
            guard let value = string(s, key) else { continue }
            if value.isEmpty
                || value.utf8.contains(where: {
                    $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "+")
                        || $0 == UInt8(ascii: "#")
                })
            {
                keyError(
                    s, key,
                    "must be non-empty without '/', '+', '#' or spaces (it is a topic level and a URL segment), found \(quote(value))"
                )
                ok = false
            } else if key == "type" {
                device.type = value
            } else {
                device.id = value
            }
        }
        // A year is far beyond any heartbeat; 0 would expire the device at once.
        if let timeout = integer(s, "watchTimeOut", in: 1...31_536_000, unit: "seconds") {
            device.watchTimeOut = timeout
        }
        if let hello = string(s, "helloTopic") {
            if isValidTopicName(hello) {
                device.helloTopic = hello
            } else {
                keyError(s, "helloTopic", "expected a topic name without wildcards ('+', '#'), found \(quote(hello))")
                ok = false
            }
        }
        if let filters = topicFilters(s, "watchTopics") { device.watchTopics = filters }
        if let filters = topicFilters(s, "stateTopics") { device.stateTopics = filters }
        if kind == .agent {
            if let exec = string(s, "exec") {
                if exec.trimmingSpaces.isEmpty {
                    keyError(s, "exec", "must not be empty (the command line to run under /bin/sh -c)")
                    ok = false
                } else {
                    device.exec = exec
                }
            } else if s.table["exec"] == nil {
                sectionError(s.name, "an agent needs exec = \"<command line>\" (run under /bin/sh -c)")
                ok = false
            }
            if let value = s.table["restartOnExpire"] {
                if let flag = value.bool {
                    device.restartOnExpire = flag
                } else {
                    keyError(s, "restartOnExpire", "expected a boolean (true or false), found \(describe(value))")
                }
            }
        }
        return ok ? device : nil
    }

    /// Names are unique (they name `B/expire/<name>`), and so are `(type, id)` keys.
    private mutating func checkUniqueness(_ watched: [(line: Int, device: WatchedDevice)]) {
        var byName: [String: WatchedDevice] = [:]
        var byKey: [String: WatchedDevice] = [:]
        for (_, device) in watched {
            if let first = byName[device.name] {
                sectionError(
                    device.section,
                    "the name '\(device.name)' is already used by [\(first.section)]\(lineSuffix(first.section)); "
                        + "names must be unique because they name B/expire/<name>")
                continue
            }
            byName[device.name] = device
            let key = device.type + "\u{0}" + device.id
            if let first = byKey[key] {
                sectionError(
                    device.section,
                    "same type '\(device.type)' and id '\(device.id)' as [\(first.section)]\(lineSuffix(first.section)); each device must be configured once"
                )
                continue
            }
            byKey[key] = device
        }
    }

    // MARK: - [[presence]]

    private mutating func parsePresenceBlocks(_ value: TOMLValueConvertible) -> [PresenceSettings] {
        guard let array = value.array else {
            sectionError("presence", "expected one or more [[presence]] blocks, found \(describe(value))")
            return []
        }
        var blocks: [(section: String, settings: PresenceSettings)] = []
        for (index, element) in array.enumerated() {
            let name = "presence#\(index + 1)"
            guard let table = element.table else {
                sectionError(name, "expected a [[presence]] table, found \(describe(element))")
                continue
            }
            if let settings = parsePresence(Section(name: name, table: table)) { blocks.append((name, settings)) }
        }
        // Two blocks giving one type would mix two conventions' statuses under the same keys.
        var byType: [String: String] = [:]
        for block in blocks {
            let type = block.settings.effectiveType ?? "<group id>"
            if let first = byType[type] {
                errors.append(
                    ConfigError(
                        file: file, line: locator.line(section: block.section, key: "type"), section: block.section,
                        name: "type",
                        message:
                            "type '\(type)' is already given by [\(first)]\(lineSuffix(first)); set a different type in one of them"
                    ))
                continue
            }
            byType[type] = block.section
        }
        return blocks.map(\.settings)
    }

    private mutating func parsePresence(_ s: Section) -> PresenceSettings? {
        checkKeys(s, allowed: ConfigLoader.presenceKeys)
        guard s.table["preset"] != nil else {
            sectionError(
                s.name,
                "preset is required; one of \(PresencePreset.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        guard let presetName = string(s, "preset") else { return nil }
        guard let preset = PresencePreset(rawValue: presetName) else {
            keyError(
                s, "preset",
                "unknown preset \(quote(presetName))\(suggestion(for: presetName, among: PresencePreset.allCases.map(\.rawValue))); "
                    + "expected one of \(PresencePreset.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        var settings = PresenceSettings(preset: preset)
        var ok = true
        if let type = string(s, "type") {
            if type.isEmpty || !isValidTopicName(type) || type.contains("/") {
                keyError(s, "type", "expected a non-empty name without '/', '+' or '#', found \(quote(type))")
                ok = false
            } else {
                settings.type = type
            }
        }
        if s.table["prefix"] != nil {
            if preset.defaultPrefix == nil {
                keyError(s, "prefix", "preset \(preset.rawValue) has no prefix (its topics are fixed or set by topic)")
                ok = false
            } else if let prefix = string(s, "prefix") {
                if prefix.isEmpty || !isValidTopicName(prefix) || prefix.hasSuffix("/") {
                    keyError(
                        s, "prefix", "expected topic levels without wildcards or a trailing '/', found \(quote(prefix))"
                    )
                    ok = false
                } else {
                    settings.prefix = prefix
                }
            }
        }
        if preset != .lwt {
            for key in ConfigLoader.lwtOnlyKeys where s.table[key] != nil {
                keyError(s, key, "only a [[presence]] block with preset = \"lwt\" takes \(key)")
                ok = false
            }
            return ok ? settings : nil
        }
        if s.table["topic"] == nil {
            sectionError(s.name, "preset lwt needs topic (a template such as \"devices/{id}/status\")")
            ok = false
        } else if let topic = string(s, "topic") {
            if let problem = LevelTemplateDecoder.validate(template: topic) {
                keyError(s, "topic", "\(problem.description), found \(quote(topic))")
                ok = false
            } else {
                settings.topic = topic
            }
        }
        for key in ["online", "offline"] where s.table[key] == nil {
            sectionError(s.name, "preset lwt needs \(key) (the payloads meaning \(key))")
            ok = false
        }
        var seen: [String: String] = [:]
        for key in ["online", "offline", "sleeping"] {
            guard let list = stringList(s, key) else {
                if s.table[key] != nil { ok = false }
                continue
            }
            if key != "sleeping" && list.isEmpty {
                keyError(s, key, "must list at least one payload")
                ok = false
            }
            for payload in list {
                if payload.isEmpty {
                    keyError(s, key, "an empty payload deletes a status; it cannot mean \(key)")
                    ok = false
                } else if let other = seen[payload], other != key {
                    keyError(s, key, "\(quote(payload)) is already listed in \(other)")
                    ok = false
                }
                seen[payload] = key
            }
            switch key {
            case "online": settings.online = list
            case "offline": settings.offline = list
            default: settings.sleeping = list
            }
        }
        if let field = string(s, "field") { settings.field = field }
        return ok ? settings : nil
    }

    private mutating func stringList(_ s: Section, _ key: String) -> [String]? {
        guard let value = s.table[key] else { return nil }
        guard let array = value.array else {
            keyError(s, key, "expected an array of strings, found \(describe(value))")
            return nil
        }
        var list: [String] = []
        for (index, element) in array.enumerated() {
            guard let text = element.string else {
                keyError(s, key, "expected an array of strings, found \(describe(element)) at index \(index)")
                return nil
            }
            list.append(text)
        }
        return list
    }

    private func lineSuffix(_ section: String) -> String {
        locator.line(section: section).map { " (line \($0))" } ?? ""
    }

    // MARK: - Typed values

    struct Section {
        let name: String
        let table: TOMLTable
    }

    private mutating func checkKeys(_ s: Section, allowed: [String]) {
        for key in s.table.keys where !allowed.contains(key) {
            keyError(s, key, unknownKeyMessage(key, allowed: allowed.filter { $0 != "clientId" }))
        }
    }

    private func unknownKeyMessage(_ key: String, allowed: [String]) -> String {
        let hint = suggestion(for: key, among: allowed)
        return hint.isEmpty ? "unknown key; valid keys are \(allowed.joined(separator: ", "))" : "unknown key\(hint)"
    }

    private mutating func string(_ s: Section, _ key: String) -> String? {
        guard let value = s.table[key] else { return nil }
        if let text = value.string { return text }
        keyError(s, key, "expected a string, found \(describe(value))")
        return nil
    }

    private mutating func integer(_ s: Section, _ key: String, in range: ClosedRange<Int>, unit: String = "") -> Int? {
        guard let value = s.table[key] else { return nil }
        guard let number = value.int else {
            keyError(s, key, "expected an integer, found \(describe(value))")
            return nil
        }
        guard range.contains(number) else {
            let unitText = unit.isEmpty ? "" : " \(unit)"
            keyError(s, key, "\(number) is out of range; expected \(range.lowerBound)...\(range.upperBound)\(unitText)")
            return nil
        }
        return number
    }

    /// Seconds as an integer or a float.
    private mutating func seconds(_ s: Section, _ key: String, in range: ClosedRange<Double>) -> Duration? {
        guard let value = s.table[key] else { return nil }
        let number: Double
        if let int = value.int {
            number = Double(int)
        } else if let double = value.double {
            number = double
        } else {
            keyError(s, key, "expected a number of seconds, found \(describe(value))")
            return nil
        }
        guard range.contains(number) else {
            keyError(
                s, key,
                "\(value.int.map(String.init) ?? String(number)) is out of range; expected more than 0 and at most \(Int(range.upperBound)) seconds"
            )
            return nil
        }
        return .milliseconds(Int64((number * 1000).rounded()))
    }

    /// A filter or an array of filters, each validated.
    private mutating func topicFilters(_ s: Section, _ key: String) -> [TopicFilter]? {
        guard let value = s.table[key] else { return nil }
        var texts: [String] = []
        if let text = value.string {
            texts = [text]
        } else if let array = value.array {
            for (index, element) in array.enumerated() {
                guard let text = element.string else {
                    keyError(
                        s, key, "expected a string or an array of strings, found \(describe(element)) at index \(index)"
                    )
                    return nil
                }
                texts.append(text)
            }
        } else {
            keyError(s, key, "expected a topic filter string or an array of them, found \(describe(value))")
            return nil
        }
        var filters: [TopicFilter] = []
        var ok = true
        for text in texts {
            do throws(TopicFilterError) {
                filters.append(try TopicFilter(text))
            } catch {
                keyError(s, key, error.description)
                ok = false
            }
        }
        return ok ? filters : nil
    }

    // MARK: - Errors

    private mutating func keyError(_ s: Section, _ key: String, _ message: String) {
        errors.append(
            ConfigError(
                file: file, line: locator.line(section: s.name, key: key), section: s.name, name: key, message: message)
        )
    }

    private mutating func sectionError(_ section: String, _ message: String) {
        errors.append(
            ConfigError(file: file, line: locator.line(section: section), section: section, name: nil, message: message)
        )
    }
}

// MARK: - Helpers

/// `"text"` with quotes and control characters escaped, shortened past 60 characters.
func quote(_ text: String) -> String {
    var out = "\""
    for (index, scalar) in text.unicodeScalars.enumerated() {
        if index == 60 {
            out += "…"
            break
        }
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// What a TOML value is, for "expected X, found Y": `a string ("60")`, `an integer (5)`, `an array`.
func describe(_ value: TOMLValueConvertible) -> String {
    switch value.type {
    case .string: "a string (\(quote(value.string ?? "")))"
    case .int: "an integer (\(value.int ?? 0))"
    case .double: "a floating-point number (\(value.double ?? 0))"
    case .bool: "a boolean (\(value.bool ?? false))"
    case .array: "an array"
    case .table: "a table"
    case .date: "a date"
    case .time: "a time"
    case .dateTime: "a date-time"
    }
}

/// `" (did you mean 'x'?)"` for a near miss (same letters in another case, or two edits away), else `""`.
func suggestion(for key: String, among candidates: [String]) -> String {
    let lower = key.lowercased()
    var best: (candidate: String, distance: Int)?
    for candidate in candidates {
        let distance =
            candidate.lowercased() == lower ? 0 : editDistance(Array(lower.utf8), Array(candidate.lowercased().utf8))
        if distance <= min(2, max(1, candidate.count / 3)), distance < (best?.distance ?? .max) {
            best = (candidate, distance)
        }
    }
    return best.map { " (did you mean '\($0.candidate)'?)" } ?? ""
}

func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

private func isNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
        true
    default: false
    }
}

/// Bearer tokens travel in a header: visible ASCII only.
private func isValidToken(_ token: String) -> Bool {
    !token.isEmpty && token.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
}

private func isIPAddress(_ text: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
}

private func trimmingWhitespace(_ bytes: [UInt8]) -> [UInt8] {
    let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
    guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
    else { return [] }
    return Array(bytes[first...last])
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return self[first...last]
    }
}

struct FileReadError: Error {
    let reason: String
}

/// Reads a whole regular file with POSIX calls, so errors carry `strerror`'s reason.
func readFile(_ path: String, limit: Int) throws(FileReadError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileReadError(reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw FileReadError(reason: String(cString: strerror(errno))) }
    if (info.st_mode & S_IFMT) == S_IFDIR { throw FileReadError(reason: "is a directory") }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw FileReadError(reason: String(cString: strerror(errno)))
        }
        if count == 0 { break }
        result += chunk[0..<count]
        if result.count > limit { throw FileReadError(reason: "larger than \(limit) bytes") }
    }
    return result
}

/// nil when `path` is a readable regular file, else why not.
func checkReadable(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return String(cString: strerror(errno)) }
    return (info.st_mode & S_IFMT) == S_IFDIR ? "is a directory" : nil
}
