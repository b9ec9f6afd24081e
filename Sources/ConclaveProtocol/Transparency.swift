import Crypto
import MLS
import MLSCodec

/// One entry of a network's key-transparency log (issue 18,
/// docs/transparency.md): a user's identity key and approved device set
/// at a version. The log's leaf is ``MerkleLog/leafHash(_:)`` of its TLS
/// encoding:
///
/// ```
/// struct {
///     opaque index<V>;          // 32 bytes: TransparencyIndex of the user name
///     opaque identity_key<V>;   // the user's 32-byte identity key; empty when it has none
///     opaque devices<V>;        // 32 bytes: deviceCommitment of the approved devices
///     uint64 version;           // 1 for the user's first entry, one more for each change
///     uint64 time;              // seconds since 1970
/// } TransparencyEntry;
/// ```
public struct TransparencyEntry: Hashable, Sendable, TLSCodable {
    public var index: [UInt8]
    public var identityKey: [UInt8]
    public var devices: [UInt8]
    public var version: UInt64
    public var time: UInt64

    public init(index: [UInt8], identityKey: [UInt8], devices: [UInt8], version: UInt64, time: UInt64) {
        self.index = index
        self.identityKey = identityKey
        self.devices = devices
        self.version = version
        self.time = time
    }

    /// The entry's leaf hash in the log.
    public var leafHash: [UInt8] { MerkleLog.leafHash(tlsSerialized) }

    /// A commitment to a set of approved devices (id and signature key),
    /// whatever their order: SHA-256 over a label and the sorted pairs.
    public static func deviceCommitment(_ devices: [(device: DeviceID, signatureKey: [UInt8])]) -> [UInt8] {
        var writer = TLSWriter()
        writer.writeOpaque(Array("Conclave transparency devices v1".utf8))
        for (device, key) in devices.sorted(by: { $0.device.value < $1.device.value }) {
            writer.writeOpaque(Array(device.value.utf8))
            writer.writeOpaque(key)
        }
        return Array(SHA256.hash(data: writer.bytes))
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(index)
        writer.writeOpaque(identityKey)
        writer.writeOpaque(devices)
        writer.write(version)
        writer.write(time)
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        index = try reader.readOpaque("TransparencyEntry.index")
        identityKey = try reader.readOpaque("TransparencyEntry.identity_key")
        devices = try reader.readOpaque("TransparencyEntry.devices")
        version = try reader.readUInt64("TransparencyEntry.version")
        time = try reader.readUInt64("TransparencyEntry.time")
        guard index.count == 32, [0, 32].contains(identityKey.count), devices.count == 32 else {
            throw CodecError(.invalidValue, "TransparencyEntry", offset: offset)
        }
    }
}

/// Where a user's entries stand in the log without naming the user: an
/// HMAC-SHA256 of the user name under a secret of the network. Unlike a
/// VRF (RFC 9381; no maintained Swift implementation is in the package
/// mirror) it comes with no proof that an index is the right one for a
/// name: a client trusts its server for that mapping (docs/transparency.md).
public struct TransparencyIndex: Sendable {
    private let key: SymmetricKey

    public init(secret: [UInt8]) { key = SymmetricKey(data: secret) }

    public func index(of user: UserName) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("Conclave transparency index v1\u{0}\(user.value)".utf8), using: key))
    }
}

/// A head of a network's log: its size and root at a time.
///
/// ```
/// struct {
///     opaque domain<V>;
///     uint64 size;
///     opaque root<V>;           // 32 bytes
///     uint64 time;              // seconds since 1970
/// } TreeHead;
/// ```
public struct TreeHead: Hashable, Sendable, TLSCodable {
    public var domain: NetworkDomain
    public var size: UInt64
    public var root: [UInt8]
    public var time: UInt64

    public init(domain: NetworkDomain, size: UInt64, root: [UInt8], time: UInt64) {
        self.domain = domain
        self.size = size
        self.root = root
        self.time = time
    }

    /// What the network key signs: a label, then the head.
    static let label = Array("Conclave transparency tree head v1\u{0}".utf8)
    var signedBytes: [UInt8] { Self.label + tlsSerialized }

    /// Two heads of one network and one size with different roots: the
    /// network showed two different logs (a split view). Together, signed,
    /// they are the evidence.
    public func contradicts(_ other: TreeHead) -> Bool { domain == other.domain && size == other.size && root != other.root }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(Array(domain.value.utf8))
        writer.write(size)
        writer.writeOpaque(root)
        writer.write(time)
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        guard let domain = NetworkDomain(String(decoding: try reader.readOpaque("TreeHead.domain"), as: UTF8.self)) else {
            throw CodecError(.invalidValue, "TreeHead.domain", offset: offset)
        }
        self.domain = domain
        size = try reader.readUInt64("TreeHead.size")
        root = try reader.readOpaque("TreeHead.root")
        time = try reader.readUInt64("TreeHead.time")
        guard root.count == MerkleLog.hashLength else { throw CodecError(.invalidValue, "TreeHead.root", offset: offset) }
    }
}

/// A tree head with the network key's signature.
public struct SignedTreeHead: Hashable, Sendable {
    public var head: TreeHead
    public var signature: [UInt8]

    public init(head: TreeHead, signature: [UInt8]) {
        self.head = head
        self.signature = signature
    }

    /// The head signed by `key`, of its own network.
    public static func sign(_ head: TreeHead, by key: NetworkSigningKey) throws -> SignedTreeHead {
        guard head.domain == key.domain else { throw TransparencyError.wrongNetwork }
        return SignedTreeHead(head: head, signature: try key.sign(head.signedBytes))
    }

    /// Whether `key`, the network's pinned key, signed this head of its log.
    public func isValid(for key: NetworkPublicKey) -> Bool {
        head.domain == key.domain && key.isValidSignature(signature, for: head.signedBytes)
    }
}

public enum TransparencyError: Error, Sendable, Hashable {
    /// A key signs heads of its own network's log only.
    case wrongNetwork
}
