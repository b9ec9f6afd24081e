import ConclaveProtocol
import ConclaveStorage
import Crypto
import Foundation
import _CryptoExtras

/// `conclave server backup` and `restore`: the data directory's files (the
/// network key, the admin token, the configuration), with the embedded
/// database a consistent online copy of it, and the shared files' sealed
/// bytes (`blobs/ID`, taken after the database), in one file encrypted
/// under a passphrase (docs/operations.md#backup-file-format):
///
///     header  "CONCLAVE-BACKUP1" (16 bytes) ‖ log2(N) r p 0 (4 bytes, scrypt) ‖ salt (16 bytes)
///     then    a ``SealedStream`` of 1 MiB chunks under key = scrypt(passphrase, salt, N, r, p, 32 bytes),
///             with the header as its header
///
/// The plaintext is a sequence of entries `name length (UInt16) ‖ name ‖
/// size (UInt64) ‖ bytes`, ended by a name length of 0. A changed,
/// reordered, truncated or extended file fails to decrypt.
public enum ServerBackup {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// What a backup holds.
    public struct Summary: Sendable {
        public var files: [String]
        public var bytes: Int
        /// Shared files' sealed bytes (`blobs/…`), not listed in `files`.
        public var sharedFiles = 0
        /// Whether the database is in the backup (false on PostgreSQL: pg_dump backs it up).
        public var includesDatabase: Bool
    }

    static let magic = Array("CONCLAVE-BACKUP1".utf8)
    static let chunkSize = 1 << 20
    /// The files a backup may hold, and nothing else (a restore writes no other name).
    static let configurationFiles = ["conclave.json", "network.key", "admin.token"]
    static let databaseFile = "conclave.sqlite"
    /// Shared files are `blobs/ID` (an id is 32 hex digits: no other name is written).
    static let blobPrefix = "blobs/"

