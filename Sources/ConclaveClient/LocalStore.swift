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

    static func open(directory: String) async throws -> LocalStore {
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ClientError.localStore("cannot create the profile directory")
        }
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
            ] {
                _ = try await connection.query(statement, [])
            }
        } catch {
            throw ClientError.localStore("cannot open profile.sqlite")
        }
        return LocalStore(connection: connection, key: key)
    }

    private init(connection: SQLiteConnection, key: SymmetricKey) {
        self.connection = connection
        self.key = key
    }

    func close() async {
        try? await connection.close()
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
        do { return try await connection.query(sql, binds) } catch { throw ClientError.localStore("SQLite: \(sql.prefix(30))…") }
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

    /// Records a message id; false when it was seen before (de-duplication).
    func markSeen(_ messageID: String, at date: Date) async throws -> Bool {
        let rows = try await query(
            "INSERT INTO seen (message_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING message_id",
            [.text(messageID), .integer(Int(date.timeIntervalSince1970))])
        return !rows.isEmpty
    }
}
