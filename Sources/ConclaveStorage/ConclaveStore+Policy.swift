import ConclaveProtocol
import Foundation

/// An administrator's action, to append to the audit log in the same
/// transaction as the change it records.
public struct AuditDraft: Sendable {
    public var actor: String
    public var action: String
    public var target: String
    public var before: String?
    public var after: String?
    public var at: Date
    /// Signs the finished entry (the network key, held by the server).
    public var sign: @Sendable (AuditEntry) throws -> Base64Bytes

    public init(
        actor: String, action: String, target: String, before: String?, after: String?, at: Date,
        sign: @escaping @Sendable (AuditEntry) throws -> Base64Bytes
    ) {
        self.actor = actor
        self.action = action
        self.target = target
        self.before = before
        self.after = after
        self.at = at
        self.sign = sign
    }
}

public enum GroupDeletion: Sendable, Hashable {
    case deleted
    case notFound
    /// Accounts are in the group: it stays.
    case inUse(accounts: Int)
}

// MARK: - Security groups

extension ConclaveStore {
    public func securityGroups() async throws -> [(policy: SecurityGroupPolicy, members: Int)] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT g.policy, (SELECT COUNT(*) FROM users u WHERE u.security_group = g.name) FROM security_groups g ORDER BY g.name", []
            )
            return try rows.map { (try Self.policy($0), Int(try $0.integer(1))) }
        }
    }

    public func securityGroup(_ name: SecurityGroupName) async throws -> SecurityGroupPolicy? {
        try await database.read { connection in
            try await Self.securityGroup(connection, name)
        }
    }

    /// The security group of each of these users that exists.
    public func policies(of users: [UserName]) async throws -> [UserName: SecurityGroupPolicy] {
        guard !users.isEmpty else { return [:] }
        return try await database.read { connection in
            let marks = Array(repeating: "?", count: users.count).joined(separator: ", ")
            let rows = try await connection.query(
                "SELECT u.name, g.policy FROM users u JOIN security_groups g ON g.name = u.security_group WHERE u.name IN (\(marks))",
                users.map { .text($0.value) })
            var result: [UserName: SecurityGroupPolicy] = [:]
            for row in rows {
                guard let name = UserName(try row.text(0)) else { throw StoreError.corrupt("users.name") }
                result[name] = try Self.policy(SQLRow(Array(row.values[1...])))
            }
            return result
        }
    }

    /// The accounts in a security group.
    public func users(inGroup group: SecurityGroupName) async throws -> [UserName] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT name FROM users WHERE security_group = ? ORDER BY name", [.text(group.value)])
            return try rows.map {
                guard let name = UserName(try $0.text(0)) else { throw StoreError.corrupt("users.name") }
                return name
            }
        }
    }

    /// Throws ``StoreError/conflict(_:)`` when the name is taken.
    public func createSecurityGroup(_ policy: SecurityGroupPolicy, at date: Date, audit: AuditDraft) async throws {
        try await write { connection in
            try await connection.execute(
                "INSERT INTO security_groups (name, policy, created_at) VALUES (?, ?, ?)",
                [.text(policy.name.value), .text(try Self.json(policy)), .integer(date.millis)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    /// Replaces a group's policy; false when there is no such group.
    public func updateSecurityGroup(_ policy: SecurityGroupPolicy, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE security_groups SET policy = ? WHERE name = ? RETURNING name",
                [.text(try Self.json(policy)), .text(policy.name.value)])
            guard !rows.isEmpty else { return false }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return true
        }
    }

    /// Deletes a group that no account is in.
    public func deleteSecurityGroup(_ name: SecurityGroupName, audit: AuditDraft) async throws -> GroupDeletion {
        try await write { connection in
            let rows = try await connection.query("SELECT name FROM security_groups WHERE name = ?\(forUpdate)", [.text(name.value)])
            guard !rows.isEmpty else { return .notFound }
            let members = try await connection.query("SELECT COUNT(*) FROM users WHERE security_group = ?", [.text(name.value)])
            let count = try members.first?.integer(0) ?? 0
            guard count == 0 else { return .inUse(accounts: Int(count)) }
            try await connection.execute("DELETE FROM security_groups WHERE name = ?", [.text(name.value)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return .deleted
        }
    }

    /// Moves a user to another group. Throws ``StoreError/notFound(_:)``
    /// when the user or the group does not exist.
    public func setSecurityGroup(of user: UserName, to group: SecurityGroupName, audit: AuditDraft) async throws {
        try await write { connection in
            guard try await Self.securityGroup(connection, group, lock: forUpdate) != nil else {
                throw StoreError.notFound("security group")
            }
            let rows = try await connection.query(
                "UPDATE users SET security_group = ? WHERE name = ? RETURNING name", [.text(group.value), .text(user.value)])
            guard !rows.isEmpty else { throw StoreError.notFound("user") }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    static func securityGroup(_ connection: any SQLConnection, _ name: SecurityGroupName, lock: String = "") async throws
        -> SecurityGroupPolicy?
    {
        let rows = try await connection.query("SELECT policy FROM security_groups WHERE name = ?\(lock)", [.text(name.value)])
        return try rows.first.map(Self.policy)
    }

    static func policy(_ row: SQLRow) throws -> SecurityGroupPolicy {
        do {
            return try ConclaveJSON.decoder().decode(SecurityGroupPolicy.self, from: Data(try row.text(0).utf8))
        } catch is DecodingError {
            throw StoreError.corrupt("security_groups.policy")
        }
    }

    static func json(_ value: some Encodable) throws -> String {
        String(decoding: try ConclaveJSON.encoder().encode(value), as: UTF8.self)
    }
}

// MARK: - Audit log

extension ConclaveStore {
    /// Appends an entry after the chain's head. The head row is locked
    /// first, so concurrent appends take turns and the chain never forks.
    static func appendAudit(_ connection: any SQLConnection, _ draft: AuditDraft, lock: String) async throws {
        let heads = try await connection.query("SELECT seq, hash FROM audit_head WHERE id = 1\(lock)", [])
        guard let head = heads.first else { throw StoreError.corrupt("audit_head") }
        var entry = AuditEntry(
            seq: try head.integer(0) + 1, at: Date(millis: draft.at.millis), actor: draft.actor, action: draft.action,
            target: draft.target, before: draft.before, after: draft.after, prevHash: try head.text(1), hash: "", signature: Base64Bytes([])
        )
        entry.hash = entry.computedHash
        entry.signature = try draft.sign(entry)
        try await connection.execute(
            """
            INSERT INTO audit_log (seq, at, actor, action, target, before, after, prev_hash, hash, signature) \
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(entry.seq), .integer(entry.at.millis), .text(entry.actor), .text(entry.action), .text(entry.target),
                entry.before.map(SQLValue.text) ?? .null, entry.after.map(SQLValue.text) ?? .null, .text(entry.prevHash),
                .text(entry.hash), .blob(entry.signature.bytes),
            ])
        try await connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", [.integer(entry.seq), .text(entry.hash)])
    }

    /// Appends an entry on its own (an action with no row of its own to change).
    public func appendAudit(_ draft: AuditDraft) async throws {
        try await write { connection in try await Self.appendAudit(connection, draft, lock: forUpdate) }
    }

    /// The log, oldest first; with `since`, only entries at or after it.
    public func auditLog(since: Date? = nil) async throws -> [AuditEntry] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT seq, at, actor, action, target, before, after, prev_hash, hash, signature FROM audit_log WHERE at >= ? ORDER BY seq",
                [.integer(since?.millis ?? Int64.min)])
            return try rows.map { row in
                AuditEntry(
                    seq: try row.integer(0), at: Date(millis: try row.integer(1)), actor: try row.text(2), action: try row.text(3),
                    target: try row.text(4), before: try row.optionalText(5), after: try row.optionalText(6), prevHash: try row.text(7),
                    hash: try row.text(8), signature: Base64Bytes(try row.blob(9)))
            }
        }
    }
}
