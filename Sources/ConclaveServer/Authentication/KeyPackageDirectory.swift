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
        do {
            try await store.addKeyPackages(device: session.device.id, packages, lastResort: lastResort, now: clock.now, stock: stock)
        } catch StoreError.conflict {
            throw APIError(.duplicateKeyPackage, "a key package was uploaded before")
        } catch StoreError.full {  // K3
            throw APIError(.keyPackageStockFull, "a device keeps at most \(stock) key packages on the server")
        }
        return try await count(session: session)
    }

    func count(session: Session) async throws -> KeyPackageCount {
        let count = try await store.keyPackageCount(device: session.device.id)
        return KeyPackageCount(available: count.available, lastResort: count.lastResort)
    }

    /// K1, K2: a KeyPackage (as an MLSMessage, at most 64 KiB) of this
    /// device's suite, signed, whose leaf carries this device's certificate
    /// and key.
    private func checked(_ bytes: [UInt8], session: Session) throws -> (ref: [UInt8], data: [UInt8]) {
        guard bytes.count <= 64 * 1024 else { throw APIError.badRequest("a key package is at most 64 KiB") }
        guard case .keyPackage(let package) = try DeliveryCore.decode(MLSMessage.self, bytes, "MLSMessage").body else {
            throw APIError.invalidMessage("not a KeyPackage message")
        }
        guard let provider = try? CipherSuiteProvider(package.cipherSuite) else {
            throw APIError.invalidMessage("unsupported cipher suite")
        }
        guard package.verifySignature(provider),
            let certificate = VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: identity.publicKey),
            certificate.device == session.device.id, package.leafNode.signatureKey.bytes == session.device.signatureKey,
            certificate.cipherSuite == package.cipherSuite
        else { throw APIError(.invalidKeyPackage, "the key package is not this device's, or its signature does not verify") }
        return (package.reference(provider), bytes)
    }

    /// Claims one key package of every device of a user: of this network
    /// (whom the caller's group may message, P1), or of a peer network
    /// through its server (F5); within the claim budgets (K4). Claims of
    /// one's own user (for one's other devices) count against the
    /// requester's budget only.
    func claim(_ claim: KeyPackageClaim, session: Session) async throws -> ClaimedKeyPackages {
        let requester = session.requester
        try await claims.spend(
            requester: "\(requester.address)/\(requester.device)", target: claim.user == session.address ? nil : claim.user, now: clock.now)
        if claim.user.domain != identity.domain { return try await gateway.claimRemoteKeyPackages(claim.user, session: session) }
        let name = claim.user.name
        guard let user = try await store.user(named: name), !user.suspended else { throw APIError.notFound("user") }
        if name != session.user.name {
            let users = [session.user.name, name]
            try PolicyRules.checkSegmentation(added: [name], members: users, try await policy.policies(of: users))
        }
        let claimed = try await store.claimKeyPackages(user: name)
        return ClaimedKeyPackages(
            user: identity.address(name),
            keyPackages: claimed.map { ClaimedKeyPackages.Entry(deviceId: $0.device, keyPackage: Base64Bytes($0.data)) })
    }
}
