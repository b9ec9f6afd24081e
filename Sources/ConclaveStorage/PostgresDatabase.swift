import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// The server database for deployments that outgrow one SQLite file: a pool
/// of PostgreSQL connections (postgres-nio's ``PostgresClient``). Every
/// transaction runs `BEGIN … COMMIT` on one leased connection; the store
/// takes row locks with `SELECT … FOR UPDATE` where it needs them.
///
/// The pool works while its ``service`` runs: the server puts it in its
/// `ServiceGroup`; one-off users (tests, `server init`) wrap their work in
/// ``withRunning(_:)``.
public final class PostgresDatabase: SQLDatabase {
    public let dialect = SQLDialect.postgres
    private let client: PostgresClient
    private let address: PostgresAddress
    private let logger: Logger

    /// A pool for `postgres://user:password@host:port/database` (or
    /// `postgresql://…`), without TLS; it connects once ``service`` runs.
    public init(url: String, maximumConnections: Int = 20, logger: Logger) throws {
        address = try PostgresAddress(url: url)
        var configuration = address.clientConfiguration
        configuration.options.maximumConnections = max(1, maximumConnections)
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    /// The pool's background work, for the owner's `ServiceGroup`.
    public var service: some Service { client }

    /// Opens and closes one connection, so that a wrong address or password
    /// fails at once, with a clear error, rather than in the pool's retries.
    public func probe() async throws {
        do {
            let probe = try await PostgresConnection.connect(configuration: address.connectionConfiguration, id: 0, logger: logger)
            try await probe.close()
        } catch let error as PSQLError {
            throw StoreError.database("cannot connect to PostgreSQL at \(address.host):\(address.port): \(PostgresErrors.describe(error))")
        }
    }

    /// Runs `body` while the pool runs, then stops it (for work outside a
    /// service group).
    public func withRunning<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// How many times a transaction runs when PostgreSQL ends it to settle
    /// a conflict with another (SQLSTATE 40001 serialisation failure, 40P01
    /// deadlock), with a short random pause before each new run.
    public static let retries = 5

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        try await retrying { try await runTransaction(body) }
    }

