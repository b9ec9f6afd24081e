import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// The admin API's accounts (DESIGN.md §4): users and their devices, every
/// change written to the audit log in the same transaction. Cutting an
/// account or its devices off ends their connections at once and has the
/// server propose their removal from every conversation.
final class AdminService: Sendable {
    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let audit: AuditRecorder
    private let authentication: AuthenticationService
    private let enforcement: PolicyEnforcement
    private let deprovisioning: Deprovisioning
    private let gateway: FederationGateway
    private let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, audit: AuditRecorder, authentication: AuthenticationService,
        enforcement: PolicyEnforcement, deprovisioning: Deprovisioning, gateway: FederationGateway, logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.audit = audit
        self.authentication = authentication
        self.enforcement = enforcement
        self.deprovisioning = deprovisioning
        self.gateway = gateway
        self.logger = logger
    }

    func network() async throws -> NetworkInfo {
        NetworkInfo(
            domain: identity.domain, url: identity.baseURL, keyFingerprint: identity.publicKey.fingerprint, apiVersion: conclaveAPIVersion,
            storage: store.database.dialect.rawValue, users: try await store.users().count)
    }

    func users() async throws -> UserList {
        UserList(users: try await store.users().map { userInfo($0.user, devices: $0.devices) })
    }

    func createUser(_ body: CreateUser, actor: String) async throws -> UserInfo {
        guard let group = SecurityGroupName(body.group ?? "default") else { throw APIError.badRequest("not a security group name") }
        return try await createAccount(body.name, password: body.password, group: group, actor: actor)
    }

    /// Creates an account in `group`. Without a password (single sign-on,
    /// SCIM) it signs in through the identity provider only, until an
    /// administrator sets one.
    func createAccount(_ name: UserName, password: String?, group: SecurityGroupName, actor: String) async throws -> UserInfo {
        if let password, !(8...1024).contains(password.count) { throw APIError.badRequest("a password has 8 to 1024 characters") }
        var hash = PasswordHasher.noPassword
        if let password { hash = try await authentication.hashPassword(password) }
        let record = UserRecord(name: name, passwordHash: hash, securityGroup: group.value, suspended: false, createdAt: audit.clock.now)
        let draft = audit.draft("user.create", "user:\(name)", before: nil, after: AuditedUser(record), actor: actor)
        do {
            try await store.createUser(record, audit: draft)
        } catch StoreError.conflict {
            throw APIError(.userExists, "a user with this name exists")
        } catch StoreError.notFound {
            throw APIError(.unknownGroup, "security group \(group) does not exist")
        }
        audit.appended(draft)
        return userInfo(record, devices: 0)
    }

    /// Moves a user to another security group, enforced at once.
    func updateUser(_ name: UserName, _ change: UserChange, actor: String) async throws -> UserInfo {
        guard let before = try await store.user(named: name) else { throw APIError.notFound("user") }
        if let password = change.password {
            guard (8...1024).contains(password.count) else { throw APIError.badRequest("a password has 8 to 1024 characters") }
            let draft = audit.draft("user.password_reset", "user:\(name)", before: nil, after: nil, actor: actor)
            guard try await store.setPasswordHash(of: name, to: try await authentication.hashPassword(password), audit: draft) else {
                throw APIError.notFound("user")
            }
            audit.appended(draft)
        }
        if change.ssoUnlink == true {
            let draft = audit.draft("user.sso_unlink", "user:\(name)", before: nil, after: nil, actor: actor)
            guard try await store.setSSOSubject(of: name, to: nil, audit: draft) else { throw APIError.notFound("user") }
            audit.appended(draft)
        }
        guard let group = change.group, group.value != before.securityGroup else {
            return userInfo(before, devices: try await store.devices(of: name).count)
        }
        var after = before
        after.securityGroup = group.value
        let draft = audit.draft("user.update", "user:\(name)", before: AuditedUser(before), after: AuditedUser(after), actor: actor)
        do {
            try await store.setSecurityGroup(of: name, to: group, audit: draft)
        } catch StoreError.notFound(let what) {
            throw what == "user" ? APIError.notFound("user") : APIError(.unknownGroup, "security group \(group) does not exist")
        }
        let enforced = try await enforcement.enforce(on: [name])
        audit.appended(draft, ["removals": "\(enforced.removed)", "retuned": "\(enforced.retuned)"])
        return userInfo(after, devices: try await store.devices(of: name).count)
    }

    func setSuspended(_ name: UserName, _ suspended: Bool, actor: String) async throws -> UserInfo {
        guard let before = try await store.user(named: name) else { throw APIError.notFound("user") }
        var after = before
        after.suspended = suspended
        let draft = audit.draft(
            suspended ? "user.suspend" : "user.unsuspend", "user:\(name)", before: AuditedUser(before), after: AuditedUser(after),
            actor: actor)
        guard try await store.setSuspended(name, suspended, audit: draft), let user = try await store.user(named: name) else {
            throw APIError.notFound("user")
        }
        let devices = try await store.devices(of: name).map(\.id)
        if suspended {
            try await deprovisioning.cutOff(devices, conversations: try await store.conversations(withDevices: devices))
            try await gateway.requestRemoteRemoval(of: devices, user: name)
        }
        audit.appended(draft)
        return userInfo(user, devices: devices.count)
    }

    func deleteUser(_ name: UserName, actor: String) async throws {
        guard let before = try await store.user(named: name) else { throw APIError.notFound("user") }
        let devices = try await store.devices(of: name).map(\.id)
        let conversations = try await store.conversations(withDevices: devices)
        // Asked while the user's memberships elsewhere are still recorded.
        try await gateway.requestRemoteRemoval(of: devices, user: name)
        let draft = audit.draft(
            "user.delete", "user:\(name)", before: AuditedUser(before, devices: devices.count), after: nil, actor: actor)
        guard let deleted = try await store.deleteUser(name, audit: draft) else { throw APIError.notFound("user") }
        try await deprovisioning.cutOff(deleted, conversations: conversations)
        audit.appended(draft)
    }

    func resetDevices(_ name: UserName, actor: String) async throws -> Int {
        guard let user = try await store.user(named: name) else { throw APIError.notFound("user") }
        let devices = try await store.devices(of: name).map(\.id)
        let conversations = try await store.conversations(withDevices: devices)
        let draft = audit.draft(
            "user.reset_devices", "user:\(name)", before: AuditedUser(user, devices: devices.count), after: AuditedUser(user, devices: 0),
            actor: actor)
        let deleted = try await store.deleteDevices(of: name, audit: draft)
        try await deprovisioning.cutOff(deleted, conversations: conversations)
        try await gateway.requestRemoteRemoval(of: devices, user: name)
        audit.appended(draft, ["count": "\(deleted.count)"])
        return deleted.count
    }

    // MARK: SCIM tokens

    /// A new bearer token for the organisation's directory (SCIM): shown
    /// once, stored as its hash (audited `scim.token_create`).
    func createSCIMToken(actor: String) async throws -> SCIMTokenCreated {
        let (id, token, now) = ("scim-" + String(Tokens.random().prefix(12)), Tokens.random(), audit.clock.now)
        let draft = audit.draft("scim.token_create", "scim_token:\(id)", before: nil, after: nil, actor: actor)
        try await store.createSCIMToken(id: id, tokenHash: Tokens.hash(token), createdAt: now, audit: draft)
        audit.appended(draft)
        return SCIMTokenCreated(id: id, token: token, createdAt: now)
    }

    func scimTokens() async throws -> SCIMTokenList {
        SCIMTokenList(tokens: try await store.scimTokens().map { SCIMTokenInfo(id: $0.id, createdAt: $0.createdAt) })
    }

    /// Revokes a directory token at once (audited `scim.token_revoke`).
    func revokeSCIMToken(_ id: String, actor: String) async throws {
        guard id.utf8.count <= 64 else { throw APIError.notFound("SCIM token") }
        let draft = audit.draft("scim.token_revoke", "scim_token:\(id)", before: nil, after: nil, actor: actor)
        guard try await store.revokeSCIMToken(id: id, audit: draft) else { throw APIError.notFound("SCIM token") }
        audit.appended(draft)
    }

    func userInfo(_ user: UserRecord, devices: Int) -> UserInfo {
        UserInfo(
            name: user.name, address: identity.address(user.name), group: user.securityGroup, suspended: user.suspended, devices: devices,
            createdAt: user.createdAt)
    }
}
