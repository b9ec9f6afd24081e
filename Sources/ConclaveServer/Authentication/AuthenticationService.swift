import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import MLS

/// The Authentication Service (DESIGN.md §4): password sign-in, device
/// registration with a certificate signed by the network, sessions bound to
/// one device, and the administrator token. Rules A1–A5 in docs/server.md.
final class AuthenticationService: Sendable {
    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let clock: ServerClock
    private let sessionLifetime: TimeInterval
    private let hasher: PasswordHasher
    private let adminTokenHash: [UInt8]
    let signInGuard: SignInGuard
    let hashing: PasswordHashingPool
    private let logger: Logger
    /// A well-formed hash of a random password, checked when the user does not exist.
    let decoyHash: String

    init(store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, configuration: ServerConfiguration, logger: Logger) throws {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.sessionLifetime = configuration.sessionLifetime
        self.hasher = configuration.passwordHasher
        self.adminTokenHash = configuration.adminTokenHash
        let limits = configuration.limits
        self.signInGuard = SignInGuard(
            perAddress: limits.signInFailuresPerAddress, perName: limits.signInFailuresPerName, window: limits.signInWindowSeconds)
        self.hashing = PasswordHashingPool(threads: limits.passwordHashThreads, queue: limits.passwordHashQueue)
        self.logger = logger
        self.decoyHash = try configuration.passwordHasher.hash(Tokens.random())
    }

    /// Hashes a new password with the server's cost, on the hashing pool.
    func hashPassword(_ password: String) async throws -> String {
        let hasher = hasher
        return try await hashing.run { try hasher.hash(password) }
    }

    // MARK: Sessions

    /// The session behind a bearer token.
    func session(token: String?) async throws -> Session {
        guard let token else { throw APIError.unauthenticated }
        let hash = Tokens.hash(token)
        guard let found = try await store.session(tokenHash: hash, now: clock.now) else {
            if try await store.sessionExpired(tokenHash: hash, now: clock.now) {
                throw APIError(.sessionExpired, "this device's session has expired: sign in again on the same device to get a new one")
            }
            throw APIError.unauthenticated
        }
        return Session(device: found.device, user: found.user, address: identity.address(found.user.name))
    }

    /// ``session(token:)`` of the token with this hash (`Tokens.hash`) if
    /// memory holds it; nil when it does not, or when there is no valid
    /// session (``session(token:)`` tells which).
    func sessionFromMemory(tokenHash: [UInt8]) -> Session? {
        guard let found = store.sessionInMemory(tokenHash: tokenHash, now: clock.now) else { return nil }
        return Session(device: found.device, user: found.user, address: identity.address(found.user.name))
    }

    /// Whether this is the bootstrap administrator token of `server init`
    /// (constant-time compare of its hash).
    func isBootstrapToken(_ token: String) -> Bool { constantTimeEquals(Tokens.hash(token), adminTokenHash) }

    /// Checks a password against a stored hash, on the hashing pool.
    func verifyPassword(_ password: String, against stored: String) async throws -> Bool {
        let hasher = hasher
        return try await hashing.run { hasher.verify(password, against: stored) }
    }

    // MARK: Sign-in

    /// A1–A7: checks the password (on the hashing pool, within the
    /// sign-in limits of this address and name), registers a new device with
    /// a certificate of the network, and opens a session bound to it. A
    /// suspended account answers as a wrong password does, so the answer
    /// never confirms a guessed password.
    func login(_ request: LoginRequest, from address: String) async throws -> LoginResponse {
        let now = clock.now
        try await requirePasswordSignIn()
        let user = try await checkPassword(request.password, of: request.user, from: address, now: now)
        return try await registerAndOpen(user, request, now: now)
    }

