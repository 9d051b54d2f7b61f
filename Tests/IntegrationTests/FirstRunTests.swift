import Foundation
import TestSupport
import Testing

/// What a person meets first: `make run` (scripts/run-local.sh) and its Ctrl-C, the first error messages,
/// `--version` and the shell completions.
@Suite(.serialized) struct FirstRunTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Runs the binary to its end; returns the exit status and what it printed (stdout and stderr).
    static func run(_ arguments: [String], in directory: TemporaryDirectory) async throws -> (
        TestSupport.ExitStatus?, String
    ) {
        let output = directory.file("out-\(UInt32.random(in: 0...UInt32.max)).log")
        let process = try ChildProcess(
            executable: Daemon.executable, arguments: arguments, environment: ["STATE_DIRECTORY": ""],
            outputPath: output)
        let status = await process.waitForExit(timeout: .seconds(20))
        return (status, process.output)
    }

    @Test func ctrlCOnRunLocalStopsTheDaemonThenTheBrokerItStartedAndExitsZero() async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-run")
        let brokerPort = try FreePort.next()
        let httpPort = try FreePort.next()
        let config = directory.file("config.toml")
        try """
        [mqtt]
        serverAddress = "tcp://127.0.0.1:\(brokerPort)"
        [http]
        port = \(httpPort)
        [storage]
        dataDir = "\(directory.file("data"))"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        // A session of its own, as a terminal's foreground job is a process group of its own.
        let script = try ChildProcess(
            executable: "/bin/bash",
            arguments: [Self.repository.appendingPathComponent("scripts/run-local.sh").path, config],
            environment: ["DEVSTATUSD_BINARY": Daemon.executable, "STATE_DIRECTORY": ""],
            outputPath: directory.file("run.log"), newSession: true)
        let ready = await eventually(timeout: .seconds(20)) {
            (try? httpGet(port: httpPort, path: "/readyz").status) == 200
        }
        #expect(ready, "not ready; output:\n\(script.output)")
        let started = try #require(
            script.output.firstMatch(
                of: /started a local mosquitto on 127\.0\.0\.1:\d+ \(pid (\d+), log (\S+)\/mosquitto\.log\)/),
            "no broker started; output:\n\(script.output)")
        let brokerPID = try #require(pid_t(started.output.1))
        let brokerDirectory = String(started.output.2)
        #expect(kill(brokerPID, 0) == 0)

        // Ctrl-C: SIGINT to the whole foreground process group (the script and the daemon).
        kill(-script.pid, SIGINT)
        let status = await script.waitForExit(timeout: .seconds(15))
        #expect(status == .exited(0), "output:\n\(script.output)")
        #expect(script.output.contains("stopped"), "output:\n\(script.output)")
        // The broker outlived the daemon's stop: the daemon never saw its connection drop.
        #expect(!script.output.contains("lost the connection"), "output:\n\(script.output)")
        #expect(kill(brokerPID, 0) != 0 && errno == ESRCH, "the broker still runs")
        #expect(!FileManager.default.fileExists(atPath: brokerDirectory), "\(brokerDirectory) was left behind")
    }

    @Test func busyPortIsNamedOnceInTheError() async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-err")
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(holder, $0, length)
                _ = getsockname(holder, $0, &length)
            }
        }
        listen(holder, 1)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let (status, output) = try await Self.run(
            ["--port", "\(port)", "--broker", "tcp://127.0.0.1:1", "--data-dir", directory.file("data")],
            in: directory)
        #expect(status == .exited(1))
        let lines = output.split(separator: "\n").filter { $0.contains("\(port)") }
        #expect(lines.count == 1, "\(output)")
        #expect(lines.first?.ranges(of: "cannot listen").count == 1, "\(output)")
        #expect(lines.first?.contains("127.0.0.1:\(port): address already in use") == true, "\(output)")
    }

    @Test func dataDirectoryThatCannotBeCreatedIsExplainedInPlainWords() async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-err")
        // Root may write anywhere, but nobody can create a directory below a plain file.
        try "".write(toFile: directory.file("file"), atomically: true, encoding: .utf8)
        let wanted = directory.file("file/data")
        let (status, output) = try await Self.run(
            ["--port", "0", "--broker", "tcp://127.0.0.1:1", "--data-dir", wanted], in: directory)
        #expect(status == .exited(2))
        #expect(
            output.contains(
                "data directory \(wanted) cannot be created: not a directory (at \(directory.file("file")))"),
            "\(output)")
        #expect(!output.contains("NSCocoaErrorDomain"), "\(output)")
    }

    @Test func versionNamesVersionRevisionAndBuildDate() async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-ver")
        let (status, output) = try await Self.run(["--version"], in: directory)
        #expect(status == .exited(0))
        // `make` records revision and date; a plain `swift build` says "unknown" for both.
        let pattern =
            /devstatusd \d+\.\d+\.\d+ \(revision ([0-9a-f]{12}(-dirty)?|unknown), built (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|unknown)\)/
        #expect(output.trimmingCharacters(in: .newlines).wholeMatch(of: pattern) != nil, "\(output)")
    }

    /// The configuration texts on which the TOML library aborted the process (SIGABRT, exit 134: a restart loop under
    /// systemd), Fuzz/seeds/ConfigFuzz/abort-*.toml: `check-config` and a start both name the line and exit 1.
    @Test func aConfigThatAbortedTheTOMLLibraryIsALineNumberedErrorAndExitCodeOne() async throws {
        let seeds = Self.repository.appendingPathComponent("Fuzz/seeds/ConfigFuzz")
        let names = try FileManager.default.contentsOfDirectory(atPath: seeds.path).filter { $0.hasPrefix("abort-") }
        #expect(names.count >= 3)
        let directory = try TemporaryDirectory(prefix: "devstatusd-toml")
        for name in names.sorted() {
            let path = seeds.appendingPathComponent(name).path
            let (checked, checkOutput) = try await Self.run(["check-config", "-c", path], in: directory)
            #expect(checked == .exited(1), "\(name): \(checkOutput)")
            // `<file>:<line>:<column>: [<table>] <key>: TOML syntax error: …` (table and key when there are).
            let line = checkOutput.split(separator: "\n").first { $0.hasPrefix("\(path):") }
            #expect(
                line?.dropFirst(path.count).contains(/^:\d+:\d+: (.+: )?TOML syntax error:/) == true,
                "\(checkOutput)")
            let (started, startOutput) = try await Self.run(
                ["-c", path, "--port", "0", "--broker", "tcp://127.0.0.1:1", "--data-dir", directory.file("data")],
                in: directory)
            #expect(started == .exited(1), "\(name): \(startOutput)")
            #expect(startOutput.contains("\(path):"), "\(startOutput)")
        }
    }

    @Test(arguments: [("bash", "check-config"), ("zsh", "#compdef devstatusd"), ("fish", "complete -c 'devstatusd'")])
    func generatesCompletionScripts(shell: String, marker: String) async throws {
        let directory = try TemporaryDirectory(prefix: "devstatusd-completion")
        let (status, output) = try await Self.run(["--generate-completion-script", shell], in: directory)
        #expect(status == .exited(0))
        #expect(output.contains(marker), "\(output.prefix(500))")
        #expect(output.contains("log-level"), "\(output.prefix(500))")
    }
}
