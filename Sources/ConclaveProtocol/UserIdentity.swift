import Crypto
import Foundation
import MLS
import MLSCodec

/// A user's identity key (Ed25519): made by the user's first device, held
/// by the user's approved devices only (sealed in their local stores), and
/// never by the server, which keeps and serves the public half. It signs
/// each device the user approves (``DeviceApproval``).
public struct UserIdentityKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    public static func generate() -> UserIdentityKey { UserIdentityKey(key: Curve25519.Signing.PrivateKey()) }

    public init(seed: [UInt8]) throws { key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed) }

    private init(key: Curve25519.Signing.PrivateKey) { self.key = key }

    /// The 32-byte seed: for the local store and the sealed transfer to a
    /// newly approved device only.
    public var seed: [UInt8] { Array(key.rawRepresentation) }
    public var publicKey: UserIdentityPublicKey { UserIdentityPublicKey(rawKey: Array(key.publicKey.rawRepresentation)) }

    /// Approves a device: signs its user, id, MLS signature key and suite.
    public func approve(user: UserAddress, device: DeviceID, signatureKey: SignaturePublicKey, cipherSuite: CipherSuite, at time: UInt64)
        throws -> DeviceApproval
    {
        let content = DeviceApproval.content(
            user: user, device: device, signatureKey: signatureKey, cipherSuite: cipherSuite, approvedAt: time)
        return DeviceApproval(approvedAt: time, identityKey: publicKey, signature: Array(try key.signature(for: content)))
    }
}

/// The public half of a user's identity key.
public struct UserIdentityPublicKey: Hashable, Sendable {
    public let rawKey: [UInt8]

    public init(rawKey: [UInt8]) { self.rawKey = rawKey }

    /// `sha256:` and the hex SHA-256 of the raw key.
    public var fingerprint: String { "sha256:" + Hex.encode(SHA256.hash(data: rawKey)) }

    func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The user's statement that a device is theirs, carried in the device's
/// MLS leaves as a LeafNode extension (type 0xF0C1) so that every member
/// checks it without asking a server:
///
/// ```
/// struct {
///     uint64 approved_at;        // seconds since 1970
///     opaque identity_key<V>;    // the approving identity key (Ed25519, 32 bytes)
///     opaque signature<V>;       // Ed25519 by the user's identity key over
///                                // "Conclave device approval v1" || ApprovalContent
/// } DeviceApproval;
///
/// struct {
///     opaque user<V>;            // "alice@acme.example"
///     opaque device<V>;          // 16 hex digits
///     opaque signature_key<V>;   // the device's MLS signature key
///     uint16 cipher_suite;
///     uint64 approved_at;
/// } ApprovalContent;
/// ```
public struct DeviceApproval: Hashable, Sendable, TLSCodable {
    public static let extensionType = ExtensionType(rawValue: 0xF0C1)
    public static let label = Array("Conclave device approval v1".utf8)

    public let approvedAt: UInt64
    /// The key that says it approved the device. It counts only when it is
    /// the key the member knows for the user (C6, C7).
    public let identityKey: UserIdentityPublicKey
    public let signature: [UInt8]

    public init(approvedAt: UInt64, identityKey: UserIdentityPublicKey, signature: [UInt8]) {
        self.approvedAt = approvedAt
        self.identityKey = identityKey
        self.signature = signature
    }

    static func content(user: UserAddress, device: DeviceID, signatureKey: SignaturePublicKey, cipherSuite: CipherSuite, approvedAt: UInt64)
        -> [UInt8]
    {
        var writer = TLSWriter()
        writer.writeOpaque(Array(user.description.utf8))
        writer.writeOpaque(Array(device.value.utf8))
        signatureKey.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        writer.write(approvedAt)
        return label + writer.bytes
    }

    /// C6 (docs/client.md): the identity key of the certificate's user
    /// approved this device and this signature key.
    public func isValid(for certificate: VerifiedDeviceCertificate, identity: UserIdentityPublicKey) -> Bool {
        identity.isValidSignature(
            signature,
            for: Self.content(
                user: certificate.user, device: certificate.device, signatureKey: certificate.signatureKey,
                cipherSuite: certificate.cipherSuite, approvedAt: approvedAt))
    }

    /// The same check for a device that is not in a leaf yet.
    public func isValid(
        user: UserAddress, device: DeviceID, signatureKey: SignaturePublicKey, cipherSuite: CipherSuite, identity: UserIdentityPublicKey
    ) -> Bool {
        identity.isValidSignature(
            signature,
            for: Self.content(user: user, device: device, signatureKey: signatureKey, cipherSuite: cipherSuite, approvedAt: approvedAt))
    }

