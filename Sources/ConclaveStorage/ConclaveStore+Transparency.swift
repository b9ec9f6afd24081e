import ConclaveProtocol
import Foundation

/// One entry of the key-transparency log as stored, by position.
public struct StoredTransparencyEntry: Sendable, Hashable {
    public var position: UInt64
    public var entry: TransparencyEntry
}

/// A peer's head this network witnessed, or why it could not.
public struct StoredWitnessed: Sendable, Hashable {
    public var peer: NetworkDomain
    public var head: SignedTreeHead?
    public var checkedAt: Date?
    public var problem: String?
}

/// The key-transparency log (docs/transparency.md): an entry for a user
/// whenever their identity key or approved device set changes, appended in
/// the same transaction as the change; peers' cosignatures of this
/// network's heads; and what this network witnessed of its peers.
extension ConclaveStore {
    /// Appends `user`'s state (identity key and approved devices) to the log
    /// when it differs from their newest entry. Runs inside the transaction
    /// that changed it; the lock on `transparency_state` orders appends.
    static func recordTransparency(_ connection: any SQLConnection, user: UserName, at time: Date, lock: String) async throws {
        let states = try await connection.query("SELECT size, secret FROM transparency_state WHERE id = 1\(lock)", [])
        guard let state = states.first else { throw StoreError.corrupt("transparency_state") }
        let size = try state.integer(0)
        let identity = try await connection.query("SELECT public_key FROM user_identities WHERE user_name = ?", [.text(user.value)])
        let key = try identity.first?.blob(0) ?? []
        let devices = try await connection.query(
            "SELECT id, signature_key FROM devices WHERE user_name = ? AND pending = 0", [.text(user.value)])
        let commitment = TransparencyEntry.deviceCommitment(
            try devices.map { row in
                guard let id = DeviceID(try row.text(0)) else { throw StoreError.corrupt("devices.id") }
                return (id, try row.blob(1))
            })
        let last = try await connection.query(
            "SELECT entry FROM transparency_log WHERE user_name = ? ORDER BY position DESC LIMIT 1", [.text(user.value)])
        let previous = try last.first.map { row in
            guard let entry = try? TransparencyEntry(tlsSerialized: try row.blob(0)) else {
                throw StoreError.corrupt("transparency_log.entry")
            }
            return entry
        }
        if let previous, previous.identityKey == key, previous.devices == commitment { return }
        if previous == nil, key.isEmpty { return }  // nothing was ever said about this user
        let entry = TransparencyEntry(
            index: TransparencyIndex(secret: try state.blob(1)).index(of: user), identityKey: key, devices: commitment,
            version: (previous?.version ?? 0) + 1, time: UInt64(max(0, time.timeIntervalSince1970)))
        try await connection.execute(
            "INSERT INTO transparency_log (position, user_name, entry) VALUES (?, ?, ?)",
            [.integer(size), .text(user.value), .blob(entry.tlsSerialized)])
        try await connection.execute("UPDATE transparency_state SET size = ? WHERE id = 1", [.integer(size + 1)])
    }

    /// Brings the log up to the database at start: every user whose
    /// identity key or approved devices differ from their newest entry
    /// (accounts made before the log existed; a database changed by hand
    /// or restored from a backup) gets an entry, so that what the server
    /// serves is what the log says, and a change nobody published is there
    /// for the user's own devices to see. Returns the entries appended.
    @discardableResult
    public func reconcileTransparency(at time: Date) async throws -> Int {
        let names = try await database.read { connection in
            try await connection.query(
                """
                SELECT user_name FROM user_identities UNION SELECT user_name FROM transparency_log
                UNION SELECT user_name FROM devices WHERE pending = 0 ORDER BY user_name
                """, []
            ).map { row in
                guard let name = UserName(try row.text(0)) else { throw StoreError.corrupt("user_identities.user_name") }
                return name
            }
        }
        var appended = 0
        for chunk in stride(from: 0, to: names.count, by: 1000).map({ Array(names[$0..<min($0 + 1000, names.count)]) }) {
            appended += try await write { connection in
                let before = try await connection.query("SELECT size FROM transparency_state WHERE id = 1\(forUpdate)", [])
                for name in chunk { try await Self.recordTransparency(connection, user: name, at: time, lock: "") }
                let after = try await connection.query("SELECT size FROM transparency_state WHERE id = 1", [])
                return Int(try (after.first?.integer(0) ?? 0) - (before.first?.integer(0) ?? 0))
            }
        }
        return appended
    }

