/// The time against which lifetimes are checked (RFC 9420 §7.2, §7.3).
///
/// Every operation that validates leaves takes one, with no default: a
/// caller with a clock passes ``at(_:)``; one that truly has none (replaying
/// test vectors, the interop harness) says so with ``unchecked``.
public enum ValidationTime: Sendable, Hashable {
    /// Seconds since 1970.
    case at(UInt64)
    /// Lifetimes are not checked.
    case unchecked

    /// The seconds to check against, if any.
    var seconds: UInt64? {
        switch self {
        case .at(let seconds): seconds
        case .unchecked: nil
        }
    }
}
