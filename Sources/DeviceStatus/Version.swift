import CBuildInfo

/// What `devstatusd --version` prints and `devstatusd_build_info` reports.
public enum DeviceStatusVersion {
    /// The release version.
    public static let string = "0.1.0"
    /// The git revision of the build (`make` records it; "unknown" after a plain `swift build`).
    public static let revision = String(cString: build_info_revision())
    /// When the binary was built, RFC 3339 UTC (`make` records it; "unknown" after a plain `swift build`).
    public static let buildDate = String(cString: build_info_date())
    /// `0.1.0 (revision 1a2b3c4d5e6f, built 2026-01-02T03:04:05Z)`.
    public static let full = "\(string) (revision \(revision), built \(buildDate))"
}