    /// Registers a new device of `user` and opens its session: pending when
    /// the user has an identity key (A14).
    func registerAndOpen(_ user: UserRecord, _ request: LoginRequest, now: Date) async throws -> LoginResponse {
        let identityKey = try await store.identity(of: user.name)?.key
        if identityKey != nil, request.transferKey?.bytes.count != 32 {
            throw APIError.badRequest("this user has an identity key: a new device sends a 32-byte transfer_key and waits for approval")
        }
        let (device, certificate) = try await registerDevice(of: user, request, pending: identityKey != nil, now: now)
        let (token, expiresAt) = try await openSession(for: device, now: now)
        logger.info("device registered", metadata: ["device": "\(device)"])
        return LoginResponse(
            token: token, user: identity.address(user.name), deviceId: device, certificate: Base64Bytes(certificate.tlsSerialized),
            expiresAt: expiresAt, pending: identityKey != nil, identityKey: identityKey.map(Base64Bytes.init))
    }

    /// Refuses password sign-in when single sign-on says users sign in
    /// through the identity provider only.
    private func requirePasswordSignIn() async throws {
        if let settings = try await SingleSignOn.stored(in: store), !settings.passwordsAllowed {
            throw APIError(.passwordSignInOff, "this network signs users in through its identity provider: use `login --sso`")
        }
    }

    /// A new session bound to `device`: a random token, kept as its hash.
    private func openSession(for device: DeviceID, now: Date) async throws -> (token: String, expiresAt: Date) {
        let token = Tokens.random()
        let expiresAt = now.addingTimeInterval(sessionLifetime)
        try await store.createSession(tokenHash: Tokens.hash(token), device: device, createdAt: now, expiresAt: expiresAt)
        return (token, expiresAt)
    }

