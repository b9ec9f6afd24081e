import ConclaveProtocol
import Foundation
import Synchronization

/// Everything the server keeps, behind one interface. The SQL is written
/// once here; ``SQLiteDatabase`` and ``PostgresDatabase`` carry it out.
/// Message payloads are MLS ciphertext only: the store never sees plaintext.
public struct ConclaveStore: Sendable {
    public let database: any SQLDatabase
    /// Requests the federation outbox holds for one peer at most.
    public let outboxLimit: Int
    /// Sessions and conversation members, served from memory.
    let caches = StoreCaches()
    /// This process among those sharing the database (``ClusterSignal``).
    let origin = String(UUID().uuidString.prefix(8)).lowercased()
    /// Told how long each write transaction took (the server's metrics).
    public let observer = StoreObserver()
    /// Application messages' wake-ups for the other server processes, sent after their transactions committed.
    let inboxAnnouncer = InboxAnnouncer()
    /// Application messages stored in batches, on PostgreSQL.
    let appender = MessageAppender()

    public init(database: any SQLDatabase, outboxLimit: Int = 10_000) {
        self.database = database
        self.outboxLimit = outboxLimit
    }

    /// A write transaction; the caches are dropped once it has ended, so no
    /// read after it sees what it changed from memory. On a shared database
    /// the transaction also tells the other server processes to drop theirs,
    /// when (and only if) it commits.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        defer { caches.invalidate() }
        guard let origin = clusterOrigin else { return try await timed(body) }
        return try await timed { connection in
            let result = try await body(connection)
            try await Self.announce(.invalidate, from: origin, on: connection)
            return result
        }
    }

    /// A write transaction that changes nothing the caches hold (it stores
    /// or deletes messages and inbox entries only), so they stay.
    func writeKeepingCaches<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        try await timed(body)
    }

    /// One statement that is a write transaction of its own (PostgreSQL:
    /// no BEGIN and COMMIT round trips), changing nothing the caches hold.
    func writeOneStatement(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await measured { try await database.autocommit(sql, binds) }
    }

    /// A write transaction, its duration told to ``observer``.
    private func timed<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        try await measured { try await database.transaction(body) }
    }

    /// Runs a write, and tells ``observer`` how long it took (queueing, statements and commit).
    private func measured<T: Sendable>(_ write: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        defer { observer.transactionEnded(after: ContinuousClock.now - start) }
        return try await write()
    }

    /// Brings the schema to the newest version, one migration per
    /// transaction. On PostgreSQL each transaction first takes an advisory
    /// lock and reads the version again under it, so that server processes
    /// starting at once on one database migrate it once, in order.
    public func migrate() async throws {
        let migrations = Schema.migrations(database.dialect)
        let bigint = database.dialect == .sqlite ? "INTEGER" : "BIGINT"
        let lock = database.dialect == .postgres ? "SELECT pg_advisory_xact_lock(\(Self.migrationLock))" : nil
        while true {
            let done = try await write { connection -> Bool in
                if let lock { try await connection.execute(lock) }
                try await connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version \(bigint) NOT NULL)")
                let rows = try await connection.query("SELECT version FROM schema_version", [])
                let current: Int64
                if let row = rows.first {
                    current = try row.integer(0)
                } else {
                    try await connection.execute("INSERT INTO schema_version (version) VALUES (0)")
                    current = 0
                }
                guard current <= Int64(migrations.count) else { throw StoreError.schemaTooNew(Int(current)) }
                guard current < Int64(migrations.count) else { return true }
                for statement in migrations[Int(current)] { try await connection.execute(statement) }
                try await connection.execute("UPDATE schema_version SET version = ?", [.integer(current + 1)])
                return false
            }
            if done { return }
        }
    }

    /// Whether the database answers and its schema is the newest this
    /// server knows (readiness: false while another process migrates).
    public func isCurrent() async -> Bool {
        let target = Int64(Schema.migrations(database.dialect).count)
        return
            (try? await database.read { connection in
                try await connection.query("SELECT version FROM schema_version", []).first?.integer(0) == target
            }) ?? false
    }

    /// The advisory lock key of migrations on PostgreSQL ("conclave" in ASCII).
    static let migrationLock: Int64 = 0x636F_6E63_6C61_7665

    public func close() async throws { try await database.close() }

    var forUpdate: String { database.dialect == .postgres ? " FOR UPDATE" : "" }

    /// The lock an `UPDATE` of a non-key column takes on PostgreSQL. Taken
    /// first with `ORDER BY id`, it makes transactions that write to
    /// overlapping sets of device rows lock them in one order: without it
    /// they lock in scan order and deadlock (SQLSTATE 40P01). SQLite
    /// serialises writers and needs none.
    var deviceLock: String { database.dialect == .postgres ? " FOR NO KEY UPDATE" : "" }
}

