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
        try await write { connection in
            try await connection.execute(
                "UPDATE network_settings SET value = ? WHERE name = 'federation_mode'", [.text(mode.rawValue)])
            try await Self.appendAudit(connection, audit, lock: forUpdate)
        }
    }

    public func peers() async throws -> [StoredPeer] {
        try await database.read { connection in
            let rows = try await connection.query(
                """
                SELECT domain, url, key_fingerprint, pinned_by, added_at, signing_key FROM federation_peers \
                WHERE pinned_by <> 'removed' ORDER BY domain
                """, [])
            return try rows.map(Self.storedPeer)
        }
    }

    public func peer(_ domain: NetworkDomain) async throws -> StoredPeer? {
        try await database.read { connection in
            let rows = try await connection.query(
                """
                SELECT domain, url, key_fingerprint, pinned_by, added_at, signing_key FROM federation_peers \
                WHERE domain = ? AND pinned_by <> 'removed'
                """, [.text(domain.value)])
            return try rows.first.map(Self.storedPeer)
        }
    }

    /// Whether an administrator removed this network (it stays refused in
    /// open mode until it is added again).
    public func isRemovedPeer(_ domain: NetworkDomain) async throws -> Bool {
        try await database.read { connection in
            !(try await connection.query(
                "SELECT 1 FROM federation_peers WHERE domain = ? AND pinned_by = 'removed'", [.text(domain.value)]
            ).isEmpty)
        }
    }

    /// Pins a peer (replacing a removed one). Throws ``StoreError/conflict(_:)``
    /// when it is pinned already.
    public func addPeer(_ peer: StoredPeer, audit: AuditDraft?) async throws {
        try await write { connection in
            try await connection.execute(
                "DELETE FROM federation_peers WHERE domain = ? AND pinned_by = 'removed'", [.text(peer.peer.domain.value)])
            try await connection.execute(
                "INSERT INTO federation_peers (domain, url, key_fingerprint, signing_key, pinned_by, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .text(peer.peer.domain.value), .text(peer.peer.url), .text(peer.peer.keyFingerprint),
                    peer.signingKey.map(SQLValue.blob) ?? .null, .text(peer.peer.pinnedBy), .integer(peer.peer.addedAt.millis),
                ])
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
        }
    }

    /// Unpins a peer, remembering it as removed; false when it was not pinned.
    public func removePeer(_ domain: NetworkDomain, audit: AuditDraft) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE federation_peers SET pinned_by = 'removed', signing_key = NULL WHERE domain = ? AND pinned_by <> 'removed' RETURNING domain",
                [.text(domain.value)])
            guard !rows.isEmpty else { return false }
            try await Self.appendAudit(connection, audit, lock: forUpdate)
            return true
        }
    }

    /// Records a peer's key once it was checked against the pinned fingerprint.
    public func setPeerKey(_ domain: NetworkDomain, _ key: [UInt8]) async throws {
        try await write { connection in
            try await connection.execute(
                "UPDATE federation_peers SET signing_key = ? WHERE domain = ? AND signing_key IS NULL", [.blob(key), .text(domain.value)])
        }
    }

    /// Records a request's nonce until it expires; false when the origin
    /// used it before (a replay).
    public func useNonce(origin: NetworkDomain, nonce: String, expiresAt: Date) async throws -> Bool {
        try await write { connection in
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

// MARK: - Outbox and deliveries from other networks

/// A request waiting in the federation outbox.
public struct OutboxItem: Sendable, Hashable {
    public var id: Int64
    public var destination: NetworkDomain
    public var path: String
    public var body: [UInt8]
    public var attempts: Int
}

public enum RemoteDeliveryOutcome: Sendable, Hashable {
    case stored(notified: Set<DeviceID>)
    /// The same delivery id was stored before.
    case duplicate
    /// The conversation id is hosted here or by another network.
    case notTheHost
    /// Not known here, and not a Welcome: nothing to attach it to.
    case unknownConversation
}

/// What became of a request put in the outbox.
public enum EnqueueOutcome: Sendable, Hashable {
    case queued
    /// The same request (destination, path and body) waits already.
    case alreadyQueued
    /// The destination's queue is full (`outboxPerPeer`): not queued.
    case full
}

extension ConclaveStore {
    /// Queues a request unless the same one waits already or the
    /// destination already has `limit` requests waiting.
    static func enqueue(
        _ connection: any SQLConnection, destination: NetworkDomain, path: String, body: some Encodable, at date: Date, limit: Int
    ) async throws -> EnqueueOutcome {
        let bytes = Array(try ConclaveJSON.encoder().encode(body))
        let waiting =
            try await connection.query(
                "SELECT COUNT(*) FROM federation_outbox WHERE destination = ?", [.text(destination.value)]
            ).first?.integer(0) ?? 0
        guard waiting < limit else { return .full }
        let same = try await connection.query(
            "SELECT 1 FROM federation_outbox WHERE destination = ? AND path = ? AND body = ? LIMIT 1",
            [.text(destination.value), .text(path), .blob(bytes)])
        guard same.isEmpty else { return .alreadyQueued }
        try await connection.execute(
            "INSERT INTO federation_outbox (destination, path, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, 0)",
            [.text(destination.value), .text(path), .blob(bytes), .integer(date.millis)])
        return .queued
    }

    /// Queues a request to a peer, to be sent after those queued before it
    /// (unless the same one waits, or the peer's queue is full).
    @discardableResult
    public func enqueue(
        destination: NetworkDomain, path: String, body: some Encodable & Sendable, at date: Date, limit: Int = 10_000
    ) async throws -> EnqueueOutcome {
        try await write { connection in
            try await Self.enqueue(connection, destination: destination, path: path, body: body, at: date, limit: limit)
        }
    }

    /// Drops requests queued before `date` (the outbox's maximum age).
    /// Returns how many went.
    public func dropOutbox(queuedBefore date: Date) async throws -> Int {
        try await write { connection in
            try await connection.query("DELETE FROM federation_outbox WHERE created_at < ? RETURNING id", [.integer(date.millis)]).count
        }
    }

    /// The first waiting request of each destination whose time has come:
    /// a destination's requests go one at a time, in order.
    public func dueOutbox(now: Date, limit: Int = 100) async throws -> [OutboxItem] {
        try await database.read { connection in
            let rows = try await connection.query(
                """
                SELECT o.id, o.destination, o.path, o.body, o.attempts FROM federation_outbox o \
                WHERE o.id = (SELECT MIN(f.id) FROM federation_outbox f WHERE f.destination = o.destination) AND o.next_attempt_at <= ? \
                ORDER BY o.id LIMIT ?
                """, [.integer(now.millis), .integer(Int64(limit))])
            return try rows.map { row in
                guard let destination = NetworkDomain(try row.text(1)) else { throw StoreError.corrupt("federation_outbox.destination") }
                return OutboxItem(
                    id: try row.integer(0), destination: destination, path: try row.text(2), body: try row.blob(3),
                    attempts: Int(try row.integer(4)))
            }
        }
    }

    public func completeOutbox(_ id: Int64) async throws {
        try await write { connection in
            try await connection.execute("DELETE FROM federation_outbox WHERE id = ?", [.integer(id)])
        }
    }

    public func deferOutbox(_ id: Int64, attempts: Int, until date: Date) async throws {
        try await write { connection in
            try await connection.execute(
                "UPDATE federation_outbox SET attempts = ?, next_attempt_at = ? WHERE id = ?",
                [.integer(Int64(attempts)), .integer(date.millis), .integer(id)])
        }
    }

    /// Requests waiting in the federation outbox, by destination.
    public func outboxDepths() async throws -> [String: Int] {
        try await database.read { connection in
            var depths: [String: Int] = [:]
            for row in try await connection.query("SELECT destination, COUNT(*) FROM federation_outbox GROUP BY destination", []) {
                depths[try row.text(0)] = Int(try row.integer(1))
            }
            return depths
        }
    }

    public func outboxCount() async throws -> Int {
        try await database.read { connection in
            Int(try await connection.query("SELECT COUNT(*) FROM federation_outbox", []).first?.integer(0) ?? 0)
        }
    }

    /// At a member's network: records a conversation hosted by `origin`
    /// and puts the message into these local devices' inboxes, in one
    /// transaction. With `state` (a Welcome or handshake, read from the
    /// member-signed GroupInfo), the conversation's members and settings
    /// become those; without it (an application message) the conversation
    /// must be known already.
    public func acceptRemoteDelivery(
        _ delivery: FederatedDelivery, origin: NetworkDomain, localDomain: NetworkDomain, recipients: [DeviceID],
        state: RemoteConversationState?
    ) async throws -> RemoteDeliveryOutcome {
        try await write { connection in
            let id = SQLValue.blob(delivery.conversation.bytes)
            let existing = try await connection.query("SELECT host FROM conversations WHERE id = ?\(forUpdate)", [id])
            if let row = existing.first {
                guard try row.optionalText(0) == origin.value else { return .notTheHost }
            } else if delivery.kind != .welcome || recipients.isEmpty || state == nil {
                return .unknownConversation  // a conversation starts here only with a Welcome for one of its devices
            }
            let fresh = try await connection.query(
                "INSERT INTO federation_nonces (origin, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING nonce",
                [.text(origin.value), .text("delivery:" + delivery.deliveryId), .integer(delivery.sentAt.millis + 30 * 86_400_000)])
            guard !fresh.isEmpty else { return .duplicate }
            if existing.isEmpty {
                try await connection.execute(
                    """
                    INSERT INTO conversations (id, kind, name, direct_key, created_by, created_at, epoch, group_info, ratchet_tree, \
                    message_lifetime, burn_on_read, host) VALUES (?, ?, ?, NULL, ?, ?, 0, ?, ?, 0, 0, ?)
                    """,
                    [
                        id, .text(delivery.conversationKind.rawValue), delivery.name.map(SQLValue.text) ?? .null,
                        .text(delivery.createdBy.value), .integer(delivery.createdAt.millis), .blob([]), .blob([]), .text(origin.value),
                    ])
            }
            if let state { try await Self.recordRemoteState(connection, id, delivery.name, state, localDomain: localDomain) }
            let local = Delivery(
                kind: delivery.kind, data: delivery.message.bytes, messageID: delivery.messageId, sentAt: delivery.sentAt,
                expiresAt: delivery.expiresAt, recipients: recipients)
            return .stored(
                notified: try await Self.deliver(
                    connection, local, conversation: delivery.conversation, deviceLock: deviceLock, origin: clusterOrigin,
                    outboxLimit: outboxLimit))
        }
    }

    /// A peer-hosted conversation's members and settings, as its latest
    /// member-signed state has them.
    static func recordRemoteState(
        _ connection: any SQLConnection, _ id: SQLValue, _ name: String?, _ state: RemoteConversationState, localDomain: NetworkDomain
    ) async throws {
        try await connection.execute(
            "UPDATE conversations SET name = ?, epoch = ?, message_lifetime = ?, burn_on_read = ? WHERE id = ?",
            [
                name.map(SQLValue.text) ?? .null, .integer(Int64(min(state.epoch, UInt64(Int64.max)))),
                .integer(Int64(min(state.settings.messageLifetime, UInt64(Int64.max)))),
                .integer(Int64(min(state.settings.burnOnRead, UInt64(Int64.max)))), id,
            ])
        try await connection.execute("DELETE FROM conversation_members WHERE conversation_id = ?", [id])
        for address in Set(state.members) {
            let stored = address.domain == localDomain ? address.name.value : address.description
            try await connection.execute(
                "INSERT INTO conversation_members (conversation_id, user_name) VALUES (?, ?) ON CONFLICT DO NOTHING", [id, .text(stored)])
        }
    }
}

/// What a member's network knows of a conversation another network hosts,
/// read from the conversation's member-signed GroupInfo and tree.
public struct RemoteConversationState: Sendable, Hashable {
    public var epoch: UInt64
    /// The users with a leaf in the group whose certificates verified.
    public var members: [UserAddress]
    public var settings: ConversationSettings

    public init(epoch: UInt64, members: [UserAddress], settings: ConversationSettings) {
        self.epoch = epoch
        self.members = members
        self.settings = settings
    }
}

extension ConclaveStore {
    /// The conversations hosted here with devices of a network, and those devices.
    public func conversationsWithRemoteDevices(of network: NetworkDomain) async throws -> [(ConversationID, [DeviceID])] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT conversation_id, device_id FROM conversation_remote_devices WHERE user_address LIKE ? ORDER BY conversation_id",
                [.text("%@" + network.value)])
            var result: [ConversationID: [DeviceID]] = [:]
            for row in rows {
                guard let id = ConversationID(bytes: try row.blob(0)), let device = DeviceID(try row.text(1)) else {
                    throw StoreError.corrupt("conversation_remote_devices")
                }
                result[id, default: []].append(device)
            }
            return result.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
        }
    }
}
