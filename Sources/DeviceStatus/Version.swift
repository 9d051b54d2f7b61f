/// The version `devstatusd --version` prints.
public enum DeviceStatusVersion {
    public static let string = "0.1.0"
}