// MARK: - Users and devices

extension ConclaveStore {
    /// Creates a user in an existing security group. Throws
    /// ``StoreError/conflict(_:)`` when the name is taken and
    /// ``StoreError/notFound(_:)`` when the group does not exist.
    public func createUser(_ user: UserRecord, audit: AuditDraft? = nil) async throws {
        try await write { connection in
            guard let group = SecurityGroupName(user.securityGroup),
                try await Self.securityGroup(connection, group, lock: forUpdate) != nil
            else { throw StoreError.notFound("security group") }
            try await connection.execute("DELETE FROM deleted_accounts WHERE user_name = ?", [.text(user.name.value)])
            try await connection.execute(
                "INSERT INTO users (name, password_hash, security_group, suspended, created_at) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(user.name.value), .text(user.passwordHash), .text(user.securityGroup), .integer(user.suspended ? 1 : 0),
                    .integer(user.createdAt.millis),
                ])
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
        }
    }

    public func user(named name: UserName) async throws -> UserRecord? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT name, password_hash, security_group, suspended, created_at FROM users WHERE name = ?", [.text(name.value)])
            return try rows.first.map(Self.userRecord)
        }
    }

    public func users() async throws -> [(user: UserRecord, devices: Int)] {
        try await database.read { connection in
            let rows = try await connection.query(
                """
                SELECT u.name, u.password_hash, u.security_group, u.suspended, u.created_at, \
                (SELECT COUNT(*) FROM devices d WHERE d.user_name = u.name) FROM users u ORDER BY u.name
                """, [])
            return try rows.map { (try Self.userRecord($0), Int(try $0.integer(5))) }
        }
    }

    /// Replaces a user's password hash. False when there is no such user.
    public func setPasswordHash(of name: UserName, to hash: String, audit: AuditDraft? = nil) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE users SET password_hash = ? WHERE name = ? RETURNING name", [.text(hash), .text(name.value)])
            if let audit, !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }

    /// Sets the suspension flag; a suspension also ends every session of the
    /// user at once and deletes their devices' key packages, so that after
    /// it a device is added to a conversation again only once it has signed
    /// in again (and published new ones). Returns false when there is no
    /// such user.
    public func setSuspended(_ name: UserName, _ suspended: Bool, audit: AuditDraft? = nil) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE users SET suspended = ? WHERE name = ? RETURNING name", [.integer(suspended ? 1 : 0), .text(name.value)])
            if suspended {
                try await connection.execute(
                    "DELETE FROM sessions WHERE device_id IN (SELECT id FROM devices WHERE user_name = ?)", [.text(name.value)])
                try await connection.execute(
                    "DELETE FROM key_packages WHERE device_id IN (SELECT id FROM devices WHERE user_name = ?)", [.text(name.value)])
            }
            if let audit, !rows.isEmpty { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return !rows.isEmpty
        }
    }

    /// Deletes a user with its devices, sessions, key packages and inbox.
    /// Returns the devices it had, or nil when there is no such user.
    public func deleteUser(_ name: UserName, audit: AuditDraft? = nil) async throws -> [DeviceID]? {
        try await write { connection in
            // Locked in id order first, as deliveries lock them (see deviceLock).
            let devices = try await connection.query(
                "SELECT id FROM devices WHERE user_name = ? ORDER BY id\(forUpdate)", [.text(name.value)])
            let deleted = try await connection.query("DELETE FROM users WHERE name = ? RETURNING name", [.text(name.value)])
            guard !deleted.isEmpty else { return nil }
            // The user's 1:1s keep their pair (D21) under a key no new 1:1 takes: a new account of the same name starts anew.
            try await connection.execute(
                """
                UPDATE conversations SET direct_key = direct_key || ' deleted-' || created_at WHERE kind = 'direct' AND id IN \
                (SELECT conversation_id FROM conversation_members WHERE user_name = ?)
                """, [.text(name.value)])
            try await connection.execute("DELETE FROM conversation_members WHERE user_name = ?", [.text(name.value)])
            try await connection.execute(
                """
                INSERT INTO deleted_accounts (user_name, deleted_at) VALUES (?, ?) \
                ON CONFLICT (user_name) DO UPDATE SET deleted_at = excluded.deleted_at
                """, [.text(name.value), .integer((audit?.at ?? Date()).millis)])
            try await Self.recordTransparency(connection, user: name, at: audit?.at ?? Date(), lock: forUpdate)
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return try devices.map(Self.deviceID)
        }
    }

    public func createDevice(_ device: DeviceRecord) async throws {
        try await write { connection in
            try await connection.execute(
                "INSERT INTO devices (id, user_name, name, signature_key, certificate, created_at, pending, transfer_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .text(device.id.value), .text(device.user.value), .text(device.name), .blob(device.signatureKey),
                    .blob(device.certificate), .integer(device.createdAt.millis), .integer(device.pending ? 1 : 0),
                    device.transferKey.map(SQLValue.blob) ?? .null,
                ])
        }
    }

    public func device(_ id: DeviceID) async throws -> DeviceRecord? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT \(Self.deviceColumns) FROM devices WHERE id = ?",
                [.text(id.value)])
            return try rows.first.map(Self.deviceRecord)
        }
    }

    public func devices(of user: UserName) async throws -> [DeviceRecord] {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT \(Self.deviceColumns) FROM devices WHERE user_name = ? ORDER BY created_at, id",
                [.text(user.value)])
            return try rows.map(Self.deviceRecord)
        }
    }

    /// Deletes every device of a user (and with them sessions, key packages
    /// and inboxes). Returns the deleted devices.
    public func deleteDevices(of user: UserName, audit: AuditDraft? = nil) async throws -> [DeviceID] {
        try await write { connection in
            if database.dialect == .postgres {
                try await connection.execute("SELECT id FROM devices WHERE user_name = ? ORDER BY id FOR UPDATE", [.text(user.value)])
            }
            let rows = try await connection.query("DELETE FROM devices WHERE user_name = ? RETURNING id", [.text(user.value)])
            // With every device gone the identity key is gone too: the next first device makes a new one.
            try await connection.execute("DELETE FROM user_identities WHERE user_name = ?", [.text(user.value)])
            try await Self.recordTransparency(connection, user: user, at: audit?.at ?? Date(), lock: forUpdate)
            if let audit { try await Self.appendAudit(connection, audit, lock: forUpdate) }
            return try rows.map(Self.deviceID)
        }
    }

    /// Deletes one device (its sessions, key packages and inbox go with it).
    /// Returns false when there is no such device.
    public func deleteDevice(_ id: DeviceID) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query("DELETE FROM devices WHERE id = ? RETURNING user_name", [.text(id.value)])
            guard let row = rows.first else { return false }
            guard let user = UserName(try row.text(0)) else { throw StoreError.corrupt("devices.user_name") }
            try await Self.recordTransparency(connection, user: user, at: Date(), lock: forUpdate)
            return true
        }
    }

    static func userRecord(_ row: SQLRow) throws -> UserRecord {
        guard let name = UserName(try row.text(0)) else { throw StoreError.corrupt("users.name") }
        return UserRecord(
            name: name, passwordHash: try row.text(1), securityGroup: try row.text(2), suspended: try row.integer(3) != 0,
            createdAt: Date(millis: try row.integer(4)))
    }

    static let deviceColumnNames = [
        "id", "user_name", "name", "signature_key", "certificate", "created_at", "last_seen_at", "pending", "transfer_key", "approval",
        "sealed_identity",
    ]
    static let deviceColumnCount = deviceColumnNames.count
    static func deviceColumns(prefix: String) -> String { deviceColumnNames.map { prefix + $0 }.joined(separator: ", ") }
    static var deviceColumns: String { deviceColumns(prefix: "") }

    /// A device from the columns of ``deviceColumns``.
    static func deviceRecord(_ row: SQLRow) throws -> DeviceRecord {
        guard let id = DeviceID(try row.text(0)), let user = UserName(try row.text(1)) else { throw StoreError.corrupt("devices.id") }
        return DeviceRecord(
            id: id, user: user, name: try row.text(2), signatureKey: try row.blob(3), certificate: try row.blob(4),
            createdAt: Date(millis: try row.integer(5)), lastSeenAt: try row.optionalInteger(6).map(Date.init(millis:)),
            pending: try row.integer(7) != 0, transferKey: try row.optionalBlob(8), approval: try row.optionalBlob(9),
            sealedIdentity: try row.optionalBlob(10))
    }

    static func deviceID(_ row: SQLRow) throws -> DeviceID {
        guard let id = DeviceID(try row.text(0)) else { throw StoreError.corrupt("devices.id") }
        return id
    }
}

