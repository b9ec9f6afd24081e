import ConclaveProtocol
import ConclaveStorage
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
    var emailDomains: [String]
    var groupClaim: String?
    var groupMap: [SSOGroupMapping]
    var createAccounts: Bool
    var passwordsAllowed: Bool

    var shown: SSOSettings {
        SSOSettings(
            issuer: issuer, clientId: clientId, clientSecretSet: !clientSecret.isEmpty, scopes: scopes, userClaim: userClaim,
            emailDomains: emailDomains, groupClaim: groupClaim, groupMap: groupMap, createAccounts: createAccounts,
            passwordsAllowed: passwordsAllowed)
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
    /// How many started sign-ins the network keeps at once (from all
    /// addresses); past it, starts answer 503 until some finish or expire.
    static let openFlowLimit = 10_000

    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let audit: AuditRecorder
    private let authentication: AuthenticationService
    private let admin: AdminService
    private let provider: OpenIDProvider
    /// Started sign-ins per client address: each keeps a row until it expires.
    private let starts = RateLimiter<String>(rate: 1, burst: 20)
    private let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, audit: AuditRecorder, authentication: AuthenticationService, admin: AdminService,
        providerTimeout: TimeInterval, logger: Logger
    ) {
        self.provider = OpenIDProvider(timeout: .init(seconds: providerTimeout))
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
    func set(_ change: SetSSO, actor: String) async throws -> SSOSettings {
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
        let emailDomains = (change.emailDomains ?? before?.emailDomains ?? []).map { $0.lowercased() }
        guard emailDomains.count <= 64, emailDomains.allSatisfy({ NetworkDomain($0) != nil }) else {
            throw APIError.badRequest("email_domains holds at most 64 domain names")
        }
        // O6: an email address names an account only within the organisation's own domains.
        guard userClaim != "email" || !emailDomains.isEmpty else {
            throw APIError.badRequest("user_claim email needs email_domains: the domains whose addresses are this network's users")
        }
        let groupMap = change.groupMap ?? before?.groupMap ?? []
        guard groupMap.count <= 256, groupMap.allSatisfy({ (1...256).contains($0.value.utf8.count) }) else {
            throw APIError.badRequest("group_map holds at most 256 mappings of 1 to 256-byte values")
        }
        for mapping in groupMap where try await store.securityGroup(mapping.group) == nil {
            throw APIError(.unknownGroup, "security group \(mapping.group) does not exist")
        }
        let settings = StoredSSO(
            issuer: issuer, clientId: clientID, clientSecret: secret, scopes: scopes, userClaim: userClaim, emailDomains: emailDomains,
            groupClaim: groupClaim, groupMap: groupMap, createAccounts: change.createAccounts ?? before?.createAccounts ?? false,
            passwordsAllowed: change.passwordsAllowed ?? before?.passwordsAllowed ?? true)
        do {
            _ = try await provider.metadata(issuer: issuer, now: now)
        } catch let error as APIError where error.code == .providerUnavailable {
            // The administrator's input does not work (yet): a 400 that says why, and nothing stored.
            throw APIError.badRequest("the issuer does not serve OpenID Connect discovery: \(error.message)")
        }
        let text = String(decoding: try ConclaveJSON.encoder().encode(settings), as: UTF8.self)
        let draft = audit.draft("sso.set", "network:\(identity.domain)", before: before?.shown, after: settings.shown, actor: actor)
        try await store.setNetworkSetting(Self.settingName, to: text, audit: draft)
        audit.appended(draft)
        return settings.shown
    }

    /// Turns single sign-on off (audited `sso.remove`): password sign-in
    /// is then the only way in again.
    func remove(actor: String) async throws {
        let before = try await settings()
        let draft = audit.draft("sso.remove", "network:\(identity.domain)", before: before.shown, after: nil, actor: actor)
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
            throw APIError.badRequest("redirect_uri must be http://127.0.0.1:PORT/… (or [::1]) with an explicit port")
        }
        guard Self.isChallenge(request.codeChallenge) else {
            throw APIError.badRequest("code_challenge must be the base64url SHA-256 of a PKCE verifier (43 characters)")
        }
        let now = now
        if let wait = starts.spend(for: address, now: now) {
            throw APIError(.rateLimited, "too many sign-ins started from this address", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        let metadata = try await provider.metadata(issuer: settings.issuer, now: now)
        guard OpenIDProvider.isAllowedURL(metadata.authorizationEndpoint) else {
            throw APIError(.providerUnavailable, "the provider's authorization endpoint is not https")
        }
        let (state, nonce) = (Tokens.random(), Tokens.random())
        let expiresAt = now.addingTimeInterval(Self.flowLifetime)
        let kept = try await store.createSSOFlow(
            SSOFlowRecord(
                stateHash: Tokens.hash(state), nonce: nonce, codeChallenge: request.codeChallenge, redirectURI: request.redirectUri,
                createdAt: now, expiresAt: expiresAt),
            limit: Self.openFlowLimit)
        guard kept else {
            throw APIError(.serverBusy, "too many sign-ins are under way on this network; try again in a minute", retryAfter: 60)
        }
        let query = [
            ("response_type", "code"), ("client_id", settings.clientId), ("redirect_uri", request.redirectUri),
            ("scope", settings.scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", request.codeChallenge), ("code_challenge_method", "S256"),
        ].map { "\($0)=\(PercentEncoding.unreserved($1))" }.joined(separator: "&")
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
        } catch {
            await authentication.signInGuard.abandoned(address: address, name: "sso:" + address)
            throw error
        }
    }

    private func verifiedUser(_ request: SSOFinish, now: Date) async throws -> UserRecord {
        // The settings first: with single sign-on off, nobody's started sign-in is spent.
        let settings = try await settings()
        guard request.state.utf8.count <= 256, let flow = try await store.takeSSOFlow(stateHash: Tokens.hash(request.state), now: now)
        else {
            throw APIError(.ssoFailed, "this sign-in is unknown, finished already, or expired: start again")
        }
        guard Self.isVerifier(request.codeVerifier),
            PKCE.challenge(of: request.codeVerifier) == flow.codeChallenge
        else { throw APIError(.ssoFailed, "the PKCE verifier does not match this sign-in's challenge: start again") }
        guard (1...2048).contains(request.code.utf8.count) else { throw APIError.badRequest("code must be 1 to 2048 bytes") }
        let metadata = try await provider.metadata(issuer: settings.issuer, now: now)
        let idToken = try await provider.exchange(
            code: request.code, verifier: request.codeVerifier, redirectURI: flow.redirectURI, metadata: metadata,
            clientID: settings.clientId, clientSecret: settings.clientSecret)
        let token = try await provider.verify(
            idToken: idToken, issuer: settings.issuer, clientID: settings.clientId, nonce: flow.nonce, now: now, metadata: metadata)
        var user = try await account(for: token, settings)
        guard !user.suspended else { throw APIError(.forbidden, "this account is suspended: ask an administrator") }
        if settings.groupClaim != nil {
            // O8: the provider's groups decide; no mapping that matches is the default group.
            let group = Self.mappedGroup(token, settings) ?? .default
            if group.value != user.securityGroup {
                _ = try await admin.updateUser(user.name, UserChange(group: group), actor: "sso")
                user.securityGroup = group.value
            }
        }
        logger.info("single sign-on verified")
        return user
    }

    /// O6, O7: the account of a verified identity. An identity bound to an
    /// account signs in to that account, whatever its name claim says now;
    /// otherwise the name claim names the account, which must not be bound
    /// to another identity, and is bound to this one (or created, then
    /// bound, with `create_accounts` on).
    private func account(for token: VerifiedIDToken, _ settings: StoredSSO) async throws -> UserRecord {
        let subject = settings.issuer + " " + token.subject
        if let bound = try await store.user(ssoSubject: subject) { return bound }
        let name = try Self.userName(from: token, settings)
        if try await store.user(named: name) == nil {
            guard settings.createAccounts else {
                throw APIError(.ssoFailed, "the provider's user has no account on this network, and accounts are not created at sign-in")
            }
            // An account an administrator or the directory deleted is not brought back by its user's sign-in.
            guard try await !store.wasDeleted(name) else {
                throw APIError(
                    .ssoFailed, "this account was deleted on this network: only an administrator or the directory creates it again")
            }
            do {
                _ = try await admin.createAccount(name, password: nil, group: Self.mappedGroup(token, settings) ?? .default, actor: "sso")
            } catch let error as APIError where error.code == .userExists {
                // Created by a sign-in at the same moment: the binding below decides which identity keeps it.
            }
        }
        let draft = audit.draft("user.sso_bind", "user:\(name)", before: nil, after: ["issuer": settings.issuer], actor: "sso")
        let bound: Bool
        do {
            bound = try await store.bindSSOSubject(of: name, to: subject, audit: draft)
        } catch StoreError.conflict {
            throw APIError(.forbidden, "this identity at the provider is bound to another account")
        }
        guard bound else {
            throw APIError(
                .forbidden,
                "this account is bound to another identity at the provider; an administrator can unlink it (admin user set --sso-unlink)")
        }
        audit.appended(draft)
        guard let user = try await store.user(named: name) else { throw APIError(.ssoFailed, "the account was deleted during sign-in") }
        return user
    }

    /// O6: the user name from the configured claim, ASCII only (folded to
    /// lower case), checked against this network's name rules. With
    /// `email`: a verified address (`email_verified` true) in one of the
    /// network's email domains, whose local part is the name.
    static func userName(from token: VerifiedIDToken, _ settings: StoredSSO) throws -> UserName {
        let claim = settings.userClaim
        guard case .string(var text)? = token.claims[claim], text.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw APIError(.ssoFailed, "the ID token has no ASCII \(claim) claim (the network's user_claim)")
        }
        if claim == "email" {
            guard token.claims["email_verified"] == .bool(true) || token.claims["email_verified"] == .string("true") else {
                throw APIError(.ssoFailed, "the provider does not say this email address is verified")
            }
            guard let at = text.lastIndex(of: "@"), settings.emailDomains.contains(text[text.index(after: at)...].lowercased()) else {
                throw APIError(.ssoFailed, "the email address is not in one of this network's email domains")
            }
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
        return ["127.0.0.1", "::1", "[::1]"].contains(host)
    }
}
