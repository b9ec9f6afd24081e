import ConclaveProtocol
import Foundation

/// A started single sign-on: what the server checks when the device comes
/// back with the provider's code (the state itself is kept as its hash).
public struct SSOFlowRecord: Sendable, Equatable {
    public var stateHash: [UInt8]
    public var nonce: String
    /// The device's PKCE challenge (S256): only the device holds the verifier.
    public var codeChallenge: String
    public var redirectURI: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(stateHash: [UInt8], nonce: String, codeChallenge: String, redirectURI: String, createdAt: Date, expiresAt: Date) {
        self.stateHash = stateHash
        self.nonce = nonce
        self.codeChallenge = codeChallenge
        self.redirectURI = redirectURI
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

// MARK: - Network settings, single sign-on, SCIM tokens and external ids

extension ConclaveStore {
    /// A network setting (`network_settings`), nil when unset.
    public func networkSetting(_ name: String) async throws -> String? {
        try await database.read { connection in
            try await connection.query("SELECT value FROM network_settings WHERE name = ?", [.text(name)]).first?.text(0)
        }
    }

    /// Sets (or, with nil, removes) a network setting, with its audit entry.
    public func setNetworkSetting(_ name: String, to value: String?, audit: AuditDraft) async throws {
        try await write { connection in
            try await connection.execute("DELETE FROM network_settings WHERE name = ?", [.text(name)])
            if let value {
                try await connection.execute("INSERT INTO network_settings (name, value) VALUES (?, ?)", [.text(name), .text(value)])
            }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    /// Keeps a started sign-on, and forgets the expired ones; false (and
    /// nothing kept) when `limit` sign-ons are under way already.
    public func createSSOFlow(_ flow: SSOFlowRecord, limit: Int) async throws -> Bool {
        try await writeKeepingCaches { connection in
            try await connection.execute("DELETE FROM sso_flows WHERE expires_at < ?", [.integer(flow.createdAt.millis)])
            let open = try await connection.query("SELECT COUNT(*) FROM sso_flows", []).first?.integer(0) ?? 0
            guard open < limit else { return false }
            try await connection.execute(
                """
                INSERT INTO sso_flows (state_hash, nonce, code_challenge, redirect_uri, created_at, expires_at) \
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                [
                    .blob(flow.stateHash), .text(flow.nonce), .text(flow.codeChallenge), .text(flow.redirectURI),
                    .integer(flow.createdAt.millis), .integer(flow.expiresAt.millis),
                ])
            return true
        }
    }

    /// Deletes the started sign-ons that expired (the sweeper's round).
    public func deleteSSOFlows(expiredBefore now: Date) async throws {
        try await writeKeepingCaches { connection in
            try await connection.execute("DELETE FROM sso_flows WHERE expires_at < ?", [.integer(now.millis)])
        }
    }

    /// Takes a started sign-on by the hash of its state: once only, and
    /// only before it expires (nil otherwise).
    public func takeSSOFlow(stateHash: [UInt8], now: Date) async throws -> SSOFlowRecord? {
        try await writeKeepingCaches { connection in
            let rows = try await connection.query(
                """
                DELETE FROM sso_flows WHERE state_hash = ? \
                RETURNING state_hash, nonce, code_challenge, redirect_uri, created_at, expires_at
                """, [.blob(stateHash)])
            guard let row = rows.first else { return nil }
            let flow = SSOFlowRecord(
                stateHash: try row.blob(0), nonce: try row.text(1), codeChallenge: try row.text(2), redirectURI: try row.text(3),
                createdAt: Date(millis: try row.integer(4)), expiresAt: Date(millis: try row.integer(5)))
            return flow.expiresAt >= now ? flow : nil
        }
    }

    /// Whether an account of this name was deleted (and not created again
    /// since by an administrator or the directory).
    public func wasDeleted(_ name: UserName) async throws -> Bool {
        try await database.read { connection in
            try await !connection.query("SELECT user_name FROM deleted_accounts WHERE user_name = ?", [.text(name.value)]).isEmpty
        }
    }

    /// The provider subject an account is bound to, if it signed in with SSO.
    public func ssoSubject(of name: UserName) async throws -> String? {
        try await database.read { connection in
            try await connection.query("SELECT sso_subject FROM users WHERE name = ?", [.text(name.value)]).first?.optionalText(0)
        }
    }

    /// The account bound to a provider subject, if any.
    public func user(ssoSubject subject: String) async throws -> UserRecord? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT name, password_hash, security_group, suspended, created_at FROM users WHERE sso_subject = ?", [.text(subject)])
            return try rows.first.map(Self.userRecord)
        }
    }

    /// Binds an unbound account to a provider subject, in one guarded
    /// statement with its audit entry: false when the account is bound
    /// already (to any subject) or does not exist; ``StoreError/conflict(_:)``
    /// when another account holds the subject.
    public func bindSSOSubject(of name: UserName, to subject: String, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE users SET sso_subject = ? WHERE name = ? AND sso_subject IS NULL RETURNING name",
                [.text(subject), .text(name.value)])
            if !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }

    /// Sets or clears an account's provider subject (nil: unbinds it, with
    /// an audit entry). False when there is no such user.
    public func setSSOSubject(of name: UserName, to subject: String?, audit: AuditDraft? = nil) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE users SET sso_subject = ? WHERE name = ? RETURNING name", [subject.map { .text($0) } ?? .null, .text(name.value)])
            if let audit, !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }

    /// The `externalId` the directory gave an account over SCIM; nil when
    /// it gave none, or when there is no such user.
    public func scimExternalID(user: UserName) async throws -> String? {
        try await database.read { connection in
            try await connection.query("SELECT scim_external_id FROM users WHERE name = ?", [.text(user.value)]).first?.optionalText(0)
        }
    }

    /// Sets (nil: clears) an account's `externalId`; nothing when there is no such user.
    public func setSCIMExternalID(user: UserName, to externalID: String?) async throws {
        try await write { connection in
            try await connection.execute(
                "UPDATE users SET scim_external_id = ? WHERE name = ?", [externalID.map { .text($0) } ?? .null, .text(user.value)])
        }
    }

    /// The `externalId` the directory gave a security group over SCIM; nil
    /// when it gave none, or when there is no such group.
    public func scimExternalID(group: SecurityGroupName) async throws -> String? {
        try await database.read { connection -> String? in
            let rows = try await connection.query("SELECT scim_external_id FROM security_groups WHERE name = ?", [.text(group.value)])
            return try rows.first?.optionalText(0)
        }
    }

    /// Sets (nil: clears) a security group's `externalId`; nothing when there is no such group.
    public func setSCIMExternalID(group: SecurityGroupName, to externalID: String?) async throws {
        try await write { connection in
            try await connection.execute(
                "UPDATE security_groups SET scim_external_id = ? WHERE name = ?",
                [externalID.map { .text($0) } ?? .null, .text(group.value)])
        }
    }

    public func createSCIMToken(id: String, tokenHash: [UInt8], createdAt: Date, audit: AuditDraft) async throws {
        try await write { connection in
            try await connection.execute(
                "INSERT INTO scim_tokens (id, token_hash, created_at) VALUES (?, ?, ?)",
                [.text(id), .blob(tokenHash), .integer(createdAt.millis)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    /// The directory's tokens: id and creation time (never the hashes).
    public func scimTokens() async throws -> [(id: String, createdAt: Date)] {
        try await database.read { connection in
            try await connection.query("SELECT id, created_at FROM scim_tokens ORDER BY created_at, id", []).map {
                (try $0.text(0), Date(millis: try $0.integer(1)))
            }
        }
    }

    /// Whether a token with this hash exists.
    public func scimTokenExists(hash: [UInt8]) async throws -> Bool {
        try await database.read { connection in
            try await !connection.query("SELECT id FROM scim_tokens WHERE token_hash = ?", [.blob(hash)]).isEmpty
        }
    }

    /// Revokes a token; false when there is none with this id.
    public func revokeSCIMToken(id: String, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query("DELETE FROM scim_tokens WHERE id = ? RETURNING id", [.text(id)])
            if !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }
}