    /// The user whose password this is, within the sign-in limits (A1, A2,
    /// A6, A7); every failure is the same answer.
    private func checkPassword(_ password: String, of user: String, from address: String, now: Date) async throws -> UserRecord {
        let name = try identity.localUser(user)
        if let wait = await signInGuard.admit(address: address, name: name.value, now: now) {  // A1
            throw APIError(.rateLimited, "too many failed sign-ins; try again later", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        let user: UserRecord?
        let usable: String?
        let valid: Bool
        do {
            user = try await store.user(named: name)
            // Hash even for an unknown user or one without a password (single sign-on, SCIM), with the same cost,
            // so timing tells neither which names exist nor which accounts have a password (A2).
            usable = user.map(\.passwordHash).flatMap { $0 == PasswordHasher.noPassword ? nil : $0 }
            valid = try await verifyPassword(password, against: usable ?? decoyHash)  // A6
        } catch {
            await signInGuard.abandoned(address: address, name: name.value)
            throw error
        }
        guard let user, usable != nil, valid, !user.suspended else {  // A2, A7
            await signInGuard.failed(address: address, name: name.value, now: now)
            throw APIError(.invalidCredentials, "wrong user name or password")
        }
        await signInGuard.succeeded(address: address, name: name.value)
        return user
    }

    /// A10: signs an existing device in again, with the password (within
    /// the same limits as a sign-in, A1, A2, A6, A7) and a recent signature
    /// by the device's own key, so that the password alone cannot take a
    /// device over. The device keeps its id, certificate, conversations and
    /// inbox; a device that was removed is not found.
    func signInDevice(_ request: DeviceSignIn, from address: String) async throws -> LoginResponse {
        let now = clock.now
        try await requirePasswordSignIn()
        let user = try await checkPassword(request.password, of: request.user, from: address, now: now)
        return try await resumeDevice(
            of: user, device: request.deviceId, signedAt: request.signedAt, signature: request.signature.bytes, now: now)
    }

    /// A10's second half: a new session for an existing device of `user`,
    /// with a signature by the device's key from the last five minutes.
    func resumeDevice(of user: UserRecord, device id: DeviceID, signedAt: Int64, signature: [UInt8], now: Date) async throws
        -> LoginResponse
    {
        guard let device = try await store.device(id), device.user == user.name,
            let certificate = try? UnverifiedDeviceCertificate(tlsSerialized: device.certificate)
        else { throw APIError(.notFound, "this device no longer exists: sign in as a new device") }
        let content = DeviceSignIn.content(user: identity.address(user.name), device: device.id, signedAt: signedAt)
        guard abs(now.millis - signedAt) <= 300_000,
            let provider = try? CipherSuiteProvider(certificate.cipherSuite),
            provider.verifyWithLabel(
                SignaturePublicKey(device.signatureKey), label: DeviceSignIn.label, content: content, signature: signature)
        else { throw APIError(.forbidden, "the request is not signed by this device's key, or not within five minutes") }
        let (token, expiresAt) = try await openSession(for: device.id, now: now)
        logger.info("device signed in again", metadata: ["device": "\(device.id)"])
        return LoginResponse(
            token: token, user: identity.address(user.name), deviceId: device.id, certificate: Base64Bytes(device.certificate),
            expiresAt: expiresAt, pending: device.pending, identityKey: try await store.identity(of: user.name).map { Base64Bytes($0.key) })
    }

    /// A4, A5: a device of a supported suite, with a signature key of that
    /// suite that no other device holds, certified by the network.
    private func registerDevice(of user: UserRecord, _ request: LoginRequest, pending: Bool, now: Date) async throws -> (
        DeviceID, VerifiedDeviceCertificate
    ) {
        let suite = CipherSuite(rawValue: request.cipherSuite)
        guard CipherSuite.supported.contains(suite) else { throw APIError.badRequest("unsupported cipher suite") }
        let deviceName = request.deviceName.trimmingCharacters(in: .whitespaces)
        guard (1...64).contains(deviceName.count), !deviceName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw APIError.badRequest("device_name must be 1 to 64 printable characters") }
        guard request.signatureKey.bytes.count == Self.signatureKeyLength(suite) else {  // A4
            throw APIError.badRequest("the signature key does not fit the cipher suite")
        }
        let device = DeviceID.random()
        let certificate = try VerifiedDeviceCertificate.issue(
            user: identity.address(user.name), device: device, signatureKey: SignaturePublicKey(request.signatureKey.bytes),
            cipherSuite: suite, issuedAt: now.unixSeconds, by: identity.key)
        do {
            try await store.createDevice(
                DeviceRecord(
                    id: device, user: user.name, name: deviceName, signatureKey: request.signatureKey.bytes,
                    certificate: certificate.tlsSerialized, createdAt: now, lastSeenAt: nil, pending: pending,
                    transferKey: pending ? request.transferKey?.bytes : nil))
        } catch StoreError.conflict {
            throw APIError(.keyInUse, "this signature key belongs to another device")  // A5
        }
        return (device, certificate)
    }

    /// The length of a serialised signature public key (raw Ed25519, or an
    /// uncompressed ECDSA point).
    static func signatureKeyLength(_ suite: CipherSuite) -> Int {
        switch suite {
        case .p256Aes128Sha256P256: 65
        case .p384Aes256Sha384P384: 97
        case .p521Aes256Sha512P521: 133
        default: 32
        }
    }

    // MARK: Devices

    /// A9: a user's devices, for a device of a user who may message them
    /// (or of the same user); anyone else learns nothing, not even that the
    /// user exists.
    func deviceList(of name: UserName, for session: Session, policy: PolicyService) async throws -> DeviceList {
        if name != session.user.name { try await policy.checkVisible(name, to: session) }
        return try await deviceList(of: name)
    }

    /// A user's devices with their certificates (the admin API).
    func deviceList(of name: UserName) async throws -> DeviceList {
        guard try await store.user(named: name) != nil else { throw APIError.notFound("user") }
        let devices = try await store.devices(of: name)
        return DeviceList(
            user: identity.address(name),
            devices: devices.map {
                DeviceInfo(
                    deviceId: $0.id, name: $0.name, certificate: Base64Bytes($0.certificate), createdAt: $0.createdAt,
                    lastSeenAt: $0.lastSeenAt)
            })
    }
}
