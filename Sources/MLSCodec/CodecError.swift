/// A decoding failure. Equality compares the `code` only, so tests can match on
/// the kind of failure without caring where in the input it was found.
///
/// The description never contains input bytes: decoded data may be secret or
/// user content.
public struct CodecError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The input ended before the value did.
        case truncated
        /// A variable-length header used more bytes than needed (RFC 9420 §2.1.2).
        case nonMinimalLength
        /// A variable-length header had the reserved `11` prefix: length over 2^30 - 1.
        case lengthTooLarge
        /// A vector's body was not consumed exactly by its elements.
        case malformedVector
        /// Bytes were left over after a complete value.
        case trailingBytes
        /// An enum or selector value that this implementation does not know.
        case unknownValue
        /// A value outside the range the structure allows.
        case invalidValue
        /// The input, or a count of elements in it, exceeds a decoding limit.
        case tooLarge
    }

    public let code: Code
    /// What was being decoded, e.g. `"Proposal.proposal_type"`. Never data.
    public let context: String
    /// Offset in the input at which the failure was found.
    public let offset: Int

    public init(_ code: Code, _ context: String, offset: Int) {
        self.code = code
        self.context = context
        self.offset = offset
    }

    public static func == (lhs: CodecError, rhs: CodecError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "CodecError.\(code.rawValue) (\(context) at offset \(offset))" }
}