    /// The entries from `start` on, at most `limit`.
    public func transparencyEntries(from start: UInt64, limit: Int) async throws -> [StoredTransparencyEntry] {
        try await database.read { connection in
            try await connection.query(
                "SELECT position, entry FROM transparency_log WHERE position >= ? ORDER BY position LIMIT ?",
                [.integer(Int64(clamping: start)), .integer(Int64(limit))]
            ).map(Self.transparencyEntry)
        }
    }

    /// A user's newest entry.
    public func newestTransparencyEntry(of user: UserName) async throws -> StoredTransparencyEntry? {
        try await database.read { connection in
            try await connection.query(
                "SELECT position, entry FROM transparency_log WHERE user_name = ? ORDER BY position DESC LIMIT 1", [.text(user.value)]
            ).first.map(Self.transparencyEntry)
        }
    }

    static func transparencyEntry(_ row: SQLRow) throws -> StoredTransparencyEntry {
        guard let entry = try? TransparencyEntry(tlsSerialized: try row.blob(1)) else { throw StoreError.corrupt("transparency_log.entry") }
        return StoredTransparencyEntry(position: UInt64(max(0, try row.integer(0))), entry: entry)
    }

    /// The cosignatures clients require of a head (0: none).
    public func transparencyQuorum() async throws -> Int {
        try await database.read { connection in
            guard let row = try await connection.query("SELECT quorum FROM transparency_state WHERE id = 1", []).first else {
                throw StoreError.corrupt("transparency_state")
            }
            return Int(try row.integer(0))
        }
    }

