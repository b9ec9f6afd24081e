import ConclaveProtocol
import ConclaveSupport
import Logging
import NIOCore
import SQLiteNIO
import Synchronization

/// The embedded default: one SQLite file in WAL mode, `synchronous=FULL`
/// so that a committed transaction survives a crash of the process or the
/// machine. One writer connection (SQLite allows one writer at a time) and a
/// few reader connections that WAL lets run beside it.
///
/// Write transactions are **group-committed**: transactions that arrive
/// while another batch is being written wait, then run together in one
/// SQLite transaction, each inside its own savepoint (so each still commits
/// or rolls back on its own), and share one fsync. No caller returns before
/// the batch's COMMIT is durable.
public final class SQLiteDatabase: SQLDatabase {
    public let dialect = SQLDialect.sqlite
    private let writer: SQLiteConnection
    private let readers: [SQLiteConnection]
    private let writeLock = AsyncLock()
    private let pending = Mutex<[WriteJob]>([])
    private let readerCursor = RoundRobin()

    public static func open(path: String, readers readerCount: Int = 2, logger: Logger) async throws -> SQLiteDatabase {
        do {
            let writer = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=10000"] {
                _ = try await writer.query(pragma, [])
            }
            var readers: [SQLiteConnection] = []
            for _ in 0..<max(1, readerCount) {
                let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
                for pragma in ["PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=10000", "PRAGMA query_only=ON"] {
                    _ = try await reader.query(pragma, [])
                }
                readers.append(reader)
            }
            return SQLiteDatabase(writer: writer, readers: readers)
        } catch let error as SQLiteError {
            throw StoreError.database("cannot open the SQLite database: \(error.reason)")
        }
    }

    private init(writer: SQLiteConnection, readers: [SQLiteConnection]) {
        self.writer = writer
        self.readers = readers
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let result = WriteResult<T>()
        let job = WriteJob { connection in result.set(try await body(connection)) }
        pending.withLock { $0.append(job) }
        // Whoever holds the lock writes every job queued so far, ours included
        // unless an earlier holder already took it.
        try await writeLock.withLock { await self.writePendingBatch() }
        if let error = job.error { throw error }
        guard let value = result.value else { throw StoreError.database("a write transaction did not run") }
        return value
    }

    /// Runs the queued jobs as one transaction, one savepoint each.
    private func writePendingBatch() async {
        let jobs = pending.withLock { queued in
            defer { queued.removeAll() }
            return queued
        }
        guard !jobs.isEmpty else { return }
        let connection = SQLiteTransaction(connection: writer)
        do {
            try await connection.execute("BEGIN IMMEDIATE")
        } catch {
            for job in jobs { job.error = error }
            return
        }
        for job in jobs {
            do {
                try await connection.execute("SAVEPOINT job")
                try await job.run(connection)
                try await connection.execute("RELEASE job")
            } catch {
                job.error = error
                do {
                    try await connection.execute("ROLLBACK TO job")
                    try await connection.execute("RELEASE job")
                } catch {
                    // The failed job's writes could not be undone on their own: nothing of the batch may commit.
                    try? await connection.execute("ROLLBACK")
                    for job in jobs { job.error = error }
                    return
                }
            }
        }
        do {
            try await connection.execute("COMMIT")
        } catch {
            try? await connection.execute("ROLLBACK")
            for job in jobs { job.error = error }
        }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let reader = readers[readerCursor.next(modulo: readers.count)]
        return try await body(SQLiteTransaction(connection: reader))
    }

    public func close() async throws {
        for reader in readers { try await reader.close() }
        try await writer.close()
    }
}

/// One queued write transaction. Its fields are written by the task that
/// holds the write lock and read by the job's owner after it held the lock
/// itself, so the lock orders every access.
final class WriteJob: @unchecked Sendable {
    let run: @Sendable (any SQLConnection) async throws -> Void
    var error: (any Error)?

    init(_ run: @escaping @Sendable (any SQLConnection) async throws -> Void) { self.run = run }
}

/// A write transaction's value, set inside the batch.
final class WriteResult<T: Sendable>: Sendable {
    private let stored = Mutex<T?>(nil)

    func set(_ value: T) { stored.withLock { $0 = value } }
    var value: T? { stored.withLock { $0 } }
}

/// Spreads reads over the reader connections.
final class RoundRobin: Sendable {
    private let counter = Mutex(0)

    func next(modulo count: Int) -> Int {
        counter.withLock { value in
            value = (value + 1) % count
            return value
        }
    }
}

struct SQLiteTransaction: SQLConnection {
    let connection: SQLiteConnection

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let data: [SQLiteData] = binds.map { value in
            switch value {
            case .null: .null
            case .integer(let number): .integer(SQLiteInt64(number))
            case .text(let text): .text(text)
            case .blob(let bytes): .blob(ByteBuffer(bytes: bytes))
            }
        }
        do {
            let rows = try await connection.query(sql, data)
            return rows.map { row in
                SQLRow(
                    row.columns.map { column in
                        switch column.data {
                        case .null: .null
                        case .integer(let number): .integer(Int64(number))
                        case .float(let number): .integer(Int64(number))
                        case .text(let text): .text(text)
                        case .blob(let buffer): .blob(Array(buffer.readableBytesView))
                        }
                    })
            }
        } catch let error as SQLiteError {
            if error.reason == .constraint || error.reason == .constraintUniqueFailed || error.reason == .constraintPrimaryKeyFailed {
                throw StoreError.conflict("unique constraint")
            }
            throw StoreError.database("SQLite: \(error.reason)")
        }
    }
}
