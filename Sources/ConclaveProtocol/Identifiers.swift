import Crypto

/// A network's domain, a DNS name such as `acme.example` (DESIGN.md §3).
public struct NetworkDomain: TextIdentifier {
    public let value: String

    /// Accepts 1–253 characters of lowercase DNS labels (`a-z`, `0-9`, `-`,
    /// not at a label's ends), at least two labels.
    public init?(_ text: String) {
        let lower = text.lowercased()
        let labels = lower.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...253).contains(lower.utf8.count), labels.count >= 2,
            labels.allSatisfy({ label in
                (1...63).contains(label.utf8.count) && label.utf8.allSatisfy { $0.isLowerAlphanumeric || $0 == UInt8(ascii: "-") }
                    && label.utf8.first != UInt8(ascii: "-") && label.utf8.last != UInt8(ascii: "-")
            })
        else { return nil }
        value = lower
    }

    public var description: String { value }
}

/// A user's local name within a network: 1–64 of `a-z 0-9 . _ -`, starting
/// with a letter or digit.
public struct UserName: TextIdentifier {
    public let value: String

    public init?(_ text: String) {
        let lower = text.lowercased()
        guard (1...64).contains(lower.utf8.count), let first = lower.utf8.first, first.isLowerAlphanumeric,
            lower.utf8.allSatisfy({
                $0.isLowerAlphanumeric || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
            })
        else { return nil }
        value = lower
    }

    public var description: String { value }
}

/// A user: `alice@acme.example`. The same name on two networks is two people.
public struct UserAddress: TextIdentifier {
    public let name: UserName
    public let domain: NetworkDomain

    public init(name: UserName, domain: NetworkDomain) {
        self.name = name
        self.domain = domain
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let name = UserName(String(parts[0])), let domain = NetworkDomain(String(parts[1])) else { return nil }
        self.init(name: name, domain: domain)
    }

    public var description: String { "\(name)@\(domain)" }
}

/// A device of a user: 16 lowercase hex digits, chosen by the server at
/// registration. Its full name is `alice@acme.example/<id>`.
public struct DeviceID: TextIdentifier {
    public let value: String

    public init?(_ text: String) {
        guard text.utf8.count == 16, text.utf8.allSatisfy({ $0.isLowerHexDigit }) else { return nil }
        value = text
    }

    public static func random() -> DeviceID {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return DeviceID(hex: bytes)
    }

    init(hex bytes: [UInt8]) { value = Hex.encode(bytes) }

    public var description: String { value }
}

/// A shared file on the server: 16 random bytes, written as 32 lowercase
/// hex digits. It names the sealed bytes only; the file's name, type and
/// key travel inside an MLS message.
public struct FileID: TextIdentifier {
    public let value: String

    public init?(_ text: String) {
        guard text.utf8.count == 32, text.utf8.allSatisfy({ $0.isLowerHexDigit }) else { return nil }
        value = text
    }

    public static func random() -> FileID {
        var generator = SystemRandomNumberGenerator()
        return FileID(hex: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    init(hex bytes: [UInt8]) { value = Hex.encode(bytes) }

    public var description: String { value }
}

/// A conversation: the MLS group id, 16–64 bytes, written as lowercase hex.
public struct ConversationID: TextIdentifier {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard (16...64).contains(bytes.count) else { return nil }
        self.bytes = bytes
    }

    public init?(_ text: String) {
        guard let bytes = Hex.decode(text) else { return nil }
        self.init(bytes: bytes)
    }

    public static func random() -> ConversationID {
        var generator = SystemRandomNumberGenerator()
        return ConversationID(unchecked: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// A new id for a conversation hosted by `host`: 16 random bytes and
    /// the host's tag, so that no other network can claim to host it
    /// (D22, F7 in docs/federation.md).
    public static func hosted(by host: NetworkDomain) -> ConversationID {
        ConversationID(unchecked: random().bytes + hostTag(host))
    }

    /// Whether the id carries `host`'s tag.
    public func isHosted(by host: NetworkDomain) -> Bool { bytes.count == 32 && Array(bytes.suffix(16)) == Self.hostTag(host) }

    /// The first 16 bytes of SHA-256("Conclave conversation host v1", 0, domain).
    static func hostTag(_ host: NetworkDomain) -> [UInt8] {
        Array(SHA256.hash(data: Array("Conclave conversation host v1".utf8) + [0] + Array(host.value.utf8)).prefix(16))
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public var description: String { Hex.encode(bytes) }

    /// The bytes hashed at once, not one `UInt8` at a time as the derived
    /// hash would (conversation ids key the server's caches and batches).
    public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

/// An identifier written as text: parsed (and validated) from its text form,
/// encoded as a JSON string, ordered by its text.
public protocol TextIdentifier: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    init?(_ text: String)
}

extension TextIdentifier {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a valid \(Self.self)"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.description < rhs.description }
}

/// Lowercase hexadecimal.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let bytes = Array(bytes)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            bytes.withUnsafeBytes { encode($0, into: UnsafeMutableRawBufferPointer(out)) }
            return bytes.count * 2
        }
    }

    /// Writes the lowercase hex of `bytes` at the start of `out`, which
    /// holds at least twice as many bytes.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= bytes.count * 2, "hex: the output is too short")
        func digit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") - 10 + value }
        var index = 0
        for byte in bytes {
            out[index] = digit(byte >> 4)
            out[index + 1] = digit(byte & 0x0f)
            index += 2
        }
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count.isMultiple(of: 2) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = utf8[index].hexValue, let low = utf8[index + 1].hexValue else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}

extension UInt8 {
    var isLowerAlphanumeric: Bool { (0x61...0x7a).contains(self) || (0x30...0x39).contains(self) }
    var isLowerHexDigit: Bool { (0x30...0x39).contains(self) || (0x61...0x66).contains(self) }
    var hexValue: UInt8? {
        switch self {
        case 0x30...0x39: self - 0x30
        case 0x61...0x66: self - 0x61 + 10
        case 0x41...0x46: self - 0x41 + 10
        default: nil
        }
    }
}

/// The version of this build of Conclave (`conclave --version`).
public enum ConclaveVersion {
    public static let current = "0.9.0"
}
