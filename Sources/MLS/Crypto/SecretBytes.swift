/// Bytes that must not leak: prints as `<redacted>`, compares in constant time.
public struct SecretBytes: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var count: Int { bytes.count }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        constantTimeEqual(lhs.bytes, rhs.bytes)
    }

    /// Hashes only the length, so a hash table never depends on secret content.
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes.count) }
}

/// Compares two byte strings in time that depends only on their lengths.
public func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}

/// XOR of two equal-length byte strings (nonce ⊕ reuse guard, RFC 9420 §6.3.1).
func xor(_ lhs: [UInt8], _ rhs: [UInt8]) -> [UInt8] {
    var out = lhs
    for index in 0..<min(lhs.count, rhs.count) { out[index] ^= rhs[index] }
    return out
}
