import ConclaveProtocol
import Foundation

extension ConclaveStore {
    /// Stores a new conversation at epoch 0 with its creator's device, and
    /// its member users (the creator, and a 1:1's local peer). Throws
    /// ``StoreError/conflict(_:)`` when the id, or the 1:1 pair, is taken.
    public func createConversation(_ conversation: ConversationRecord, creator: MemberDevice, members: [UserName]? = nil) async throws {
        try await write { connection in
            try await connection.execute(
                """
                INSERT INTO conversations (id, kind, name, direct_key, created_by, created_at, epoch, group_info, ratchet_tree, \
                message_lifetime, burn_on_read, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
                """,
                [
                    .blob(conversation.id.bytes), .text(conversation.kind.rawValue), conversation.name.map(SQLValue.text) ?? .null,
                    conversation.directKey.map(SQLValue.text) ?? .null, .text(conversation.createdBy.value),
                    .integer(conversation.createdAt.millis),
                    .integer(Int64(conversation.epoch)), .blob(conversation.groupInfo), .blob(conversation.ratchetTree),
                    .integer(Int64(conversation.settings.messageLifetime)), .integer(Int64(conversation.settings.burnOnRead)),
                ])
            for user in Set(members ?? []).union([creator.user]).sorted() {
                try await connection.execute(
                    "INSERT INTO conversation_members (conversation_id, user_name) VALUES (?, ?)",
                    [.blob(conversation.id.bytes), .text(user.value)])
            }
            try await connection.execute(
                "INSERT INTO conversation_devices (conversation_id, device_id, user_name) VALUES (?, ?, ?)",
                [.blob(conversation.id.bytes), .text(creator.device.value), .text(creator.user.value)])
        }
    }

    static let conversationColumns =
        "c.id, c.kind, c.name, c.direct_key, c.created_by, c.created_at, c.epoch, c.group_info, c.ratchet_tree, c.message_lifetime, c.burn_on_read, c.host, c.generation, c.reinit"

