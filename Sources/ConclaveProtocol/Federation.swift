import Crypto
import Foundation

/// Whether a network talks to other networks (DESIGN.md §7): not at all,
/// only to peers its administrator listed, or also to unlisted networks,
/// whose key is pinned on first contact.
public enum FederationMode: String, Codable, Sendable, CaseIterable {
    case off
    case listed
    case open
}

/// A network this one federates with, pinned by its key fingerprint.
public struct FederationPeer: Codable, Sendable, Hashable {
    public var domain: NetworkDomain
    /// Where its server answers, e.g. `https://chat.globex.example`.
    public var url: String
    /// `sha256:` and the hex SHA-256 of its network key.
    public var keyFingerprint: String
    /// `admin` (listed by an administrator) or `first-use` (pinned on first
    /// contact in open mode).
    public var pinnedBy: String
    public var addedAt: Date

    public init(domain: NetworkDomain, url: String, keyFingerprint: String, pinnedBy: String, addedAt: Date) {
        self.domain = domain
        self.url = url
        self.keyFingerprint = keyFingerprint
        self.pinnedBy = pinnedBy
        self.addedAt = addedAt
    }

    /// A fingerprint as `network show` prints it: `sha256:` and 64 hex digits.
    public static func isFingerprint(_ text: String) -> Bool {
        text.hasPrefix("sha256:") && text.utf8.count == 71 && text.utf8.dropFirst(7).allSatisfy { $0.isLowerHexDigit }
    }

    /// An `http` or `https` URL without a path, query or credentials.
    public static func isServerURL(_ text: String) -> Bool {
        guard text.utf8.count <= 2048, let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host?.isEmpty == false, url.user == nil, url.query == nil, url.path.isEmpty || url.path == "/"
        else { return false }
        return true
    }
}

/// `POST /v1/admin/federation/peers`.
public struct AddFederationPeer: Codable, Sendable, Hashable {
    public var domain: NetworkDomain
    public var url: String
    public var keyFingerprint: String

    public init(domain: NetworkDomain, url: String, keyFingerprint: String) {
        self.domain = domain
        self.url = url
        self.keyFingerprint = keyFingerprint
    }
}

/// `GET /v1/admin/federation`: the mode and the pinned peers.
public struct FederationState: Codable, Sendable, Hashable {
    public var mode: FederationMode
    public var peers: [FederationPeer]

    public init(mode: FederationMode, peers: [FederationPeer]) {
        self.mode = mode
        self.peers = peers
    }
}

/// `PUT /v1/admin/federation/mode`.
public struct FederationModeChange: Codable, Sendable, Hashable {
    public var mode: FederationMode

    public init(mode: FederationMode) { self.mode = mode }
}

/// `GET /v1/networks/{domain}`: a peer network's key, as this network
/// pinned it, for clients to verify that network's device certificates.
public struct PeerNetwork: Codable, Sendable, Hashable {
    public var domain: NetworkDomain
    public var signingKey: Base64Bytes
    public var keyFingerprint: String

    public init(domain: NetworkDomain, signingKey: Base64Bytes, keyFingerprint: String) {
        self.domain = domain
        self.signingKey = signingKey
        self.keyFingerprint = keyFingerprint
    }
}

/// `POST /v1/federation/key-packages/claim`: a user of the requesting
/// network claims key packages of one of this network's users.
public struct FederatedKeyPackageClaim: Codable, Sendable, Hashable {
    public var user: UserName
    public var requester: UserAddress
    /// As ``KeyPackageClaim/cipherSuites`` (absent: suite 1 only).
    public var cipherSuites: [UInt16]?

    public init(user: UserName, requester: UserAddress, cipherSuites: [UInt16]? = nil) {
        self.user = user
        self.requester = requester
        self.cipherSuites = cipherSuites
    }
}

/// How one network's server signs a request to another's (DESIGN.md §7):
/// Ed25519 with its network key over the method, path, body digest,
/// timestamp, a nonce, the origin and destination domains and the origin's
/// URL, sent in `Conclave-*` headers. The receiver checks the key against
/// the fingerprint it pinned, the timestamp against its clock, and refuses
/// a nonce it has seen.
public struct FederationRequestSignature: Sendable, Hashable {
    public static let originHeader = "Conclave-Origin"
    public static let originURLHeader = "Conclave-Origin-URL"
    public static let destinationHeader = "Conclave-Destination"
    public static let timestampHeader = "Conclave-Timestamp"
    public static let nonceHeader = "Conclave-Nonce"
    public static let keyHeader = "Conclave-Key"
    public static let signatureHeader = "Conclave-Signature"
    /// How far a request's timestamp may be from the receiver's clock.
    public static let maximumSkew: TimeInterval = 300

