import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS
import MLSCodec

/// The Authentication Service (DESIGN.md §4): password sign-in, device
/// registration with a certificate signed by the network, sessions bound to
/// one device, the key package directory.
extension ServerState {
    func login(_ request: LoginRequest) async throws -> LoginResponse {
        let name = try localUser(request.user)
        let now = clock()
        guard await !signInLimiter.isBlocked(name.value, now: now) else {  // A1
            throw APIError(.tooManyRequests, "rate_limited", "too many failed sign-ins; try again later")
        }
        let user = try await store.user(named: name)
        // Hash even for an unknown user, so timing does not tell which names exist.
        let valid = configuration.passwordHasher.verify(request.password, against: user?.passwordHash ?? Self.decoyHash)
        guard let user, valid else {
            await signInLimiter.recordFailure(name.value, now: now)
            throw APIError(.unauthorized, "invalid_credentials", "wrong user name or password")  // A2
        }
        guard !user.suspended else { throw APIError(.forbidden, "account_suspended", "this account is suspended") }  // A3
        await signInLimiter.reset(name.value)

        let suite = CipherSuite(rawValue: request.cipherSuite)
        guard CipherSuite.supported.contains(suite) else { throw APIError.badRequest("unsupported cipher suite") }
        let deviceName = request.deviceName.trimmingCharacters(in: .whitespaces)
        guard (1...64).contains(deviceName.count), !deviceName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw APIError.badRequest("device_name must be 1 to 64 printable characters") }
        guard request.signatureKey.bytes.count == Self.signatureKeyLength(suite) else {  // A4
            throw APIError.badRequest("the signature key does not fit the cipher suite")
        }
        let address = UserAddress(name: user.name, domain: domain)
        let device = DeviceID.random()
        let certificate = try DeviceCertificate.issue(
            user: address, device: device, signatureKey: SignaturePublicKey(request.signatureKey.bytes), cipherSuite: suite,
            issuedAt: now.unixSeconds, by: networkKey)
        do {
            try await store.createDevice(
                DeviceRecord(
                    id: device, user: user.name, name: deviceName, signatureKey: request.signatureKey.bytes,
                    certificate: certificate.tlsSerialized,
                    createdAt: now, lastSeenAt: nil))
        } catch StoreError.conflict {
            throw APIError(.conflict, "key_in_use", "this signature key belongs to another device")  // A5
        }
        let token = Tokens.random()
        let expiresAt = now.addingTimeInterval(configuration.sessionLifetime)
        try await store.createSession(tokenHash: Tokens.hash(token), device: device, createdAt: now, expiresAt: expiresAt)
        logger.info("device registered", metadata: ["device": "\(device)"])
        return LoginResponse(
            token: token, user: address, deviceId: device, certificate: Base64Bytes(certificate.tlsSerialized), expiresAt: expiresAt)
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

    /// A well-formed hash of a random password, checked when the user does not exist.
    static let decoyHash = (try? PasswordHasher(rounds: 1 << 15).hash(Tokens.random())) ?? ""

    func deviceList(of name: UserName) async throws -> DeviceList {
        guard try await store.user(named: name) != nil else { throw APIError.notFound("user") }
        let devices = try await store.devices(of: name)
        return DeviceList(
            user: UserAddress(name: name, domain: domain),
            devices: devices.map {
                DeviceInfo(
                    deviceId: $0.id, name: $0.name, certificate: Base64Bytes($0.certificate), createdAt: $0.createdAt,
                    lastSeenAt: $0.lastSeenAt)
            })
    }

    // MARK: Key package directory

    func uploadKeyPackages(_ upload: KeyPackageUpload, session: Session) async throws -> KeyPackageCount {
        guard upload.keyPackages.count <= 100 else { throw APIError.badRequest("at most 100 key packages per upload") }  // K1
        var packages: [(ref: [UInt8], data: [UInt8])] = []
        for item in upload.keyPackages { packages.append(try checkedKeyPackage(item.bytes, session: session)) }
        let lastResort = try upload.lastResort.map { try checkedKeyPackage($0.bytes, session: session) }
        do {
            try await store.addKeyPackages(device: session.device.id, packages, lastResort: lastResort, now: clock())
        } catch StoreError.conflict {
            throw APIError(.conflict, "duplicate_key_package", "a key package was uploaded before")
        }
        let count = try await store.keyPackageCount(device: session.device.id)
        return KeyPackageCount(available: count.available, lastResort: count.lastResort)
    }

    /// K2: a KeyPackage (as an MLSMessage) of this device's suite, signed,
    /// whose leaf carries this device's certificate and key.
    func checkedKeyPackage(_ bytes: [UInt8], session: Session) throws -> (ref: [UInt8], data: [UInt8]) {
        guard bytes.count <= 64 * 1024 else { throw APIError.badRequest("a key package is at most 64 KiB") }
        guard case .keyPackage(let package) = try decode(MLSMessage.self, bytes, "MLSMessage").body else {
            throw APIError.invalidMessage("not a KeyPackage message")
        }
        let provider: CipherSuiteProvider
        do { provider = try CipherSuiteProvider(package.cipherSuite) } catch { throw APIError.invalidMessage("unsupported cipher suite") }
        guard package.verifySignature(provider), let certificate = DeviceCertificate.verify(leaf: package.leafNode, networkKey: publicKey),
            certificate.device == session.device.id, package.leafNode.signatureKey.bytes == session.device.signatureKey,
            certificate.cipherSuite == package.cipherSuite
        else {
            throw APIError(.badRequest, "invalid_key_package", "the key package is not this device's, or its signature does not verify")
        }
        return (package.reference(provider), bytes)
    }

    /// Claims one key package of every device of a user: of this network
    /// (whom the caller's group may message, P1), or of a peer network
    /// through its server (F5).
    func claimKeyPackages(_ claim: KeyPackageClaim, session: Session) async throws -> ClaimedKeyPackages {
        if claim.user.domain != domain { return try await claimRemoteKeyPackages(claim.user, session: session) }
        let name = claim.user.name
        guard let user = try await store.user(named: name), !user.suspended else { throw APIError.notFound("user") }
        if name != session.user.name {
            let users = [session.user.name, name]
            try checkSegmentation(added: [name], members: users, try await policies(of: users))
        }
        let claimed = try await store.claimKeyPackages(user: name)
        return ClaimedKeyPackages(
            user: UserAddress(name: name, domain: domain),
            keyPackages: claimed.map { ClaimedKeyPackages.Entry(deviceId: $0.device, keyPackage: Base64Bytes($0.data)) })
    }
}