    /// The approval a leaf carries, if any.
    public init?(leaf: LeafNode) {
        guard let data = leaf.extensions.first(ofType: Self.extensionType)?.data, let approval = try? Self(tlsSerialized: data) else {
            return nil
        }
        self = approval
    }

    public var leafExtension: Extension { Extension(type: Self.extensionType, data: tlsSerialized) }

    public func encode(to writer: inout TLSWriter) {
        writer.write(approvedAt)
        writer.writeOpaque(identityKey.rawKey)
        writer.writeOpaque(signature)
    }

    public init(from reader: inout TLSReader) throws {
        approvedAt = try reader.readUInt64("DeviceApproval.approved_at")
        identityKey = UserIdentityPublicKey(rawKey: try reader.readOpaque("DeviceApproval.identity_key"))
        signature = try reader.readOpaque("DeviceApproval.signature")
    }
}

/// The code a new device shows and the user types on an approved device:
/// 100 bits of SHA-256 over the new device's id, MLS signature key and
/// transfer key, in base32 (20 characters in four groups of five). The
/// code travels through the user, never through the server, so a server
/// that substitutes either key changes the code; matching a chosen code
/// would take about 2^100 tries.
public enum ApprovalCode {
    static let label = Array("Conclave approval code v1".utf8)
    static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")  // 32 symbols, no I/O/0/1

    public static func compute(device: DeviceID, signatureKey: SignaturePublicKey, transferKey: [UInt8]) -> String {
        var writer = TLSWriter()
        writer.writeOpaque(Array(device.value.utf8))
        signatureKey.encode(to: &writer)
        writer.writeOpaque(transferKey)
        let digest = Array(SHA256.hash(data: label + writer.bytes))
        var symbols: [Character] = []
        var buffer = 0
        var bits = 0
        for byte in digest where symbols.count < 20 {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5, symbols.count < 20 {
                bits -= 5
                symbols.append(alphabet[(buffer >> bits) & 31])
            }
        }
        return stride(from: 0, to: 20, by: 5).map { String(symbols[$0..<$0 + 5]) }.joined(separator: "-")
    }

    /// A code as a user may type it: case, spaces and dashes do not matter.
    public static func normalise(_ text: String) -> String {
        let symbols = text.uppercased().filter { alphabet.contains($0) }
        guard symbols.count == 20 else { return text }
        let array = Array(symbols)
        return stride(from: 0, to: 20, by: 5).map { String(array[$0..<$0 + 5]) }.joined(separator: "-")
    }
}

/// Safety numbers (docs/client.md): for each of the two users, starting
/// from H = 0x0000 || identity key || address, 5,200 times
/// H = SHA-512(H || identity key); the first 30 bytes of H give six 5-digit
/// chunks (each 5-byte big-endian number mod 100,000); the two 30-digit
/// halves in the order of the users' addresses, shown as 12 groups of 5.
/// Both sides compute the same 60 digits.
public enum SafetyNumber {
    static let iterations = 5200

    public static func compute(_ first: (UserAddress, UserIdentityPublicKey), _ second: (UserAddress, UserIdentityPublicKey)) -> String {
        let halves = [first, second].sorted { $0.0.description < $1.0.description }.map { half($0.0, $0.1) }
        let digits = halves.joined()
        return stride(from: 0, to: digits.count, by: 5).map { start in
            let from = digits.index(digits.startIndex, offsetBy: start)
            return String(digits[from..<digits.index(from, offsetBy: 5)])
        }.joined(separator: " ")
    }

    static func half(_ user: UserAddress, _ key: UserIdentityPublicKey) -> String {
        let identifier = Array(user.description.utf8)
        var hash = [0, 0] + key.rawKey + identifier
        for _ in 0..<iterations { hash = Array(SHA512.hash(data: hash + key.rawKey)) }
        return (0..<6).map { chunk in
            let value = hash[chunk * 5..<chunk * 5 + 5].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
            let digits = String(value % 100_000)
            return String(repeating: "0", count: 5 - digits.count) + digits
        }.joined()
    }

    /// A number as a user may type it: only digits count.
    public static func normalise(_ text: String) -> String {
        let digits = text.filter(\.isWholeNumber)
        guard digits.count == 60 else { return text }
        return stride(from: 0, to: 60, by: 5).map { start in
            let from = digits.index(digits.startIndex, offsetBy: start)
            return String(digits[from..<digits.index(from, offsetBy: 5)])
        }.joined(separator: " ")
    }
}
