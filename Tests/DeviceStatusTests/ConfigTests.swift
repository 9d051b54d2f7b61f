import Foundation
import MQTT
import TestSupport
import Testing

@testable import DeviceStatus

/// The repository root, found from this file's path.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

private func parse(_ text: String) -> Result<DaemonConfig, ConfigErrors> {
    ConfigLoader.parse(text: text, fileName: "config.toml")
}

/// The config, or a recorded issue listing the errors.
private func accept(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> DaemonConfig? {
    switch parse(text) {
    case .success(let config): return config
    case .failure(let errors):
        Issue.record("unexpected errors:\n\(errors)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error lines, or [] (and a recorded issue) when the text was accepted.
private func reject(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    switch parse(text) {
    case .success:
        Issue.record("expected errors, the config was accepted", sourceLocation: sourceLocation)
        return []
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

private func filters(_ texts: String...) throws -> [TopicFilter] { try texts.map { try TopicFilter($0) } }

@Suite struct ConfigTests {
    // MARK: Defaults and the example file

    @Test func defaultsAreTheDocumentedValues() throws {
        let d = ConfigLoader.defaults
        #expect(d.mqtt.serverAddress == "tcp://localhost:1883")
        #expect(d.mqtt.user == "" && d.mqtt.password == "")
        #expect(d.mqtt.clientid == "devstatusd")
        #expect(d.mqtt.baseTopic == "home/monitoring")
        #expect(d.mqtt.keepAlive == 60)
        #expect(d.mqtt.protocolVersion == .auto)
        #expect(d.mqtt.cafile == "" && d.mqtt.certfile == "" && d.mqtt.keyfile == "")
        #expect(d.http.bind == "127.0.0.1" && d.http.port == 5000)
        #expect(d.http.token == "" && d.http.tokenFile == "")
        #expect(d.http.threads == 0 && d.http.maxConnections == 1024)
        #expect(
            d.http.headerTimeout == .seconds(10) && d.http.idleTimeout == .seconds(5)
                && d.http.writeTimeout == .seconds(10))
        #expect(
            d.http.maxRequestLine == 8192 && d.http.maxHeaderBytes == 16384 && d.http.maxHeaders == 64
                && d.http.maxBody == 65536)
        #expect(d.status.topics == (try filters("iot-2/type/+/id/+/mon")))
        #expect(d.status.org == "" && d.status.maxClockSkew == 3600)
        #expect(d.storage.dataDir == "./data")
        #expect(d.operations.maxQueuedPerDevice == 100 && d.operations.maxAttempts == 3)
        #expect(d.watched.isEmpty)
    }

    @Test func emptyFileGivesDefaults() {
        #expect(accept("") == ConfigLoader.defaults)
        #expect(accept("# only a comment\n\n[mqtt]\n[http]\n") == ConfigLoader.defaults)
    }

    @Test func exampleFileParsesToDefaults() throws {
        let result = ConfigLoader.load(path: repositoryRoot.appendingPathComponent("config.toml.example").path)
        #expect(try result.get() == ConfigLoader.defaults)
    }

    /// Uncommenting every "#key = value" and "#[section]" line of the example must change nothing
    /// but add the example device and agent: the documented defaults are the real ones.
    @Test func exampleDefaultsAreTheRealDefaults() throws {
        let example = try String(
            contentsOf: repositoryRoot.appendingPathComponent("config.toml.example"), encoding: .utf8)
        let uncommented = example.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("#") && !line.hasPrefix("# ") && line.count > 1 && !line.hasPrefix("##")
                ? line.dropFirst() : line
        }.joined(separator: "\n")
        let config = try #require(accept(uncommented))
        var expected = ConfigLoader.defaults
        expected.watched = [
            WatchedDevice(
                name: "esp04", kind: .device, type: "device", id: "esp04", watchTimeOut: 30, helloTopic: "home/esp04",
                watchTopics: try filters("home/esp04/sensors/#", "home/esp04/status"),
                stateTopics: try filters("home/esp04/actuators/#")),
            WatchedDevice(
                name: "ledboxdaemon", kind: .agent, watchTopics: try filters("home/agents/ledbox/#"),
                exec: "cd ~/agents/ledbox && python3 ledboxdaemon.py", restartOnExpire: false),
        ]
        #expect(config == expected)
    }

    /// Docs cannot drift: every key the loader knows, and every property of the model, is in the example
    /// as a commented default under its own section.
    @Test func exampleDocumentsEveryKey() throws {
        let example = try String(
            contentsOf: repositoryRoot.appendingPathComponent("config.toml.example"), encoding: .utf8)
        var documented: [String: Set<String>] = [:]
        var section = ""
        for line in example.split(separator: "\n") {
            let body = line.hasPrefix("#") && !line.hasPrefix("# ") ? line.dropFirst() : line[...]
            if body.hasPrefix("[") {
                section = String(body.dropFirst().prefix { $0 != "]" })
                if section.hasPrefix("device_") { section = "device_*" }
                if section.hasPrefix("agent_") { section = "agent_*" }
            } else if let equals = body.firstIndex(of: "="), line.hasPrefix("#"), !line.hasPrefix("# ") {
                documented[section, default: []].insert(body[..<equals].trimmingCharacters(in: .whitespaces))
            }
        }
        for (name, keys) in ConfigLoader.sectionKeys {
            for key in keys {
                #expect(documented[name, default: []].contains(key), "[\(name)] \(key) is not in config.toml.example")
            }
        }
        for key in ConfigLoader.deviceKeys {
            #expect(documented["device_*", default: []].contains(key), "[device_*] \(key) is not documented")
        }
        for key in ConfigLoader.agentKeys where !ConfigLoader.deviceKeys.contains(key) {
            #expect(documented["agent_*", default: []].contains(key), "[agent_*] \(key) is not documented")
        }
        // Every stored property of the model is a known key (protocolVersion is written `protocol`).
        let models: [(String, Any)] = [
            ("mqtt", MQTTSettings()), ("http", HTTPSettings()), ("http", HTTPSettings().server),
            ("status", StatusSettings()),
            ("storage", StorageSettings()),
            ("operations", OperationSettings()),
            ("log", LogSettings()),
            ("availability", AvailabilitySettings()),
        ]
        for (name, model) in models {
            let keys = ConfigLoader.sectionKeys.first { $0.key == name }?.value ?? []
            for case let label? in Mirror(reflecting: model).children.map(\.label) {
                // HTTPSettings keeps the server's keys in `server` (checked as a model of its own above).
                if model is HTTPSettings, label == "server" { continue }
                let key = label == "protocolVersion" ? "protocol" : label
                #expect(keys.contains(key), "\(name).\(label) has no config key")
            }
        }
        for case let label? in Mirror(reflecting: WatchedDevice(name: "x", kind: .agent)).children.map(\.label)
        where label != "name" && label != "kind" {
            #expect(ConfigLoader.agentKeys.contains(label), "WatchedDevice.\(label) has no config key")
        }
        #expect(
            Set(Mirror(reflecting: ConfigLoader.defaults).children.compactMap(\.label)) == [
                "mqtt", "http", "status", "storage", "operations", "watched", "presence", "log", "availability",
            ])
    }

    // MARK: IotMonitor compatibility

    @Test func iotMonitorConfigIsAcceptedUnchanged() throws {
        let path = repositoryRoot.appendingPathComponent("Tests/Fixtures/iotmonitor-config.toml").path
        let config = try ConfigLoader.load(path: path).get()
        #expect(config.mqtt.serverAddress == "tcp://localhost:1883")
        #expect(config.mqtt.baseTopic == "home/monitoring")
        #expect(config.mqtt.user == "" && config.mqtt.password == "")
        #expect(config.status == StatusSettings())
        #expect(
            config.watched == [
                WatchedDevice(
                    name: "esp04", kind: .device, watchTimeOut: 60, helloTopic: "home/esp04",
                    watchTopics: try filters("home/esp04/sensors/#"), stateTopics: try filters("home/esp04/actuators/#")
                ),
                WatchedDevice(name: "doorbell", kind: .device, watchTopics: try filters("home/doorbell/#")),
                WatchedDevice(
                    name: "ledboxdaemon", kind: .agent, watchTopics: try filters("home/agents/ledbox/#"),
                    exec: "cd / && exec sleep 100000"),
            ])
        #expect(
            config.watched.map { "\($0.type)/\($0.id)" } == ["device/esp04", "device/doorbell", "agent/ledboxdaemon"])
        #expect(config.watched.allSatisfy { $0.watchTimeOut == ($0.name == "esp04" ? 60 : 30) })
    }

    @Test func watchedDevicesKeepFileOrder() throws {
        let config = try #require(accept("[device_zeta]\n[agent_alpha]\nexec = \"true\"\n[device_mid]\n"))
        #expect(config.watched.map(\.section) == ["device_zeta", "agent_alpha", "device_mid"])
    }

    @Test func watchTopicsAcceptStringOrArray() throws {
        let config = try #require(
            accept(
                """
                [device_a]
                watchTopics = "a/#"
                [device_b]
                watchTopics = [
                  "b/+/x",   # a comment inside the array
                  "b/y",
                ]
                stateTopics = []
                """))
        #expect(config.watched[0].watchTopics == (try filters("a/#")))
        #expect(config.watched[1].watchTopics == (try filters("b/+/x", "b/y")))
        #expect(config.watched[1].stateTopics.isEmpty)
    }

    @Test func typeAndIdOverrideTheDefaults() throws {
        let config = try #require(
            accept(
                """
                [device_esp04]
                type = "type1"
                id = "ps1"
                [agent_box]
                exec = "sleep 1"
                restartOnExpire = true
                [device_plain]
                """))
        #expect(config.watched[0].type == "type1" && config.watched[0].id == "ps1" && config.watched[0].name == "esp04")
        #expect(config.watched[1].type == "agent" && config.watched[1].id == "box" && config.watched[1].restartOnExpire)
        #expect(config.watched[2].type == "device" && config.watched[2].id == "plain")
    }

    @Test func everyKeyCanBeSet() throws {
        let directory = try TemporaryDirectory(prefix: "config-test")
        for name in ["ca.pem", "cert.pem", "key.pem"] {
            try Data("pem".utf8).write(to: URL(fileURLWithPath: directory.file(name)))
        }
        try Data("  s3cret-token\n\n".utf8).write(to: URL(fileURLWithPath: directory.file("token")))
        let config = try #require(
            accept(
                """
                [mqtt]
                serverAddress = "mqtts://broker.example.com"
                user = "alice"
                password = "pw"
                clientId = "dsd-1"
                baseTopic = "site/mon"
                keepAlive = 30
                protocol = "5.0"
                cafile = "\(directory.file("ca.pem"))"
                certfile = "\(directory.file("cert.pem"))"
                keyfile = "\(directory.file("key.pem"))"
                [http]
                bind = "::"
                port = 0
                tokenFile = "\(directory.file("token"))"
                threads = 2
                maxConnections = 10
                headerTimeout = 2.5
                idleTimeout = 1
                writeTimeout = 0.25
                maxRequestLine = 1024
                maxHeaderBytes = 2048
                maxHeaders = 16
                maxBody = 0
                [status]
                topics = "x/type/+/id/+"
                org = "7gnple"
                maxClockSkew = 120
                [storage]
                dataDir = "/var/lib/devstatusd"
                [operations]
                maxQueuedPerDevice = 5
                maxAttempts = 1
                """))
        #expect(
            config.mqtt.serverAddress == "mqtts://broker.example.com" && config.mqtt.user == "alice"
                && config.mqtt.password == "pw")
        #expect(config.mqtt.clientid == "dsd-1" && config.mqtt.baseTopic == "site/mon" && config.mqtt.keepAlive == 30)
        #expect(config.mqtt.protocolVersion == .v5 && config.mqtt.keyfile == directory.file("key.pem"))
        #expect(config.http.bind == "::" && config.http.port == 0 && config.http.token == "s3cret-token")
        #expect(
            config.http.tokenFile == directory.file("token") && config.http.threads == 2
                && config.http.maxConnections == 10)
        #expect(
            config.http.headerTimeout == .milliseconds(2500) && config.http.idleTimeout == .seconds(1)
                && config.http.writeTimeout == .milliseconds(250))
        #expect(
            config.http.maxRequestLine == 1024 && config.http.maxHeaderBytes == 2048 && config.http.maxHeaders == 16
                && config.http.maxBody == 0)
        #expect(config.status.topics == (try filters("x/type/+/id/+")) && config.status.org == "7gnple")
        #expect(config.status.maxClockSkew == 120)
        #expect(config.storage.dataDir == "/var/lib/devstatusd")
        #expect(config.operations == OperationSettings(maxQueuedPerDevice: 5, maxAttempts: 1))
    }

    @Test(arguments: [("3.1.1", MQTTProtocolVersion.v311), ("311", .v311), ("5", .v5), ("5.0", .v5), ("auto", .auto)])
    func protocolAcceptsCommonSpellings(text: String, version: MQTTProtocolVersion) {
        #expect(accept("[mqtt]\nprotocol = \"\(text)\"")?.mqtt.protocolVersion == version)
    }

    // MARK: Errors name file, line and key

    @Test func wrongKeyTypeNamesKeyAndLine() {
        #expect(
            reject("[mqtt]\nserverAddress = \"tcp://h\"\n\n# keep-alive\nkeepAlive = \"60\"\n")
                == [#"config.toml:5: [mqtt] keepAlive: expected an integer, found a string ("60")"#])
        #expect(
            reject("[http]\nport = 5000.0") == [
                "config.toml:2: [http] port: expected an integer, found a floating-point number (5000.0)"
            ])
        #expect(reject("[mqtt]\nuser = 7") == ["config.toml:2: [mqtt] user: expected a string, found an integer (7)"])
        #expect(
            reject("[agent_a]\nexec = \"x\"\nrestartOnExpire = \"yes\"")
                == [
                    #"config.toml:3: [agent_a] restartOnExpire: expected a boolean (true or false), found a string ("yes")"#
                ])
        #expect(
            reject("[device_a]\nwatchTopics = [\"a\", 3]")
                == [
                    "config.toml:2: [device_a] watchTopics: expected a string or an array of strings, found an integer (3) at index 1"
                ])
        #expect(
            reject("[http]\nidleTimeout = true") == [
                "config.toml:2: [http] idleTimeout: expected a number of seconds, found a boolean (true)"
            ])
        #expect(reject("\nfoo = 1") == ["config.toml:2: foo: keys must be inside a section such as [mqtt]"])
        #expect(reject("mqtt = 1") == ["config.toml:1: [mqtt]: expected a table ([mqtt]), found an integer (1)"])
        #expect(
            reject("[[device_a]]\n") == ["config.toml:1: [device_a]: expected a table ([device_a]), found an array"])
    }

    @Test func maxClockSkewOutOfRangeOrNotAnIntegerNamesKeyAndLine() {
        #expect(
            reject("[status]\nmaxClockSkew = -1") == [
                "config.toml:2: [status] maxClockSkew: -1 is out of range; expected 0...315360000 seconds"
            ])
        #expect(
            reject("[status]\n\nmaxClockSkew = \"1h\"") == [
                #"config.toml:3: [status] maxClockSkew: expected an integer, found a string ("1h")"#
            ])
        #expect(accept("[status]\nmaxClockSkew = 0")?.status.maxClockSkew == 0)
    }

    @Test func logSectionSetsLevelAndAccessAndNamesBadValues() {
        let config = accept("[log]\nlevel = \"debug\"\naccess = true\n")
        #expect(config?.log == LogSettings(level: .debug, access: true))
        #expect(accept("")?.log == LogSettings(level: .info, access: false))
        #expect(
            reject("[log]\nlevel = \"loud\"\naccess = \"yes\"\n") == [
                #"config.toml:2: [log] level: expected trace, debug, info, notice, warning or error, found "loud""#,
                #"config.toml:3: [log] access: expected a boolean (true or false), found a string ("yes")"#,
            ])
    }

    @Test func availabilitySectionSetsEveryKeyAndNamesBadValues() {
        let config = accept(
            "[availability]\npublish = true\nhomeassistant = true\ndiscoveryPrefix = \"ha\"\ntypes = [\"tasmota\", \"z2m\"]\n"
        )
        #expect(
            config?.availability
                == AvailabilitySettings(
                    publish: true, homeassistant: true, discoveryPrefix: "ha", types: ["tasmota", "z2m"]))
        #expect(accept("")?.availability == AvailabilitySettings())
        #expect(accept("")?.availability.publishesAvailability == false)
        // Discovery needs the availability topics it points at.
        #expect(accept("[availability]\nhomeassistant = true\n")?.availability.publishesAvailability == true)
        #expect(
            reject(
                "[availability]\npublish = 1\nhomeassistant = \"yes\"\ndiscoveryPrefix = \"ha/#\"\ntypes = [\"a\", \"a\", \"b/c\", 3]\ntopics = []\n"
            ) == [
                "config.toml:2: [availability] publish: expected a boolean (true or false), found an integer (1)",
                #"config.toml:3: [availability] homeassistant: expected a boolean (true or false), found a string ("yes")"#,
                #"config.toml:4: [availability] discoveryPrefix: expected a non-empty topic name without wildcards ('+', '#'), found "ha/#""#,
                #"config.toml:5: [availability] types: "a" is listed twice"#,
                #"config.toml:5: [availability] types: a device type is one non-empty topic level without '/', '+' or '#', found "b/c""#,
                "config.toml:5: [availability] types: expected an array of strings, found an integer (3) at index 3",
                "config.toml:6: [availability] topics: unknown key; valid keys are publish, homeassistant, discoveryPrefix, types",
            ])
        #expect(
            reject("[availability]\ndiscoveryPrefix = \"ha/\"\ntypes = \"tasmota\"\n") == [
                #"config.toml:2: [availability] discoveryPrefix: must not end with '/' (topics are built as <discoveryPrefix>/binary_sensor/…), found "ha/""#,
                #"config.toml:3: [availability] types: expected an array of device types (e.g. ["tasmota"]), found a string ("tasmota")"#,
            ])
    }

    @Test func unknownSectionNamesLineAndValidSections() {
        #expect(
            reject("[mqtt]\n\n[htpp]\nport = 1\n")
                == [
                    "config.toml:3: [htpp]: unknown section (did you mean 'http'?); expected [mqtt], [http], [status], [storage], [operations], [log], [availability], [device_<name>] or [agent_<name>]"
                ])
        #expect(
            reject("[sensor_x]\n").first?.hasPrefix("config.toml:1: [sensor_x]: unknown section; expected [mqtt]")
                == true)
    }

    @Test func unknownKeySuggestsNearMissOrListsValidKeys() {
        #expect(
            reject("[device_a]\nwatchTimeout = 5") == [
                "config.toml:2: [device_a] watchTimeout: unknown key (did you mean 'watchTimeOut'?)"
            ])
        #expect(
            reject("[mqtt]\nkeepalive = 5") == [
                "config.toml:2: [mqtt] keepalive: unknown key (did you mean 'keepAlive'?)"
            ])
        #expect(
            reject("[storage]\npath = \"/x\"") == ["config.toml:2: [storage] path: unknown key; valid keys are dataDir"]
        )
        #expect(
            reject("[device_a]\nexec = \"x\"")
                == [
                    "config.toml:2: [device_a] exec: only allowed in [agent_*] sections (a device has no process to run)"
                ])
    }

    @Test func badTopicFilterNamesReason() {
        #expect(
            reject("[device_a]\nwatchTopics = [\n  \"ok/#\",\n  \"a/#/b\",\n]")
                == [
                    "config.toml:2: [device_a] watchTopics: invalid topic filter 'a/#/b': '#' must be the last level (e.g. 'a/b/#', not 'a/#/b')"
                ])
        #expect(
            reject("[device_a]\nstateTopics = \"a/b+\"")
                == [
                    "config.toml:2: [device_a] stateTopics: invalid topic filter 'a/b+': '+' must occupy a whole level (e.g. 'a/+/c', not 'a/b+/c')"
                ])
        #expect(
            reject("[device_a]\nhelloTopic = \"home/+\"")
                == [
                    #"config.toml:2: [device_a] helloTopic: expected a topic name without wildcards ('+', '#'), found "home/+""#
                ])
        #expect(
            reject("[status]\ntopics = [\"iot-2/type/+/id/+/mon\", \"home/#\"]")
                == [
                    "config.toml:2: [status] topics: status topic 'home/#' must contain the levels 'type/+' and 'id/+' so each message names its device"
                ])
        #expect(
            reject("[mqtt]\nbaseTopic = \"a/#\"").first?.hasPrefix(
                "config.toml:2: [mqtt] baseTopic: expected a topic name") == true)
    }

    @Test func badURLNamesReason() {
        #expect(
            reject("[mqtt]\nserverAddress = \"http://broker\"")
                == [
                    "config.toml:2: [mqtt] serverAddress: invalid broker URL 'http://broker': unsupported scheme 'http' (use tcp://, mqtt://, ssl:// or mqtts://)"
                ])
        #expect(
            reject("[mqtt]\nserverAddress=\"tcp://h:99999\"")
                == [
                    "config.toml:2: [mqtt] serverAddress: invalid broker URL 'tcp://h:99999': port '99999' is not a number in 1...65535"
                ])
    }

    @Test func outOfRangeNumbersNameTheRange() {
        #expect(
            reject("[mqtt]\nkeepAlive = 2") == [
                "config.toml:2: [mqtt] keepAlive: 2 is out of range; expected 5...65535 seconds"
            ])
        #expect(
            reject("[http]\nport = 70000") == ["config.toml:2: [http] port: 70000 is out of range; expected 0...65535"])
        #expect(
            reject("[http]\nheaderTimeout = 0") == [
                "config.toml:2: [http] headerTimeout: 0 is out of range; expected more than 0 and at most 3600 seconds"
            ])
        #expect(
            reject("[device_a]\nwatchTimeOut = 0") == [
                "config.toml:2: [device_a] watchTimeOut: 0 is out of range; expected 1...31536000 seconds"
            ])
        #expect(
            reject("[operations]\nmaxAttempts = 0") == [
                "config.toml:2: [operations] maxAttempts: 0 is out of range; expected 1...100"
            ])
    }

    @Test func duplicateDeviceNamesAndKeysAreRejected() {
        #expect(
            reject("[device_x]\n\n[agent_x]\nexec = \"true\"")
                == [
                    "config.toml:3: [agent_x]: the name 'x' is already used by [device_x] (line 1); names must be unique because they name B/expire/<name>"
                ])
        #expect(
            reject("[device_a]\ntype = \"t\"\nid = \"1\"\n[device_b]\ntype = \"t\"\nid = \"1\"")
                == [
                    "config.toml:4: [device_b]: same type 't' and id '1' as [device_a] (line 1); each device must be configured once"
                ])
        // TOML itself forbids a section twice: a syntax error with its line.
        #expect(reject("[device_a]\n[device_a]\n").first?.hasPrefix("config.toml:2:") == true)
    }

    @Test func agentNeedsExecAndNamesAreChecked() {
        #expect(
            reject("[agent_box]\nwatchTopics = \"a\"") == [
                #"config.toml:1: [agent_box]: an agent needs exec = "<command line>" (run under /bin/sh -c)"#
            ])
        #expect(
            reject("[agent_box]\nexec = \"  \"") == [
                "config.toml:2: [agent_box] exec: must not be empty (the command line to run under /bin/sh -c)"
            ])
        #expect(
            reject("[device_]\n").first?.hasPrefix("config.toml:1: [device_]: the name after 'device_' must be") == true
        )
        #expect(
            reject("[\"device_a b\"]\n").first?.hasPrefix(
                "config.toml:1: [device_a b]: the name after 'device_' must be") == true)
        #expect(
            reject("[device_a]\nid = \"x/y\"").first?.hasPrefix(
                "config.toml:2: [device_a] id: must be non-empty without '/'") == true)
    }

    @Test func allErrorsAreCollectedInLineOrder() {
        let errors = reject(
            """
            [device_z]
            watchTimeOut = "60"
            [mqtt]
            keepAlive = 1
            serverAddress = "ftp://x"
            [nonsense]
            [http]
            bind = "localhost"
            """)
        #expect(errors.count == 5)
        #expect(errors.map { $0.split(separator: ":")[1] } == ["2", "4", "5", "6", "8"])
    }

    @Test func tokenFileIsReadTrimmedAndChecked() throws {
        let directory = try TemporaryDirectory(prefix: "config-test")
        try Data("\n".utf8).write(to: URL(fileURLWithPath: directory.file("empty")))
        let missing = directory.file("missing")
        #expect(
            reject("[http]\ntokenFile = \"\(missing)\"") == [
                "config.toml:2: [http] tokenFile: cannot read \"\(missing)\": No such file or directory"
            ])
        #expect(
            reject("[http]\ntokenFile = \"\(directory.file("empty"))\"") == [
                "config.toml:2: [http] tokenFile: \"\(directory.file("empty"))\" is empty"
            ])
        #expect(
            reject("[http]\ntoken = \"a\"\ntokenFile = \"\(missing)\"") == [
                "config.toml:3: [http] tokenFile: token and tokenFile are both set; keep one"
            ])
        #expect(
            reject("[http]\ntoken = \"a b\"").first?.hasPrefix("config.toml:2: [http] token: must be printable ASCII")
                == true)
    }

    @Test func tlsFilesMustBeReadableAndPaired() throws {
        let directory = try TemporaryDirectory(prefix: "config-test")
        try Data("pem".utf8).write(to: URL(fileURLWithPath: directory.file("cert.pem")))
        let missing = directory.file("nope.pem")
        #expect(
            reject("[mqtt]\ncafile = \"\(missing)\"") == [
                "config.toml:2: [mqtt] cafile: cannot read \"\(missing)\": No such file or directory"
            ])
        #expect(
            reject("[mqtt]\ncafile = \"\(directory.path)\"") == [
                "config.toml:2: [mqtt] cafile: cannot read \"\(directory.path)\": is a directory"
            ])
        #expect(
            reject("[mqtt]\ncertfile = \"\(directory.file("cert.pem"))\"")
                == ["config.toml:2: [mqtt] certfile: needs keyfile too (a client certificate and its key go together)"])
    }

    @Test func mqttIdentityChecks() {
        #expect(accept("[mqtt]\nclientId = \"x\"")?.mqtt.clientid == "x")
        #expect(
            reject("[mqtt]\nclientid = \"a\"\nclientId = \"b\"") == [
                "config.toml:3: [mqtt] clientId: both clientid and clientId are set; keep one"
            ])
        #expect(
            reject("[mqtt]\nclientid = \"\"").first?.hasPrefix("config.toml:2: [mqtt] clientid: must not be empty")
                == true)
        #expect(
            reject("[mqtt]\npassword = \"pw\"").first?.hasPrefix(
                "config.toml:2: [mqtt] password: a password needs a user") == true)
        #expect(
            reject("[mqtt]\nbaseTopic = \"$SYS/x\"").first?.hasPrefix(
                "config.toml:2: [mqtt] baseTopic: must not start with '$'") == true)
        #expect(
            reject("[http]\nbind = \"localhost\"").first?.hasPrefix(
                "config.toml:2: [http] bind: expected an IPv4 or IPv6 address") == true)
    }

    @Test func syntaxErrorCarriesLineAndColumn() {
        let errors = reject("[mqtt]\nkeepAlive = 60\nuser = \"unterminated\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("config.toml:3:") == true)
        #expect(errors.first?.contains("TOML syntax error") == true)
    }

    @Test func unreadableFileIsOneErrorWithoutLine() throws {
        let directory = try TemporaryDirectory(prefix: "config-test")
        let path = directory.file("absent.toml")
        guard case .failure(let errors) = ConfigLoader.load(path: path) else {
            Issue.record("a missing file was accepted")
            return
        }
        #expect(errors.errors.map(\.description) == ["\(path): cannot read: No such file or directory"])
        #expect(errors.errors.first?.line == nil && errors.errors.first?.key == "")
    }

    @Test func errorKeyIsTheDottedPath() {
        guard case .failure(let errors) = parse("[mqtt]\nkeepAlive = \"x\"") else {
            Issue.record("accepted")
            return
        }
        #expect(errors.errors.first?.key == "mqtt.keepAlive")
        #expect(errors.errors.first?.line == 2)
    }
}