    public var method: String
    public var path: String
    public var bodyDigest: String
    /// Milliseconds since 1970.
    public var timestamp: Int64
    public var nonce: String
    public var origin: NetworkDomain
    public var originURL: String
    public var destination: NetworkDomain

    public init(
        method: String, path: String, body: [UInt8], timestamp: Int64, nonce: String, origin: NetworkDomain, originURL: String,
        destination: NetworkDomain
    ) {
        self.method = method
        self.path = path
        self.bodyDigest = Hex.encode(SHA256.hash(data: body))
        self.timestamp = timestamp
        self.nonce = nonce
        self.origin = origin
        self.originURL = originURL
        self.destination = destination
    }

    static let label = "Conclave federation request v1"

    /// The bytes the origin signs: one field per line.
    public var signedBytes: [UInt8] {
        let fields = [
            Self.label, method, path, bodyDigest, String(timestamp), nonce, origin.value, originURL, destination.value,
        ]
        return Array(fields.joined(separator: "\n").utf8)
    }

    /// A fresh random nonce: 32 hex digits.
    public static func newNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The headers of a request signed by `key`.
    public func headers(signedBy key: NetworkSigningKey) throws -> [(String, String)] {
        [
            (Self.originHeader, origin.value), (Self.originURLHeader, originURL), (Self.destinationHeader, destination.value),
            (Self.timestampHeader, String(timestamp)), (Self.nonceHeader, nonce),
            (Self.keyHeader, Data(key.publicKey.rawKey).base64EncodedString()),
            (Self.signatureHeader, Data(try key.sign(signedBytes)).base64EncodedString()),
        ]
    }
}

/// `POST /v1/federation/deliver`: the hosting network hands a message of
/// one of its conversations to the network of some of its members, for
/// these devices' inboxes.
public struct FederatedDelivery: Codable, Sendable, Hashable {
    public var conversation: ConversationID
    public var conversationKind: ConversationKind
    public var name: String?
    /// The conversation's creator, a user of the hosting network.
    public var createdBy: UserName
    public var createdAt: Date
    public var kind: InboxEventKind
    public var message: Base64Bytes
    public var messageId: String?
    public var sentAt: Date
    public var expiresAt: Date?
    public var recipients: [DeviceID]
    /// The conversation's GroupInfo and ratchet tree after this message, as
    /// the host holds them; required with `welcome` and `handshake`. The
    /// receiving network reads the members and the settings from this
    /// member-signed state (never from the host's word) and checks its own
    /// users' policy against them (F6 in docs/federation.md).
    public var groupInfo: Base64Bytes?
    public var ratchetTree: Base64Bytes?
    /// A random id the receiver remembers, so that a delivery retried after
    /// a lost answer is stored once.
    public var deliveryId: String

    public init(
        conversation: ConversationID, conversationKind: ConversationKind, name: String?, createdBy: UserName, createdAt: Date,
        kind: InboxEventKind, message: Base64Bytes, messageId: String?, sentAt: Date, expiresAt: Date?, recipients: [DeviceID],
        groupInfo: Base64Bytes? = nil, ratchetTree: Base64Bytes? = nil, deliveryId: String = FederationRequestSignature.newNonce()
    ) {
        self.conversation = conversation
        self.conversationKind = conversationKind
        self.name = name
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.kind = kind
        self.message = message
        self.messageId = messageId
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.recipients = recipients
        self.groupInfo = groupInfo
        self.ratchetTree = ratchetTree
        self.deliveryId = deliveryId
    }
}

/// A member's device of another network, as its network vouches for it.
public struct RemoteActor: Codable, Sendable, Hashable {
    public var user: UserAddress
    public var device: DeviceID

    public init(user: UserAddress, device: DeviceID) {
        self.user = user
        self.device = device
    }
}

/// A client request to a conversation hosted elsewhere, relayed by the
/// member's own network: `POST /v1/federation/conversations/{id}/{operation}`.
/// A relayed question about one shared file: its status, or (with
/// `offset` and `length`) up to 4 MiB of its sealed bytes.
public struct FileQuery: Codable, Sendable {
    public var file: FileID
    public var offset: UInt64?
    public var length: UInt64?

    public init(file: FileID, offset: UInt64? = nil, length: UInt64? = nil) {
        self.file = file
        self.offset = offset
        self.length = length
    }
}

public struct RelayedRequest<Body: Codable & Sendable>: Codable, Sendable {
    public var actor: RemoteActor
    public var request: Body?

    public init(actor: RemoteActor, request: Body?) {
        self.actor = actor
        self.request = request
    }
}

/// `POST /v1/federation/conversations/{id}/remove-devices`: a member's
/// network asks the host to propose removing its user's devices
/// (de-provisioning).
public struct RemoteRemoval: Codable, Sendable, Hashable {
    public var devices: [DeviceID]

    public init(devices: [DeviceID]) { self.devices = devices }
}
