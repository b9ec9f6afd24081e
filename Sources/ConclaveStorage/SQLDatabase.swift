/// A value bound to or read from SQL. Times are integer milliseconds since
/// 1970; booleans are 0/1 integers; bytes are BLOB (SQLite) or BYTEA
/// (PostgreSQL).
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}

/// One result row, by column position.
public struct SQLRow: Sendable {
    public let values: [SQLValue]

    public init(_ values: [SQLValue]) { self.values = values }

    public func integer(_ column: Int) throws(StoreError) -> Int64 {
        guard column < values.count, case .integer(let value) = values[column] else { throw StoreError.corrupt("integer column \(column)") }
        return value
    }

    public func optionalInteger(_ column: Int) throws(StoreError) -> Int64? {
        guard column < values.count else { throw StoreError.corrupt("column \(column)") }
        if case .null = values[column] { return nil }
        return try integer(column)
    }

    public func text(_ column: Int) throws(StoreError) -> String {
        guard column < values.count, case .text(let value) = values[column] else { throw StoreError.corrupt("text column \(column)") }
        return value
    }

    public func optionalText(_ column: Int) throws(StoreError) -> String? {
        guard column < values.count else { throw StoreError.corrupt("column \(column)") }
        if case .null = values[column] { return nil }
        return try text(column)
    }

    public func blob(_ column: Int) throws(StoreError) -> [UInt8] {
        guard column < values.count, case .blob(let value) = values[column] else { throw StoreError.corrupt("blob column \(column)") }
        return value
    }

    public func optionalBlob(_ column: Int) throws(StoreError) -> [UInt8]? {
        guard column < values.count else { throw StoreError.corrupt("column \(column)") }
        if case .null = values[column] { return nil }
        return try blob(column)
    }
}

/// The two SQL dialects the store speaks. Statements are written once with
/// `?` placeholders; the PostgreSQL driver numbers them.
public enum SQLDialect: String, Sendable {
    case sqlite
    case postgres
}

/// A connection inside one transaction.
public protocol SQLConnection: Sendable {
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]

    /// Runs an `INSERT` (which may end in `ON CONFLICT … DO NOTHING`) into a
    /// table whose key is an integer `id`, and returns the new row's id, or
    /// nil when it inserted nothing.
    func insertReturningID(_ sql: String, _ binds: [SQLValue]) async throws -> Int64?
}

extension SQLConnection {
    /// `RETURNING id`. (SQLite reads the id of the row it inserted instead:
    /// its `RETURNING` costs as much again as the insert.)
    public func insertReturningID(_ sql: String, _ binds: [SQLValue]) async throws -> Int64? {
        try await query(sql + " RETURNING id", binds).first?.integer(0)
    }

    public func execute(_ sql: String, _ binds: [SQLValue] = []) async throws {
        _ = try await query(sql, binds)
    }
}

/// A database: SQLite (embedded, WAL) or PostgreSQL. Everything the server
/// stores goes through ``ConclaveStore``, which speaks to this protocol.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction: all of it is stored, or none. On
    /// SQLite write transactions are serialised; on PostgreSQL rows are
    /// locked with `SELECT … FOR UPDATE` where the store needs it.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T
    /// Runs one statement as a transaction of its own (PostgreSQL: without
    /// the round trips of BEGIN and COMMIT), retried as ``transaction(_:)``
    /// retries.
    func autocommit(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs read-only queries, possibly on another connection than writes.
    func read<T: Sendable>(_ body: @Sendable (any SQLConnection) async throws -> T) async throws -> T
    /// Whether several server processes may share this database (and so
    /// must tell each other what they changed, ``follow(channel:connected:notified:)``).
    var isShared: Bool { get }
    /// Hands over the notifications sent on `channel` (by `pg_notify` in a
    /// committed transaction of any connection) until cancelled, listening
    /// again after a lost connection; `connected` runs each time it starts
    /// listening, since notifications may have been missed before. Only for
    /// a shared database.
    func follow(
        channel: String, connected: @escaping @Sendable () async -> Void, notified: @escaping @Sendable (String) async -> Void
    ) async throws
    /// Runs `body` while this process holds the database-wide lock `key`,
    /// waiting its turn: of the server processes sharing a database, one at
    /// a time runs it (PostgreSQL: a session advisory lock, released when
    /// the holder's connection ends, even by a crash). At once on a database
    /// one process owns.
    func exclusively(lock key: Int64, _ body: @Sendable () async throws -> Void) async throws
    func close() async throws
}

/// A storage failure, with no user data in its description.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A row that must be unique exists already.
    case conflict(String)
    /// A row the change refers to does not exist.
    case notFound(String)
    /// The change would go past a limit on how many rows of a kind are kept.
    case full(String)
    /// A stored value does not have the shape the schema promises.
    case corrupt(String)
    /// The database said no; the text is the driver's own, free of bound values.
    case database(String)
    /// The database schema is newer than this program.
    case schemaTooNew(Int)
    /// The database ended the transaction to settle a conflict with another
    /// (PostgreSQL's serialisation failure or deadlock): it ran again
    /// ``PostgresDatabase/retries`` times and failed each time.
    case contended(String)

    public var description: String {
        switch self {
        case .conflict(let what): "conflict: \(what)"
        case .notFound(let what): "not found: \(what)"
        case .full(let what): "too many \(what)"
        case .corrupt(let what): "corrupt row: \(what)"
        case .database(let what): "database error: \(what)"
        case .contended(let what): "database contention: \(what)"
        case .schemaTooNew(let version): "the database schema (version \(version)) is newer than this program"
        }
    }
}
