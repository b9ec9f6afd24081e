import ConclaveProtocol
import ConclaveStorage
import Crypto
import Foundation
import Logging

/// The network's single sign-on settings as stored (`network_settings`
/// row `sso`, JSON): the admin API's view plus the client secret.
struct StoredSSO: Codable, Sendable, Hashable {
    var issuer: String
    var clientId: String
    var clientSecret: String
    var scopes: [String]
    var userClaim: String
    var groupClaim: String?
    var groupMap: [SSOGroupMapping]
    var createAccounts: Bool
    var passwordsAllowed: Bool

    var shown: SSOSettings {
        SSOSettings(
            issuer: issuer, clientId: clientId, clientSecretSet: !clientSecret.isEmpty, scopes: scopes, userClaim: userClaim,
            groupClaim: groupClaim, groupMap: groupMap, createAccounts: createAccounts, passwordsAllowed: passwordsAllowed)
    }
}

/// Single sign-on with an OpenID Connect provider (rules O1–O9 in
/// docs/server.md#single-sign-on). The server is the provider's
/// confidential client; the device that signs in holds the PKCE verifier
/// and receives the code on a loopback redirect (RFC 8252). A session and a
/// device certificate are issued only after the ID token verifies, and a
/// sign-in only ever adds a device: whether the user's other devices and
/// contacts trust it stays with the user's own devices (A14).
final class SingleSignOn: Sendable {
    static let settingName = "sso"
    /// How long a started sign-in waits for its code.
    static let flowLifetime: TimeInterval = 600

    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let audit: AuditRecorder
    private let authentication: AuthenticationService
    private let admin: AdminService
    private let provider = OpenIDProvider()
    /// Started sign-ins per client address: each keeps a row until it expires.
    private let starts = RateLimiter<String>(rate: 1, burst: 20)
    private let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, audit: AuditRecorder, authentication: AuthenticationService, admin: AdminService,
        logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.audit = audit
        self.authentication = authentication
        self.admin = admin
        self.logger = logger
    }

    private var now: Date { audit.clock.now }

    /// The stored settings, nil when single sign-on is off.
    static func stored(in store: ConclaveStore) async throws -> StoredSSO? {
        guard let text = try await store.networkSetting(settingName) else { return nil }
        guard let settings = try? ConclaveJSON.decoder().decode(StoredSSO.self, from: Data(text.utf8)) else {
            throw StoreError.corrupt("network_settings.sso")
        }
        return settings
    }

    private func settings() async throws -> StoredSSO {
        guard let settings = try await Self.stored(in: store) else {
            throw APIError(.ssoOff, "single sign-on is not set up on this network: sign in with a password")
        }
        return settings
    }

    // MARK: Administration

    func shown() async throws -> SSOSettings { try await settings().shown }

    /// O1: sets single sign-on, checking the values and the provider's
    /// discovery document before anything is stored (audited `sso.set`,
    /// never with the secret).
    func set(_ change: SetSSO) async throws -> SSOSettings {
        let before = try await Self.stored(in: store)
        guard let issuer = change.issuer ?? before?.issuer, OpenIDProvider.isAllowedURL(issuer) else {
            throw APIError.badRequest("issuer must be the provider's https URL (http only on a loopback address)")
        }
        guard let clientID = change.clientId ?? before?.clientId, (1...256).contains(clientID.utf8.count) else {
            throw APIError.badRequest("client_id is required (1 to 256 bytes)")
        }
        guard let secret = change.clientSecret ?? before?.clientSecret, (1...1024).contains(secret.utf8.count) else {
            throw APIError.badRequest("client_secret is required the first time (1 to 1024 bytes)")
        }
        let scopes = change.scopes ?? before?.scopes ?? ["openid", "email", "profile"]
        guard scopes.contains("openid"), scopes.count <= 16, scopes.allSatisfy(Self.isToken) else {
            throw APIError.badRequest("scopes must include openid, at most 16 scopes of printable ASCII without spaces")
        }
        let userClaim = change.userClaim ?? before?.userClaim ?? "preferred_username"
        let groupClaim = change.groupClaim.map { $0.isEmpty ? nil : $0 } ?? before?.groupClaim
        guard Self.isToken(userClaim), groupClaim.map(Self.isToken) ?? true else {
            throw APIError.badRequest("user_claim and group_claim are claim names: 1 to 64 printable ASCII characters")
        }
        let groupMap = change.groupMap ?? before?.groupMap ?? []
        guard groupMap.count <= 256, groupMap.allSatisfy({ (1...256).contains($0.value.utf8.count) }) else {
            throw APIError.badRequest("group_map holds at most 256 mappings of 1 to 256-byte values")
        }
        for mapping in groupMap where try await store.securityGroup(mapping.group) == nil {
            throw APIError(.unknownGroup, "security group \(mapping.group) does not exist")
        }
        let settings = StoredSSO(
            issuer: issuer, clientId: clientID, clientSecret: secret, scopes: scopes, userClaim: userClaim, groupClaim: groupClaim,
            groupMap: groupMap, createAccounts: change.createAccounts ?? before?.createAccounts ?? false,
            passwordsAllowed: change.passwordsAllowed ?? before?.passwordsAllowed ?? true)
        _ = try await provider.metadata(issuer: issuer, now: now)
        let text = String(decoding: try ConclaveJSON.encoder().encode(settings), as: UTF8.self)
        let draft = audit.draft("sso.set", "network:\(identity.domain)", before: before?.shown, after: settings.shown)
        try await store.setNetworkSetting(Self.settingName, to: text, audit: draft)
        audit.appended(draft)
        return settings.shown
    }

    /// Turns single sign-on off (audited `sso.remove`): password sign-in
    /// is then the only way in again.
    func remove() async throws {
        let before = try await settings()
        let draft = audit.draft("sso.remove", "network:\(identity.domain)", before: before.shown, after: nil)
        try await store.setNetworkSetting(Self.settingName, to: nil, audit: draft)
        audit.appended(draft)
    }

    // MARK: Sign-in

    /// O2, O3: starts a sign-in for a device listening on a loopback
    /// `redirect_uri`, with its PKCE challenge; the answer is where to send
    /// the user. The state and nonce are random, single-use, and expire
    /// after ``flowLifetime``.
    func start(_ request: SSOStart, from address: String) async throws -> SSOStarted {
        let settings = try await settings()
        guard Self.isLoopbackRedirect(request.redirectUri) else {
            throw APIError.badRequest("redirect_uri must be http://127.0.0.1:PORT/… (or [::1], localhost) with an explicit port")
        }
        guard Self.isChallenge(request.codeChallenge) else {
            throw APIError.badRequest("code_challenge must be the base64url SHA-256 of a PKCE verifier (43 characters)")
        }
        let now = now
        if let wait = await starts.spend(for: address, now: now) {
            throw APIError(.rateLimited, "too many sign-ins started from this address", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        let metadata = try await provider.metadata(issuer: settings.issuer, now: now)
        guard OpenIDProvider.isAllowedURL(metadata.authorizationEndpoint) else {
            throw APIError(.providerUnavailable, "the provider's authorization endpoint is not https")
        }
        let (state, nonce) = (Tokens.random(), Tokens.random())
        let expiresAt = now.addingTimeInterval(Self.flowLifetime)
        try await store.createSSOFlow(
            SSOFlowRecord(
                stateHash: Tokens.hash(state), nonce: nonce, codeChallenge: request.codeChallenge, redirectURI: request.redirectUri,
                createdAt: now, expiresAt: expiresAt))
        let query = [
            ("response_type", "code"), ("client_id", settings.clientId), ("redirect_uri", request.redirectUri),
            ("scope", settings.scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", request.codeChallenge), ("code_challenge_method", "S256"),
        ].map { "\($0)=\(OpenIDProvider.formEncode($1))" }.joined(separator: "&")
        let separator = metadata.authorizationEndpoint.contains("?") ? "&" : "?"
        return SSOStarted(authorizationUrl: metadata.authorizationEndpoint + separator + query, state: state, expiresAt: expiresAt)
    }

    /// O4–O9: finishes a sign-in. The state is taken once (a replay finds
    /// nothing), the verifier must match the challenge, the provider must
    /// give an ID token for the code that passes every check, and the
    /// account must exist (or be created, O6), not be suspended, and belong
    /// to this subject (O7). Then a new device is registered, or an existing
    /// one of the user signs in again with its key's signature.
    func finish(_ request: SSOFinish, from address: String) async throws -> LoginResponse {
        let now = now
        if let wait = await authentication.signInGuard.admit(address: address, name: "sso:" + address, now: now) {
            throw APIError(.rateLimited, "too many failed sign-ins; try again later", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        do {
            let user = try await verifiedUser(request, now: now)
            await authentication.signInGuard.succeeded(address: address, name: "sso:" + address)
            if let device = request.deviceId {
                guard let signedAt = request.signedAt, let signature = request.signature else {
                    throw APIError.badRequest("an existing device signs in with device_id, signed_at and signature")
                }
                return try await authentication.resumeDevice(
                    of: user, device: device, signedAt: signedAt, signature: signature.bytes, now: now)
            }
            guard let deviceName = request.deviceName, let signatureKey = request.signatureKey, let suite = request.cipherSuite else {
                throw APIError.badRequest("a new device sends device_name, signature_key and cipher_suite")
            }
            let login = LoginRequest(
                user: user.name.value, password: "", deviceName: deviceName, signatureKey: signatureKey, cipherSuite: suite,
                transferKey: request.transferKey)
            return try await authentication.registerAndOpen(user, login, now: now)
        } catch let error as APIError where error.code == .ssoFailed {
            await authentication.signInGuard.failed(address: address, name: "sso:" + address, now: now)
            throw error
        }
    }

    private func verifiedUser(_ request: SSOFinish, now: Date) async throws -> UserRecord {
        guard request.state.utf8.count <= 256, let flow = try await store.takeSSOFlow(stateHash: Tokens.hash(request.state), now: now)
        else {
            throw APIError(.ssoFailed, "this sign-in is unknown, finished already, or expired: start again")
        }
        guard Self.isVerifier(request.codeVerifier),
            OpenIDProvider.base64URLEncode(SHA256.hash(data: Array(request.codeVerifier.utf8))) == flow.codeChallenge
        else { throw APIError(.ssoFailed, "the PKCE verifier does not match this sign-in's challenge: start again") }
        guard (1...2048).contains(request.code.utf8.count) else { throw APIError.badRequest("code must be 1 to 2048 bytes") }
        let settings = try await settings()
        let metadata = try await provider.metadata(issuer: settings.issuer, now: now)
        let idToken = try await provider.exchange(
            code: request.code, verifier: request.codeVerifier, redirectURI: flow.redirectURI, metadata: metadata,
            clientID: settings.clientId, clientSecret: settings.clientSecret)
        let token = try await provider.verify(
            idToken: idToken, issuer: settings.issuer, clientID: settings.clientId, nonce: flow.nonce, now: now, metadata: metadata)
        let name = try Self.userName(from: token, claim: settings.userClaim)
        let group = Self.mappedGroup(token, settings)
        var user = try await store.user(named: name)
        if user == nil {
            guard settings.createAccounts else {
                throw APIError(.ssoFailed, "the provider's user has no account on this network, and accounts are not created at sign-in")
            }
            _ = try await admin.createAccount(name, password: nil, group: group ?? .default, actor: "sso")
            user = try await store.user(named: name)
        }
        guard var user else { throw APIError(.ssoFailed, "the account was deleted during sign-in") }
        guard !user.suspended else { throw APIError(.forbidden, "this account is suspended: ask an administrator") }
        try await bind(user.name, to: token.subject)
        if let group, group.value != user.securityGroup {
            _ = try await admin.updateUser(user.name, UserChange(group: group), actor: "sso")
            user.securityGroup = group.value
        }
        logger.info("single sign-on verified")
        return user
    }

    /// O7: the first SSO sign-in binds the account to the provider's
    /// subject; another subject with the same user name is refused until an
    /// administrator unlinks it (`user.sso_unlink`).
    private func bind(_ name: UserName, to subject: String) async throws {
        switch try await store.ssoSubject(of: name) {
        case nil: _ = try await store.setSSOSubject(of: name, to: subject)
        case subject?: return
        default:
            throw APIError(
                .forbidden,
                "this account is bound to another identity at the provider; an administrator can unlink it (admin user set --sso-unlink)")
        }
    }

    /// O5: the user name from the configured claim (`email`: its local
    /// part, refused when the provider says it is not verified), checked
    /// against this network's name rules.
    static func userName(from token: VerifiedIDToken, claim: String) throws -> UserName {
        guard case .string(var text)? = token.claims[claim] else {
            throw APIError(.ssoFailed, "the ID token has no \(claim) claim (the network's user_claim)")
        }
        if claim == "email" {
            guard token.claims["email_verified"] != .bool(false) else {
                throw APIError(.ssoFailed, "the provider says this email address is not verified")
            }
            guard let at = text.lastIndex(of: "@") else { throw APIError(.ssoFailed, "the email claim is not an address") }
            text = String(text[..<at])
        }
        guard let name = UserName(text) else {
            throw APIError(.ssoFailed, "the provider's user name is not a valid user name here (1 to 64 of a-z 0-9 . _ -)")
        }
        return name
    }

    /// O8: the security group of the first mapping (in the settings'
    /// order) whose value the group claim holds.
    static func mappedGroup(_ token: VerifiedIDToken, _ settings: StoredSSO) -> SecurityGroupName? {
        guard let claim = settings.groupClaim, let values = token.claims[claim]?.strings else { return nil }
        return settings.groupMap.first { values.contains($0.value) }?.group
    }

    // MARK: Validation

    private static func isToken(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") }
    }

    private static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    static func isChallenge(_ text: String) -> Bool { text.utf8.count == 43 && text.utf8.allSatisfy { unreserved.contains($0) } }

    static func isVerifier(_ text: String) -> Bool {
        (43...128).contains(text.utf8.count) && text.utf8.allSatisfy { unreserved.contains($0) }
    }

    /// RFC 8252 §7.3: http on a loopback address with an explicit port.
    static func isLoopbackRedirect(_ text: String) -> Bool {
        guard text.utf8.count <= 512, let url = URLComponents(string: text), url.scheme == "http", url.port != nil, url.user == nil,
            url.password == nil, url.fragment == nil, let host = url.host
        else { return false }
        return ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
    }
}
