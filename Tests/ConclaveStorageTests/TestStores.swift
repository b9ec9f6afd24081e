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

/// A time the schema can store exactly (whole milliseconds).
func testNow() -> Date { Date(millis: Date().millis) }

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
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
    @discardableResult
    func addUser(_ text: String, at time: Date = testNow()) async throws -> UserName {
        let user = try name(text)
        try await createUser(
            UserRecord(name: user, passwordHash: "$argon2id$\(text)", securityGroup: "default", suspended: false, createdAt: time))
        return user
    }

    func addDevice(_ user: UserName, at time: Date = testNow()) async throws -> DeviceID {
        let id = DeviceID.random()
        try await createDevice(
            DeviceRecord(
                id: id, user: user, name: "laptop", signatureKey: randomBytes(32), certificate: randomBytes(180), createdAt: time,
                lastSeenAt: nil))
        return id
    }

    /// A room at epoch 0 created by `creator`.
    func addRoom(_ creator: MemberDevice, directKey: String? = nil) async throws -> ConversationRecord {
        let room = ConversationRecord(
            id: .random(), kind: directKey == nil ? .room : .direct, name: directKey == nil ? "room" : nil, directKey: directKey,
            createdBy: creator.user, createdAt: testNow(), epoch: 0, groupInfo: randomBytes(400), ratchetTree: randomBytes(300))
        try await createConversation(room, creator: creator)
        return room
    }

    /// A commit from `epoch` to `epoch + 1` with the given devices and deliveries.
    @discardableResult
    func commit(
        _ id: ConversationID, from epoch: UInt64, devices: [MemberDevice], added: [UserName] = [], removed: [UserName] = [],
        deliveries: [Delivery] = []
    ) async throws -> (outcome: CommitOutcome, notified: Set<DeviceID>) {
        try await applyCommit(
            CommitWrite(
                conversation: id, fromEpoch: epoch, toEpoch: epoch + 1, groupInfo: randomBytes(400), ratchetTree: randomBytes(300),
                devices: devices, addedUsers: added, removedUsers: removed, deliveries: deliveries))
    }

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
