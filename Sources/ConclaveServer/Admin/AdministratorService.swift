import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// Named administrators, their roles and console sessions, and named API
/// tokens (rules R1–R7, docs/server.md#administrators). Every change is in
/// the audit log, under the name of who made it.
final class AdministratorService: Sendable {
    /// How long a console session lasts from sign-in.
    static let sessionLifetime: TimeInterval = 8 * 3600
    /// An administrator's password: 12 to 1,024 characters.
    static let passwordLength = 12...1024

    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let audit: AuditRecorder
    private let authentication: AuthenticationService
    /// Failed console sign-ins, per client address and administrator name (R4).
    let signInGuard: SignInGuard
    private let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, audit: AuditRecorder, authentication: AuthenticationService, limits: ServerLimits,
        logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.audit = audit
        self.authentication = authentication
        self.signInGuard = SignInGuard(
            perAddress: limits.signInFailuresPerAddress, perName: limits.signInFailuresPerName, window: limits.signInWindowSeconds)
        self.logger = logger
    }

    // MARK: Who is asking (R1)

    /// The principal behind an admin API bearer token: the bootstrap token
    /// of `server init`, or a named API token. 401 otherwise.
    func principal(bearer token: String?) async throws -> AdminPrincipal {
        guard let token else { throw APIError(.unauthenticated, "a valid administrator token is required") }
        if authentication.isBootstrapToken(token) { return .bootstrap }
        guard let named = try await store.adminToken(hash: Tokens.hash(token)) else {
            throw APIError(.unauthenticated, "a valid administrator token is required")
        }
        return .token(named.name, role: named.role)
    }

    // MARK: Administrators (owner only)

    func administrators() async throws -> AdministratorList {
        AdministratorList(administrators: try await store.administrators().map(Self.info))
    }

    func create(_ body: CreateAdministrator, by principal: AdminPrincipal) async throws -> AdministratorCreated {
        try Self.checkPassword(body.password)
        let totp = body.totp == true ? TOTP.generate() : nil
        let record = AdministratorRecord(
            name: body.name, role: body.role, passwordHash: try await authentication.hashPassword(body.password),
            totpSecret: totp?.secret, createdAt: audit.clock.now)
        let draft = audit.draft(
            "admin.create", "admin:\(body.name)", before: nil, after: AuditedAdministrator(record), actor: principal.actor)
        do {
            try await store.createAdministrator(record, audit: draft)
        } catch StoreError.conflict {
            throw APIError(.conflict, "an administrator named \(body.name) exists")
        }
        audit.appended(draft)
        return created(record, totp)
    }

    func update(_ name: AdminName, _ change: AdministratorChange, by principal: AdminPrincipal) async throws -> AdministratorCreated {
        guard change.role != nil || change.password != nil || change.totp != nil else {
            throw APIError.badRequest("give at least one of role, password, totp")
        }
        if let password = change.password { try Self.checkPassword(password) }
        let passwordHash = try await change.password.asyncFlatMap { try await authentication.hashPassword($0) }
        guard let before = try await store.administrator(named: name) else { throw APIError.notFound("administrator") }
        var after = before
        if let role = change.role { after.role = role }
        if let passwordHash { after.passwordHash = passwordHash }
        var totp: TOTP?
        var authenticator: ConclaveStore.AuthenticatorChange?
        switch change.totp {
        case true?:
            let generated = TOTP.generate()
            (totp, authenticator, after.totpSecret) = (generated, .set(generated.secret), generated.secret)
        case false?: (authenticator, after.totpSecret) = (.remove, nil)
        case nil: break
        }
        let draft = audit.draft(
            "admin.update", "admin:\(name)", before: AuditedAdministrator(before),
            after: AuditedAdministrator(after, passwordChanged: change.password != nil), actor: principal.actor)
        // Only what changes is written; a new password or authenticator signs every console session of theirs out (R5),
        // a new role counts at once.
        guard
            try await store.updateAdministrator(
                name, role: change.role, passwordHash: passwordHash, authenticator: authenticator, audit: draft)
        else { throw APIError.notFound("administrator") }
        audit.appended(draft)
        return created(after, totp)
    }

    func remove(_ name: AdminName, by principal: AdminPrincipal) async throws {
        guard let before = try await store.administrator(named: name) else { throw APIError.notFound("administrator") }
        let draft = audit.draft("admin.remove", "admin:\(name)", before: AuditedAdministrator(before), after: nil, actor: principal.actor)
        guard try await store.deleteAdministrator(name, audit: draft) else { throw APIError.notFound("administrator") }
        audit.appended(draft)
    }

    private func created(_ record: AdministratorRecord, _ totp: TOTP?) -> AdministratorCreated {
        AdministratorCreated(
            administrator: Self.info(record), totpSecret: totp?.base32Secret,
            totpURI: totp?.provisioningURI(issuer: "Conclave \(identity.domain)", account: record.name.value))
    }

    private static func info(_ record: AdministratorRecord) -> AdministratorInfo {
        AdministratorInfo(name: record.name, role: record.role, totp: record.totpSecret != nil, createdAt: record.createdAt)
    }

    private static func checkPassword(_ password: String) throws {
        guard passwordLength.contains(password.count) else {
            throw APIError.badRequest(
                "an administrator's password has \(passwordLength.lowerBound) to \(passwordLength.upperBound) characters")
        }
    }

    // MARK: API tokens (owner only)

    func tokens() async throws -> AdminTokenList { AdminTokenList(tokens: try await store.adminTokens()) }

    func createToken(_ body: CreateAdminToken, by principal: AdminPrincipal) async throws -> AdminTokenCreated {
        let (token, info) = (
            Tokens.random(), AdminTokenInfo(name: body.name, role: body.role, createdAt: audit.clock.now, createdBy: principal.actor)
        )
        let draft = audit.draft("admin_token.create", "token:\(body.name)", before: nil, after: ["role": body.role], actor: principal.actor)
        do {
            try await store.createAdminToken(info, tokenHash: Tokens.hash(token), audit: draft)
        } catch StoreError.conflict {
            throw APIError(.conflict, "an API token named \(body.name) exists")
        }
        audit.appended(draft)
        return AdminTokenCreated(token: token, info: info)
    }

    func revokeToken(_ name: AdminName, by principal: AdminPrincipal) async throws {
        let draft = audit.draft("admin_token.revoke", "token:\(name)", before: nil, after: nil, actor: principal.actor)
        guard try await store.revokeAdminToken(name, audit: draft) else { throw APIError.notFound("API token") }
        audit.appended(draft)
    }

    // MARK: Console sessions (R3–R5)

    /// A signed-in console session: its principal, the administrator, and
    /// the CSRF token its forms carry.
    struct ConsoleSession: Sendable {
        let principal: AdminPrincipal
        let administrator: AdministratorRecord
        let csrf: String
    }

    /// Checks name, password and, when the administrator has one, the
    /// authenticator code (each code once), within the sign-in limits of
    /// this address and name; opens a session. Every failure is the same
    /// answer. Returns the session's cookie value and the session.
    func signIn(name text: String, password: String, code: String, from address: String) async throws -> (
        cookie: String, session: ConsoleSession
    ) {
        let now = audit.clock.now
        // Counted by the name as checked: anything that is not a name counts as one name (R4).
        let name = AdminName(text)
        let key = name?.value ?? "(not a name)"
        if let wait = await signInGuard.admit(address: address, name: key, now: now) {
            throw APIError(.rateLimited, "too many failed sign-ins; try again later", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        let (cookie, csrf) = (Tokens.random(), Tokens.random())
        var session: ConsoleSession?
        do {
            let record = try await name.asyncFlatMap { try await store.administrator(named: $0) }
            let valid = try await authentication.verifyPassword(password, against: record?.passwordHash ?? authentication.decoyHash)
            if let record, valid, try await codeAccepted(code, record, now: now) {
                let principal = AdminPrincipal.administrator(record.name, role: record.role)
                let draft = audit.draft(
                    "admin.sign_in", "admin:\(record.name)", before: nil, after: ["address": address], actor: principal.actor)
                // The session and its audit entry, if the password and authenticator are still those just checked.
                if try await store.createAdminSession(
                    tokenHash: Tokens.hash(cookie), checked: record, csrf: csrf, createdAt: now,
                    expiresAt: now.addingTimeInterval(Self.sessionLifetime), audit: draft)
                {
                    audit.appended(draft)
                    session = ConsoleSession(principal: principal, administrator: record, csrf: csrf)
                }
            }
        } catch {
            await signInGuard.abandoned(address: address, name: key)
            throw error
        }
        guard let session else {
            await signInGuard.failed(address: address, name: key, now: now)
            logger.notice("console sign-in refused", metadata: ["address": "\(address)"])
            throw APIError(.invalidCredentials, "wrong name, password or authenticator code")
        }
        await signInGuard.succeeded(address: address, name: key)
        return (cookie, session)
    }

    /// True without an authenticator; with one, whether `code` is its code
    /// now and that time step was not used before (recorded: each code once).
    private func codeAccepted(_ code: String, _ record: AdministratorRecord, now: Date) async throws -> Bool {
        guard let secret = record.totpSecret else { return true }
        guard let step = TOTP(secret: secret).matchingStep(code, at: now, after: record.totpLastStep) else { return false }
        return try await store.useTOTPStep(of: record.name, step: step)
    }

    /// The session behind a console cookie, if it is one that has not expired.
    func session(cookie: String?) async throws -> ConsoleSession? {
        guard let cookie, !cookie.isEmpty, cookie.utf8.count <= 128 else { return nil }
        guard let found = try await store.adminSession(tokenHash: Tokens.hash(cookie), now: audit.clock.now) else { return nil }
        return ConsoleSession(
            principal: .administrator(found.administrator.name, role: found.administrator.role), administrator: found.administrator,
            csrf: found.csrf)
    }

    func signOut(cookie: String) async throws { try await store.deleteAdminSession(tokenHash: Tokens.hash(cookie)) }
}

/// What the audit log records of an administrator (never the password's
/// hash or the authenticator's secret).
private struct AuditedAdministrator: Encodable {
    var role: AdminRole
    var totp: Bool
    var passwordChanged: Bool?

    init(_ record: AdministratorRecord, passwordChanged: Bool = false) {
        role = record.role
        totp = record.totpSecret != nil
        self.passwordChanged = passwordChanged ? true : nil
    }
}

extension Optional {
    fileprivate func asyncFlatMap<U>(_ transform: (Wrapped) async throws -> U?) async rethrows -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
