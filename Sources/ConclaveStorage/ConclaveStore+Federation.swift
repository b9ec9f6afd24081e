import ConclaveProtocol
import Foundation

/// A pinned peer with the key learned from it, if any yet.
public struct StoredPeer: Sendable, Hashable {
    public var peer: FederationPeer
    /// The raw network key, once seen and checked against the fingerprint.
    public var signingKey: [UInt8]?

    public init(peer: FederationPeer, signingKey: [UInt8]?) {
        self.peer = peer
        self.signingKey = signingKey
    }
}

extension ConclaveStore {
    public func federationMode() async throws -> FederationMode {
        try await database.read { connection in
            let rows = try await connection.query("SELECT value FROM network_settings WHERE name = 'federation_mode'", [])
            guard let text = try rows.first?.text(0), let mode = FederationMode(rawValue: text) else {
                throw StoreError.corrupt("network_settings.federation_mode")
            }
            return mode
        }
    }

    public func setFederationMode(_ mode: FederationMode, audit: AuditDraft) async throws {
        try await database.transaction { connection in
            try await connection.execute(
                "UPDATE network_settings SET value = ? WHERE name = 'federation_mode'", [.text(mode.rawValue)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    public func peers() async throws -> [StoredPeer] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT domain, url, key_fingerprint, pinned_by, added_at, signing_key FROM federation_peers ORDER BY domain", [])
            return try rows.map(Self.storedPeer)
        }
    }

    public func peer(_ domain: NetworkDomain) async throws -> StoredPeer? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT domain, url, key_fingerprint, pinned_by, added_at, signing_key FROM federation_peers WHERE domain = ?",
                [.text(domain.value)])
            return try rows.first.map(Self.storedPeer)
        }
    }

    /// Pins a peer. Throws ``StoreError/conflict(_:)`` when it is pinned already.
    public func addPeer(_ peer: StoredPeer, audit: AuditDraft?) async throws {
        try await database.transaction { connection in
            try await connection.execute(
                "INSERT INTO federation_peers (domain, url, key_fingerprint, signing_key, pinned_by, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .text(peer.peer.domain.value), .text(peer.peer.url), .text(peer.peer.keyFingerprint),
                    peer.signingKey.map(SQLValue.blob) ?? .null, .text(peer.peer.pinnedBy), .integer(peer.peer.addedAt.millis),
                ])
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
        }
    }

    /// Unpins a peer; false when it was not pinned.
    public func removePeer(_ domain: NetworkDomain, audit: AuditDraft) async throws -> Bool {
        try await database.transaction { connection in
            let rows = try await connection.query("DELETE FROM federation_peers WHERE domain = ? RETURNING domain", [.text(domain.value)])
            guard !rows.isEmpty else { return false }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return true
        }
    }

    /// Records a peer's key once it was checked against the pinned fingerprint.
    public func setPeerKey(_ domain: NetworkDomain, _ key: [UInt8]) async throws {
        try await database.transaction { connection in
            try await connection.execute(
                "UPDATE federation_peers SET signing_key = ? WHERE domain = ? AND signing_key IS NULL", [.blob(key), .text(domain.value)])
        }
    }

    /// Records a request's nonce until it expires; false when the origin
    /// used it before (a replay).
    public func useNonce(origin: NetworkDomain, nonce: String, expiresAt: Date) async throws -> Bool {
        try await database.transaction { connection in
            let rows = try await connection.query(
                "INSERT INTO federation_nonces (origin, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING nonce",
                [.text(origin.value), .text(nonce), .integer(expiresAt.millis)])
            return !rows.isEmpty
        }
    }

    static func storedPeer(_ row: SQLRow) throws -> StoredPeer {
        guard let domain = NetworkDomain(try row.text(0)) else { throw StoreError.corrupt("federation_peers.domain") }
        return StoredPeer(
            peer: FederationPeer(
                domain: domain, url: try row.text(1), keyFingerprint: try row.text(2), pinnedBy: try row.text(3),
                addedAt: Date(millis: try row.integer(4))),
            signingKey: try row.optionalBlob(5))
    }
}
