// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "devstatusd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "devstatusd", targets: ["devstatusd"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Sparkplug B payloads (protobuf): generated code in Sources/DeviceStatus/Presence/Sparkplug.
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // C interop: system libraries and a tiny shim for what Glibc does not export.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        .target(name: "CSysShims"),
        // Git revision and build date, written by `make` (scripts/build-info.sh); fallbacks without it.
        .target(name: "CBuildInfo"),

        // Layers: devstatusd → DeviceStatus → {MQTT, Storage, HTTP1} → C modules.
        .target(
            name: "MQTT", dependencies: ["CMosquitto", "CSysShims", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Storage", dependencies: ["CLevelDB"]),
        .target(
            name: "HTTP1", dependencies: ["CSysShims", .product(name: "Logging", package: "swift-log")],
            // The event loop's state lives in classes touched once per request; the runtime exclusivity
            // check on each access cost ~1.5% of the loop's CPU (perf). Static checks still apply.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "DeviceStatus",
            dependencies: [
                "MQTT", "Storage", "HTTP1", "CSysShims", "CBuildInfo",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Presence/Sparkplug/sparkplug_presence.proto"]
        ),
        .executableTarget(
            name: "devstatusd",
            dependencies: [
                "DeviceStatus", "CSysShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        // `make bench`: measurements beside references (mosquitto_sub), driving the real binary.
        .executableTarget(
            name: "devstatusd-bench",
            dependencies: [
                "DeviceStatus", "MQTT", "Storage", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Test helpers: a real mosquitto on a free port, free ports, process spawning.
        .target(
            name: "TestSupport", dependencies: ["CSysShims", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"),
        .testTarget(name: "MQTTTests", dependencies: ["MQTT", "TestSupport"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "TestSupport"]),
        .testTarget(
            name: "DeviceStatusTests",
            dependencies: [
                "DeviceStatus", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "IntegrationTests", dependencies: ["MQTT", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// `make fuzz` (Fuzz/run.sh): one libFuzzer harness per parser of outside bytes, each the file Fuzz/<Name>.swift and
// one line here naming the modules it imports. Declared only when Fuzz/run.sh builds them (DEVSTATUSD_FUZZ=1, with
// -sanitize=fuzzer, which links libFuzzer's main), so ordinary builds do not compile them.
let fuzzHarnesses: [(name: String, dependencies: [Target.Dependency])] = [
    ("HTTPParserFuzz", ["HTTP1"]),
    ("MonPayloadFuzz", ["DeviceStatus"]),
    ("ConfigFuzz", ["DeviceStatus"]),
    ("PresenceDecoderFuzz", ["DeviceStatus"]),
    ("OperationRequestFuzz", ["DeviceStatus"]),
]
if Context.environment["DEVSTATUSD_FUZZ"] == "1" {
    package.targets += fuzzHarnesses.map { harness in
        .executableTarget(
            name: harness.name, dependencies: harness.dependencies, path: "Fuzz",
            // The folder's other files: the other harnesses, their seeds and the runner.
            exclude: ["seeds", "run.sh"]
                + fuzzHarnesses.map { "\($0.name).swift" }.filter { $0 != "\(harness.name).swift" },
            sources: ["\(harness.name).swift"])
    }
}