// MARK: - Sessions

extension ConclaveStore {
    public func createSession(tokenHash: [UInt8], device: DeviceID, createdAt: Date, expiresAt: Date) async throws {
        try await write { connection in
            try await connection.execute(
                "INSERT INTO sessions (token_hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                [.blob(tokenHash), .text(device.value), .integer(createdAt.millis), .integer(expiresAt.millis)])
        }
    }

    /// The device and user of a live session of a user who is not
    /// suspended; nil otherwise.
    /// Served from memory once read (``StoreCaches``).
    public func session(tokenHash: [UInt8], now: Date) async throws -> (device: DeviceRecord, user: UserRecord)? {
        if let cached = caches.session(tokenHash, now: now) { return (cached.device, cached.user) }
        let generation = caches.generation
        let found = try await database.read { connection -> StoreCaches.CachedSession? in
            let rows = try await connection.query(
                """
                SELECT \(Self.deviceColumns(prefix: "d.")), \
                u.name, u.password_hash, u.security_group, u.suspended, u.created_at, s.expires_at \
                FROM sessions s JOIN devices d ON d.id = s.device_id JOIN users u ON u.name = d.user_name \
                WHERE s.token_hash = ? AND s.expires_at > ? AND u.suspended = 0
                """, [.blob(tokenHash), .integer(now.millis)])
            guard let row = rows.first else { return nil }
            let device = try Self.deviceRecord(row)
            let user = try Self.userRecord(SQLRow(Array(row.values[Self.deviceColumnCount..<(Self.deviceColumnCount + 5)])))
            return StoreCaches.CachedSession(
                device: device, user: user, expiresAt: Date(millis: try row.integer(Self.deviceColumnCount + 5)))
        }
        guard let found else { return nil }
        caches.keep(session: found, for: tokenHash, readAt: generation)
        return (found.device, found.user)
    }

    /// ``session(tokenHash:now:)`` if memory holds it; nil when it does not
    /// (ask the database then, with ``session(tokenHash:now:)``).
    public func sessionInMemory(tokenHash: [UInt8], now: Date) -> (device: DeviceRecord, user: UserRecord)? {
        caches.session(tokenHash, now: now).map { ($0.device, $0.user) }
    }

    /// Whether the token names a session that has expired (of a device
    /// that still exists, of a user who is not suspended).
    public func sessionExpired(tokenHash: [UInt8], now: Date) async throws -> Bool {
        try await database.read { connection in
            try await !connection.query(
                """
                SELECT 1 FROM sessions s JOIN devices d ON d.id = s.device_id JOIN users u ON u.name = d.user_name \
                WHERE s.token_hash = ? AND s.expires_at <= ? AND u.suspended = 0
                """, [.blob(tokenHash), .integer(now.millis)]
            ).isEmpty
        }
    }

    /// Deletes sessions that expired before `date`.
    public func deleteSessions(expiredBefore date: Date) async throws -> Int {
        try await write { connection in
            try await connection.query("DELETE FROM sessions WHERE expires_at < ? RETURNING device_id", [.integer(date.millis)]).count
        }
    }

    public func deleteSession(tokenHash: [UInt8]) async throws {
        try await write { connection in
            try await connection.execute("DELETE FROM sessions WHERE token_hash = ?", [.blob(tokenHash)])
        }
    }
}

// MARK: - Key packages

extension ConclaveStore {
    /// Stores key packages of a device, all of one cipher suite; a new
    /// last-resort package replaces the suite's old one.
    /// Throws ``StoreError/full(_:)`` when the device would hold more
    /// than `stock` ordinary packages of the suite (K3).
    public func addKeyPackages(
        device: DeviceID, suite: UInt16 = 1, _ packages: [(ref: [UInt8], data: [UInt8])], lastResort: (ref: [UInt8], data: [UInt8])?,
        now: Date, stock: Int = .max
    )
        async throws
    {
        try await write { connection in
            let held =
                try await connection.query(
                    "SELECT COUNT(*) FROM key_packages WHERE device_id = ? AND cipher_suite = ? AND last_resort = 0",
                    [.text(device.value), .integer(Int64(suite))]
                ).first?.integer(0) ?? 0
            guard Int(held) + packages.count <= stock else { throw StoreError.full("key packages") }
            for package in packages {
                try await connection.execute(
                    "INSERT INTO key_packages (ref, device_id, cipher_suite, data, last_resort, created_at) VALUES (?, ?, ?, ?, 0, ?)",
                    [.blob(package.ref), .text(device.value), .integer(Int64(suite)), .blob(package.data), .integer(now.millis)])
            }
            if let lastResort {
                try await connection.execute(
                    "DELETE FROM key_packages WHERE device_id = ? AND cipher_suite = ? AND last_resort = 1",
                    [.text(device.value), .integer(Int64(suite))])
                try await connection.execute(
                    "INSERT INTO key_packages (ref, device_id, cipher_suite, data, last_resort, created_at) VALUES (?, ?, ?, ?, 1, ?)",
                    [.blob(lastResort.ref), .text(device.value), .integer(Int64(suite)), .blob(lastResort.data), .integer(now.millis)])
            }
        }
    }