    /// Backs up `directory` into a new file `destination` (mode 0600).
    /// `postgres`: the database is PostgreSQL even if conclave.json does not say so (`CONCLAVE_POSTGRES`).
    public static func create(of directory: DataDirectory, to destination: String, passphrase: String, postgres: Bool = false) throws
        -> Summary
    {
        try checkPassphrase(passphrase)
        let settings: DataDirectory.Settings
        do { settings = try directory.settings() } catch { throw Failure("\(error)") }
        guard !FileManager.default.fileExists(atPath: destination) else { throw Failure("\(destination) exists; refusing to overwrite it") }
        let scratch = NSTemporaryDirectory() + "conclave-backup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var sources = configurationFiles.map { ($0, directory.path + "/" + $0) }.filter { FileManager.default.fileExists(atPath: $0.1) }
        let includesDatabase = settings.postgres == nil && !postgres
        if includesDatabase {
            let copy = scratch + "/" + databaseFile
            do { try SQLiteBackup.copy(from: directory.sqliteFile, to: copy) } catch { throw Failure("the database: \(error)") }
            sources.append((databaseFile, copy))
        }
        // After the database: a file whose row is in the copy was complete, or is being uploaded, by then; one
        // created later has no row there and is deleted at the restored server's start.
        let blobs = settings.blobDir ?? directory.blobDirectory
        let shared = ((try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? []).compactMap(FileID.init).sorted()
        sources += shared.map { (blobPrefix + $0.value, blobs + "/" + $0.value) }
        let partial = destination + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil, attributes: [.posixPermissions: 0o600]),
            let output = FileHandle(forWritingAtPath: partial)
        else { throw Failure("cannot create \(destination)") }
        do {
            let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
            let header = magic + [cost.log2N, cost.r, cost.p, 0] + salt
            try output.write(contentsOf: header)
            let writer = SealedStream.Writer(
                key: try key(passphrase, salt: salt, log2N: cost.log2N, r: cost.r, p: cost.p), header: header, chunkSize: chunkSize,
                output: { try output.write(contentsOf: $0) })
            var total = 0
            var saved: [String] = []
            for (name, path) in sources {
                let isBlob = name.hasPrefix(blobPrefix)
                guard let input = FileHandle(forReadingAtPath: path) else {
                    if isBlob { continue }  // deleted meanwhile (expired, burned)
                    throw Failure("cannot read \(path)")
                }
                defer { try? input.close() }
                let size = try input.seekToEnd()
                try input.seek(toOffset: 0)
                try writer.append(UInt16(name.utf8.count).bigEndianBytes + Array(name.utf8) + size.bigEndianBytes)
                var copied: UInt64 = 0
                // An upload in progress may grow meanwhile: the bytes up to its size when opened are taken.
                while copied < size, let piece = try input.read(upToCount: Int(min(UInt64(chunkSize), size - copied))), !piece.isEmpty {
                    try writer.append(Array(piece))
                    copied += UInt64(piece.count)
                }
                guard copied == size else { throw Failure("\(path) changed while it was read") }
                total += Int(size)
                saved.append(name)
            }
            try writer.append(UInt16(0).bigEndianBytes)
            try writer.finish()
            try output.close()
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
            return Summary(
                files: saved.filter { !$0.hasPrefix(blobPrefix) }, bytes: total,
                sharedFiles: saved.filter { $0.hasPrefix(blobPrefix) }.count,
                includesDatabase: includesDatabase)
        } catch {
            try? output.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    /// Restores a backup into `directory`, which must not exist (or be
    /// empty). On any failure nothing is left behind.
    public static func restore(from source: String, into directory: DataDirectory, passphrase: String) throws -> Summary {
        let files = FileManager.default
        if files.fileExists(atPath: directory.path) {
            guard (try? files.contentsOfDirectory(atPath: directory.path))?.isEmpty == true else {
                throw Failure("\(directory.path) exists and is not empty; restore into a new directory")
            }
        }
        guard let input = FileHandle(forReadingAtPath: source) else { throw Failure("cannot read \(source)") }
        defer { try? input.close() }
        let existed = files.fileExists(atPath: directory.path)
        do {
            try files.createDirectory(atPath: directory.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            guard let header = try input.read(upToCount: 36).map(Array.init), header.count == 36, Array(header.prefix(16)) == magic else {
                throw Failure("not a Conclave backup file")
            }
            let reader = SealedStream.Reader(
                key: try key(passphrase, salt: Array(header[20..<36]), log2N: header[16], r: header[17], p: header[18]), header: header,
                chunkSize: chunkSize, input: { Array(try input.read(upToCount: $0) ?? Data()) })
            var restored: [String] = []
            var total = 0
            while true {
                let length = Int(try UInt16(bigEndianBytes: try reader.read(2)))
                if length == 0 { break }
                let name = String(decoding: try reader.read(length), as: UTF8.self)
                let isBlob = name.hasPrefix(blobPrefix) && FileID(String(name.dropFirst(blobPrefix.count))) != nil
                guard configurationFiles.contains(name) || name == databaseFile || isBlob, !restored.contains(name) else {
                    throw Failure("the backup names an unexpected file")
                }
                if isBlob, !files.fileExists(atPath: directory.blobDirectory) {
                    try files.createDirectory(
                        atPath: directory.blobDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                }
                let size = try UInt64(bigEndianBytes: try reader.read(8))
                let path = directory.path + "/" + name
                guard files.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                    let output = FileHandle(forWritingAtPath: path)
                else { throw Failure("cannot write \(path)") }
                defer { try? output.close() }
                var left = size
                while left > 0 {
                    let piece = try reader.read(Int(min(left, UInt64(chunkSize))))
                    try output.write(contentsOf: piece)
                    left -= UInt64(piece.count)
                }
                restored.append(name)
                total += Int(size)
            }
            try reader.finish()
            guard restored.contains("conclave.json"), restored.contains("network.key") else {
                throw Failure("the backup lacks conclave.json or network.key")
            }
            let settings = try directory.settings()
            _ = try directory.networkKey(domain: settings.network)
            let includesDatabase = restored.contains(databaseFile)
            if includesDatabase, !SQLiteBackup.isIntact(directory.sqliteFile) {
                throw Failure("the restored database fails SQLite's integrity check")
            }
            return Summary(
                files: restored.filter { !$0.hasPrefix(blobPrefix) }, bytes: total,
                sharedFiles: restored.filter { $0.hasPrefix(blobPrefix) }.count, includesDatabase: includesDatabase)
        } catch {
            let failure: any Error
            switch error {
            case SealedStream.Failure.damaged: failure = Failure("the passphrase is wrong, or the backup file is damaged")
            case SealedStream.Failure.truncated: failure = Failure("the backup file is truncated")
            case SealedStream.Failure.trailingData: failure = Failure("the backup file has data past its end")
            default: failure = error
            }
            if existed {
                for name in (try? files.contentsOfDirectory(atPath: directory.path)) ?? [] {
                    try? files.removeItem(atPath: directory.path + "/" + name)
                }
            } else {
                try? files.removeItem(atPath: directory.path)
            }
            throw failure
        }
    }

    static func checkPassphrase(_ passphrase: String) throws {
        guard passphrase.count >= 12 else { throw Failure("the passphrase has at least 12 characters") }
    }

    /// scrypt's cost: N = 2^15, r = 8, p = 1 (32 MiB, a fraction of a second).
    static let cost: (log2N: UInt8, r: UInt8, p: UInt8) = (15, 8, 1)

    static func key(_ passphrase: String, salt: [UInt8], log2N: UInt8, r: UInt8, p: UInt8) throws -> SymmetricKey {
        guard (10...20).contains(log2N), (1...16).contains(r), (1...4).contains(p) else { throw Failure("not a Conclave backup") }
        return try KDF.Scrypt.deriveKey(
            from: Array(passphrase.utf8), salt: salt, outputByteCount: 32, rounds: 1 << Int(log2N), blockSize: Int(r),
            parallelism: Int(p), maxMemory: 512 * 1024 * 1024)
    }

}

extension FixedWidthInteger {
    fileprivate var bigEndianBytes: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }

    fileprivate init(bigEndianBytes bytes: [UInt8]) throws {
        guard bytes.count == MemoryLayout<Self>.size else { throw ServerBackup.Failure("the backup file is damaged") }
        self = bytes.reduce(0) { $0 << 8 | Self($1) }
    }
}
