// The configuration loader's TOML syntax check (Sources/DeviceStatus/Config/TOMLGuard.swift) as a command, for
// scripts/toml-differential.py: built together with that one file by swiftc, it reads each file named on the command
// line and prints one line per file: `<path>\tok` or `<path>\t<line>:<column>: <message>`, or `<path>\tnot-utf8`.

import Foundation

@main
enum TOMLGuardCheck {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path)\tunreadable")
                continue
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                print("\(path)\tnot-utf8")
                continue
            }
            if let problem = TOMLGuard.firstProblem(in: text) {
                let oneLine = problem.message.replacingOccurrences(of: "\n", with: " ")
                print("\(path)\t\(problem.line):\(problem.column): \(oneLine)")
            } else {
                print("\(path)\tok")
            }
        }
    }
}
