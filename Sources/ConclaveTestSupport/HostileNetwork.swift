import ConclaveProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
import MLS
import MLSCodec
import NIOCore
import Synchronization

/// A network played by the test: it holds its own signing key, certifies
/// devices for its own users, builds MLS groups with the library, and
/// sends signed server-to-server requests of its choosing, as a
/// hand-modified peer would.
public struct HostileNetwork: Sendable {
    public let key: NetworkSigningKey
    /// The URL it names as its own in its requests.
    public let url: String

    public init(domain: NetworkDomain, url: String = "http://127.0.0.1:9") {
        self.init(key: NetworkSigningKey.generate(domain: domain), url: url)
    }

    public init(key: NetworkSigningKey, url: String = "http://127.0.0.1:9") {
        self.key = key
        self.url = url
    }

    public var domain: NetworkDomain { key.domain }
    public var fingerprint: String { key.publicKey.fingerprint }

    /// The identity key of one of its users, derived from the network's
    /// key: every device of that user it makes carries an approval under it.
    public static func identity(of user: UserAddress, network: NetworkSigningKey) throws -> UserIdentityKey {
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        return try UserIdentityKey(seed: provider.hash(Array("hostile identity v1 \(user)".utf8) + network.seed))
    }

    /// Runs `body` with this network answering its discovery document and
    /// identity-key requests of peers (`POST /v1/federation/identity`) on a
    /// loopback port, its URL the one it names: as a peer's server, a
    /// member's network asks it for its users' identity keys. Each key it
    /// names is in a key-transparency log it keeps honestly (an entry
    /// appended the first time a user is asked for, heads signed by its key,
    /// consistency proofs on `POST /v1/federation/transparency/consistency`):
    /// the attacks it plays are others. With `heads`, it answers a
    /// witness's `POST /v1/federation/transparency/head` with the head that
    /// gives for the size the witness last saw, signed by its key (and no
    /// consistency proof). It answers nothing else.
    public func servingIdentities<T: Sendable>(
        heads: (@Sendable (_ since: UInt64?) -> TreeHead)? = nil, _ body: @Sendable (HostileNetwork) async throws -> T
    ) async throws -> T {
        let router = Router()
        let key = key
        if let heads {
            router.post("/v1/federation/transparency/head") { request, context -> Response in
                let asked = try await request.decode(as: FederatedHeadRequest.self, context: context)
                let head = try SignedTreeHead.sign(heads(asked.since), by: key)
                return try Self.json(FederatedHeadAnswer(head: TransparencyHeadInfo(head, witnesses: [], quorum: 0), consistency: nil))
            }
        }
        let log = Mutex((tree: MerkleLog(), positions: [UserAddress: (UInt64, TransparencyEntry)]()))
        let index = TransparencyIndex(secret: Array(key.seed))
        router.post("/v1/federation/identity") { request, context -> Response in
            let query = try await request.decode(as: FederatedKeyPackageClaim.self, context: context)
            let user = UserAddress(name: query.user, domain: key.domain)
            let identity = try Self.identity(of: user, network: key).publicKey.rawKey
            let (position, entry, proof, head) = log.withLock { log in
                let (position, entry) =
                    log.positions[user]
                    ?? {
                        let entry = TransparencyEntry(
                            index: index.index(of: user.name), identityKey: identity, devices: TransparencyEntry.deviceCommitment([]),
                            version: 1,
                            time: 0)
                        log.tree.append(leafHash: entry.leafHash)
                        log.positions[user] = (UInt64(log.tree.size - 1), entry)
                        return (UInt64(log.tree.size - 1), entry)
                    }()
                let size = log.tree.size
                return (
                    position, entry, log.tree.inclusionProof(index: Int(position), size: size) ?? [],
                    TreeHead(domain: key.domain, size: UInt64(size), root: log.tree.root(size: size) ?? [], time: 0)
                )
            }
            let info = UserIdentityInfo(
                user: user, identityKey: Base64Bytes(identity), createdAt: Date(timeIntervalSince1970: 0),
                transparency: TransparencyInclusion(
                    entry: Base64Bytes(entry.tlsSerialized), position: position, proof: proof.map(Base64Bytes.init),
                    head: TransparencyHeadInfo(try SignedTreeHead.sign(head, by: key), witnesses: [], quorum: 0)))
            return try Self.json(info)
        }
        router.post("/v1/federation/transparency/consistency") { request, context -> Response in
            let asked = try await request.decode(as: TransparencyConsistency.self, context: context)
            let proof = log.withLock { log in
                asked.from <= asked.to && asked.to <= UInt64(log.tree.size)
                    ? log.tree.consistencyProof(old: Int(asked.from), new: Int(asked.to)) : nil
            }
            guard let proof else { throw HTTPError(.badRequest) }
            return try Self.json(TransparencyConsistency(from: asked.from, to: asked.to, proof: proof.map(Base64Bytes.init)))
        }
        let port = Mutex(0)
        router.get("/.well-known/conclave") { _, _ -> Response in
            let wellKnown = WellKnown(
                domain: key.domain, apiVersion: conclaveAPIVersion, signingKey: Base64Bytes(key.publicKey.rawKey),
                keyFingerprint: key.publicKey.fingerprint, cipherSuite: 1)
            return try Self.json(wellKnown)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port ?? 0 } })
        return try await app.test(.live) { _ in
            try await body(HostileNetwork(key: key, url: "http://127.0.0.1:\(port.withLock { $0 })"))
        }
    }

    private static func json(_ value: some Encodable) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try ConclaveJSON.encoder().encode(value))))
    }

    /// A device of one of its users, certified by its key.
    public func device(_ name: String) throws -> HostileDevice {
        guard let user = UserName(name) else { throw TestSupportError("bad name \(name)") }
        return try HostileDevice(user: UserAddress(name: user, domain: domain), network: key)
    }

    /// Sends a signed request (`body` JSON) to a network.
    public func send(
        _ path: String, _ body: some Encodable, to network: some NetworkFixture, at time: Date = Date()
    ) async throws -> RawHTTP.Answer {
        let bytes = Array(try ConclaveJSON.encoder().encode(body))
        let signature = FederationRequestSignature(
            method: "POST", path: path, body: bytes, timestamp: time.millis, nonce: FederationRequestSignature.newNonce(), origin: domain,
            originURL: url, destination: network.networkDomain)
        return try await RawHTTP(baseURL: network.url).send(.POST, path, raw: bytes, headers: try signature.headers(signedBy: key))
    }

    /// Claims a user's key packages from a network, for one of its own users.
    public func claimKeyPackages(of user: UserAddress, for requester: UserAddress, from network: some NetworkFixture) async throws
        -> [(device: DeviceID, keyPackage: KeyPackage)]
    {
        let answer = try await send(
            "/v1/federation/key-packages/claim", FederatedKeyPackageClaim(user: user.name, requester: requester), to: network)
        return try answer.decode(ClaimedKeyPackages.self).keyPackages.compactMap { entry in
            guard case .keyPackage(let package) = try MLSMessage(tlsSerialized: entry.keyPackage.bytes).body else { return nil }
            return (entry.deviceId, package)
        }
    }

    /// A delivery of a message of `group` (hosted by this network), with the
    /// group's state as an honest host would send it.
    public func delivery(
        of group: Group, kind: InboxEventKind, message: [UInt8], recipients: [DeviceID], conversationKind: ConversationKind = .room,
        creator: UserName
    ) throws -> FederatedDelivery {
        guard let id = ConversationID(bytes: group.groupID) else { throw TestSupportError("bad group id") }
        return FederatedDelivery(
            conversation: id, conversationKind: conversationKind, name: conversationKind == .room ? "pushed" : nil, createdBy: creator,
            createdAt: Date(), kind: kind, message: Base64Bytes(message), messageId: nil, sentAt: Date(), expiresAt: nil,
            recipients: recipients, groupInfo: Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized),
            ratchetTree: Base64Bytes(group.tree.exported.tlsSerialized))
    }
}