/// The line finder behind every semantic error.
@Suite struct SourceLocatorTests {
    @Test func findsSectionsAndKeysPastStringsCommentsAndMultilineValues() {
        let text = """
            # [fake] header in a comment
            top = 1
            [mqtt]   # trailing comment
              serverAddress="tcp://x"
            user = "a = b"
            password = \"\"\"
            keepAlive = not a key
            \"\"\"
            [ "device_a" ]
            'watchTopics' = [
              "x",
              # keepAlive = 3
            ]
            "quoted.key" = 1
            helloTopic = 'lit'
            [device_b.sub]
            k = 1
            arr = [[1, 2], [3,
              4]]
            last = 2
            """
        let locator = SourceLocator(text)
        #expect(locator.line(topLevelKey: "top") == 2)
        #expect(locator.line(section: "fake") == nil)
        #expect(locator.line(section: "mqtt") == 3)
        #expect(locator.line(section: "mqtt", key: "serverAddress") == 4)
        #expect(locator.line(section: "mqtt", key: "user") == 5)
        #expect(locator.line(section: "mqtt", key: "password") == 6)
        // keepAlive appears only inside a string: the lookup falls back to the section.
        #expect(locator.line(section: "mqtt", key: "keepAlive") == 3)
        #expect(locator.line(section: "device_a") == 9)
        #expect(locator.line(section: "device_a", key: "watchTopics") == 10)
        #expect(locator.line(section: "device_a", key: "quoted.key") == 14)
        #expect(locator.line(section: "device_a", key: "helloTopic") == 15)
        #expect(locator.line(section: "device_b") == 16)
        #expect(locator.line(section: "device_b", key: "sub") == 16)
        #expect(locator.line(section: "device_b.sub", key: "k") == 17)
        #expect(locator.line(section: "device_b.sub", key: "last") == 20)
    }

    @Test func dottedKeysDefineTheirSection() {
        let locator = SourceLocator("\n\nmqtt.keepAlive = 5\n")
        #expect(locator.line(section: "mqtt") == 3)
        #expect(locator.line(section: "mqtt", key: "keepAlive") == 3)
    }
}