    public func conversation(_ id: ConversationID) async throws -> ConversationRecord? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT \(Self.conversationColumns) FROM conversations c WHERE c.id = ?", [.blob(id.bytes)])
            return try rows.first.map(Self.conversationRecord)
        }
    }

    /// Where the conversation is hosted; nil if this network does not know
    /// it (from memory once read).
    public func conversationHost(_ id: ConversationID) async throws -> ConversationHost? {
        if let cached = caches.host(id) { return cached }
        let generation = caches.generation
        guard let record = try await conversation(id) else { return nil }
        let host = record.host.map(ConversationHost.remote) ?? .local
        caches.keep(host: host, of: id, readAt: generation)
        return host
    }

    /// ``conversationHost(_:)`` if memory holds it; nil when it does not.
    public func conversationHostInMemory(_ id: ConversationID) -> ConversationHost? { caches.host(id) }

    /// The conversation's devices of this network and of others, if memory
    /// holds them; nil when it does not (``memberDevices(_:)``,
    /// ``remoteDevices(_:)``).
    public func memberDevicesInMemory(_ id: ConversationID) -> (local: [MemberDevice], remote: [RemoteDevice])? {
        caches.members(id).map { ($0.local, $0.remote) }
    }

    /// The 1:1 conversation between two users, if there is one.
    public func directConversation(key: String) async throws -> ConversationID? {
        try await database.read { connection in
            let rows = try await connection.query("SELECT id FROM conversations WHERE direct_key = ?", [.text(key)])
            return try rows.first.flatMap { ConversationID(bytes: try $0.blob(0)) }
        }
    }

    /// The conversations a user is a member of, each with its member users.
    public func conversations(of user: UserName) async throws -> [(conversation: ConversationRecord, members: [UserName])] {
        try await database.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(Self.conversationColumns) FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
                WHERE m.user_name = ? ORDER BY c.created_at, c.id
                """, [.text(user.value)])
            var result: [(ConversationRecord, [UserName])] = []
            for row in rows {
                let conversation = try Self.conversationRecord(row)
                result.append((conversation, try await Self.memberUsers(connection, conversation.id)))
            }
            return result
        }
    }

    public func memberUsers(_ id: ConversationID) async throws -> [UserName] {
        try await database.read { connection in try await Self.memberUsers(connection, id) }
    }

    /// The devices of this network with a leaf in the conversation, by id
    /// (from memory once read).
    public func memberDevices(_ id: ConversationID) async throws -> [MemberDevice] {
        try await members(id).local
    }

    /// The devices of other networks with a leaf in the conversation, by id
    /// (from memory once read).
    public func remoteDevices(_ id: ConversationID) async throws -> [RemoteDevice] {
        try await members(id).remote
    }

    /// Both lists of a conversation's devices, read together and kept in
    /// ``StoreCaches``.
    func members(_ id: ConversationID) async throws -> StoreCaches.ConversationMembers {
        if let cached = caches.members(id) { return cached }
        let generation = caches.generation
        let members = try await database.read { connection in
            let key = SQLValue.blob(id.bytes)
            let local = try await connection.query(
                "SELECT device_id, user_name FROM conversation_devices WHERE conversation_id = ? ORDER BY device_id", [key])
            let remote = try await connection.query(
                "SELECT device_id, user_address FROM conversation_remote_devices WHERE conversation_id = ? ORDER BY device_id", [key])
            return StoreCaches.ConversationMembers(
                local: try local.map(Self.memberDevice),
                remote: try remote.map {
                    guard let device = DeviceID(try $0.text(0)), let user = UserAddress(try $0.text(1)) else {
                        throw StoreError.corrupt("conversation_remote_devices")
                    }
                    return RemoteDevice(device: device, user: user)
                })
        }
        caches.keep(members: members, of: id, readAt: generation)
        return members
    }

    /// The conversations in which any of these devices has a leaf.
    public func conversations(withDevices devices: [DeviceID]) async throws -> [ConversationID] {
        guard !devices.isEmpty else { return [] }
        return try await database.read { connection in
            let marks = Array(repeating: "?", count: devices.count).joined(separator: ", ")
            let rows = try await connection.query(
                "SELECT DISTINCT conversation_id FROM conversation_devices WHERE device_id IN (\(marks))", devices.map { .text($0.value) })
            return try rows.compactMap { ConversationID(bytes: try $0.blob(0)) }
        }
    }

    /// Applies an accepted commit if the conversation is still at
    /// `fromEpoch` (first commit wins), with its fan-out, in one transaction.
    public func applyCommit(_ write: CommitWrite) async throws -> (outcome: CommitOutcome, notified: Set<DeviceID>) {
        try await self.write { connection in
            let id = SQLValue.blob(write.conversation.bytes)
            let rows = try await connection.query("SELECT epoch, generation FROM conversations WHERE id = ?\(forUpdate)", [id])
            guard let row = rows.first else { return (.wrongEpoch(current: 0), []) }
            let current = UInt64(try row.integer(0))
            guard current == write.fromEpoch, try row.integer(1) == Int64(write.generation) else {
                return (.wrongEpoch(current: current), [])
            }
            try await connection.execute(
                """
                UPDATE conversations SET epoch = ?, group_info = ?, ratchet_tree = ?, message_lifetime = ?, burn_on_read = ?, \
                generation = ?, reinit = ? WHERE id = ?
                """,
                [
                    .integer(Int64(write.toEpoch)), .blob(write.groupInfo), .blob(write.ratchetTree),
                    .integer(Int64(write.settings.messageLifetime)), .integer(Int64(write.settings.burnOnRead)),
                    .integer(Int64(write.generation + (write.startsSuccessor ? 1 : 0))), write.reinit.map(SQLValue.blob) ?? .null, id,
                ])
            try await connection.execute("DELETE FROM conversation_devices WHERE conversation_id = ?", [id])
            for member in write.devices {
                // A device deleted meanwhile has no row to point at; its leaf waits for the server's Remove.
                try await connection.execute(
                    "INSERT INTO conversation_devices (conversation_id, device_id, user_name) SELECT ?, id, user_name FROM devices WHERE id = ?",
                    [id, .text(member.device.value)])
            }
            for user in write.addedUsers {
                try await connection.execute(
                    "INSERT INTO conversation_members (conversation_id, user_name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [id, .text(user.value)])
            }
            for user in write.removedUsers {
                try await connection.execute(
                    "DELETE FROM conversation_members WHERE conversation_id = ? AND user_name = ?", [id, .text(user.value)])
            }
            try await connection.execute("DELETE FROM conversation_members WHERE conversation_id = ? AND user_name LIKE '%@%'", [id])
            for user in write.remoteMembers {
                try await connection.execute(
                    "INSERT INTO conversation_members (conversation_id, user_name) VALUES (?, ?)", [id, .text(user.description)])
            }
            try await connection.execute("DELETE FROM conversation_remote_devices WHERE conversation_id = ?", [id])
            for member in write.remoteDevices {
                try await connection.execute(
                    "INSERT INTO conversation_remote_devices (conversation_id, device_id, user_address) VALUES (?, ?, ?)",
                    [id, .text(member.device.value), .text(member.user.description)])
            }
            try await connection.execute("DELETE FROM pending_proposals WHERE conversation_id = ?", [id])
            var notified = Set<DeviceID>()
            for delivery in write.deliveries {
                notified.formUnion(
                    try await Self.deliver(
                        connection, delivery, conversation: write.conversation, deviceLock: deviceLock, origin: clusterOrigin,
                        outboxLimit: outboxLimit))
            }
            return (.applied, notified)
        }
    }

    /// Stores an application message for the conversation's other devices,
    /// if the conversation is at `epoch` and no server proposal waits: one
    /// read of the conversation's state, then the payload, the recipients'
    /// sequence numbers and their inbox entries. A retry of a message id
    /// already stored is answered as the first time (D17), whatever the
    /// epoch now is. Returns each recipient device's sequence number of the
    /// message. The caches stay: nothing they hold changes. The other server
    /// processes are not told here: the caller announces the recipients
    /// with ``announceInbox(_:)`` once the message is stored.
    ///
    /// `stored` is told the outcome once the message has committed, before
    /// this returns: for a message stored in a batch, on the batch's task
    /// and in its order (``MessageAppender``), which is where a server
    /// hands a batch's messages to their recipients' connections in order.
    public func appendApplication(
        _ id: ConversationID, epoch: UInt64, generation: UInt64 = 0, delivery: Delivery, files: FileShare? = nil,
        stored: StoredHandler? = nil
    ) async throws -> (outcome: SendOutcome, sequences: [DeviceID: Int64]) {
        guard files?.files.isEmpty ?? true, delivery.remote.isEmpty else {
            let outcome = try await appendAlone(id, epoch: epoch, generation: generation, delivery: delivery, files: files)
            stored?(outcome.outcome, outcome.sequences)
            return outcome
        }
        return try await withCheckedThrowingContinuation { continuation in
            appendApplication(id, epoch: epoch, generation: generation, delivery: delivery, stored: stored) {
                continuation.resume(with: $0)
            }
        }
    }

    /// ``appendApplication(_:epoch:generation:delivery:files:stored:)`` for a
    /// message with no file and no remote recipient (`delivery.remote` is
    /// not read), without waiting: `done` is told the outcome once the
    /// message has committed, after `stored`. Such a message goes with
    /// others in a batch (``MessageAppender``); a batch tells its messages
    /// apart by sender and id, so on PostgreSQL a message without either is
    /// stored alone.
    public func appendApplication(
        _ id: ConversationID, epoch: UInt64, generation: UInt64, delivery: Delivery, stored: StoredHandler?,
        done: @escaping @Sendable (Result<(outcome: SendOutcome, sequences: [DeviceID: Int64]), any Error>) -> Void
    ) {
        let message = MessageAppender.Message(conversation: id, epoch: epoch, generation: generation, delivery: delivery, stored: stored)
        guard database.dialect == .sqlite || (delivery.messageID != nil && delivery.senderDevice != nil) else {
            let store = batchStore
            Task {
                do { done(.success(try await MessageAppender.storeAlone(message, store))) } catch { done(.failure(error)) }
            }
            return
        }
        appender.append(message, store: batchStore, done: done)
    }

    /// How this database stores a batch of messages.
    private var batchStore: MessageAppender.Store {
        if database.dialect == .sqlite { return { messages in try await self.appendBatchOnSQLite(messages) } }
        return { messages in try await self.appendBatchOnPostgreSQL(messages) }
    }

    /// Told a message's outcome and its recipients' sequence numbers once it has committed.
    public typealias StoredHandler = @Sendable (_ outcome: SendOutcome, _ sequences: [DeviceID: Int64]) -> Void

    /// ``appendApplication(_:epoch:generation:delivery:files:stored:)`` for a
    /// message with files or remote recipients: a transaction of its own.
    private func appendAlone(
        _ id: ConversationID, epoch: UInt64, generation: UInt64, delivery: Delivery, files: FileShare?
    ) async throws -> (outcome: SendOutcome, sequences: [DeviceID: Int64]) {
        try await writeKeepingCaches { connection in
            let key = SQLValue.blob(id.bytes)
            let rows = try await connection.query(
                """
                SELECT epoch, message_lifetime, EXISTS (SELECT 1 FROM pending_proposals WHERE conversation_id = ?), burn_on_read, \
                generation, reinit IS NOT NULL FROM conversations WHERE id = ?\(forUpdate)
                """, [key, key])
            guard let row = rows.first else { return (.unknownConversation, [:]) }
            let current = UInt64(try row.integer(0))
            let (stored, moving, pending) = (UInt64(max(0, try row.integer(4))), try row.integer(5) != 0, try row.integer(2) != 0)
            let outcome: SendOutcome? =
                current != epoch || stored != generation
                ? .wrongEpoch(current: current) : moving ? .moving : pending ? .pendingProposals : nil
            if let outcome {
                if let duplicate = try await Self.storedMessage(connection, id, delivery) { return (duplicate, [:]) }
                return (outcome, [:])
            }
            // The conversation's message lifetime sets when the ciphertext expires.
            var timed = delivery
            let lifetime = try row.integer(1)
            if lifetime > 0 { timed.expiresAt = delivery.sentAt.addingTimeInterval(TimeInterval(lifetime)) }
            guard let payload = try await Self.insertPayload(connection, timed, conversation: id, unlessDuplicate: true) else {
                return (try await Self.storedMessage(connection, id, delivery) ?? .duplicate(sentAt: timed.sentAt, expiresAt: nil), [:])
            }
            if let files, !files.files.isEmpty, let messageID = timed.messageID {
                try await Self.shareFiles(
                    connection, files, conversation: id, messageID: messageID, expiresAt: timed.expiresAt, burn: try row.integer(3) > 0)
            }
            if !timed.remote.isEmpty { try await Self.enqueueFederated(connection, timed, conversation: id, limit: outboxLimit) }
            // The other server processes are told after the commit (``announceInbox(_:)``), not in this transaction.
            let sequences = try await Self.fanOut(connection, payload: payload, to: timed.recipients, deviceLock: deviceLock, origin: nil)
            return (.stored(sentAt: timed.sentAt, expiresAt: timed.expiresAt), sequences)
        }
    }

    /// ``appendApplication(_:epoch:generation:delivery:files:stored:)`` on SQLite
    /// for messages with no file and no remote recipient, as
    /// ``MessageAppender`` gathers them, in one transaction: each
    /// conversation's state read once, each message checked and its
    /// payload stored as it would be alone, then the recipients' counters
    /// moved and their inbox runs written for all of them at once
    /// (``fanOut(_:batch:)``). The messages are stored conversation by
    /// conversation (in the order of each one's first message, and in
    /// their own order within it), so that each recipient's entries of one
    /// conversation have consecutive payload ids and make one run. The
    /// outcomes are in the messages' order.
    private func appendBatchOnSQLite(_ messages: [MessageAppender.Message]) async throws -> [MessageAppender.Outcome] {
        var groups: [[Int]] = []
        var group: [ConversationID: Int] = [:]
        for (index, message) in messages.enumerated() {
            if let known = group[message.conversation] {
                groups[known].append(index)
            } else {
                group[message.conversation] = groups.count
                groups.append([index])
            }
        }
        let order = groups.joined()
        return try await writeKeepingCaches { connection in
            var states: [ConversationID: ConversationState] = [:]
            var unknown = Set<ConversationID>()
            var outcomes = [MessageAppender.Outcome](repeating: (.unknownConversation, [:]), count: messages.count)
            var stored: [(index: Int, payload: SQLValue, recipients: [DeviceID])] = []
            for index in order {
                let message = messages[index]
                let id = message.conversation
                if states[id] == nil, !unknown.contains(id) {
                    if let state = try await Self.conversationState(connection, id) { states[id] = state } else { unknown.insert(id) }
                }
                guard let state = states[id] else { continue }
                if let refusal = state.refusal(epoch: message.epoch, generation: message.generation) {
                    outcomes[index] = (try await Self.storedMessage(connection, id, message.delivery) ?? refusal, [:])
                    continue
                }
                var timed = message.delivery
                if state.lifetime > 0 { timed.expiresAt = timed.sentAt.addingTimeInterval(TimeInterval(state.lifetime)) }
                guard let payload = try await Self.insertPayload(connection, timed, conversation: id, unlessDuplicate: true) else {
                    let duplicate = try await Self.storedMessage(connection, id, timed) ?? .duplicate(sentAt: timed.sentAt, expiresAt: nil)
                    outcomes[index] = (duplicate, [:])
                    continue
                }
                stored.append((index, payload, timed.recipients))
                outcomes[index] = (.stored(sentAt: timed.sentAt, expiresAt: timed.expiresAt), [:])
            }
            let sequences = try await Self.fanOut(connection, batch: stored.map { ($0.payload, $0.recipients) })
            for (entry, numbered) in zip(stored, sequences) { outcomes[entry.index].sequences = numbered }
            return outcomes
        }
    }

    /// What decides whether a conversation takes an application message now.
    struct ConversationState {
        let epoch: UInt64
        let generation: UInt64
        let lifetime: Int64
        let moving: Bool
        let pending: Bool

        /// The refusal of a message at `epoch` of `generation`, nil when it is taken.
        func refusal(epoch wanted: UInt64, generation wantedGeneration: UInt64) -> SendOutcome? {
            epoch != wanted || generation != wantedGeneration
                ? .wrongEpoch(current: epoch) : moving ? .moving : pending ? .pendingProposals : nil
        }
    }

    static func conversationState(_ connection: any SQLConnection, _ id: ConversationID) async throws -> ConversationState? {
        let key = SQLValue.blob(id.bytes)
        let rows = try await connection.query(
            """
            SELECT epoch, message_lifetime, EXISTS (SELECT 1 FROM pending_proposals WHERE conversation_id = ?), generation, \
            reinit IS NOT NULL FROM conversations WHERE id = ?
            """, [key, key])
        guard let row = rows.first else { return nil }
        return ConversationState(
            epoch: UInt64(try row.integer(0)), generation: UInt64(max(0, try row.integer(3))), lifetime: try row.integer(1),
            moving: try row.integer(4) != 0, pending: try row.integer(2) != 0)
    }

    /// ``appendApplication(_:epoch:generation:delivery:files:stored:)`` on
    /// PostgreSQL, for messages with no file and no remote recipient, as
    /// ``MessageAppender`` gathers them: one message is one call of
    /// `conclave_append_message` (``Schema/appendMessageFunction``), several
    /// one call of `conclave_append_messages`; either a transaction of its
    /// own. The outcomes are in the messages' order.
    private func appendBatchOnPostgreSQL(_ messages: [MessageAppender.Message]) async throws -> [MessageAppender.Outcome] {
        guard messages.count > 1 else {
            guard let message = messages.first else { return [] }
            let rows = try await writeOneStatement(
                "SELECT outcome, epoch, sent_at, expires_at, sequences FROM conclave_append_message(?, ?, ?, ?, ?, ?, ?, ?, ?, ?::TEXT[])",
                [
                    .blob(message.conversation.bytes), .integer(Int64(clamping: message.epoch)),
                    .integer(Int64(clamping: message.generation)),
                    .text(message.delivery.kind.rawValue), message.delivery.messageID.map(SQLValue.text) ?? .null,
                    .blob(message.delivery.data),
                    message.delivery.senderDevice.map { .text($0.value) } ?? .null, .integer(message.delivery.sentAt.millis),
                    message.delivery.expiresAt.map { .integer($0.millis) } ?? .null,
                    .text(Self.arrayLiteral(message.delivery.recipients.map(\.value))),
                ])
            return [try Self.appendOutcome(rows.first, from: 0, message.delivery)]
        }
        let deliveries = messages.map(\.delivery)
        let rows = try await writeOneStatement(
            """
            SELECT item, outcome, epoch, sent_at, expires_at, sequences FROM conclave_append_messages(?::BYTEA[], ?::BIGINT[], \
            ?::BIGINT[], ?::TEXT[], ?::TEXT[], ?::BYTEA[], ?::TEXT[], ?::BIGINT[], ?::BIGINT[], ?::TEXT[])
            """,
            [
                .text(Self.byteaArrayLiteral(messages.map(\.conversation.bytes))),
                .text(Self.arrayLiteral(messages.map { String(Int64(clamping: $0.epoch)) }, quoted: false)),
                .text(Self.arrayLiteral(messages.map { String(Int64(clamping: $0.generation)) }, quoted: false)),
                .text(Self.arrayLiteral(deliveries.map(\.kind.rawValue))),
                .text(Self.arrayLiteral(deliveries.map(\.messageID))),
                .text(Self.byteaArrayLiteral(deliveries.map(\.data))),
                .text(Self.arrayLiteral(deliveries.map { $0.senderDevice?.value })),
                .text(Self.arrayLiteral(deliveries.map { String($0.sentAt.millis) }, quoted: false)),
                .text(Self.arrayLiteral(deliveries.map { $0.expiresAt.map { String($0.millis) } }, quoted: false)),
                .text(Self.arrayLiteral(deliveries.map { $0.recipients.map(\.value).joined(separator: ",") })),
            ])
        var byItem: [Int64: SQLRow] = [:]
        for row in rows { byItem[try row.integer(0)] = row }
        return try messages.indices.map { try Self.appendOutcome(byItem[Int64($0 + 1)], from: 1, messages[$0].delivery) }
    }

    /// One message's outcome from its row of `conclave_append_message`
    /// (its columns from `first` on). No row: a conflict on the message id
    /// whose row was gone by the time it was read, stored before, as D17
    /// answers.
    private static func appendOutcome(_ row: SQLRow?, from first: Int, _ delivery: Delivery) throws -> MessageAppender.Outcome {
        guard let row else { return (.duplicate(sentAt: delivery.sentAt, expiresAt: nil), [:]) }
        let times = { () throws -> (Date, Date?) in
            (Date(millis: try row.integer(first + 2)), try row.optionalInteger(first + 3).map(Date.init(millis:)))
        }
        switch try row.text(first) {
        case "stored":
            var sequences: [DeviceID: Int64] = [:]
            for pair in try row.text(first + 4).split(separator: ",") {
                let parts = pair.split(separator: ":")
                guard parts.count == 2, let device = DeviceID(String(parts[0])), let seq = Int64(parts[1]) else {
                    throw StoreError.corrupt("conclave_append_message.sequences")
                }
                sequences[device] = seq
            }
            let (sentAt, expiresAt) = try times()
            return (.stored(sentAt: sentAt, expiresAt: expiresAt), sequences)
        case "duplicate":
            let (sentAt, expiresAt) = try times()
            return (.duplicate(sentAt: sentAt, expiresAt: expiresAt), [:])
        case "wrong_epoch": return (.wrongEpoch(current: UInt64(max(0, try row.integer(first + 1)))), [:])
        case "moving": return (.moving, [:])
        case "pending": return (.pendingProposals, [:])
        case "unknown": return (.unknownConversation, [:])
        default: throw StoreError.corrupt("conclave_append_message.outcome")
        }
    }

    /// A PostgreSQL array literal: each element quoted with `"` (`"` and
    /// `\` escaped by a backslash), or written as it is (numbers), and nil
    /// as `NULL`. Written byte by byte: a batch's literals are written for
    /// every batch of messages.
    static func arrayLiteral(_ values: [String?], quoted: Bool = true) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(values.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let value else {
                bytes += "NULL".utf8
                continue
            }
            guard quoted else {
                bytes += value.utf8
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A PostgreSQL `BYTEA[]` literal: each element `"\\x…"`, the value in
    /// hex (the backslash escaped for the array's syntax).
    static func byteaArrayLiteral(_ values: [[UInt8]]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(values.reduce(2) { $0 + 2 * $1.count + 6 })
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += #""\\x"#.utf8
            for byte in value {
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0x0F)])
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The message with this delivery's id from its sender, if one is stored (D17).
    static func storedMessage(_ connection: any SQLConnection, _ id: ConversationID, _ delivery: Delivery) async throws -> SendOutcome? {
        guard let messageID = delivery.messageID, let sender = delivery.senderDevice else { return nil }
        let existing = try await connection.query(
            "SELECT sent_at, expires_at FROM payloads WHERE conversation_id = ? AND sender_device = ? AND message_id = ?",
            [.blob(id.bytes), .text(sender.value), .text(messageID)])
        guard let previous = existing.first else { return nil }
        return .duplicate(
            sentAt: Date(millis: try previous.integer(0)), expiresAt: try previous.optionalInteger(1).map(Date.init(millis:)))
    }

    /// Records server proposals of this epoch and sends them to the group.
    public func addPendingProposals(
        _ id: ConversationID, epoch: UInt64, generation: UInt64 = 0, proposals: [(ref: [UInt8], message: [UInt8])], delivery: [Delivery]
    ) async throws -> Set<DeviceID> {
        try await write { connection in
            let key = SQLValue.blob(id.bytes)
            let rows = try await connection.query(
                "SELECT epoch, generation, reinit IS NULL FROM conversations WHERE id = ?\(forUpdate)", [key])
            // Proposals for this group only: not after a successor started at an epoch of the same number, nor
            // while the group waits for its successor (it takes nothing more, D25).
            guard let row = rows.first, UInt64(try row.integer(0)) == epoch, try row.integer(1) == Int64(generation),
                try row.integer(2) != 0
            else { return [] }
            for proposal in proposals {
                try await connection.execute(
                    "INSERT INTO pending_proposals (conversation_id, epoch, ref, message) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [key, .integer(Int64(epoch)), .blob(proposal.ref), .blob(proposal.message)])
            }
            var notified = Set<DeviceID>()
            for item in delivery {
                notified.formUnion(
                    try await Self.deliver(
                        connection, item, conversation: id, deviceLock: deviceLock, origin: clusterOrigin, outboxLimit: outboxLimit))
            }
            return notified
        }
    }

    public func pendingProposals(_ id: ConversationID) async throws -> [(epoch: UInt64, ref: [UInt8], message: [UInt8])] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT epoch, ref, message FROM pending_proposals WHERE conversation_id = ? ORDER BY ref", [.blob(id.bytes)])
            return try rows.map { (UInt64(try $0.integer(0)), try $0.blob(1), try $0.blob(2)) }
        }
    }

    /// Writes one payload and an inbox entry per recipient device that
    /// still exists, each with the device's next sequence number (and puts
    /// the remote recipients' copy into the federation outbox).
    static func deliver(
        _ connection: any SQLConnection, _ delivery: Delivery, conversation: ConversationID, deviceLock: String, origin: String?,
        outboxLimit: Int = 10_000
    ) async throws -> Set<DeviceID> {
        if !delivery.remote.isEmpty { try await enqueueFederated(connection, delivery, conversation: conversation, limit: outboxLimit) }
        // With no local recipient, a message still leaves a payload row, so that a retry of its id is known (D17).
        guard !delivery.recipients.isEmpty || delivery.messageID != nil else { return [] }
        guard let payload = try await insertPayload(connection, delivery, conversation: conversation, unlessDuplicate: false) else {
            throw StoreError.corrupt("payloads.id")
        }
        return Set(try await fanOut(connection, payload: payload, to: delivery.recipients, deviceLock: deviceLock, origin: origin).keys)
    }

    /// Inserts a payload and returns its id; with `unlessDuplicate`, nil
    /// when its sender already stored a message with its id (D17).
    static func insertPayload(
        _ connection: any SQLConnection, _ delivery: Delivery, conversation: ConversationID, unlessDuplicate: Bool
    ) async throws -> SQLValue? {
        let conflict = unlessDuplicate ? " ON CONFLICT (conversation_id, sender_device, message_id) DO NOTHING" : ""
        let payload = try await connection.insertReturningID(
            """
            INSERT INTO payloads (conversation_id, kind, message_id, data, sender_device, sent_at, expires_at) \
            VALUES (?, ?, ?, ?, ?, ?, ?)\(conflict)
            """,
            [
                .blob(conversation.bytes), .text(delivery.kind.rawValue), delivery.messageID.map(SQLValue.text) ?? .null,
                .blob(delivery.data),
                delivery.senderDevice.map { .text($0.value) } ?? .null, .integer(delivery.sentAt.millis),
                delivery.expiresAt.map { .integer($0.millis) } ?? .null,
            ])
        return payload.map(SQLValue.integer)
    }

    /// One inbox entry per recipient device that still exists, each with
    /// the device's next sequence number. On PostgreSQL the device rows are
    /// locked in id order first (``ConclaveStore/deviceLock``), and the
    /// other server processes are told (`origin`: this one's, on a shared
    /// database). Returns each device's sequence number of the payload.
    static func fanOut(
        _ connection: any SQLConnection, payload: SQLValue, to devices: [DeviceID], deviceLock: String, origin: String?
    ) async throws -> [DeviceID: Int64] {
        guard !devices.isEmpty else { return [:] }
        let marks = Array(repeating: "?", count: devices.count).joined(separator: ", ")
        let recipients = devices.map { SQLValue.text($0.value) }
        if !deviceLock.isEmpty {
            try await connection.execute("SELECT id FROM devices WHERE id IN (\(marks)) ORDER BY id\(deviceLock)", recipients)
        }
        let sequences = try await connection.query(
            "UPDATE devices SET inbox_seq = inbox_seq + 1 WHERE id IN (\(marks)) RETURNING id, inbox_seq", recipients)
        guard !sequences.isEmpty else { return [:] }
        var binds: [SQLValue] = []
        var numbered: [DeviceID: Int64] = [:]
        for row in sequences {
            let (device, seq) = (try row.text(0), try row.integer(1))
            binds.append(.text(device))
            binds.append(.integer(seq))
            binds.append(payload)
            if let device = DeviceID(device) { numbered[device] = seq }
        }
        let values = Array(repeating: "(?, ?, ?)", count: sequences.count).joined(separator: ", ")
        try await connection.execute("INSERT INTO inbox (device_id, seq, payload_id) VALUES \(values)", binds)
        if let origin { try await announce(.inbox(Array(numbered.keys)), from: origin, on: connection) }
        return numbered
    }

    /// The most entries one inbox run holds: the runs that cover a payload
    /// start at most this many payload ids before it.
    static let runLimit: Int64 = 256

    /// ``fanOut(_:payload:to:deviceLock:origin:)`` for a batch of stored
    /// messages on SQLite, in two statements whatever the batch's size:
    /// each recipient device's counter moves once by its count of
    /// messages, its entries are numbered in the messages' order (devices
    /// gone meanwhile get none), and each stretch of them whose sequence
    /// numbers and payload ids both follow on is written as one inbox run
    /// (of at most ``runLimit`` entries), not one inbox row per entry. Both
    /// statements take their values as JSON (device ids are hex), so their
    /// text, and their prepared statements, do not change with the batch.
    /// Returns each message's sequence numbers, in order.
    static func fanOut(_ connection: any SQLConnection, batch: [(payload: SQLValue, recipients: [DeviceID])]) async throws
        -> [[DeviceID: Int64]]
    {
        // (Sets and dictionaries are made at their size: a room's message has dozens of recipients.)
        var counts = [DeviceID: Int64](minimumCapacity: batch.first?.recipients.count ?? 0)
        let recipients = batch.map { entry in
            guard entry.recipients.count > 1 else { return entry.recipients }
            var seen = Set<DeviceID>(minimumCapacity: entry.recipients.count)
            return entry.recipients.filter { seen.insert($0).inserted }
        }
        for devices in recipients { for device in devices { counts[device, default: 0] += 1 } }
        guard !counts.isEmpty else { return batch.map { _ in [:] } }
        let countsJSON = "{" + counts.map { #""\#($0.key.value)":\#($0.value)"# }.joined(separator: ",") + "}"
        let moved = try await connection.query(
            """
            UPDATE devices SET inbox_seq = inbox_seq + c.value FROM json_each(?) AS c WHERE devices.id = c.key \
            RETURNING devices.id, devices.inbox_seq
            """, [.text(countsJSON)])
        var next = [DeviceID: Int64](minimumCapacity: counts.count)
        for row in moved {
            guard let device = DeviceID(try row.text(0)), let count = counts[device] else { throw StoreError.corrupt("devices.id") }
            next[device] = try row.integer(1) - count
        }
        var runs: [String] = []
        var open = [DeviceID: InboxRun](minimumCapacity: counts.count)
        var numbered: [[DeviceID: Int64]] = []
        numbered.reserveCapacity(batch.count)
        for (entry, devices) in zip(batch, recipients) {
            guard case .integer(let payload) = entry.payload else { throw StoreError.corrupt("payloads.id") }
            var sequences = [DeviceID: Int64](minimumCapacity: devices.count)
            for device in devices {
                guard let last = next[device] else { continue }
                next[device] = last + 1
                sequences[device] = last + 1
                if let run = open[device], run.firstPayload + run.entries == payload, run.entries < runLimit {
                    open[device]?.entries += 1
                } else {
                    if let run = open[device] { runs.append(run.json(device)) }
                    open[device] = InboxRun(seq: last + 1, entries: 1, firstPayload: payload)
                }
            }
            numbered.append(sequences)
        }
        runs += open.map { $0.value.json($0.key) }
        if !runs.isEmpty {
            try await connection.execute(
                """
                INSERT INTO inbox_runs (device_id, seq, entries, first_payload) \
                SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]') \
                FROM json_each(?)
                """, [.text("[" + runs.joined(separator: ",") + "]")])
        }
        return numbered
    }

    /// Entries of a device's inbox with consecutive sequence numbers
    /// (from `seq`) and consecutive payload ids (from `firstPayload`).
    struct InboxRun {
        var seq: Int64
        var entries: Int64
        var firstPayload: Int64

        func json(_ device: DeviceID) -> String { #"["\#(device.value)",\#(seq),\#(entries),\#(firstPayload)]"# }
    }

    /// The members of other networks (rows that name a user by address).
    public func remoteMembers(_ id: ConversationID) async throws -> [UserAddress] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT user_name FROM conversation_members WHERE conversation_id = ? AND user_name LIKE '%@%' ORDER BY user_name",
                [.blob(id.bytes)])
            return try rows.map {
                guard let address = UserAddress(try $0.text(0)) else { throw StoreError.corrupt("conversation_members.user_name") }
                return address
            }
        }
    }

    /// Puts one ``FederatedDelivery`` per network of the remote recipients
    /// into the federation outbox, in the same transaction as the message,
    /// with the conversation's current GroupInfo and tree for Welcomes and
    /// handshakes (F6).
    static func enqueueFederated(
        _ connection: any SQLConnection, _ delivery: Delivery, conversation: ConversationID, limit: Int
    ) async throws {
        let rows = try await connection.query(
            "SELECT kind, name, created_by, created_at, group_info, ratchet_tree FROM conversations WHERE id = ?",
            [.blob(conversation.bytes)])
        guard let row = rows.first, let kind = ConversationKind(rawValue: try row.text(0)), let creator = UserName(try row.text(2)) else {
            throw StoreError.corrupt("conversations")
        }
        let withState = delivery.kind != .application
        for (destination, devices) in Dictionary(grouping: delivery.remote, by: \.user.domain).sorted(by: { $0.key < $1.key }) {
            let body = FederatedDelivery(
                conversation: conversation, conversationKind: kind, name: try row.optionalText(1), createdBy: creator,
                createdAt: Date(millis: try row.integer(3)), kind: delivery.kind, message: Base64Bytes(delivery.data),
                messageId: delivery.messageID, sentAt: delivery.sentAt, expiresAt: delivery.expiresAt, recipients: devices.map(\.device),
                groupInfo: withState ? Base64Bytes(try row.blob(4)) : nil, ratchetTree: withState ? Base64Bytes(try row.blob(5)) : nil,
                deliveryId: FederationRequestSignature.newNonce())
            _ = try await enqueue(
                connection, destination: destination, path: "/v1/federation/deliver", body: body, at: delivery.sentAt, limit: limit)
        }
    }

    static func memberUsers(_ connection: any SQLConnection, _ id: ConversationID) async throws -> [UserName] {
        let rows = try await connection.query(
            "SELECT user_name FROM conversation_members WHERE conversation_id = ? AND user_name NOT LIKE '%@%' ORDER BY user_name",
            [.blob(id.bytes)])
        return try rows.map {
            guard let name = UserName(try $0.text(0)) else { throw StoreError.corrupt("conversation_members.user_name") }
            return name
        }
    }

    static func memberDevice(_ row: SQLRow) throws -> MemberDevice {
        guard let device = DeviceID(try row.text(0)), let user = UserName(try row.text(1)) else {
            throw StoreError.corrupt("conversation_devices")
        }
        return MemberDevice(device: device, user: user)
    }

    static func conversationRecord(_ row: SQLRow) throws -> ConversationRecord {
        guard let id = ConversationID(bytes: try row.blob(0)), let kind = ConversationKind(rawValue: try row.text(1)),
            let creator = UserName(try row.text(4))
        else { throw StoreError.corrupt("conversations") }
        return ConversationRecord(
            id: id, kind: kind, name: try row.optionalText(2), directKey: try row.optionalText(3), createdBy: creator,
            createdAt: Date(millis: try row.integer(5)), epoch: UInt64(try row.integer(6)), groupInfo: try row.blob(7),
            ratchetTree: try row.blob(8),
            settings: ConversationSettings(
                messageLifetime: UInt64(max(0, try row.integer(9))), burnOnRead: UInt64(max(0, try row.integer(10)))),
            host: try row.optionalText(11).flatMap(NetworkDomain.init), generation: UInt64(max(0, try row.integer(12))),
            reinit: try row.optionalBlob(13))
    }
}

// MARK: - Inbox

extension ConclaveStore {
    /// A page of a device's inbox: its inbox rows (and, with `runs`, the
    /// entries of its inbox runs) after a sequence number (and up to
    /// another, with `through`), whose payloads are stored and not expired,
    /// oldest first, at most a limit of them; `columns` of `p` (the
    /// payload) and `c` (its conversation) after the sequence number. Each
    /// half reads at most the limit in sequence order from its own index
    /// and looks up only the payloads it returns, so a page costs the same
    /// whatever the size of the inbox or of the payloads table. Binds
    /// (``inboxPageBinds(device:after:through:now:limit:runs:)``): the
    /// device, the sequence number, the upper bound with `through`, the
    /// time, the limit; with runs, the same for them (the sequence number
    /// twice), then the limit again.
    static func inboxPage(_ columns: String, through: Bool, runs: Bool) -> String {
        let live = "(p.expires_at IS NULL OR p.expires_at > ?)"
        let rows = """
            SELECT i.seq AS seq, \(columns) FROM inbox i JOIN payloads p ON p.id = i.payload_id \
            LEFT JOIN conversations c ON c.id = p.conversation_id \
            WHERE i.device_id = ? AND i.seq > ?\(through ? " AND i.seq <= ?" : "") AND \(live) ORDER BY i.seq LIMIT ?
            """
        // PostgreSQL plans a statement each time it runs: the union of both halves costs milliseconds to plan, so it
        // is asked for only by a device that has runs (on SQLite, which writes them, the plan is kept).
        guard runs else { return rows }
        let runSeq = "r.seq + (p.id - r.first_payload)"
        return """
            SELECT * FROM (\(rows)) AS page_rows \
            UNION ALL \
            SELECT * FROM (SELECT \(runSeq) AS seq, \(columns) FROM inbox_runs r \
            JOIN payloads p ON p.id >= r.first_payload AND p.id < r.first_payload + r.entries \
            LEFT JOIN conversations c ON c.id = p.conversation_id \
            WHERE r.device_id = ? AND r.seq + r.entries - 1 > ? AND \(runSeq) > ?\(through ? " AND \(runSeq) <= ?" : "") AND \(live) \
            ORDER BY r.seq, p.id LIMIT ?) AS page_runs \
            ORDER BY seq LIMIT ?
            """
    }

    /// The binds of ``inboxPage(_:through:runs:)``.
    static func inboxPageBinds(device: DeviceID, after: Int64, through: Int64?, now: Date, limit: Int, runs: Bool) -> [SQLValue] {
        let (key, seq, time, count) = (
            SQLValue.text(device.value), SQLValue.integer(after), SQLValue.integer(now.millis), SQLValue.integer(Int64(limit))
        )
        let bound = through.map { [SQLValue.integer($0)] } ?? []
        let rows = [key, seq] + bound + [time, count]
        return runs ? rows + [key, seq, seq] + bound + [time, count, count] : rows
    }

    /// True for a payload no inbox row and no inbox run refers to (in a
    /// statement on `payloads`).
    static let unreferenced = """
        NOT EXISTS (SELECT 1 FROM inbox WHERE payload_id = payloads.id) AND NOT EXISTS (SELECT 1 FROM inbox_runs r \
        WHERE r.first_payload <= payloads.id AND r.first_payload > payloads.id - \(runLimit) AND r.first_payload + r.entries > payloads.id)
        """

    /// A device's inbox after `seq`, oldest first, leaving out expired
    /// payloads: at most `limit` events and, past the first, at most
    /// `maxBytes` of messages (D23). The sizes are read first, so a page of
    /// large messages never loads more than it returns.
    public func inbox(device: DeviceID, after seq: Int64, limit: Int, maxBytes: Int = .max, now: Date) async throws -> [InboxEvent] {
        try await readInbox(device: device, after: seq, limit: limit, maxBytes: maxBytes, now: now).events
    }

    /// ``inbox(device:after:limit:maxBytes:now:)``, and whether the page
    /// held everything there was when it was read (fewer than `limit`
    /// events, none left out for `maxBytes`): a reader that drains the inbox
    /// need not read it once more to find it empty.
    public func readInbox(
        device: DeviceID, after seq: Int64, limit: Int, maxBytes: Int = .max, now: Date
    ) async throws -> (events: [InboxEvent], drained: Bool) {
        try await database.read { connection in
            let runs = try await !connection.query("SELECT 1 FROM inbox_runs WHERE device_id = ? LIMIT 1", [.text(device.value)]).isEmpty
            let sizes = try await connection.query(
                Self.inboxPage("\(dataLength)(p.data) AS size", through: false, runs: runs),
                Self.inboxPageBinds(device: device, after: seq, through: nil, now: now, limit: limit, runs: runs))
            var last: Int64?
            var (total, taken) = (0, 0)
            for row in sizes {
                total += Int(try row.integer(1))
                if last != nil, total > maxBytes { break }
                last = try row.integer(0)
                taken += 1
            }
            let drained = sizes.count < limit && taken == sizes.count
            guard let last else { return ([], drained) }
            let rows = try await connection.query(
                Self.inboxPage(
                    """
                    p.kind AS payload_kind, p.conversation_id, p.data, p.message_id, p.sent_at, p.expires_at, \
                    c.kind AS conversation_kind, c.name
                    """, through: true, runs: runs),
                Self.inboxPageBinds(device: device, after: seq, through: last, now: now, limit: limit, runs: runs))
            let events = try rows.map { row in
                guard let kind = InboxEventKind(rawValue: try row.text(1)), let conversation = ConversationID(bytes: try row.blob(2)) else {
                    throw StoreError.corrupt("payloads")
                }
                let isWelcome = kind == .welcome
                return InboxEvent(
                    seq: try row.integer(0), kind: kind, conversation: conversation, message: Base64Bytes(try row.blob(3)),
                    messageId: try row.optionalText(4), sentAt: Date(millis: try row.integer(5)),
                    expiresAt: try row.optionalInteger(6).map(Date.init(millis:)),
                    conversationKind: isWelcome ? try row.optionalText(7).flatMap(ConversationKind.init(rawValue:)) : nil,
                    name: isWelcome ? try row.optionalText(8) : nil)
            }
            return (events, drained)
        }
    }

    /// The SQL function giving a blob's length in bytes.
    var dataLength: String { database.dialect == .postgres ? "octet_length" : "length" }

    /// Inbox entries not yet acknowledged, over all devices (an inbox
    /// run's entries whose payloads expired meanwhile count until it goes).
    public func inboxDepth() async throws -> Int {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT CAST((SELECT COUNT(*) FROM inbox) + COALESCE((SELECT SUM(entries) FROM inbox_runs), 0) AS BIGINT)", [])
            return Int(try rows.first?.integer(0) ?? 0)
        }
    }

    /// Deletes a device's inbox entries up to `seq` (its rows, its runs
    /// that end there, and the start of the run it falls in); payloads no
    /// inbox refers to any more go with them. Returns how many entries
    /// went whose payloads were still stored.
    public func acknowledge(device: DeviceID, upTo seq: Int64) async throws -> Int {
        try await writeKeepingCaches { connection in
            let key = SQLValue.text(device.value)
            let removed = try await connection.query(
                "DELETE FROM inbox WHERE device_id = ? AND seq <= ? RETURNING payload_id", [key, .integer(seq)])
            let payloads = Array(Set(removed.compactMap { $0.values.first }))
            for batch in stride(from: 0, to: payloads.count, by: 500) {
                let part = Array(payloads[batch..<min(batch + 500, payloads.count)])
                let marks = Array(repeating: "?", count: part.count).joined(separator: ", ")
                try await connection.execute("DELETE FROM payloads WHERE id IN (\(marks)) AND \(Self.unreferenced)", part)
            }
            var count = removed.count
            let runs = try await connection.query(
                "SELECT seq, entries, first_payload FROM inbox_runs WHERE device_id = ? AND seq <= ?", [key, .integer(seq)])
            guard !runs.isEmpty else { return count }
            try await connection.execute(
                "DELETE FROM inbox_runs WHERE device_id = ? AND seq + entries - 1 <= ?", [key, .integer(seq)])
            for run in runs {
                let (start, entries, first) = (try run.integer(0), try run.integer(1), try run.integer(2))
                guard start >= 1, entries >= 1 else { throw StoreError.corrupt("inbox_runs") }
                let taken = min(entries, seq - start + 1)  // (seq may be Int64.max: start is at least 1)
                if taken < entries {  // the run `seq` falls in keeps its end
                    try await connection.execute(
                        "UPDATE inbox_runs SET seq = ?, entries = ?, first_payload = ? WHERE device_id = ? AND seq = ?",
                        [.integer(start + taken), .integer(entries - taken), .integer(first + taken), key, .integer(start)])
                }
                count += Int(try await Self.releaseRun(connection, from: first, through: first + taken - 1))
            }
            return count
        }
    }

    /// After a run's entries `first...last` (payload ids) were deleted:
    /// deletes the payloads among them that no inbox row or run still
    /// refers to, reading the rows and runs that overlap the stretch once
    /// rather than once per payload. Returns how many of them were stored.
    static func releaseRun(_ connection: any SQLConnection, from first: Int64, through last: Int64) async throws -> Int64 {
        let stored = try await connection.query(
            "SELECT COUNT(*) FROM payloads WHERE id >= ? AND id <= ?", [.integer(first), .integer(last)])
        var kept: [ClosedRange<Int64>] = []
        let runs = try await connection.query(
            "SELECT first_payload, entries FROM inbox_runs WHERE first_payload > ? AND first_payload <= ? AND first_payload + entries > ?",
            [.integer(first - runLimit), .integer(last), .integer(first)])
        for run in runs {
            let (start, entries) = (try run.integer(0), try run.integer(1))
            if entries > 0 { kept.append(max(first, start)...min(last, start + entries - 1)) }
        }
        let rows = try await connection.query(
            "SELECT payload_id FROM inbox WHERE payload_id >= ? AND payload_id <= ?", [.integer(first), .integer(last)])
        for row in rows { kept.append(try row.integer(0)...(try row.integer(0))) }
        var from = first
        for range in kept.sorted(by: { $0.lowerBound < $1.lowerBound }) + [(last + 1)...(last + 1)] {
            if range.lowerBound > from {
                try await connection.execute(
                    "DELETE FROM payloads WHERE id >= ? AND id <= ?", [.integer(from), .integer(min(last, range.lowerBound - 1))])
            }
            from = max(from, range.upperBound + 1)
        }
        return try stored.first?.integer(0) ?? 0
    }

    /// Deletes expired payloads (and their inbox rows, and the inbox runs
    /// left with no payload), payloads no inbox refers to, and expired
    /// federation nonces. Returns how many payloads went.
    public func sweep(now: Date) async throws -> Int {
        try await writeKeepingCaches { connection in
            let expired = try await connection.query(
                "DELETE FROM payloads WHERE (expires_at IS NOT NULL AND expires_at <= ?) OR (\(Self.unreferenced)) RETURNING id",
                [.integer(now.millis)])
            try await connection.execute(
                """
                DELETE FROM inbox_runs WHERE NOT EXISTS (SELECT 1 FROM payloads \
                WHERE id >= inbox_runs.first_payload AND id < inbox_runs.first_payload + inbox_runs.entries)
                """, [])
            try await connection.execute("DELETE FROM federation_nonces WHERE expires_at <= ?", [.integer(now.millis)])
            return expired.count
        }
    }
}