/// A device of a ``HostileNetwork``'s user.
public struct HostileDevice: Sendable {
    public let certificate: VerifiedDeviceCertificate
    public let signer: SignaturePrivateKey
    public var user: UserName { certificate.user.name }
    public let provider: CipherSuiteProvider
    let network: NetworkSigningKey

    /// A device that says it is `user`'s, certified by `key` (which need
    /// not be the key of `user`'s network: a forgery).
    public static func impersonating(_ user: UserAddress, certifiedBy key: NetworkSigningKey) throws -> HostileDevice {
        try HostileDevice(user: user, network: key)
    }

    init(user: UserAddress, network: NetworkSigningKey) throws {
        provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        signer = try provider.generateSignatureKey(random: SystemRandom())
        certificate = try VerifiedDeviceCertificate.issue(
            user: user, device: DeviceID.random(), signatureKey: signer.publicKey, cipherSuite: provider.suite,
            issuedAt: UInt64(Date().timeIntervalSince1970), by: network)
        self.network = network
        let approval = try HostileNetwork.identity(of: user, network: network).approve(
            user: user, device: certificate.device, signatureKey: signer.publicKey, cipherSuite: provider.suite,
            at: UInt64(Date().timeIntervalSince1970))
        leafExtensions = [approval.leafExtension]
    }

    /// Its user's approval of it, under the identity key its network derives.
    public let leafExtensions: [Extension]

    /// A key package of this device.
    public func keyPackage() throws -> KeyPackage {
        try KeyPackageBundle.create(
            provider, credential: certificate.credential, signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: .max),
            capabilities: ConversationSettings.capabilities(provider.suite), leafExtensions: leafExtensions, random: SystemRandom()
        ).keyPackage
    }

    /// A group this device creates, hosted by its network (its id carries
    /// that network's tag unless `id` says otherwise), with `settings`.
    public func newGroup(id: ConversationID? = nil, settings: ConversationSettings = ConversationSettings()) throws -> Group {
        var writer = TLSWriter()
        writer.writeVector([network.publicKey.externalSender])
        let extensions = [Extension(type: .externalSenders, data: writer.bytes)] + (settings.isDefault ? [] : [settings.extension])
        let bundle = try KeyPackageBundle.create(
            provider, credential: certificate.credential, signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: .max),
            capabilities: ConversationSettings.capabilities(provider.suite), leafExtensions: leafExtensions, random: SystemRandom())
        return try Group(
            creating: (id ?? ConversationID.hosted(by: network.domain)).bytes, creator: bundle, extensions: extensions,
            random: SystemRandom())
    }
}

extension Group {
    /// Adds these key packages and merges the commit; returns the Welcome
    /// as an MLSMessage (a test host's shortcut).
    public mutating func addAndMerge(_ packages: [KeyPackage]) throws -> [UInt8] {
        let output = try commit(adding: packages, now: validationNow, random: SystemRandom())
        try mergePendingCommit()
        guard let welcome = output.welcome else { throw TestSupportError("no Welcome") }
        return MLSMessage(body: .welcome(welcome)).tlsSerialized
    }
}
