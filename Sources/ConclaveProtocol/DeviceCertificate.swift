import Crypto
import MLS
import MLSCodec

/// The network's Ed25519 signing key. It signs device certificates and, as
/// the `external_senders` entry of every conversation it hosts, the
/// server's Remove proposals (DESIGN.md §2). The two uses are kept apart by
/// their labels: certificates sign under ``DeviceCertificate/label``, MLS
/// under RFC 9420's `"MLS 1.0 "` prefix.
public struct NetworkSigningKey: Sendable {
    public let domain: NetworkDomain
    let key: Curve25519.Signing.PrivateKey

    public init(domain: NetworkDomain, seed: [UInt8]) throws {
        self.domain = domain
        key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
    }

    public static func generate(domain: NetworkDomain) -> NetworkSigningKey {
        NetworkSigningKey(domain: domain, key: Curve25519.Signing.PrivateKey())
    }

    private init(domain: NetworkDomain, key: Curve25519.Signing.PrivateKey) {
        self.domain = domain
        self.key = key
    }

    /// The 32-byte seed, for the server's key file only.
    public var seed: [UInt8] { Array(key.rawRepresentation) }
    public var publicKey: NetworkPublicKey { NetworkPublicKey(domain: domain, rawKey: Array(key.publicKey.rawRepresentation)) }

    func sign(_ message: [UInt8]) throws -> [UInt8] { Array(try key.signature(for: message)) }

    /// The same key as an MLS signer, for external proposals (suite 1 family).
    public func mlsSigner() throws -> SignaturePrivateKey {
        try CipherSuiteProvider(.x25519Aes128Sha256Ed25519).signaturePrivateKey(seed)
    }
}

/// A network's public key, as `/.well-known/conclave` publishes it.
public struct NetworkPublicKey: Hashable, Sendable {
    public let domain: NetworkDomain
    public let rawKey: [UInt8]

    public init(domain: NetworkDomain, rawKey: [UInt8]) {
        self.domain = domain
        self.rawKey = rawKey
    }

    /// `sha256:` and the hex SHA-256 of the raw key: what an administrator
    /// compares and pins.
    public var fingerprint: String { "sha256:" + Hex.encode(SHA256.hash(data: rawKey)) }

    /// How conversations hosted by this network name the server as an
    /// external sender (RFC 9420 §12.1.8.1).
    public var externalSender: ExternalSender {
        ExternalSender(signatureKey: SignaturePublicKey(rawKey), credential: .basic(identity: Array(domain.value.utf8)))
    }

    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The Authentication Service's statement that a signature key belongs to
/// one device of one user (DESIGN.md §2, "a basic credential plus an
/// AS-signed binding"), as it arrives: decoded, not yet checked. Its TLS
/// encoding is the identity of the device's MLS BasicCredential, so every
/// member and the Delivery Service can check any leaf against the network's
/// key without asking anyone.
///
/// ```
/// struct {
///     opaque user<V>;            // "alice@acme.example"
///     opaque device<V>;          // 16 hex digits
///     opaque signature_key<V>;   // the leaf's MLS signature key
///     uint16 cipher_suite;
///     uint64 issued_at;          // seconds since 1970
///     opaque signature<V>;       // Ed25519 by the network key over label || all of the above
/// } DeviceCertificate;
/// ```
///
/// What it says is a claim. Only ``verified(for:by:)`` (or
/// ``verified(by:)``) turns it into a ``VerifiedDeviceCertificate``, the
/// only type that names a sender or passes a policy check. Its claims may
/// route (which device ids hold leaves) but never decide trust.
public struct UnverifiedDeviceCertificate: Hashable, Sendable, TLSCodable {
    public static let label = Array("Conclave DeviceCertificate v1".utf8)

    public let claimedUser: UserAddress
    public let claimedDevice: DeviceID
    public let signatureKey: SignaturePublicKey
    public let cipherSuite: CipherSuite
    public let issuedAt: UInt64
    let signature: [UInt8]

    init(
        user: UserAddress, device: DeviceID, signatureKey: SignaturePublicKey, cipherSuite: CipherSuite, issuedAt: UInt64,
        signature: [UInt8]
    ) {
        self.claimedUser = user
        self.claimedDevice = device
        self.signatureKey = signatureKey
        self.cipherSuite = cipherSuite
        self.issuedAt = issuedAt
        self.signature = signature
    }

