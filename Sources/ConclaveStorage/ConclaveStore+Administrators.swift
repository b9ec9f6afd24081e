import ConclaveProtocol
import Foundation

/// A named administrator as stored: the password as its scrypt hash, the
/// authenticator (TOTP) secret when one is set up, and the last time step
/// a code was accepted for (a code is accepted once).
public struct AdministratorRecord: Sendable, Hashable {
    public var name: AdminName
    public var role: AdminRole
    public var passwordHash: String
    public var totpSecret: [UInt8]?
    public var totpLastStep: Int64
    public var createdAt: Date

    public init(name: AdminName, role: AdminRole, passwordHash: String, totpSecret: [UInt8]?, totpLastStep: Int64 = 0, createdAt: Date) {
        self.name = name
        self.role = role
        self.passwordHash = passwordHash
        self.totpSecret = totpSecret
        self.totpLastStep = totpLastStep
        self.createdAt = createdAt
    }
}

// MARK: - Administrators, their console sessions, API tokens

extension ConclaveStore {
    private static let administratorColumns = "name, role, password_hash, totp_secret, totp_last_step, created_at"

    private static func administrator(_ row: SQLRow) throws -> AdministratorRecord {
        guard let name = AdminName(try row.text(0)), let role = AdminRole(rawValue: try row.text(1)) else {
            throw StoreError.corrupt("administrators row")
        }
        return AdministratorRecord(
            name: name, role: role, passwordHash: try row.text(2), totpSecret: try row.optionalBlob(3), totpLastStep: try row.integer(4),
            createdAt: Date(millis: try row.integer(5)))
    }

