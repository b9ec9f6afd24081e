import Crypto
import MLSCodec

/// `HPKEPublicKey`: `opaque HPKEPublicKey<V>` in the KEM's serialisation (RFC 9420 §5.1.1).
public struct HPKEPublicKey: Hashable, Sendable, TLSCodable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Hashes the bytes as one buffer: the tree indexes every node's key,
    /// and byte-by-byte hashing of X-Wing's 1,216-byte keys cost a seventh
    /// of a commit's time.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
    public func encode(to writer: inout TLSWriter) { writer.writeOpaque(bytes) }
    public init(from reader: inout TLSReader) throws { bytes = try reader.readOpaque("HPKEPublicKey") }
}

/// An HPKE private key in the KEM's `SerializePrivateKey` form.
public struct HPKEPrivateKey: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let secret: SecretBytes
    public init(_ bytes: [UInt8]) { secret = SecretBytes(bytes) }
    public var description: String { "HPKEPrivateKey(<redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

public struct HPKEKeyPair: Sendable, Hashable {
    public let privateKey: HPKEPrivateKey
    public let publicKey: HPKEPublicKey

    public init(privateKey: HPKEPrivateKey, publicKey: HPKEPublicKey) {
        self.privateKey = privateKey
        self.publicKey = publicKey
    }
}

/// `SignaturePublicKey`: `opaque SignaturePublicKey<V>` (RFC 9420 §5.1.1). Ed25519
/// keys are the raw 32 bytes; ECDSA keys are uncompressed SEC1 points.
public struct SignaturePublicKey: Hashable, Sendable, TLSCodable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func encode(to writer: inout TLSWriter) { writer.writeOpaque(bytes) }
    public init(from reader: inout TLSReader) throws { bytes = try reader.readOpaque("SignaturePublicKey") }
}

/// A parsed signature private key. Parsing once matters: an Ed25519 key
/// derives its public half on load, which costs as much as a signature.
public struct SignaturePrivateKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    enum Storage: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
    }

    let storage: Storage
    public let publicKey: SignaturePublicKey

    init(_ storage: Storage) {
        self.storage = storage
        switch storage {
        case .ed25519(let key): publicKey = SignaturePublicKey(Array(key.publicKey.rawRepresentation))
        case .p256(let key): publicKey = SignaturePublicKey(Array(key.publicKey.x963Representation))
        case .p384(let key): publicKey = SignaturePublicKey(Array(key.publicKey.x963Representation))
        case .p521(let key): publicKey = SignaturePublicKey(Array(key.publicKey.x963Representation))
        }
    }

    /// The serialised private key: the Ed25519 seed or the ECDSA scalar
    /// (big-endian, `Field-Element-to-Octet-String`).
    public var serialized: SecretBytes {
        switch storage {
        case .ed25519(let key): SecretBytes(Array(key.rawRepresentation))
        case .p256(let key): SecretBytes(Array(key.rawRepresentation))
        case .p384(let key): SecretBytes(Array(key.rawRepresentation))
        case .p521(let key): SecretBytes(Array(key.rawRepresentation))
        }
    }

    public var description: String { "SignaturePrivateKey(<redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
