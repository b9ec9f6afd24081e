import ConclaveProtocol
import Crypto
import Foundation
import Logging
import NIOCore
import SQLiteNIO

/// A device's local state: one SQLite file (`profile.sqlite`) whose values
/// are sealed with ChaCha20-Poly1305 under a 32-byte key kept beside it in
/// `profile.key` (mode 0600). The key file protects against a copied
/// database or backup, not against someone who can read the profile
/// directory as the user: that is the documented boundary (docs/client.md).
/// Each sealed value is bound to its table and row, so values cannot be
/// swapped between rows.
actor LocalStore {
    private let connection: SQLiteConnection
    private let key: SymmetricKey
    /// Held while the store is open: one client per profile.
    private var lock: ProfileLock?
    /// Whether a transaction is open on the connection, and the tasks
    /// waiting for it to end.
    private var inTransaction = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    /// The store whose transaction the current task (and its children) runs in.
    @TaskLocal private static var transactionOf: ObjectIdentifier?

    static func open(directory: String) async throws -> LocalStore {
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ClientError.localStore("cannot create the profile directory")
        }
        let lock = try await ProfileLock.take(directory: directory)
        let keyFile = directory + "/profile.key"
        let key: SymmetricKey
        if let data = files.contents(atPath: keyFile) {
            guard data.count == 32 else { throw ClientError.localStore("profile.key is not a 32-byte key") }
            key = SymmetricKey(data: data)
        } else {
            key = SymmetricKey(size: .bits256)
            let bytes = key.withUnsafeBytes { Data($0) }
            guard files.createFile(atPath: keyFile, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
                throw ClientError.localStore("cannot write profile.key")
            }
        }
        var logger = Logger(label: "conclave.client.store")
        logger.logLevel = .warning
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: directory + "/profile.sqlite"), logger: logger)
            for statement in [
                "PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
                "CREATE TABLE IF NOT EXISTS groups (id BLOB PRIMARY KEY, value BLOB NOT NULL)",
                "CREATE TABLE IF NOT EXISTS key_packages (ref BLOB PRIMARY KEY, value BLOB NOT NULL, last_resort INTEGER NOT NULL)",
                "CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
                // Events for the user, held until the application confirms it showed them.
                "CREATE TABLE IF NOT EXISTS held (seq INTEGER PRIMARY KEY AUTOINCREMENT, value BLOB NOT NULL)",
                // Inbox events that cannot be processed yet (a conversation or epoch not reached), by inbox seq.
                "CREATE TABLE IF NOT EXISTS deferred (seq INTEGER PRIMARY KEY, conversation BLOB NOT NULL, at INTEGER NOT NULL, value BLOB NOT NULL)",
                // Conversations that need attention: server proposals to commit, a commit of this device of unknown fate.
                "CREATE TABLE IF NOT EXISTS flags (id BLOB NOT NULL, flag TEXT NOT NULL, PRIMARY KEY (id, flag))",
                // Conversations this device left or was removed from: their late events are dropped, not deferred.
                "CREATE TABLE IF NOT EXISTS departed (id BLOB PRIMARY KEY, at INTEGER NOT NULL)",
            ] {
                _ = try await connection.query(statement, [])
            }
        } catch {
            throw ClientError.localStore("cannot open profile.sqlite")
        }
        return LocalStore(connection: connection, key: key, lock: lock)
    }

    private init(connection: SQLiteConnection, key: SymmetricKey, lock: ProfileLock) {
        self.connection = connection
        self.key = key
        self.lock = lock
    }

    /// Closes the file, then lets another client open the profile.
    func close() async {
        try? await connection.close()
        lock = nil
    }

    deinit {
        // A client dropped without close(): close the file on SQLite's own thread pool.
        if !connection.isClosed { _ = connection.close() }
    }

    // MARK: Sealing

    private func seal(_ plaintext: [UInt8], binding: String) throws -> [UInt8] {
        do {
            return Array(try ChaChaPoly.seal(plaintext, using: key, authenticating: Array(binding.utf8)).combined)
        } catch {
            throw ClientError.localStore("cannot seal a value")
        }
    }

    private func open(_ sealed: [UInt8], binding: String) throws -> [UInt8] {
        do {
            return Array(try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: sealed), using: key, authenticating: Array(binding.utf8)))
        } catch {
            throw ClientError.localStore("a stored value does not open with profile.key (tampered or wrong key)")
        }
    }

    private func query(_ sql: String, _ binds: [SQLiteData]) async throws -> [SQLiteRow] {
        await awaitTurn()
        return try await run(sql, binds)
    }

    private func run(_ sql: String, _ binds: [SQLiteData]) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch {
            // SQLite's own reason (busy, full, corrupt…): it names no value, only what went wrong.
            let reason = (error as? SQLiteError).map { " (\($0.message))" } ?? ""
            throw ClientError.localStore("SQLite: \(sql.prefix(30))…\(reason)")
        }
    }

    // MARK: Transactions

    private var ownsTransaction: Bool { Self.transactionOf == ObjectIdentifier(self) }

    /// Waits while another task's transaction is open: its statements must
    /// not land in that transaction (to be rolled back with it), nor may a
    /// second one begin on the connection.
    private func awaitTurn() async {
        while inTransaction && !ownsTransaction { await withCheckedContinuation { waiting.append($0) } }
    }

    /// Runs `body` in one SQLite transaction: every write it makes is
    /// kept, or none (a crash in the middle leaves the store as before).
    /// A call inside another's body (the same task or its children) joins
    /// the outer transaction; other tasks' calls wait until it ends.
    func atomically<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if ownsTransaction { return try await body() }
        await awaitTurn()
        inTransaction = true
        defer {
            inTransaction = false
            let resumed = waiting
            waiting = []
            for waiter in resumed { waiter.resume() }
        }
        _ = try await run("BEGIN IMMEDIATE", [])
        do {
            let value = try await Self.$transactionOf.withValue(ObjectIdentifier(self)) { try await body() }
            _ = try await run("COMMIT", [])
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }

    // MARK: Values

    func meta(_ name: String) async throws -> [UInt8]? {
        guard let row = try await query("SELECT value FROM meta WHERE key = ?", [.text(name)]).first,
            case .blob(let buffer) = row.column("value")
        else { return nil }
        return try open(Array(buffer.readableBytesView), binding: "meta:" + name)
    }

    func setMeta(_ name: String, _ value: [UInt8]) async throws {
        _ = try await query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [.text(name), .blob(ByteBuffer(bytes: try seal(value, binding: "meta:" + name)))])
    }

    func group(_ id: ConversationID) async throws -> [UInt8]? {
        guard let row = try await query("SELECT value FROM groups WHERE id = ?", [.blob(ByteBuffer(bytes: id.bytes))]).first,
            case .blob(let buffer) = row.column("value")
        else { return nil }
        return try open(Array(buffer.readableBytesView), binding: "group:" + id.description)
    }

    func groupIDs() async throws -> [ConversationID] {
        try await query("SELECT id FROM groups", []).compactMap { row in
            guard case .blob(let buffer) = row.column("id") else { return nil }
            return ConversationID(bytes: Array(buffer.readableBytesView))
        }
    }

    func setGroup(_ id: ConversationID, _ value: [UInt8]) async throws {
        _ = try await query(
            "INSERT INTO groups (id, value) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET value = excluded.value",
            [.blob(ByteBuffer(bytes: id.bytes)), .blob(ByteBuffer(bytes: try seal(value, binding: "group:" + id.description)))])
    }

    func deleteGroup(_ id: ConversationID) async throws {
        _ = try await query("DELETE FROM groups WHERE id = ?", [.blob(ByteBuffer(bytes: id.bytes))])
    }

    func keyPackage(_ ref: [UInt8]) async throws -> (value: [UInt8], lastResort: Bool)? {
        guard let row = try await query("SELECT value, last_resort FROM key_packages WHERE ref = ?", [.blob(ByteBuffer(bytes: ref))]).first,
            case .blob(let buffer) = row.column("value")
        else { return nil }
        return (try open(Array(buffer.readableBytesView), binding: "kp:" + Hex.encode(ref)), row.column("last_resort")?.integer == 1)
    }

    func addKeyPackage(_ ref: [UInt8], _ value: [UInt8], lastResort: Bool) async throws {
        _ = try await query(
            "INSERT OR REPLACE INTO key_packages (ref, value, last_resort) VALUES (?, ?, ?)",
            [
                .blob(ByteBuffer(bytes: ref)), .blob(ByteBuffer(bytes: try seal(value, binding: "kp:" + Hex.encode(ref)))),
                .integer(lastResort ? 1 : 0),
            ])
    }

    func deleteKeyPackage(_ ref: [UInt8]) async throws {
        _ = try await query("DELETE FROM key_packages WHERE ref = ?", [.blob(ByteBuffer(bytes: ref))])
    }

    // MARK: Held events

    /// Holds an event (sealed) until it is confirmed; returns its number.
    @discardableResult
    func hold(_ value: [UInt8]) async throws -> Int64 {
        let rows = try await query("INSERT INTO held (value) VALUES (zeroblob(0)) RETURNING seq", [])
        guard let seq = rows.first?.column("seq")?.integer else { throw ClientError.localStore("cannot hold an event") }
        _ = try await query(
            "UPDATE held SET value = ? WHERE seq = ?", [.blob(ByteBuffer(bytes: try seal(value, binding: "held:\(seq)"))), .integer(seq)])
        return Int64(seq)
    }

    /// The held events, oldest first.
    func held() async throws -> [(seq: Int64, value: [UInt8])] {
        try await query("SELECT seq, value FROM held ORDER BY seq", []).map { row in
            guard let seq = row.column("seq")?.integer, case .blob(let buffer) = row.column("value") else {
                throw ClientError.localStore("a held event is unreadable")
            }
            return (Int64(seq), try open(Array(buffer.readableBytesView), binding: "held:\(seq)"))
        }
    }

    func release(through seq: Int64) async throws {
        _ = try await query("DELETE FROM held WHERE seq <= ?", [.integer(Int(seq))])
    }

    func releaseOne(_ seq: Int64) async throws {
        _ = try await query("DELETE FROM held WHERE seq = ?", [.integer(Int(seq))])
    }

    // MARK: Deferred inbox events

    func deferEvent(seq: Int64, conversation: ConversationID, at date: Date, _ value: [UInt8]) async throws {
        _ = try await query(
            "INSERT OR REPLACE INTO deferred (seq, conversation, at, value) VALUES (?, ?, ?, ?)",
            [
                .integer(Int(seq)), .blob(ByteBuffer(bytes: conversation.bytes)), .integer(Int(date.timeIntervalSince1970)),
                .blob(ByteBuffer(bytes: try seal(value, binding: "deferred:\(seq)"))),
            ])
    }

    /// A conversation's deferred events, in inbox order.
    func deferred(of conversation: ConversationID) async throws -> [(seq: Int64, value: [UInt8])] {
        try await query(
            "SELECT seq, value FROM deferred WHERE conversation = ? ORDER BY seq", [.blob(ByteBuffer(bytes: conversation.bytes))]
        )
        .map { row in
            guard let seq = row.column("seq")?.integer, case .blob(let buffer) = row.column("value") else {
                throw ClientError.localStore("a deferred event is unreadable")
            }
            return (Int64(seq), try open(Array(buffer.readableBytesView), binding: "deferred:\(seq)"))
        }
    }

    /// The conversations with deferred events.
    func deferredConversations() async throws -> [ConversationID] {
        try await query("SELECT DISTINCT conversation FROM deferred", []).compactMap { row in
            guard case .blob(let buffer) = row.column("conversation") else { return nil }
            return ConversationID(bytes: Array(buffer.readableBytesView))
        }
    }

    func dropOldestDeferred(_ count: Int) async throws {
        _ = try await query("DELETE FROM deferred WHERE seq IN (SELECT seq FROM deferred ORDER BY seq LIMIT ?)", [.integer(count)])
    }

    func deferredCount() async throws -> Int {
        try await query("SELECT COUNT(*) AS n FROM deferred", []).first?.column("n")?.integer ?? 0
    }

    /// Deletes deferred events: these, or a conversation's, or those deferred before a time; returns how many went.
    @discardableResult
    func dropDeferred(seq: Int64? = nil, conversation: ConversationID? = nil, before date: Date? = nil) async throws -> Int {
        if let seq { return try await query("DELETE FROM deferred WHERE seq = ? RETURNING seq", [.integer(Int(seq))]).count }
        if let conversation {
            return try await query(
                "DELETE FROM deferred WHERE conversation = ? RETURNING seq", [.blob(ByteBuffer(bytes: conversation.bytes))]
            ).count
        }
        guard let date else { return 0 }
        return try await query("DELETE FROM deferred WHERE at < ? RETURNING seq", [.integer(Int(date.timeIntervalSince1970))]).count
    }

    // MARK: Conversation flags

    enum Flag: String {
        /// The server proposed something this device should commit (D11).
        case needsCommit = "commit"
        /// A commit of this device was sent; whether the server took it is not known yet.
        case pendingCommit = "pending"
        /// The conversation keeps the state of an epoch before an own commit.
        case previousEpochs = "previous"
    }

    func setFlag(_ flag: Flag, _ id: ConversationID, _ set: Bool) async throws {
        _ = try await query(
            set ? "INSERT OR IGNORE INTO flags (id, flag) VALUES (?, ?)" : "DELETE FROM flags WHERE id = ? AND flag = ?",
            [.blob(ByteBuffer(bytes: id.bytes)), .text(flag.rawValue)])
    }

    func flagged(_ flag: Flag) async throws -> [ConversationID] {
        try await query("SELECT id FROM flags WHERE flag = ?", [.text(flag.rawValue)]).compactMap { row in
            guard case .blob(let buffer) = row.column("id") else { return nil }
            return ConversationID(bytes: Array(buffer.readableBytesView))
        }
    }

    func markDeparted(_ id: ConversationID, at date: Date) async throws {
        _ = try await query(
            "INSERT OR REPLACE INTO departed (id, at) VALUES (?, ?)",
            [.blob(ByteBuffer(bytes: id.bytes)), .integer(Int(date.timeIntervalSince1970))])
    }

    /// The device is in the conversation again (added back after it left).
    func clearDeparted(_ id: ConversationID) async throws {
        _ = try await query("DELETE FROM departed WHERE id = ?", [.blob(ByteBuffer(bytes: id.bytes))])
    }

    func departed(_ id: ConversationID) async throws -> Bool {
        try await !query("SELECT 1 FROM departed WHERE id = ?", [.blob(ByteBuffer(bytes: id.bytes))]).isEmpty
    }

    /// Empties every table: the profile holds no device any more (sign-out).
    func erase() async throws {
        for table in ["meta", "groups", "key_packages", "seen", "held", "deferred", "flags", "departed"] {
            _ = try await query("DELETE FROM \(table)", [])
        }
    }

    /// Records a message id; false when it was seen before (de-duplication).
    func markSeen(_ messageID: String, at date: Date) async throws -> Bool {
        let rows = try await query(
            "INSERT INTO seen (message_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING message_id",
            [.text(messageID), .integer(Int(date.timeIntervalSince1970))])
        return !rows.isEmpty
    }
}