    /// Adds an administrator; `StoreError.conflict` when the name is taken.
    public func createAdministrator(_ record: AdministratorRecord, audit: AuditDraft) async throws {
        try await write { connection in
            guard try await connection.query("SELECT name FROM administrators WHERE name = ?", [.text(record.name.value)]).isEmpty else {
                throw StoreError.conflict("an administrator with this name exists")
            }
            try await connection.execute(
                "INSERT INTO administrators (\(Self.administratorColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .text(record.name.value), .text(record.role.rawValue), .text(record.passwordHash),
                    record.totpSecret.map { .blob($0) } ?? .null, .integer(record.totpLastStep), .integer(record.createdAt.millis),
                ])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    public func administrators() async throws -> [AdministratorRecord] {
        try await database.read { connection in
            try await connection.query("SELECT \(Self.administratorColumns) FROM administrators ORDER BY name", []).map(Self.administrator)
        }
    }

    public func administrator(named name: AdminName) async throws -> AdministratorRecord? {
        try await database.read { connection in
            try await connection.query("SELECT \(Self.administratorColumns) FROM administrators WHERE name = ?", [.text(name.value)])
                .first.map(Self.administrator)
        }
    }

    /// An administrator's authenticator as a change sets it.
    public enum AuthenticatorChange: Sendable {
        /// A new secret (its last used step starts again).
        case set([UInt8])
        case remove
    }

    /// Changes what is given of an administrator (and nothing else, so two
    /// changes at once do not undo each other); a new password or
    /// authenticator signs every console session of theirs out. False when
    /// there is no such administrator.
    public func updateAdministrator(
        _ name: AdminName, role: AdminRole?, passwordHash: String?, authenticator: AuthenticatorChange?, audit: AuditDraft
    ) async throws -> Bool {
        var sets: [String] = []
        var binds: [SQLValue] = []
        if let role {
            sets.append("role = ?")
            binds.append(.text(role.rawValue))
        }
        if let passwordHash {
            sets.append("password_hash = ?")
            binds.append(.text(passwordHash))
        }
        switch authenticator {
        case .set(let secret)?:
            sets.append("totp_secret = ?, totp_last_step = 0")
            binds.append(.blob(secret))
        case .remove?: sets.append("totp_secret = NULL")
        case nil: break
        }
        guard !sets.isEmpty else { return try await administrator(named: name) != nil }
        let endSessions = passwordHash != nil || authenticator != nil
        return try await write { [sets, binds] connection in
            let rows = try await connection.query(
                "UPDATE administrators SET \(sets.joined(separator: ", ")) WHERE name = ? RETURNING name", binds + [.text(name.value)])
            guard !rows.isEmpty else { return false }
            if endSessions { try await connection.execute("DELETE FROM admin_sessions WHERE admin_name = ?", [.text(name.value)]) }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return true
        }
    }

    /// Removes an administrator and their sessions; false when there is none.
    public func deleteAdministrator(_ name: AdminName, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            try await connection.execute("DELETE FROM admin_sessions WHERE admin_name = ?", [.text(name.value)])
            let rows = try await connection.query("DELETE FROM administrators WHERE name = ? RETURNING name", [.text(name.value)])
            if !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }

    /// Records that an authenticator code of `step` was used: true once per
    /// step and administrator, false for that step or an earlier one (a
    /// replayed code), also across server processes.
    public func useTOTPStep(of name: AdminName, step: Int64) async throws -> Bool {
        try await write { connection in
            try await !connection.query(
                "UPDATE administrators SET totp_last_step = ? WHERE name = ? AND totp_last_step < ? RETURNING name",
                [.integer(step), .text(name.value), .integer(step)]
            ).isEmpty
        }
    }

    /// Opens a console session for the administrator whose credentials
    /// were checked, with its audit entry, if their password hash and
    /// authenticator are still those (a change made while the sign-in was
    /// checked wins: false, no session). Forgets expired sessions.
    public func createAdminSession(
        tokenHash: [UInt8], checked: AdministratorRecord, csrf: String, createdAt: Date, expiresAt: Date, audit: AuditDraft
    ) async throws -> Bool {
        try await write { connection in
            try await connection.execute("DELETE FROM admin_sessions WHERE expires_at <= ?", [.integer(createdAt.millis)])
            let rows = try await connection.query(
                "SELECT password_hash, totp_secret FROM administrators WHERE name = ?\(forUpdate)", [.text(checked.name.value)])
            guard let row = rows.first, try row.text(0) == checked.passwordHash, try row.optionalBlob(1) == checked.totpSecret else {
                return false
            }
            try await connection.execute(
                "INSERT INTO admin_sessions (token_hash, admin_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                [.blob(tokenHash), .text(checked.name.value), .text(csrf), .integer(createdAt.millis), .integer(expiresAt.millis)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return true
        }
    }

    /// The administrator (as stored now: a changed role counts at once) and
    /// the CSRF token of a console session that has not expired.
    public func adminSession(tokenHash: [UInt8], now: Date) async throws -> (administrator: AdministratorRecord, csrf: String)? {
        try await database.read { connection in
            let columns = Self.administratorColumns.split(separator: ",").map { "a." + $0.trimmingCharacters(in: .whitespaces) }
            let rows = try await connection.query(
                """
                SELECT \(columns.joined(separator: ", ")), s.csrf FROM admin_sessions s JOIN administrators a ON a.name = s.admin_name \
                WHERE s.token_hash = ? AND s.expires_at > ?
                """,
                [.blob(tokenHash), .integer(now.millis)])
            guard let row = rows.first else { return nil }
            return (try Self.administrator(row), try row.text(6))
        }
    }

    public func deleteAdminSession(tokenHash: [UInt8]) async throws {
        try await write { connection in try await connection.execute("DELETE FROM admin_sessions WHERE token_hash = ?", [.blob(tokenHash)])
        }
    }

    /// Adds a named API token; `StoreError.conflict` when the name is taken.
    public func createAdminToken(_ info: AdminTokenInfo, tokenHash: [UInt8], audit: AuditDraft) async throws {
        try await write { connection in
            guard try await connection.query("SELECT name FROM admin_tokens WHERE name = ?", [.text(info.name.value)]).isEmpty else {
                throw StoreError.conflict("an API token with this name exists")
            }
            try await connection.execute(
                "INSERT INTO admin_tokens (name, role, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(info.name.value), .text(info.role.rawValue), .blob(tokenHash), .integer(info.createdAt.millis),
                    .text(info.createdBy),
                ])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    private static func adminToken(_ row: SQLRow) throws -> AdminTokenInfo {
        guard let name = AdminName(try row.text(0)), let role = AdminRole(rawValue: try row.text(1)) else {
            throw StoreError.corrupt("admin_tokens row")
        }
        return AdminTokenInfo(name: name, role: role, createdAt: Date(millis: try row.integer(2)), createdBy: try row.text(3))
    }

    /// The named API tokens (never their hashes).
    public func adminTokens() async throws -> [AdminTokenInfo] {
        try await database.read { connection in
            try await connection.query("SELECT name, role, created_at, created_by FROM admin_tokens ORDER BY name", []).map(Self.adminToken)
        }
    }

    /// The API token with this hash, if any.
    public func adminToken(hash: [UInt8]) async throws -> AdminTokenInfo? {
        try await database.read { connection in
            try await connection.query("SELECT name, role, created_at, created_by FROM admin_tokens WHERE token_hash = ?", [.blob(hash)])
                .first.map(Self.adminToken)
        }
    }

    /// Revokes an API token at once; false when there is none of this name.
    public func revokeAdminToken(_ name: AdminName, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query("DELETE FROM admin_tokens WHERE name = ? RETURNING name", [.text(name.value)])
            if !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }
}
