import Crypto
import Foundation
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

/// A witness network's signature on a peer's tree head, and when it
/// signed: it saw this head, checked that it extends every earlier head of
/// that peer it saw, and will sign no other head of that size. A witness
/// signs the newest head it saw, again at every round, so a recent time
/// says the head was still the newest the witness knew of then (clients
/// count only recent cosignatures: a server cannot keep showing a device
/// an old head once its witnesses moved on).
public struct WitnessCosignature: Hashable, Sendable, Codable {
    public var witness: NetworkDomain
    /// Milliseconds since 1970, by the witness's clock.
    public var time: UInt64
    public var signature: Base64Bytes

    public init(witness: NetworkDomain, time: UInt64, signature: Base64Bytes) {
        self.witness = witness
        self.time = time
        self.signature = signature
    }

    /// A cosignature of the first format has no time: it reads as signed at
    /// 0, and verifies no more (the time is in what is signed), so records
    /// kept before still read.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        witness = try container.decode(NetworkDomain.self, forKey: .witness)
        time = try container.decodeIfPresent(UInt64.self, forKey: .time) ?? 0
        signature = try container.decode(Base64Bytes.self, forKey: .signature)
    }

    static let label = Array("Conclave transparency witness v2\u{0}".utf8)

    static func signedBytes(_ head: TreeHead, time: UInt64) -> [UInt8] {
        label + head.tlsSerialized + withUnsafeBytes(of: time.bigEndian) { Array($0) }
    }

    /// `key`'s network witnesses `head`, another network's, at `date`.
    public static func sign(_ head: TreeHead, at date: Date, by key: NetworkSigningKey) throws -> WitnessCosignature {
        guard head.domain != key.domain else { throw TransparencyError.wrongNetwork }
        let time = UInt64(max(0, (date.timeIntervalSince1970 * 1000).rounded(.down)))
        return WitnessCosignature(witness: key.domain, time: time, signature: Base64Bytes(try key.sign(signedBytes(head, time: time))))
    }

    /// Whether `key`, the witness's pinned key, signed `head` at `time`.
    public func isValid(for head: TreeHead, key: NetworkPublicKey) -> Bool {
        key.domain == witness && witness != head.domain
            && key.isValidSignature(signature.bytes, for: Self.signedBytes(head, time: time))
    }

    /// When the witness signed.
    public var date: Date { Date(timeIntervalSince1970: Double(time) / 1000) }
}

public enum TransparencyError: Error, Sendable, Hashable {
    /// A key signs heads of its own network's log only, and witnesses others' only.
    case wrongNetwork
}

// MARK: - The API's documents

/// A signed tree head as the API serves it (`GET /v1/transparency/head`):
/// the TLS-encoded ``TreeHead``, the network's signature, the witnesses'
/// cosignatures, and the number of them the network's administrator
/// requires (clients keep the highest they saw).
public struct TransparencyHeadInfo: Codable, Sendable, Hashable {
    public var head: Base64Bytes
    public var signature: Base64Bytes
    public var witnesses: [WitnessCosignature]
    public var quorum: Int

    public init(_ signed: SignedTreeHead, witnesses: [WitnessCosignature], quorum: Int) {
        head = Base64Bytes(signed.head.tlsSerialized)
        signature = Base64Bytes(signed.signature)
        self.witnesses = witnesses
        self.quorum = quorum
    }

    /// The head and its signature, decoded (not verified).
    public func signed() throws -> SignedTreeHead {
        SignedTreeHead(head: try TreeHead(tlsSerialized: head.bytes), signature: signature.bytes)
    }
}

/// A user's newest entry in the log with its inclusion proof against a head.
public struct TransparencyInclusion: Codable, Sendable, Hashable {
    /// The TLS-encoded ``TransparencyEntry``.
    public var entry: Base64Bytes
    public var position: UInt64
    public var proof: [Base64Bytes]
    public var head: TransparencyHeadInfo

    public init(entry: Base64Bytes, position: UInt64, proof: [Base64Bytes], head: TransparencyHeadInfo) {
        self.entry = entry
        self.position = position
        self.proof = proof
        self.head = head
    }
}

