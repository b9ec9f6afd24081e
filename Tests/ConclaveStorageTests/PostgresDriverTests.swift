import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

@testable import ConclaveStorage

/// The PostgreSQL driver's own parts: placeholders, addresses, types, errors.
@Suite struct PostgresDriverTests {
    @Test func placeholdersAreNumbered() {
        #expect(PostgresTransaction.numberPlaceholders("SELECT 1") == "SELECT 1")
        #expect(
            PostgresTransaction.numberPlaceholders("INSERT INTO t (a, b) VALUES (?, ?), (?, ?) RETURNING a")
                == "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a")
        #expect(PostgresTransaction.numberPlaceholders("x IN (?,?,?,?,?,?,?,?,?,?,?)").hasSuffix("$10,$11)"))
    }

    @Test func addressesAreParsed() throws {
        let full = try PostgresAddress(url: "postgres://conclave:s%40cret@db.example:6543/chat")
        #expect(full.host == "db.example")
        #expect(full.port == 6543)
        #expect(full.user == "conclave")
        #expect(full.password == "s@cret")
        #expect(full.database == "chat")
        let short = try PostgresAddress(url: "postgresql://postgres@127.0.0.1")
        #expect(short.port == 5432)
        #expect(short.password == nil)
        #expect(short.database == nil)
        #expect(throws: StoreError.self) { try PostgresAddress(url: "mysql://root@localhost/db") }
        #expect(throws: StoreError.self) { try PostgresAddress(url: "postgres://localhost/db") }
        #expect(throws: StoreError.self) { try PostgresAddress(url: "not a url") }
    }

    /// Port 1 on loopback: nothing listens there, and no other test's server
    /// can take it (a "free" port could be taken between choosing and connecting).
    @Test func connectingToNothingFails() async throws {
        await #expect(throws: StoreError.self) {
            try await PostgresDatabase(url: "postgres://postgres@127.0.0.1:1/postgres", logger: testLogger).probe()
        }
    }

    /// Result columns of every type the driver maps, and errors free of bound values.
    @Test func typesAndErrorsMap() async throws {
        try await withStore(.postgres) { store in
            let secret = "hunter2-\(UUID().uuidString)"
            let row = try await store.database.read { connection in
                try await connection.query(
                    "SELECT 1::int2, 2::int4, ?::int8, true, false, ?::text, 'v'::varchar, ?::bytea, NULL, ?::text",
                    [.integer(Int64.max), .text("é ✓"), .blob([0, 1, 255]), .null])
            }
            #expect(
                row.first?.values == [
                    .integer(1), .integer(2), .integer(.max), .integer(1), .integer(0), .text("é ✓"), .text("v"),
                    .blob([0, 1, 255]), .null, .null,
                ])

            let error = await #expect(throws: StoreError.self) {
                try await store.database.read { connection in
                    try await connection.query("SELECT ?::int8 / 0", [.text(secret)])
                }
            }
            #expect(error.map { !"\($0)".contains(secret) } == true)
            #expect(error.map { "\($0)".contains("SQLSTATE") } == true)
        }
    }
}