    /// Runs `run` until it does not end in a conflict, at most ``retries`` times.
    private func retrying<T: Sendable>(_ run: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await run()
            } catch StoreError.contended(let what) {
                guard attempt < Self.retries else { throw StoreError.contended(what) }
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            }
        }
    }

    public func autocommit(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await retrying { [logger] in
            try await PostgresErrors.mapping {
                try await client.withConnection { connection in
                    try await PostgresTransaction(connection: connection, logger: logger).query(sql, binds)
                }
            }
        }
    }

    private func runTransaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let logger = logger
        return try await PostgresErrors.mapping {
            try await client.withConnection { connection in
                let transaction = PostgresTransaction(connection: connection, logger: logger)
                try await transaction.execute("BEGIN")
                do {
                    let result = try await body(transaction)
                    try await transaction.execute("COMMIT")
                    return result
                } catch {
                    // After a failed statement PostgreSQL refuses all but ROLLBACK; a dead connection leaves the pool anyway.
                    try? await transaction.execute("ROLLBACK")
                    throw error
                }
            }
        }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let logger = logger
        return try await PostgresErrors.mapping {
            try await client.withConnection { connection in
                try await body(PostgresTransaction(connection: connection, logger: logger))
            }
        }
    }

    /// Several server processes may share one PostgreSQL database.
    public var isShared: Bool { true }

    /// `LISTEN` on a connection of the pool, held for as long as it
    /// follows; after a failure it listens again a second later.
    public func follow(
        channel: String, connected: @escaping @Sendable () async -> Void, notified: @escaping @Sendable (String) async -> Void
    ) async throws {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        await connected()
                        for try await notification in notifications { await notified(notification.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                let description = (error as? PSQLError).map(PostgresErrors.describe) ?? "\(type(of: error))"
                logger.warning(
                    "PostgreSQL: listening for other server processes failed; listening again", metadata: ["error": "\(description)"])
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Tries the advisory lock every two seconds on a connection it keeps
    /// while it waits and while `body` runs.
    public func exclusively(lock key: Int64, _ body: @Sendable () async throws -> Void) async throws {
        let logger = logger
        try await PostgresErrors.mapping {
            try await client.withConnection { connection in
                let session = PostgresTransaction(connection: connection, logger: logger)
                while try await session.query("SELECT pg_try_advisory_lock(?)", [.integer(key)]).first?.integer(0) != 1 {
                    try await Task.sleep(for: .seconds(2))
                }
                do {
                    try await body()
                } catch {
                    _ = try? await session.query("SELECT pg_advisory_unlock(?)", [.integer(key)])
                    throw error
                }
                _ = try await session.query("SELECT pg_advisory_unlock(?)", [.integer(key)])
            }
        }
    }

    /// Nothing to do: the pool stops with its service.
    public func close() async throws {}
}

/// One leased connection, inside or outside a transaction.
struct PostgresTransaction: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .null: bindings.appendNull()
            case .integer(let number): bindings.append(number)
            case .text(let text): bindings.append(text)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            }
        }
        let query = PostgresQuery(unsafeSQL: Self.numberPlaceholders(sql), binds: bindings)
        return try await PostgresErrors.mapping {
            var rows: [SQLRow] = []
            for try await row in try await connection.query(query, logger: logger) {
                rows.append(SQLRow(try row.map(Self.value)))
            }
            return rows
        }
    }

    /// `?` → `$1`, `$2`, …: the store's SQL never has a `?` inside a literal.
    static func numberPlaceholders(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 8)
        var number = 0
        for character in sql {
            if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }

    /// A result column, by its PostgreSQL type.
    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil, cell.dataType != .void else { return .null }  // void: pg_notify, advisory locks
        do {
            switch cell.dataType {
            case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
            case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .text, .varchar, .name, .bpchar: return .text(try cell.decode(String.self))
            case .bytea: return .blob(Array(try cell.decode(ByteBuffer.self).readableBytesView))
            default: throw StoreError.corrupt("column \(cell.columnIndex) has the unsupported PostgreSQL type \(cell.dataType)")
            }
        } catch is PostgresDecodingError {
            throw StoreError.corrupt("column \(cell.columnIndex) of PostgreSQL type \(cell.dataType)")
        }
    }
}

/// Turns postgres-nio errors into ``StoreError``s that carry the SQLSTATE
/// and schema names, never a bound value or the server's message text.
enum PostgresErrors {
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PSQLError {
            switch error.serverInfo?[.sqlState] {
            case "23505": throw StoreError.conflict("unique constraint")
            case "40001", "40P01": throw StoreError.contended(describe(error))
            default: break
            }
            throw StoreError.database(describe(error))
        }
    }

    static func describe(_ error: PSQLError) -> String {
        guard let info = error.serverInfo, let state = info[.sqlState] else {
            if error.code == .connectionError, let underlying = error.underlying {
                return "PostgreSQL \(error.code): \(underlying)"
            }
            return "PostgreSQL \(error.code)"
        }
        var text = "PostgreSQL SQLSTATE \(state)"
        if let table = info[.tableName] { text += " table \(table)" }
        if let constraint = info[.constraintName] { text += " constraint \(constraint)" }
        return text
    }
}

/// A parsed `postgres://` address.
struct PostgresAddress {
    let host: String
    let port: Int
    let user: String
    let password: String?
    let database: String?

    init(url: String) throws(StoreError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "postgres" || scheme == "postgresql"
        else { throw StoreError.database("not a postgres:// URL") }
        guard let host = components.host, !host.isEmpty else { throw StoreError.database("the PostgreSQL URL has no host") }
        guard let user = components.user, !user.isEmpty else { throw StoreError.database("the PostgreSQL URL has no user") }
        let database = String(components.path.drop { $0 == "/" })
        self.host = host
        self.port = components.port ?? 5432
        self.user = user
        self.password = components.password
        self.database = database.isEmpty ? nil : database
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }

    var clientConfiguration: PostgresClient.Configuration {
        PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }
}