/// A consistency proof between two sizes of the log
/// (`GET /v1/transparency/consistency?from=&to=`).
public struct TransparencyConsistency: Codable, Sendable, Hashable {
    public var from: UInt64
    public var to: UInt64
    public var proof: [Base64Bytes]

    public init(from: UInt64, to: UInt64, proof: [Base64Bytes]) {
        self.from = from
        self.to = to
        self.proof = proof
    }
}

/// A run of the log's entries (`GET /v1/transparency/entries?start=&count=`).
public struct TransparencyEntries: Codable, Sendable, Hashable {
    public var start: UInt64
    /// TLS-encoded ``TransparencyEntry`` values, from `start` on.
    public var entries: [Base64Bytes]

    public init(start: UInt64, entries: [Base64Bytes]) {
        self.start = start
        self.entries = entries
    }
}

/// A witness asks a peer for its newest head, with the consistency proof
/// from the last size it saw (`POST /v1/federation/transparency/head`).
public struct FederatedHeadRequest: Codable, Sendable, Hashable {
    public var since: UInt64?

    public init(since: UInt64?) { self.since = since }
}

public struct FederatedHeadAnswer: Codable, Sendable, Hashable {
    public var head: TransparencyHeadInfo
    /// From `since` to the head's size; absent when there was no `since`.
    public var consistency: [Base64Bytes]?

    public init(head: TransparencyHeadInfo, consistency: [Base64Bytes]?) {
        self.head = head
        self.consistency = consistency
    }
}

/// Two signed heads of one network that cannot both be honest: the same
/// size with different roots, a later head that does not extend an earlier
/// one, or one smaller than a head seen before.
public struct TransparencyEvidence: Codable, Sendable, Hashable {
    public var network: NetworkDomain
    public var reason: String
    public var first: TransparencyHeadInfo
    public var second: TransparencyHeadInfo
    public var foundAt: Date

    public init(network: NetworkDomain, reason: String, first: TransparencyHeadInfo, second: TransparencyHeadInfo, foundAt: Date) {
        self.network = network
        self.reason = reason
        self.first = first
        self.second = second
        self.foundAt = foundAt
    }
}

/// What a network witnessed of one peer.
public struct WitnessedPeer: Codable, Sendable, Hashable {
    public var network: NetworkDomain
    public var size: UInt64?
    public var checkedAt: Date?
    /// Why the last attempt failed, if it did.
    public var problem: String?

    public init(network: NetworkDomain, size: UInt64?, checkedAt: Date?, problem: String?) {
        self.network = network
        self.size = size
        self.checkedAt = checkedAt
        self.problem = problem
    }
}

/// The transparency page of the admin API (`GET /v1/admin/transparency`).
public struct TransparencyStatus: Codable, Sendable, Hashable {
    public var head: TransparencyHeadInfo
    public var peers: [WitnessedPeer]
    public var evidence: [TransparencyEvidence]

    public init(head: TransparencyHeadInfo, peers: [WitnessedPeer], evidence: [TransparencyEvidence]) {
        self.head = head
        self.peers = peers
        self.evidence = evidence
    }
}

/// `PUT /v1/admin/transparency`: witness cosignatures clients require.
public struct TransparencySettings: Codable, Sendable, Hashable {
    public var quorum: Int

    public init(quorum: Int) { self.quorum = quorum }
}

/// A witness's cosignature with the head it signed (TLS encoding) and the
/// head's own signature by its network, as the witness gives it to that
/// network (`POST /v1/federation/transparency/cosignature`, and the answer
/// of `.../witness`).
public struct CosignatureDelivery: Codable, Sendable, Hashable {
    public var head: Base64Bytes
    public var headSignature: Base64Bytes
    public var cosignature: WitnessCosignature

    public init(head: Base64Bytes, headSignature: Base64Bytes, cosignature: WitnessCosignature) {
        self.head = head
        self.headSignature = headSignature
        self.cosignature = cosignature
    }

    public func signedHead() throws -> SignedTreeHead {
        SignedTreeHead(head: try TreeHead(tlsSerialized: head.bytes), signature: headSignature.bytes)
    }
}
