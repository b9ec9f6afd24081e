import ConclaveClient
import ConclaveProtocol
import Foundation
import MLS
import MLSCodec
import Testing

/// A device driven by hand, as a modified client would be: it signs in over
/// raw HTTP with its own key, and builds MLS objects with the library
/// directly, so a test can send exactly the bytes it wants.
public struct RawDevice: Sendable {
    public let http: RawHTTP
    public let token: String
    public let certificate: VerifiedDeviceCertificate
    public let signer: SignaturePrivateKey
    public let networkKey: NetworkPublicKey
    public let provider: CipherSuiteProvider
    public let random = SystemRandom()
    /// The leaf extensions of its key packages: its user's approval, when
    /// one of the user's devices approved it.
    public var leafExtensions: [Extension] = []

    /// Signs in over raw HTTP. The user's first device makes no identity
    /// key (it is raw): its leaves carry no approval. A later device of a
    /// user with an identity key is pending until `approvedBy`, one of the
    /// user's SDK devices, approves it by its code.
    public static func login(_ network: some NetworkFixture, user: String, approvedBy approver: ConclaveClient? = nil) async throws
        -> RawDevice
    {
        let http = RawHTTP(baseURL: network.url)
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let signer = try provider.generateSignatureKey(random: SystemRandom())
        let transfer = try provider.generateHPKEKeyPair(random: SystemRandom())
        let answer = try await http.send(
            .POST, "/v1/login",
            json: LoginRequest(
                user: user, password: network.password, deviceName: "raw", signatureKey: Base64Bytes(signer.publicKey.bytes),
                cipherSuite: 1,
                transferKey: Base64Bytes(transfer.publicKey.bytes)))
        let login = try answer.decode(LoginResponse.self)
        let wellKnown = try await http.send(.GET, "/.well-known/conclave").decode(WellKnown.self)
        let networkKey = NetworkPublicKey(domain: wellKnown.domain, rawKey: wellKnown.signingKey.bytes)
        var device = RawDevice(
            http: http, token: login.token, certificate: try Self.verified(login.certificate.bytes, by: networkKey), signer: signer,
            networkKey: networkKey, provider: provider)
        if login.pending == true {
            guard let approver else { throw TestSupportError("\(user) has an identity key: a raw device needs approvedBy") }
            try await approver.approveDevice(
                code: ApprovalCode.compute(device: login.deviceId, signatureKey: signer.publicKey, transferKey: transfer.publicKey.bytes))
            let approval = try await http.send(.GET, "/v1/devices/self/approval", token: login.token).decode(ApproveDevice.self)
            device.leafExtensions = [try DeviceApproval(tlsSerialized: approval.approval.bytes).leafExtension]
        } else {
            // The user's first device: it makes the identity key and approves itself, as the SDK does.
            let identity = UserIdentityKey.generate()
            let approval = try identity.approve(
                user: device.certificate.user, device: device.certificate.device, signatureKey: signer.publicKey,
                cipherSuite: .x25519Aes128Sha256Ed25519, at: device.now)
            let published = try await http.send(
                .PUT, "/v1/identity", token: login.token,
                json: IdentityPublication(
                    identityKey: Base64Bytes(identity.publicKey.rawKey), approval: Base64Bytes(approval.tlsSerialized)))
            guard published.status == 201 else { throw TestSupportError("the raw device's identity key was refused") }
            device.leafExtensions = [approval.leafExtension]
        }
        return device
    }

    /// The certificate the server issued, checked against its network key.
    static func verified(_ bytes: [UInt8], by key: NetworkPublicKey) throws -> VerifiedDeviceCertificate {
        guard let certificate = try UnverifiedDeviceCertificate(tlsSerialized: bytes).verified(by: key) else {
            throw TestSupportError("the server's certificate does not verify")
        }
        return certificate
    }

    public var now: UInt64 { UInt64(Date().timeIntervalSince1970) }

    public func keyPackage(credential: Credential? = nil, signer other: SignaturePrivateKey? = nil) throws -> KeyPackageBundle {
        try KeyPackageBundle.create(
            provider, credential: credential ?? certificate.credential, signer: other ?? signer,
            lifetime: Lifetime(notBefore: now - 60, notAfter: now + 86_400),
            capabilities: ConversationSettings.capabilities(provider.suite), leafExtensions: leafExtensions, random: random)
    }

    public var externalSenders: Extension {
        var writer = TLSWriter()
        writer.writeVector([networkKey.externalSender])
        return Extension(type: .externalSenders, data: writer.bytes)
    }

    /// A new one-member group, not yet registered.
    public func newGroup(extensions: [Extension]? = nil) throws -> Group {
        try Group(
            creating: ConversationID.hosted(by: networkKey.domain).bytes, creator: try keyPackage(),
            extensions: extensions ?? [externalSenders], random: random)
    }

    public func create(_ group: Group, kind: ConversationKind = .room, name: String? = "raw room", peer: UserAddress? = nil) async throws
        -> RawHTTP.Answer
    {
        try await http.send(
            .POST, "/v1/conversations", token: token,
            json: CreateConversation(
                kind: kind, name: name, peer: peer, groupInfo: Base64Bytes(try group.groupInfo(includeTree: true).tlsSerialized)))
    }

    /// Sends a commit already built on `group` (which holds it pending);
    /// on 201 the group moves to the new epoch.
    public func send(_ output: CommitOutput, on group: inout Group, id: ConversationID, welcome: Bool = true, groupInfo: GroupInfo? = nil)
        async throws
        -> RawHTTP.Answer
    {
        var next = group
        try next.mergePendingCommit()
        let request = CommitRequest(
            commit: Base64Bytes(output.commit.tlsSerialized),
            welcome: welcome ? output.welcome.map { Base64Bytes(MLSMessage(body: .welcome($0)).tlsSerialized) } : nil,
            groupInfo: Base64Bytes(try (groupInfo ?? next.groupInfo(includeTree: false)).tlsSerialized))
        let answer = try await http.send(.POST, "/v1/conversations/\(id)/commits", token: token, json: request)
        if answer.status == 201 { group = next } else { group.discardPendingCommit() }
        return answer
    }

    public func claim(_ user: UserAddress) async throws -> [KeyPackage] {
        let claimed = try await http.send(.POST, "/v1/key-packages/claim", token: token, json: KeyPackageClaim(user: user)).decode(
            ClaimedKeyPackages.self)
        return claimed.keyPackages.compactMap {
            if case .keyPackage(let package) = try? MLSMessage(tlsSerialized: $0.keyPackage.bytes).body { package } else { nil }
        }
    }

    public func upload(_ bundles: [KeyPackageBundle]) async throws -> RawHTTP.Answer {
        try await http.send(
            .POST, "/v1/key-packages", token: token,
            json: KeyPackageUpload(
                keyPackages: bundles.map { Base64Bytes(MLSMessage(body: .keyPackage($0.keyPackage)).tlsSerialized) }, lastResort: nil))
    }
}

/// The time hand-built MLS operations of a test check lifetimes against: now.
public var validationNow: ValidationTime { .at(UInt64(Date().timeIntervalSince1970)) }
