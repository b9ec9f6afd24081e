import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// The key package directory (DESIGN.md §4): devices upload KeyPackages,
/// others claim one of each device of a user (consumed once; a
/// last-resort package is kept). Rules K1, K2 in docs/server.md.
final class KeyPackageDirectory: Sendable {
    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let clock: ServerClock
    private let policy: PolicyService
    private let gateway: FederationGateway
    private let claims: ClaimBudget
    private let stock: Int

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, policy: PolicyService, gateway: FederationGateway,
        claims: ClaimBudget, stock: Int
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.policy = policy
        self.gateway = gateway
        self.claims = claims
        self.stock = stock
    }

    func upload(_ upload: KeyPackageUpload, session: Session) async throws -> KeyPackageCount {
        guard upload.keyPackages.count <= 100 else { throw APIError.badRequest("at most 100 key packages per upload") }  // K1
        let packages = try upload.keyPackages.map { try checked($0.bytes, session: session) }
        let lastResort = try upload.lastResort.map { try checked($0.bytes, session: session) }
        let suites = Set(packages.map(\.suite) + (lastResort.map { [$0.suite] } ?? []))
        guard suites.count <= 1 else { throw APIError.badRequest("an upload holds key packages of one cipher suite") }  // K1
        let suite = suites.first ?? CipherSuite.x25519Aes128Sha256Ed25519
        do {
            try await store.addKeyPackages(
                device: session.device.id, suite: suite.rawValue, packages.map { ($0.ref, $0.data) },
                lastResort: lastResort.map { ($0.ref, $0.data) }, now: clock.now, stock: stock)
        } catch StoreError.conflict {
            throw APIError(.duplicateKeyPackage, "a key package was uploaded before")
        } catch StoreError.full {  // K3
            throw APIError(.keyPackageStockFull, "a device keeps at most \(stock) key packages of a cipher suite on the server")
        }
        return try await count(session: session, suite: suite)
    }

    func count(session: Session, suite: CipherSuite) async throws -> KeyPackageCount {
        let count = try await store.keyPackageCount(device: session.device.id, suite: suite.rawValue)
        return KeyPackageCount(cipherSuite: suite.rawValue, available: count.available, lastResort: count.lastResort)
    }

    /// K1, K2: a KeyPackage (as an MLSMessage, at most 64 KiB) of a suite
    /// this server runs whose signatures are those of the device's
    /// certificate suite, signed, whose leaf carries this device's
    /// certificate and key.
    private func checked(_ bytes: [UInt8], session: Session) throws -> (ref: [UInt8], data: [UInt8], suite: CipherSuite) {
        guard bytes.count <= 64 * 1024 else { throw APIError.badRequest("a key package is at most 64 KiB") }
        guard case .keyPackage(let package) = try DeliveryCore.decode(MLSMessage.self, bytes, "MLSMessage").body else {
            throw APIError.invalidMessage("not a KeyPackage message")
        }
        guard CipherSuite.implemented.contains(package.cipherSuite), let provider = try? CipherSuiteProvider(package.cipherSuite) else {
            throw APIError.invalidMessage("unsupported cipher suite")
        }
        guard package.verifySignature(provider),
            let certificate = VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: identity.publicKey),
            certificate.device == session.device.id, package.leafNode.signatureKey.bytes == session.device.signatureKey,
            let certified = try? CipherSuiteProvider(certificate.cipherSuite), provider.signsLike(certified)
        else { throw APIError(.invalidKeyPackage, "the key package is not this device's, or its signature does not verify") }
        return (package.reference(provider), bytes, package.cipherSuite)
    }

    /// The suites a claim asks for: 1 to 8 distinct suites this server
    /// runs, the strongest first (absent: suite 1).
    static func requestedSuites(_ list: [UInt16]?) throws(APIError) -> [UInt16] {
        guard let list else { return [CipherSuite.x25519Aes128Sha256Ed25519.rawValue] }
        guard (1...8).contains(list.count), Set(list).count == list.count,
            list.allSatisfy({ CipherSuite.implemented.contains(CipherSuite(rawValue: $0)) })
        else { throw APIError.badRequest("cipher_suites names 1 to 8 distinct cipher suites this server runs") }
        return list
    }

    /// Claims one key package of every device of a user: of this network
    /// (whom the caller's group may message, P1), or of a peer network
    /// through its server (F5); within the claim budgets (K4). Claims of
    /// one's own user (for one's other devices) count against the
    /// requester's budget only.
    func claim(_ claim: KeyPackageClaim, session: Session) async throws -> ClaimedKeyPackages {
        let requester = session.requester
        let suites = try Self.requestedSuites(claim.cipherSuites)
        try claims.spend(
            requester: "\(requester.address)/\(requester.device)", target: claim.user == session.address ? nil : claim.user, now: clock.now)
        if claim.user.domain != identity.domain {
            return try await gateway.claimRemoteKeyPackages(claim.user, suites: suites, session: session)
        }
        let name = claim.user.name
        guard let user = try await store.user(named: name), !user.suspended else { throw APIError.notFound("user") }
        if name != session.user.name {
            let users = [session.user.name, name]
            try PolicyRules.checkSegmentation(added: [name], members: users, try await policy.policies(of: users))
        }
        return ClaimedKeyPackages(try await store.claimKeyPackages(user: name, suites: suites), of: identity.address(name))
    }
}

extension ClaimedKeyPackages {
    /// A claim's answer: what the store took for `user`. A package stored
    /// before suites were recorded (all read as suite 1) that is of another
    /// suite is left out, its device counted missing.
    init(_ claimed: KeyPackageClaimResult, of user: UserAddress) {
        let fitting = claimed.packages.filter { package in
            guard case .keyPackage(let keyPackage) = (try? MLSMessage(tlsSerialized: package.data))?.body else { return false }
            return keyPackage.cipherSuite.rawValue == claimed.suite
        }
        let misfiled = claimed.packages.filter { package in !fitting.contains { $0.device == package.device } }.map(\.device)
        self.init(
            user: user, cipherSuite: claimed.suite,
            keyPackages: fitting.map { Entry(deviceId: $0.device, keyPackage: Base64Bytes($0.data)) }, missing: claimed.missing + misfiled)
    }
}
