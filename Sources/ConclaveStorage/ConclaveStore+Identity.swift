import ConclaveProtocol
import Foundation

/// Users' identity keys and the approval of their devices (docs/client.md,
/// "Users vouch for their devices"). The server keeps public keys and
/// signatures it cannot make; it checks them so that its own records are
/// consistent, but members' clients check them again.
extension ConclaveStore {
    /// A user's identity key (public half) and when it was published.
    public func identity(of user: UserName) async throws -> (key: [UInt8], createdAt: Date)? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT public_key, created_at FROM user_identities WHERE user_name = ?", [.text(user.value)])
            guard let row = rows.first else { return nil }
            return (try row.blob(0), Date(millis: try row.integer(1)))
        }
    }

    /// Publishes a user's identity key with the approval of the device that
    /// made it, which is approved from then on. False when the user has an
    /// identity already (the first one wins).
    public func publishIdentity(
        of user: UserName, key: [UInt8], device: DeviceID, approval: [UInt8], at time: Date, audit: AuditDraft? = nil
    ) async throws -> Bool {
        try await write { connection in
            let inserted = try await connection.query(
                "INSERT INTO user_identities (user_name, public_key, created_at) VALUES (?, ?, ?) ON CONFLICT (user_name) DO NOTHING RETURNING user_name",
                [.text(user.value), .blob(key), .integer(time.millis)])
            guard !inserted.isEmpty else { return false }
            try await connection.execute(
                "UPDATE devices SET pending = 0, approval = ?, transfer_key = NULL WHERE id = ?", [.blob(approval), .text(device.value)])
            try await Self.recordTransparency(connection, user: user, at: time, lock: forUpdate)
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return true
        }
    }

    /// Approves a pending device: its approval and the identity key sealed
    /// for it are kept for it to fetch. False when it is not pending.
    public func approveDevice(
        _ device: DeviceID, of user: UserName, approval: [UInt8], sealedIdentity: [UInt8], audit: AuditDraft? = nil
    ) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE devices SET pending = 0, approval = ?, sealed_identity = ? WHERE id = ? AND user_name = ? AND pending = 1 RETURNING id",
                [.blob(approval), .blob(sealedIdentity), .text(device.value), .text(user.value)])
            guard !rows.isEmpty else { return false }
            try await Self.recordTransparency(connection, user: user, at: audit?.at ?? Date(), lock: forUpdate)
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return true
        }
    }

    /// Forgets a user's identity key when no approved device of the user is
    /// left to hold it: the next device to sign in makes a new one.
    public func dropIdentityIfOrphaned(of user: UserName) async throws {
        try await write { connection in
            try await connection.execute(
                """
                DELETE FROM user_identities WHERE user_name = ? \
                AND NOT EXISTS (SELECT 1 FROM devices WHERE user_name = ? AND pending = 0)
                """, [.text(user.value), .text(user.value)])
            try await Self.recordTransparency(connection, user: user, at: Date(), lock: forUpdate)
        }
    }
}