    public func setTransparencyQuorum(_ quorum: Int, audit: AuditDraft) async throws {
        try await write { connection in
            try await connection.execute("UPDATE transparency_state SET quorum = ? WHERE id = 1", [.integer(Int64(quorum))])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    /// Keeps a peer's cosignature of one of this network's heads.
    public func addCosignature(_ cosignature: WitnessCosignature, of head: TreeHead) async throws {
        try await write { connection in
            try await connection.execute(
                """
                INSERT INTO transparency_cosignatures (size, witness, head, signature, cosigned_at) VALUES (?, ?, ?, ?, ?) \
                ON CONFLICT (size, witness) DO UPDATE SET head = excluded.head, signature = excluded.signature, \
                cosigned_at = excluded.cosigned_at
                """,
                [
                    .integer(Int64(clamping: head.size)), .text(cosignature.witness.value), .blob(head.tlsSerialized),
                    .blob(cosignature.signature.bytes), .integer(Int64(clamping: cosignature.time)),
                ])
        }
    }

    /// The cosignatures of the newest head of at least `minimumSize` that
    /// has at least `quorum` of them signed at `since` or later (the newest
    /// cosigned head when `minimumSize` is 0).
    public func cosignedHead(atLeast minimumSize: UInt64, quorum: Int, cosignedSince since: Date) async throws -> (
        TreeHead, [WitnessCosignature]
    )? {
        try await database.read { connection in
            let sizes = try await connection.query(
                """
                SELECT size FROM transparency_cosignatures WHERE size >= ? AND cosigned_at >= ? GROUP BY size HAVING count(*) >= ? \
                ORDER BY size DESC LIMIT 1
                """, [.integer(Int64(clamping: minimumSize)), .integer(max(0, since.millis)), .integer(Int64(max(1, quorum)))])
            guard let size = try sizes.first?.integer(0) else { return nil }
            let rows = try await connection.query(
                "SELECT witness, head, signature, cosigned_at FROM transparency_cosignatures WHERE size = ? ORDER BY witness",
                [.integer(size)])
            var head: TreeHead?
            var cosignatures: [WitnessCosignature] = []
            for row in rows {
                guard let witness = NetworkDomain(try row.text(0)), let stored = try? TreeHead(tlsSerialized: try row.blob(1)) else {
                    throw StoreError.corrupt("transparency_cosignatures")
                }
                // Cosignatures of one size for another root (the log was changed under them) do not count.
                if let head, head != stored { continue }
                head = stored
                cosignatures.append(
                    WitnessCosignature(
                        witness: witness, time: UInt64(clamping: try row.integer(3)), signature: Base64Bytes(try row.blob(2))))
            }
            return head.map { ($0, cosignatures) }
        }
    }

    /// The cosignatures kept for a head of this size and root.
    public func cosignatures(of head: TreeHead) async throws -> [WitnessCosignature] {
        try await database.read { connection in
            try await connection.query(
                "SELECT witness, signature, cosigned_at FROM transparency_cosignatures WHERE size = ? AND head = ? ORDER BY witness",
                [.integer(Int64(clamping: head.size)), .blob(head.tlsSerialized)]
            ).map { row in
                guard let witness = NetworkDomain(try row.text(0)) else { throw StoreError.corrupt("transparency_cosignatures.witness") }
                return WitnessCosignature(
                    witness: witness, time: UInt64(clamping: try row.integer(2)), signature: Base64Bytes(try row.blob(1)))
            }
        }
    }

    // MARK: Witnessing peers

    public func witnessed(_ peer: NetworkDomain) async throws -> StoredWitnessed? {
        try await database.read { connection in
            try await connection.query(
                "SELECT peer, head, signature, checked_at, problem FROM transparency_witnessed WHERE peer = ?", [.text(peer.value)]
            ).first.map(Self.witnessedRecord)
        }
    }

    public func allWitnessed() async throws -> [StoredWitnessed] {
        try await database.read { connection in
            try await connection.query(
                "SELECT peer, head, signature, checked_at, problem FROM transparency_witnessed ORDER BY peer", []
            ).map(Self.witnessedRecord)
        }
    }

    static func witnessedRecord(_ row: SQLRow) throws -> StoredWitnessed {
        guard let peer = NetworkDomain(try row.text(0)) else { throw StoreError.corrupt("transparency_witnessed.peer") }
        var head: SignedTreeHead?
        if let bytes = try row.optionalBlob(1), let signature = try row.optionalBlob(2) {
            guard let decoded = try? TreeHead(tlsSerialized: bytes) else { throw StoreError.corrupt("transparency_witnessed.head") }
            head = SignedTreeHead(head: decoded, signature: signature)
        }
        return StoredWitnessed(
            peer: peer, head: head, checkedAt: try row.optionalInteger(3).map(Date.init(millis:)), problem: try row.optionalText(4))
    }

    /// Records a peer's head as checked (it extends every head seen before),
    /// or, with `head` nil, why the last check failed (the last good head stays).
    public func recordWitnessed(_ peer: NetworkDomain, head: SignedTreeHead?, problem: String?, at time: Date) async throws {
        try await write { connection in
            if let head {
                try await connection.execute(
                    """
                    INSERT INTO transparency_witnessed (peer, head, signature, checked_at, problem) VALUES (?, ?, ?, ?, NULL) \
                    ON CONFLICT (peer) DO UPDATE SET head = excluded.head, signature = excluded.signature, \
                    checked_at = excluded.checked_at, problem = NULL
                    """, [.text(peer.value), .blob(head.head.tlsSerialized), .blob(head.signature), .integer(time.millis)])
            } else {
                try await connection.execute(
                    """
                    INSERT INTO transparency_witnessed (peer, checked_at, problem) VALUES (?, ?, ?) \
                    ON CONFLICT (peer) DO UPDATE SET checked_at = excluded.checked_at, problem = excluded.problem
                    """, [.text(peer.value), .integer(time.millis), .text(problem ?? "")])
            }
        }
    }

    public func addEvidence(_ evidence: TransparencyEvidence) async throws {
        let text = String(decoding: try ConclaveJSON.encoder().encode(evidence), as: UTF8.self)
        try await write { connection in
            try await connection.execute(
                "INSERT INTO transparency_evidence (peer, evidence, found_at) VALUES (?, ?, ?)",
                [.text(evidence.network.value), .text(text), .integer(evidence.foundAt.millis)])
        }
    }

    public func evidence() async throws -> [TransparencyEvidence] {
        try await database.read { connection in
            try await connection.query("SELECT evidence FROM transparency_evidence ORDER BY id", []).map { row in
                guard let evidence = try? ConclaveJSON.decoder().decode(TransparencyEvidence.self, from: Data(try row.text(0).utf8)) else {
                    throw StoreError.corrupt("transparency_evidence")
                }
                return evidence
            }
        }
    }
}
