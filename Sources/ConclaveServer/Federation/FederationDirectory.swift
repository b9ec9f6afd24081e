import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The networks this one trusts (DESIGN.md §7): peers pinned by key
/// fingerprint, the federation mode, and the check of every
/// server-to-server request against those pins (rules F1–F4 in
/// docs/federation.md).
final class FederationDirectory: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let audit: AuditRecorder
    let limits: ServerLimits
    let insecureHosts: Set<String>
    let firstUseChecks = FirstUseChecks()
    let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, audit: AuditRecorder, limits: ServerLimits,
        insecureHosts: Set<String>, logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.audit = audit
        self.limits = limits
        self.insecureHosts = insecureHosts
        self.logger = logger
    }

    var domain: NetworkDomain { identity.domain }

    // MARK: Administration

    func state() async throws -> FederationState {
        FederationState(mode: try await store.federationMode(), peers: try await store.peers().map(\.peer))
    }

    func setMode(_ change: FederationModeChange, actor: String) async throws -> FederationState {
        let before = try await store.federationMode()
        let draft = audit.draft("federation.mode", "network:\(domain)", before: before, after: change.mode, actor: actor)
        try await store.setFederationMode(change.mode, audit: draft)
        audit.appended(draft)
        return try await state()
    }

    /// Pins a peer named by an administrator. When the peer answers, its
    /// `/.well-known/conclave` must name the same domain and key; when it
    /// does not, the key is learned (and checked) on first contact.
    func pin(_ request: AddFederationPeer, actor: String) async throws -> FederationPeer {
        guard request.domain != domain else { throw APIError.badRequest("a network does not federate with itself") }
        guard FederationPeer.isFingerprint(request.keyFingerprint) else {
            throw APIError.badRequest("the key fingerprint is sha256: and 64 hex digits, as `admin network show` prints it")
        }
        guard FederationPeer.isServerURL(request.url) else { throw APIError.badRequest("the URL is http(s)://host[:port] with no path") }
        var key: [UInt8]?
        do {
            let published = try await FederationClient.wellKnown(request.url)
            guard published.domain == request.domain else {
                throw APIError(.peerMismatch, "the server at that URL is \(published.domain), not \(request.domain)")
            }
            guard NetworkPublicKey(domain: published.domain, rawKey: published.signingKey.bytes).fingerprint == request.keyFingerprint
            else {
                throw APIError(.peerMismatch, "the server at that URL publishes another key than the fingerprint given")
            }
            key = published.signingKey.bytes
        } catch let error as APIError where error.code == .peerUnavailable {
            key = nil  // checked on first contact
        }
        let peer = FederationPeer(
            domain: request.domain, url: FederationClient.trimmed(request.url), keyFingerprint: request.keyFingerprint, pinnedBy: "admin",
            addedAt: Date(millis: clock.now.millis))
        let draft = audit.draft("federation.add", "network:\(peer.domain)", before: nil, after: peer, actor: actor)
        do {
            try await store.addPeer(StoredPeer(peer: peer, signingKey: key), audit: draft)
        } catch StoreError.conflict {
            throw APIError(.peerExists, "\(request.domain) is pinned already; remove it first to pin another key")
        }
        audit.appended(draft, ["key_known": "\(key != nil)"])
        return peer
    }

    /// Unpins a peer; returns the conversations hosted here that hold its
    /// devices, for the caller to propose their removal.
    func unpin(_ peer: NetworkDomain, actor: String) async throws -> [(ConversationID, [DeviceID])] {
        let before = try await store.peer(peer)?.peer
        let draft = audit.draft("federation.remove", "network:\(peer)", before: before, after: nil, actor: actor)
        guard try await store.removePeer(peer, audit: draft) else { throw APIError.notFound("federation peer") }
        audit.appended(draft)
        return try await store.conversationsWithRemoteDevices(of: peer)
    }

    // MARK: Keys

    /// `GET /v1/networks/{domain}`: a network's key as this one pins it.
    func network(_ network: NetworkDomain) async throws -> PeerNetwork {
        if network == domain {
            return PeerNetwork(
                domain: domain, signingKey: Base64Bytes(identity.publicKey.rawKey), keyFingerprint: identity.publicKey.fingerprint)
        }
        guard let peer = try await store.peer(network) else { throw APIError(.unknownNetwork, "\(network) is not a federation peer") }
        let key = try await key(of: peer)
        return PeerNetwork(domain: network, signingKey: Base64Bytes(key), keyFingerprint: peer.peer.keyFingerprint)
    }

    /// The pinned peer, or `unknown_network`.
    func peer(_ network: NetworkDomain) async throws -> StoredPeer {
        guard let peer = try await store.peer(network) else {
            throw APIError(.unknownNetwork, "\(domain) does not federate with \(network)")
        }
        return peer
    }

    /// A pinned peer's network key.
    func peerKey(_ network: NetworkDomain) async throws -> NetworkPublicKey {
        NetworkPublicKey(domain: network, rawKey: try await key(of: try await peer(network)))
    }

    /// A peer's key: as learned, or fetched now and checked against the pin.
    func key(of peer: StoredPeer) async throws -> [UInt8] {
        if let key = peer.signingKey { return key }
        let published = try await FederationClient.wellKnown(peer.peer.url)
        let key = NetworkPublicKey(domain: peer.peer.domain, rawKey: published.signingKey.bytes)
        guard published.domain == peer.peer.domain, key.fingerprint == peer.peer.keyFingerprint else {
            logger.warning("a peer publishes a key that does not match its pin", metadata: ["peer": "\(peer.peer.domain)"])
            throw APIError(.peerKeyMismatch, "\(peer.peer.domain) publishes a key that does not match the pinned fingerprint")
        }
        try await store.setPeerKey(peer.peer.domain, key.rawKey)
        return key.rawKey
    }
}
