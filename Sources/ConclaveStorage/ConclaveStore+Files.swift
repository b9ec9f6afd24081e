import ConclaveProtocol
import Foundation

/// A shared file's row: the sealed bytes live in the blob directory under
/// the id; the database knows their size, who uploaded them to which
/// conversation, and when they go.
public struct FileRecord: Sendable, Hashable {
    public var id: FileID
    public var conversation: ConversationID
    /// The uploading device, as ``FileReader/key`` writes it.
    public var uploader: String
    public var size: UInt64
    public var received: UInt64
    public var createdAt: Date
    /// The message that shares it, once one does.
    public var messageID: String?
    public var expiresAt: Date?
    /// Burn-on-read: deleted once every reader fetched it.
    public var burn: Bool

    public var complete: Bool { received == size }

    public init(
        id: FileID, conversation: ConversationID, uploader: String, size: UInt64, received: UInt64 = 0, createdAt: Date,
        messageID: String? = nil, expiresAt: Date?, burn: Bool = false
    ) {
        self.id = id
        self.conversation = conversation
        self.uploader = uploader
        self.size = size
        self.received = received
        self.createdAt = createdAt
        self.messageID = messageID
        self.expiresAt = expiresAt
        self.burn = burn
    }
}

/// A device that may fetch a file: one of this network's (`user` nil), or
/// of another network.
public struct FileReader: Sendable, Hashable {
    public var device: DeviceID
    public var user: UserAddress?

    public init(device: DeviceID, user: UserAddress?) {
        self.device = device
        self.user = user
    }

    /// How a file's row names its uploader.
    public var key: String { user.map { "\($0)/\(device)" } ?? device.value }
}

/// The files a message shares, and who receives it.
public struct FileShare: Sendable {
    public var files: [FileID]
    public var sharer: FileReader
    public var readers: [FileReader]

    public init(files: [FileID], sharer: FileReader, readers: [FileReader]) {
        self.files = files
        self.sharer = sharer
        self.readers = readers
    }
}

