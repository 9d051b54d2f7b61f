/// Splitting at `/` as MQTT and device keys mean it: at every `/` byte.
///
/// `split(separator: "/")` and `firstIndex(of: "/")` on a String look for `/` *Characters*, and a `/` followed by a
/// combining mark (a device named "\u{301}x", a topic level starting with one) is no Character of its own: the level
/// was not split, and a force-unwrapped search for a device key's `/` stopped the daemon (found by fuzzing). These
/// work on Unicode scalars, where `/` is always one.
extension Substring {
    /// The levels between `/`s, empty ones included (`a//b` has three).
    var slashLevels: [Substring] {
        unicodeScalars.split(separator: "/", omittingEmptySubsequences: false).map { Substring($0) }
    }

    /// What comes before and after the first `/`, or nil without one.
    var splitAtFirstSlash: (head: Substring, tail: Substring)? {
        let scalars = unicodeScalars
        guard let slash = scalars.firstIndex(of: "/") else { return nil }
        return (Substring(scalars[..<slash]), Substring(scalars[scalars.index(after: slash)...]))
    }
}

extension String {
    /// The levels between `/`s, empty ones included (`a//b` has three).
    var slashLevels: [Substring] { self[...].slashLevels }

    /// What comes before and after the first `/`, or nil without one.
    var splitAtFirstSlash: (head: Substring, tail: Substring)? { self[...].splitAtFirstSlash }
}
