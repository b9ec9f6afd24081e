import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Logging
import Testing

/// The two databases every store test runs on.
enum Backend: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

let testLogger: Logger = {
    var logger = Logger(label: "conclave.storage-tests")
    logger.logLevel = .warning
    return logger
}()

/// Runs `body` with a fresh, migrated store: a new SQLite file, or a new
/// database on the test process's PostgreSQL server. Without PostgreSQL the
/// postgres case prints why and returns, or fails when
/// `CONCLAVE_REQUIRE_POSTGRES=1`.
func withStore(_ backend: Backend, _ body: @Sendable (ConclaveStore) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-storage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = try await SQLiteDatabase.open(path: folder.appendingPathComponent("conclave.sqlite").path, logger: testLogger)
        try await run(ConclaveStore(database: database), body)
    case .postgres:
        guard let url = try await ConclaveTestSupport.Backend.postgresDatabase() else { return }
        let database = try PostgresDatabase(url: url, logger: testLogger)
        try await database.withRunning { try await run(ConclaveStore(database: database), body) }
    }
}

/// Migrates the store, runs `body`, and closes the store whatever happens.
private func run(_ store: ConclaveStore, _ body: @Sendable (ConclaveStore) async throws -> Void) async throws {
    do {
        try await store.migrate()
        try await body(store)
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
}

func name(_ text: String) throws -> UserName { try #require(UserName(text)) }

/// ``ConclaveStore/keyPackageCount(device:)``, comparable.
struct PackageCount: Equatable {
    var available: Int
    var lastResort: Bool
}

func isConflict(_ error: any Error) -> Bool {
    if case .conflict = error as? StoreError { return true }
    return false
}

extension ConclaveStore {
    /// Rows in a table, read straight from the database.
    func count(_ table: String) async throws -> Int64 {
        try await database.read { connection in
            let rows = try await connection.query("SELECT COUNT(*) FROM \(table)", [])
            return try rows.first?.integer(0) ?? -1
        }
    }

    func packageCount(_ device: DeviceID) async throws -> PackageCount {
        let count = try await keyPackageCount(device: device)
        return PackageCount(available: count.available, lastResort: count.lastResort)
    }

    /// Every inbox event of a device.
    func allEvents(_ device: DeviceID, now: Date = testNow()) async throws -> [InboxEvent] {
        try await inbox(device: device, after: 0, limit: 10_000, now: now)
    }
}
