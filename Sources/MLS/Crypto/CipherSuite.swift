import MLSCodec

/// An MLS cipher suite identifier (RFC 9420 §5.1, §17.1). Any 16-bit value
/// decodes (KeyPackages list GREASE values); ``CipherSuiteProvider`` decides
/// which ones this library can run.
public struct CipherSuite: RawRepresentable, Hashable, Sendable, TLSCodable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let x25519Aes128Sha256Ed25519 = CipherSuite(rawValue: 0x0001)
    public static let p256Aes128Sha256P256 = CipherSuite(rawValue: 0x0002)
    public static let x25519Chacha20Sha256Ed25519 = CipherSuite(rawValue: 0x0003)
    public static let x448Aes256Sha512Ed448 = CipherSuite(rawValue: 0x0004)
    public static let p521Aes256Sha512P521 = CipherSuite(rawValue: 0x0005)
    public static let x448Chacha20Sha512Ed448 = CipherSuite(rawValue: 0x0006)
    public static let p384Aes256Sha384P384 = CipherSuite(rawValue: 0x0007)
    /// The hybrid post-quantum suite as OpenMLS defines it (experimental, not
    /// in the IANA registry): X-Wing (ML-KEM-768 + X25519) in HPKE,
    /// ChaCha20-Poly1305, SHA-256, Ed25519. Key agreement is post-quantum;
    /// signatures (Ed25519) are not. docs/mls.md#post-quantum.
    public static let xwingChacha20Sha256Ed25519 = CipherSuite(rawValue: 0x004D)

    /// The suites this library implements on swift-crypto. 0x0004 and 0x0006
    /// need X448/Ed448, which swift-crypto does not provide.
    public static let supported: [CipherSuite] = [
        .x25519Aes128Sha256Ed25519, .p256Aes128Sha256P256, .x25519Chacha20Sha256Ed25519,
        .p521Aes256Sha512P521, .p384Aes256Sha384P384,
    ]

    /// Suites outside the registry that this library also runs (no official
    /// test vectors exist for them): the hybrid post-quantum suite.
    public static let experimental: [CipherSuite] = [.xwingChacha20Sha256Ed25519]

    /// Every suite this library runs.
    public static let implemented: [CipherSuite] = supported + experimental

    public var isSupported: Bool { Self.supported.contains(self) }

    /// Whether the suite's key exchange resists a quantum computer (its
    /// KEM is hybrid post-quantum). Its signatures may still not: 0x004D
    /// signs with Ed25519.
    public var isPostQuantum: Bool { self == .xwingChacha20Sha256Ed25519 }

    public var description: String {
        switch rawValue {
        case 0x0001: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
        case 0x0002: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
        case 0x0003: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
        case 0x0004: "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
        case 0x0005: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
        case 0x0006: "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
        case 0x0007: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
        case 0x004D: "MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519"
        default: "0x" + String(rawValue, radix: 16)
        }
    }

    public func encode(to writer: inout TLSWriter) { writer.write(rawValue) }
    public init(from reader: inout TLSReader) throws { rawValue = try reader.readUInt16("CipherSuite") }
}