    /// How many ordinary key packages of a suite a device holds, and
    /// whether it has a last-resort one.
    public func keyPackageCount(device: DeviceID, suite: UInt16 = 1) async throws -> (available: Int, lastResort: Bool) {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT last_resort, COUNT(*) FROM key_packages WHERE device_id = ? AND cipher_suite = ? GROUP BY last_resort",
                [.text(device.value), .integer(Int64(suite))])
            var available = 0
            var lastResort = false
            for row in rows {
                if try row.integer(0) == 1 { lastResort = true } else { available = Int(try row.integer(1)) }
            }
            return (available, lastResort)
        }
    }

    /// Takes one key package of every device of a user, in one transaction,
    /// all of one suite: the first of `suites` that every device holding
    /// key packages has (else the first, and the devices without it are
    /// `missing`). An ordinary package is consumed, else the last-resort
    /// one is handed out and kept (RFC 9420 §16.8).
    public func claimKeyPackages(user: UserName, suites: [UInt16] = [1]) async throws -> KeyPackageClaimResult {
        try await write { connection in
            // A pending device is in no conversation until its user approved it.
            let held = try await connection.query(
                """
                SELECT k.device_id, k.cipher_suite FROM key_packages k JOIN devices d ON d.id = k.device_id \
                WHERE d.user_name = ? AND d.pending = 0 GROUP BY k.device_id, k.cipher_suite
                """, [.text(user.value)])
            var suitesOf: [DeviceID: Set<UInt16>] = [:]
            for row in held {
                suitesOf[try Self.deviceID(row), default: []].insert(UInt16(clamping: try row.integer(1)))
            }
            let devices = suitesOf.keys.sorted { $0.value < $1.value }
            let suite = suites.first { suite in devices.allSatisfy { suitesOf[$0]?.contains(suite) == true } } ?? suites.first ?? 1
            var result = KeyPackageClaimResult(suite: suite, packages: [], missing: [])
            for device in devices {
                guard suitesOf[device]?.contains(suite) == true else {
                    result.missing.append(device)
                    continue
                }
                let packages = try await connection.query(
                    """
                    SELECT ref, data, last_resort FROM key_packages WHERE device_id = ? AND cipher_suite = ? \
                    ORDER BY last_resort, created_at LIMIT 1\(forUpdate)
                    """, [.text(device.value), .integer(Int64(suite))])
                guard let package = packages.first else { continue }
                if try package.integer(2) == 0 {
                    try await connection.execute("DELETE FROM key_packages WHERE ref = ?", [.blob(try package.blob(0))])
                }
                result.packages.append((device, try package.blob(1)))
            }
            return result
        }
    }
}

