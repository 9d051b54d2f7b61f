import Foundation

/// The standard `process_*` families every Prometheus client library exports, read from `/proc/self` and
/// `getrusage`/`getrlimit` at each scrape: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds`.
enum ProcessMetrics {
    struct Sample: Equatable {
        var cpuSeconds: Double
        var residentBytes: Int
        var virtualBytes: Int
        var openFDs: Int
        var maxFDs: Int
        var startTimeSeconds: Double
    }

    /// The process's start in Unix seconds: `/proc/self/stat` field 22 (clock ticks after boot) plus the boot
    /// time from `/proc/stat`. Fixed for the life of the process.
    static let startTimeSeconds: Double = {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after the command name (which may hold spaces), starting with field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
            let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(line.dropFirst(6))
        else { return 0 }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }()

    static func sample() -> Sample {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        let page = sysconf(Int32(_SC_PAGESIZE))
        var resident = 0
        var virtual = 0
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let pages = statm.split(separator: " ").compactMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if pages.count >= 2 {
                virtual = pages[0] * page
                resident = pages[1] * page
            }
        }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        // The directory listing holds one descriptor of its own while it is read.
        let open = max(0, ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 1) - 1)
        return Sample(
            cpuSeconds: cpu, residentBytes: resident, virtualBytes: virtual, openFDs: open,
            maxFDs: Int(clamping: limit.rlim_cur), startTimeSeconds: startTimeSeconds)
    }

    /// The families in the text format.
    static func render(_ sample: Sample, into output: inout [UInt8]) {
        func family(_ name: String, _ type: String, _ help: String, _ value: String) {
            output += Array("# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n".utf8)
        }
        family(
            "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            "\(sample.cpuSeconds)")
        family(
            "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "\(sample.residentBytes)")
        family(
            "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "\(sample.virtualBytes)")
        family("process_open_fds", "gauge", "Number of open file descriptors.", "\(sample.openFDs)")
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", "\(sample.maxFDs)")
        family(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            "\(sample.startTimeSeconds)")
    }
}