    /// Reads the certificate out of a leaf's credential; nil when the
    /// credential is not a Conclave device certificate.
    public init?(credential: Credential) {
        guard case .basic(let identity) = credential, let certificate = try? Self(tlsSerialized: identity) else { return nil }
        self = certificate
    }

    var toBeSigned: [UInt8] {
        var writer = TLSWriter()
        writer.writeOpaque(Array(claimedUser.description.utf8))
        writer.writeOpaque(Array(claimedDevice.value.utf8))
        signatureKey.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        writer.write(issuedAt)
        return Self.label + writer.bytes
    }

    /// C1 without a leaf: the certificate is signed by `key`, the key of the
    /// network its user belongs to.
    public func verified(by key: NetworkPublicKey) -> VerifiedDeviceCertificate? {
        guard key.domain == claimedUser.domain, key.isValidSignature(signature, for: toBeSigned) else { return nil }
        return VerifiedDeviceCertificate(self)
    }

    /// C1 (docs/server.md): the certificate is signed by `key` and binds
    /// the leaf's own signature key.
    public func verified(for leaf: LeafNode, by key: NetworkPublicKey) -> VerifiedDeviceCertificate? {
        guard signatureKey == leaf.signatureKey else { return nil }
        return verified(by: key)
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(Array(claimedUser.description.utf8))
        writer.writeOpaque(Array(claimedDevice.value.utf8))
        signatureKey.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        writer.write(issuedAt)
        writer.writeOpaque(signature)
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        guard let user = UserAddress(String(decoding: try reader.readOpaque("DeviceCertificate.user"), as: UTF8.self)),
            let device = DeviceID(String(decoding: try reader.readOpaque("DeviceCertificate.device"), as: UTF8.self))
        else { throw CodecError(.invalidValue, "DeviceCertificate.user", offset: offset) }
        self.claimedUser = user
        self.claimedDevice = device
        signatureKey = try SignaturePublicKey(from: &reader)
        cipherSuite = try CipherSuite(from: &reader)
        issuedAt = try reader.readUInt64()
        signature = try reader.readOpaque("DeviceCertificate.signature")
    }
}

/// A device certificate whose network signature has been checked: the
/// only form that names a device's user, a sender, or a member to a policy
/// check. It is made by ``UnverifiedDeviceCertificate/verified(for:by:)``
/// or by issuing one.
public struct VerifiedDeviceCertificate: Hashable, Sendable {
    /// The certificate as it travels.
    public let certificate: UnverifiedDeviceCertificate

    fileprivate init(_ certificate: UnverifiedDeviceCertificate) { self.certificate = certificate }

    public var user: UserAddress { certificate.claimedUser }
    public var device: DeviceID { certificate.claimedDevice }
    public var signatureKey: SignaturePublicKey { certificate.signatureKey }
    public var cipherSuite: CipherSuite { certificate.cipherSuite }
    public var issuedAt: UInt64 { certificate.issuedAt }

    /// The device's full name, `alice@acme.example/<device>`.
    public var deviceAddress: String { "\(user)/\(device)" }

    /// The MLS credential that carries this certificate.
    public var credential: Credential { .basic(identity: certificate.tlsSerialized) }
    public var tlsSerialized: [UInt8] { certificate.tlsSerialized }

    /// Signs a new certificate with the network's key (the Authentication
    /// Service's job).
    public static func issue(
        user: UserAddress, device: DeviceID, signatureKey: SignaturePublicKey, cipherSuite: CipherSuite, issuedAt: UInt64,
        by key: NetworkSigningKey
    ) throws -> VerifiedDeviceCertificate {
        let unsigned = UnverifiedDeviceCertificate(
            user: user, device: device, signatureKey: signatureKey, cipherSuite: cipherSuite, issuedAt: issuedAt, signature: [])
        return VerifiedDeviceCertificate(
            UnverifiedDeviceCertificate(
                user: user, device: device, signatureKey: signatureKey, cipherSuite: cipherSuite, issuedAt: issuedAt,
                signature: try key.sign(unsigned.toBeSigned)))
    }

    /// C1 on a leaf: its credential is a certificate signed by `key` that
    /// binds the leaf's signature key.
    public static func verify(leaf: LeafNode, networkKey key: NetworkPublicKey) -> VerifiedDeviceCertificate? {
        UnverifiedDeviceCertificate(credential: leaf.credential)?.verified(for: leaf, by: key)
    }
}