extension ConclaveStore {
    /// Which of these devices hold a key package (one-time or last resort) of `suite`.
    public func devicesHoldingKeyPackages(suite: UInt16, among devices: [DeviceID]) async throws -> Set<DeviceID> {
        guard !devices.isEmpty else { return [] }
        return try await database.read { connection in
            let marks = Array(repeating: "?", count: devices.count).joined(separator: ", ")
            let rows = try await connection.query(
                "SELECT DISTINCT device_id FROM key_packages WHERE cipher_suite = ? AND device_id IN (\(marks))",
                [.integer(Int64(suite))] + devices.map { .text($0.value) })
            return Set(try rows.map(Self.deviceID))
        }
    }
}

/// What ``ConclaveStore/claimKeyPackages(user:suites:)`` took.
public struct KeyPackageClaimResult: Sendable {
    /// The suite of every package taken.
    public var suite: UInt16
    public var packages: [(device: DeviceID, data: [UInt8])]
    /// Devices that hold key packages, but none of `suite`.
    public var missing: [DeviceID]
}

extension UserName {
    /// A 1:1 conversation's key: the two users, sorted.
    public static func directKey(_ a: UserName, _ b: UserName) -> String {
        [a.value, b.value].sorted().joined(separator: " ")
    }
}

/// Told how long each of the store's write transactions took.
public protocol TransactionObserver: AnyObject, Sendable {
    func transactionEnded(after duration: Duration)
}

/// Who is told how long the store's write transactions take: set once by
/// the server before it serves, read on every transaction. (An object, not
/// a closure: a closure kept in a generic container is called through
/// reabstraction thunks, which cost more than the transaction's bookkeeping.)
public final class StoreObserver: Sendable {
    private let observer = Mutex<(any TransactionObserver)?>(nil)

    public func observeTransactions(with observer: any TransactionObserver) { self.observer.withLock { $0 = observer } }

    func transactionEnded(after duration: Duration) { observer.withLock { $0 }?.transactionEnded(after: duration) }
}
