import AsyncHTTPClient
import ConclaveProtocol
import ConclaveSupport
import Foundation
import Logging
import MLS
import MLSCodec

/// What ``ConclaveClient/verifyLeaves(_:_:)`` found.
struct LeafVerification {
    /// Leaves with a valid certificate of their network (C1) and a valid
    /// approval under their user's identity key (C6).
    var verified: [LeafIndex: VerifiedDeviceCertificate] = [:]
    /// Leaves whose credential is not a certificate, or does not verify.
    var failed: [LeafIndex] = []
    /// Leaves with a valid certificate but no valid approval of their user.
    var unapproved: [LeafIndex: VerifiedDeviceCertificate] = [:]
    /// Every leaf that must not receive anything: failed or unapproved.
    var untrusted: [LeafIndex] { failed + unapproved.keys }
    /// Leaves of a network whose key could not be had, and why.
    var unavailable: [(LeafIndex, any Error)] = []
}

/// The Conclave SDK: one device of one user. It owns the device's MLS
/// state (in a sealed local store under the profile directory) and talks
/// to the user's network. Every conversation is an MLS group; the server
/// only ever sees ciphertext.
///
/// Operations that touch MLS state run one at a time (an internal lock),
/// so an ``events(wait:)`` stream and ``send(_:to:)`` may be used together.
public actor ConclaveClient {
    let store: LocalStore
    public nonisolated let profile: String
    var account: Account?
    var signer: SignaturePrivateKey?
    var networkKey: NetworkPublicKey?
    let lock = AsyncLock()
    nonisolated let random = SystemRandom()
    /// How many key packages the device keeps on the server.
    let keyPackageTarget = 20
    /// The last inbox event whose effects are saved (persisted with them).
    var inboxCursor: Int64 = 0
    /// Decrypted burn-on-read messages not yet confirmed, by message id:
    /// held in memory only, never written to disk (DESIGN.md §6).
    var heldBurnOnRead: [String: ReceivedMessage] = [:]
    /// Conversations whose external join failed, warned about once.
    var joinWarnings: Set<ConversationID> = []
    /// Peer networks' keys, as this device's network pinned them.
    var peerKeys: [NetworkDomain: NetworkPublicKey] = [:]
    /// Whether this run of the client checked its user's own entries in the
    /// key-transparency log yet (C10: on start, then at least daily).
    var selfCheckedThisRun = false
    /// Contacts' identity keys as pinned (C7), read from the store once.
    var contactPinCache: [String: ContactPin]?
    /// The device's clock (message expiry, MLS lifetimes); tests inject their own.
    nonisolated let clock: @Sendable () -> Date

    /// Opens (or creates) a profile directory. `clock` is the time the
    /// SDK goes by; tests pass their own.
    public static func open(profile: String, clock: @escaping @Sendable () -> Date = { Date() }) async throws -> ConclaveClient {
        let store = try await LocalStore.open(directory: profile)
        let client = ConclaveClient(store: store, profile: profile, clock: clock)
        try await client.loadAccount()
        try await client.loadInboxCursor()
        try await client.purgeExpiredHeldMessages()
        return client
    }

    init(store: LocalStore, profile: String, clock: @escaping @Sendable () -> Date) {
        self.store = store
        self.profile = profile
        self.clock = clock
    }

    public func close() async { await store.close() }

    /// The signed-in user, if any.
    public var user: UserAddress? { account?.user }
    public var device: DeviceID? { account?.device }
    public var server: String? { account?.server }

    func loadAccount() async throws {
        guard let bytes = try await store.meta("account") else { return }
        let account: Account
        do { account = try ConclaveJSON.decoder().decode(Account.self, from: Data(bytes)) } catch {
            throw ClientError.localStore("the account record is unreadable")
        }
        try adopt(account)
    }

    private func adopt(_ account: Account) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: account.cipherSuite))
        self.signer = try provider.signaturePrivateKey(account.signerSeed.bytes)
        guard let domain = NetworkDomain(account.user.domain.value) else { throw ClientError.localStore("bad domain") }
        self.networkKey = NetworkPublicKey(domain: domain, rawKey: account.networkKey.bytes)
        self.account = account
    }

    func requireAccount() throws -> (Account, SignaturePrivateKey, NetworkPublicKey) {
        guard let account, let signer, let networkKey else { throw ClientError.notSignedIn }
        return (account, signer, networkKey)
    }

    var api: HTTPAPI {
        get throws {
            guard let account else { throw ClientError.notSignedIn }
            return HTTPAPI(baseURL: account.server, token: account.token)
        }
    }

    var provider: CipherSuiteProvider {
        get throws { try CipherSuiteProvider(CipherSuite(rawValue: account?.cipherSuite ?? 1)) }
    }

    nonisolated var now: UInt64 { UInt64(max(0, clock().timeIntervalSince1970)) }
    /// The time MLS checks lifetimes against.
    nonisolated var validationTime: ValidationTime { .at(now) }

    // MARK: Sign-in

    /// Signs in with a password. A new profile registers as a new device: a
    /// fresh signature key, a certificate from the network, key packages on
    /// the server, and the user's existing conversations joined. A profile
    /// that holds a device of this user signs that device in again (a new
    /// session, e.g. after the old one expired), proving it holds the
    /// device's key: the device keeps its conversations and unread messages.
    @discardableResult
    public func login(server: String, user: String, password: String, deviceName: String) async throws -> [ClientEvent] {
        try await lock.withLock { try await self.performLogin(server: server, user: user, password: password, deviceName: deviceName) }
    }

    /// A new session for this profile's device (A10 in docs/server.md).
    private func signInAgain(password: String) async throws {
        try await renewSession { account, signedAt, signature in
            try await HTTPAPI(baseURL: account.server, token: nil).post(
                "/v1/sessions",
                DeviceSignIn(
                    user: account.user.description, password: password, deviceId: account.device, signedAt: signedAt,
                    signature: Base64Bytes(signature)))
        }
    }

    /// Signs this profile's device in again through `request` (password or
    /// single sign-on), with a fresh signature of the device's key, and
    /// keeps the new session.
    func renewSession(_ request: (Account, Int64, [UInt8]) async throws -> LoginResponse) async throws {
        let (account, signer, _) = try requireAccount()
        let signedAt = Int64((clock().timeIntervalSince1970 * 1000).rounded())
        let signature = try provider.signWithLabel(
            signer, label: DeviceSignIn.label, content: DeviceSignIn.content(user: account.user, device: account.device, signedAt: signedAt)
        )
        let response: LoginResponse
        do {
            response = try await request(account, signedAt, signature)
        } catch let error as ClientError where error.code == .notFound {
            throw ClientError.deviceRemoved
        }
        guard response.deviceId == account.device, response.user == account.user else {
            throw ClientError.invalid("the server answered for another device")
        }
        var renewed = account
        renewed.token = response.token
        try await store.setMeta("account", Array(try ConclaveJSON.encoder().encode(renewed)))
        self.account = renewed
    }

    /// Signs this device out: the server removes it from every conversation
    /// and deletes its key packages and inbox (as `reset-devices` does for
    /// one device), then this profile is erased. With `localOnly` the server
    /// is not asked (the session expired, or the device was removed already):
    /// the device stays listed on the server until an administrator removes it.
    public func logout(localOnly: Bool = false) async throws {
        try await lock.withLock { try await self.performLogout(localOnly: localOnly) }
    }

    private func performLogout(localOnly: Bool) async throws {
        if !localOnly {
            do {
                let _: [String: Bool] = try await api.post("/v1/logout")
            } catch let error as ClientError where error.code == .unauthenticated {
                throw ClientError.deviceRemoved
            }
        }
        try await store.erase()
        account = nil
        signer = nil
        networkKey = nil
        peerKeys = [:]
        contactPinCache = nil
        heldBurnOnRead = [:]
        inboxCursor = 0
    }

    private func performLogin(server: String, user: String, password: String, deviceName: String) async throws -> [ClientEvent] {
        if let account {
            let trimmed = { (url: String) in url.hasSuffix("/") ? String(url.dropLast()) : url }
            guard account.user.description == user || account.user.name.value == user, trimmed(account.server) == trimmed(server) else {
                throw ClientError.alreadySignedIn(account.user)
            }
            try await signInAgain(password: password)
            return []
        }
        return try await registerDevice(server: server) { anonymous, signer, transfer, suite in
            try await anonymous.post(
                "/v1/login",
                LoginRequest(
                    user: user, password: password, deviceName: deviceName, signatureKey: Base64Bytes(signer.publicKey.bytes),
                    cipherSuite: suite.rawValue, transferKey: Base64Bytes(transfer.publicKey.bytes)))
        }
    }

    /// Registers this profile as a new device: fresh keys, the sign-in
    /// request `signIn` makes with them (password or single sign-on), the
    /// network's certificate checked, then key packages uploaded and the
    /// user's conversations joined (unless the device waits for approval).
    func registerDevice(
        server: String,
        signIn: (HTTPAPI, SignaturePrivateKey, HPKEKeyPair, CipherSuite) async throws -> LoginResponse
    ) async throws -> [ClientEvent] {
        let anonymous = HTTPAPI(baseURL: server, token: nil)
        let wellKnown: WellKnown = try await anonymous.get("/.well-known/conclave")
        let suite = CipherSuite.x25519Aes128Sha256Ed25519
        let provider = try CipherSuiteProvider(suite)
        let signer = try provider.generateSignatureKey(random: random)
        let transfer = try provider.generateHPKEKeyPair(random: random)
        let response = try await signIn(anonymous, signer, transfer, suite)
        let networkKey = NetworkPublicKey(domain: wellKnown.domain, rawKey: wellKnown.signingKey.bytes)
        guard let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: response.certificate.bytes))?.verified(by: networkKey),
            certificate.signatureKey == signer.publicKey, certificate.user == response.user, certificate.device == response.deviceId
        else { throw ClientError.invalid("the server's device certificate does not verify") }
        let account = Account(
            server: server, user: response.user, device: response.deviceId, token: response.token, certificate: response.certificate,
            signerSeed: Base64Bytes(signer.serialized.bytes), cipherSuite: suite.rawValue, networkKey: wellKnown.signingKey,
            pending: response.pending == true ? true : nil,
            transferSeed: response.pending == true ? Base64Bytes(transfer.privateKey.secret.bytes) : nil)
        try await store.setMeta("account", Array(try ConclaveJSON.encoder().encode(account)))
        try adopt(account)
        try await establishIdentity(response)
        if isPending { return [] }
        _ = try await ownDeviceChanges()  // what this device knows from now on
        try await replenishKeyPackages()
        return try await joinMissingConversations(quietly: false)
    }

    /// The credential of this device: its certificate.
    var credential: Credential {
        get throws { .basic(identity: try requireAccount().0.certificate.bytes) }
    }

    // MARK: Key packages

    /// Tops the server's stock of this device's key packages of each of its
    /// suites (``CipherSuite/deviceSuites``) up to the target, with a
    /// last-resort package when there is none.
    func replenishKeyPackages() async throws {
        let api = try self.api
        for suite in CipherSuite.deviceSuites {
            let count: KeyPackageCount = try await api.get("/v1/key-packages/count?cipher_suite=\(suite.rawValue)")
            let missing = keyPackageTarget - count.available
            guard missing > keyPackageTarget / 2 || !count.lastResort else { continue }
            var packages: [Base64Bytes] = []
            for _ in 0..<max(0, missing) { packages.append(Base64Bytes(try await newKeyPackage(suite, lastResort: false))) }
            let lastResort = count.lastResort ? nil : Base64Bytes(try await newKeyPackage(suite, lastResort: true))
            let _: KeyPackageCount = try await api.post(
                "/v1/key-packages", KeyPackageUpload(keyPackages: packages, lastResort: lastResort))
        }
    }

    private func newKeyPackage(_ suite: CipherSuite, lastResort: Bool) async throws -> [UInt8] {
        let bundle = try newKeyPackageBundle(suite)
        try await store.addKeyPackage(
            bundle.keyPackage.reference(try CipherSuiteProvider(suite)), bundle.serialized, lastResort: lastResort)
        return MLSMessage(body: .keyPackage(bundle.keyPackage)).tlsSerialized
    }

    /// A new key package of this device for groups of `suite`, valid for 90 days.
    func newKeyPackageBundle(_ suite: CipherSuite) throws -> KeyPackageBundle {
        let (_, signer, _) = try requireAccount()
        return try KeyPackageBundle.create(
            try CipherSuiteProvider(suite), credential: try credential, signer: signer,
            lifetime: Lifetime(notBefore: now - 3600, notAfter: now + 90 * 24 * 3600),
            capabilities: ConversationSettings.capabilities(suite),
            leafExtensions: leafExtensions, random: random)
    }

    // MARK: Group state

    func loadGroup(_ id: ConversationID) async throws -> (StoredConversation, Group)? {
        guard let bytes = try await store.group(id) else { return nil }
        do {
            let stored = try ConclaveJSON.decoder().decode(StoredConversation.self, from: Data(bytes))
            return (stored, try Group(snapshot: stored.snapshot.bytes))
        } catch {
            throw ClientError.unreadableConversation(id)
        }
    }

    func saveGroup(_ id: ConversationID, _ stored: StoredConversation, _ group: Group) async throws {
        var record = stored
        record.snapshot = Base64Bytes(group.snapshot())
        try await store.setGroup(id, Array(try ConclaveJSON.encoder().encode(record)))
    }

    /// Runs `body` on a conversation's group under the device's lock, and
    /// saves the group it leaves before returning. For the benchmark hooks
    /// (`ConclaveBenchmarkSupport`, a module of this package that the
    /// shipped binary does not link).
    package func withStoredGroup<T: Sendable>(
        _ id: ConversationID, _ body: @Sendable (inout Group, SystemRandom) throws -> T
    ) async throws -> T {
        try await lock.withLock { try await self.updateStoredGroup(id, body) }
    }

    private func updateStoredGroup<T: Sendable>(
        _ id: ConversationID, _ body: @Sendable (inout Group, SystemRandom) throws -> T
    ) async throws -> T {
        guard let (stored, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        var group = original
        let result = try body(&group, random)
        try await saveGroup(id, stored, group)
        return result
    }

    /// The device's session token, while it is signed in (for the same hooks).
    package var sessionToken: String? { account?.token }

    /// The conversation as the user sees it: its members named from their
    /// leaves' verified certificates only.
    func conversation(_ id: ConversationID, _ stored: StoredConversation, _ group: Group) async -> Conversation {
        let devices = await verifyLeaves(group).verified.values.map(DeviceRef.init)
        let settings = ConversationSettings(extensions: group.context.extensions) ?? ConversationSettings()
        return Conversation(
            id: id, kind: stored.kind, name: stored.name, peer: stored.peer, members: Set(devices.map(\.user)).sorted(),
            devices: devices.sorted(), epoch: group.epoch, messageLifetime: settings.messageLifetime, burnOnRead: settings.burnOnRead,
            cipherSuite: group.context.cipherSuite.rawValue, hidden: stored.hidden == true)
    }

    /// Checks leaves of a group (every member when `indices` is nil)
    /// against the key of the network that issued each certificate (C1): a
    /// leaf without a valid certificate is a device nobody vouched for
    /// (`failed`); a leaf of a network whose key cannot be had now is
    /// neither (`unavailable`, with why).
    func verifyLeaves(_ group: Group, _ indices: [LeafIndex]? = nil) async -> LeafVerification {
        let leaves =
            indices.map { $0.compactMap { index in group.tree.leaf(index).map { (index, $0) } } }
            ?? group.members.map { ($0.index, $0.leaf) }
        var result = LeafVerification()
        for (index, leaf) in leaves {
            guard let claim = UnverifiedDeviceCertificate(credential: leaf.credential) else {
                result.failed.append(index)
                continue
            }
            let key: NetworkPublicKey
            do { key = try await networkKey(for: claim.claimedUser.domain) } catch {
                result.unavailable.append((index, error))
                continue
            }
            guard let certificate = claim.verified(for: leaf, by: key) else {
                result.failed.append(index)
                continue
            }
            do {
                if try await isApproved(certificate, leaf: leaf) {
                    result.verified[index] = certificate
                } else {
                    result.unapproved[index] = certificate
                }
            } catch {
                result.unavailable.append((index, error))
            }
        }
        return result
    }

    /// The key of a network: this device's own (pinned at sign-in), or a
    /// peer's as this device pinned it the first time its server named it
    /// (C2). Leaves of that network are verified with the pinned key, so a
    /// server that later names another key cannot certify devices for it.
    func networkKey(for domain: NetworkDomain) async throws -> NetworkPublicKey {
        let (_, _, own) = try requireAccount()
        if domain == own.domain { return own }
        if let known = peerKeys[domain] { return known }
        if let pinned = try await pinnedPeerKeys()[domain.value] {
            let key = NetworkPublicKey(domain: domain, rawKey: pinned.bytes)
            peerKeys[domain] = key
            return key
        }
        return try await confirmNetworkKey(for: domain)
    }

    /// Asks this device's server for a peer network's key and checks it
    /// against the pin (C2): another key than the one pinned is refused
    /// with ``ClientError/networkKeyChanged(_:)``; a network seen for the
    /// first time is pinned.
    @discardableResult
    func confirmNetworkKey(for domain: NetworkDomain) async throws -> NetworkPublicKey {
        let (_, _, own) = try requireAccount()
        if domain == own.domain { return own }
        let peer: PeerNetwork = try await api.get("/v1/networks/\(domain)")
        let key = NetworkPublicKey(domain: domain, rawKey: peer.signingKey.bytes)
        guard peer.domain == domain, key.fingerprint == peer.keyFingerprint else {
            throw ClientError.invalid("the key of \(domain) does not match its fingerprint")
        }
        var pinned = try await pinnedPeerKeys()
        if let first = pinned[domain.value] {
            guard first.bytes == key.rawKey else { throw ClientError.networkKeyChanged(domain) }
        } else {
            pinned[domain.value] = Base64Bytes(key.rawKey)
            try await store.setMeta("peer_keys", Array(try ConclaveJSON.encoder().encode(pinned)))
        }
        peerKeys[domain] = key
        return key
    }

    /// The peer networks' keys this device pinned, by domain.
    func pinnedPeerKeys() async throws -> [String: Base64Bytes] {
        guard let bytes = try await store.meta("peer_keys") else { return [:] }
        do { return try ConclaveJSON.decoder().decode([String: Base64Bytes].self, from: Data(bytes)) } catch {
            throw ClientError.localStore("the pinned network keys are unreadable")
        }
    }

    /// The conversations this device holds (one whose saved state is
    /// unreadable is left out; its events are reported as warnings).
    public func conversations() async throws -> [Conversation] {
        var result: [Conversation] = []
        for id in try await store.groupIDs() {
            do {
                if let (stored, group) = try await loadGroup(id) { result.append(await conversation(id, stored, group)) }
            } catch ClientError.unreadableConversation {
                continue
            }
        }
        return result.sorted { ($0.kind.rawValue, $0.title) < ($1.kind.rawValue, $1.title) }
    }
}