extension ConclaveStore {
    public func createFile(_ file: FileRecord) async throws {
        try await writeKeepingCaches { connection in
            try await connection.execute(
                "INSERT INTO files (id, conversation_id, uploader, size, received, created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                [
                    .text(file.id.value), .blob(file.conversation.bytes), .text(file.uploader), .integer(Int64(file.size)),
                    .integer(file.createdAt.millis), file.expiresAt.map { .integer($0.millis) } ?? .null,
                ])
        }
    }

    public func file(_ id: FileID) async throws -> FileRecord? {
        try await database.read { connection in
            let rows = try await connection.query(
                "SELECT id, conversation_id, uploader, size, received, created_at, message_id, expires_at, burn FROM files WHERE id = ?",
                [.text(id.value)])
            return try rows.first.map { row in
                guard let id = FileID(try row.text(0)), let conversation = ConversationID(bytes: try row.blob(1)) else {
                    throw StoreError.corrupt("files")
                }
                return FileRecord(
                    id: id, conversation: conversation, uploader: try row.text(2), size: UInt64(max(0, try row.integer(3))),
                    received: UInt64(max(0, try row.integer(4))), createdAt: Date(millis: try row.integer(5)),
                    messageID: try row.optionalText(6), expiresAt: try row.optionalInteger(7).map(Date.init(millis:)),
                    burn: try row.integer(8) != 0)
            }
        }
    }

    /// Records that the server holds the file's first `count` bytes, if it
    /// held `previous` (a concurrent upload of the same range loses), and
    /// moves an unshared upload's deadline.
    public func recordReceived(_ id: FileID, previous: UInt64, count: UInt64, deadline: Date) async throws -> Bool {
        try await writeKeepingCaches { connection in
            let rows = try await connection.query(
                "UPDATE files SET received = ?, expires_at = ? WHERE id = ? AND received = ? AND message_id IS NULL RETURNING id",
                [.integer(Int64(count)), .integer(deadline.millis), .text(id.value), .integer(Int64(previous))])
            return !rows.isEmpty
        }
    }

    /// A reader fetched a burn-on-read file to its end. Returns true when
    /// it was the last one: the file's row is then gone.
    public func fileFetched(_ id: FileID, by reader: FileReader) async throws -> Bool {
        try await writeKeepingCaches { connection in
            try await connection.execute(
                "DELETE FROM file_readers WHERE file_id = ? AND device_id = ? AND user_address = ?",
                [.text(id.value), .text(reader.device.value), .text(reader.user?.description ?? "")])
            let gone = try await connection.query(
                """
                DELETE FROM files WHERE id = ? AND burn <> 0 AND message_id IS NOT NULL \
                AND NOT EXISTS (SELECT 1 FROM file_readers WHERE file_id = files.id) RETURNING id
                """, [.text(id.value)])
            return !gone.isEmpty
        }
    }

    /// Every file id with a row (files in the blob directory without one are
    /// left over from a crash between the row's deletion and the file's).
    public func fileIDs() async throws -> Set<FileID> {
        try await database.read { connection in
            Set(try await connection.query("SELECT id FROM files", []).compactMap { FileID(try $0.text(0)) })
        }
    }

    /// Ties the files to the message just stored: each must be complete,
    /// this conversation's, uploaded by the sharer and shared by no other
    /// message; otherwise the whole message is refused
    /// (``StoreError/conflict(_:)`` "files", the transaction rolls back).
    static func shareFiles(
        _ connection: any SQLConnection, _ share: FileShare, conversation: ConversationID, messageID: String, expiresAt: Date?,
        burn: Bool
    ) async throws {
        for file in share.files {
            let rows = try await connection.query(
                """
                UPDATE files SET message_id = ?, expires_at = ?, burn = ? WHERE id = ? AND conversation_id = ? AND uploader = ? \
                AND received = size AND message_id IS NULL RETURNING id
                """,
                [
                    .text(messageID), expiresAt.map { .integer($0.millis) } ?? .null, .integer(burn ? 1 : 0), .text(file.value),
                    .blob(conversation.bytes), .text(share.sharer.key),
                ])
            guard !rows.isEmpty else { throw StoreError.conflict("files") }
            guard burn else { continue }
            for reader in share.readers {
                try await connection.execute(
                    "INSERT INTO file_readers (file_id, device_id, user_address) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [.text(file.value), .text(reader.device.value), .text(reader.user?.description ?? "")])
            }
        }
    }

    /// Deletes the rows of files past their time, and of burn-on-read files
    /// whose readers have all fetched them or left the conversation.
    /// Returns their ids: the caller deletes the bytes.
    public func sweepFiles(now: Date) async throws -> [FileID] {
        try await writeKeepingCaches { connection in
            try await connection.execute(
                """
                DELETE FROM file_readers WHERE NOT EXISTS (SELECT 1 FROM files f JOIN conversation_devices d ON d.conversation_id = f.conversation_id \
                WHERE f.id = file_readers.file_id AND d.device_id = file_readers.device_id AND file_readers.user_address = '') \
                AND NOT EXISTS (SELECT 1 FROM files f JOIN conversation_remote_devices r ON r.conversation_id = f.conversation_id \
                WHERE f.id = file_readers.file_id AND r.device_id = file_readers.device_id AND r.user_address = file_readers.user_address)
                """, [])
            let gone = try await connection.query(
                """
                DELETE FROM files WHERE (expires_at IS NOT NULL AND expires_at <= ?) OR (burn <> 0 AND message_id IS NOT NULL \
                AND NOT EXISTS (SELECT 1 FROM file_readers WHERE file_id = files.id)) RETURNING id
                """, [.integer(now.millis)])
            return try gone.compactMap { FileID(try $0.text(0)) }
        }
    }
}
