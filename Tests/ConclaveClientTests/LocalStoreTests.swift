import ConclaveProtocol
import Foundation
import Logging
import SQLiteNIO
import Testing

@testable import ConclaveClient

/// The device's local store: every value sealed under the profile's key,
/// bound to its row, refused when tampered with (docs/client.md).
@Suite struct LocalStoreTests {
    static func profile() -> String { NSTemporaryDirectory() + "conclave-store-\(UUID().uuidString.prefix(8))" }

    @Test func valuesAreSealedAtRestAndReadBack() async throws {
        let directory = Self.profile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let marker = Array("MARKER-\(UUID().uuidString)".utf8)
        let store = try await LocalStore.open(directory: directory)
        try await store.setMeta("secret", marker)
        let id = ConversationID.random()
        try await store.setGroup(id, marker)
        #expect(try await store.meta("secret") == marker)
        #expect(try await store.group(id) == marker)
        #expect(try await store.meta("absent") == nil)
        await store.close()
        // Neither the database nor its write-ahead log holds the value in clear.
        for file in ["profile.sqlite", "profile.sqlite-wal"] {
            let data = FileManager.default.contents(atPath: directory + "/" + file) ?? Data()
            #expect(data.range(of: Data(marker)) == nil, "\(file) holds the value in clear")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/profile.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // Opened again, it reads the same values.
        let again = try await LocalStore.open(directory: directory)
        #expect(try await again.meta("secret") == marker)
        await again.close()
    }

    /// One client per profile: a second store on it waits a little for
    /// the first, then is refused with a message that says why; once the
    /// first closes (or its process ends), the profile opens again.
    @Test func aProfileOpensOnceAtATime() async throws {
        let directory = Self.profile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await LocalStore.open(directory: directory)
        let refusal = await #expect(throws: ClientError.self) { _ = try await LocalStore.open(directory: directory) }
        #expect(refusal?.description.contains("in use by another conclave client") == true)
        // The lock is the file's, not the process's: a second lock in this process is refused at once when told not to wait.
        await #expect(throws: ClientError.self) { _ = try await ProfileLock.take(directory: directory, patience: .zero) }
        await first.close()
        let second = try await LocalStore.open(directory: directory)
        try await second.setMeta("after", [1])
        #expect(try await second.meta("after") == [1])
        await second.close()
    }

    @Test func anotherKeyOrABadKeyFileIsRefused() async throws {
        let directory = Self.profile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await LocalStore.open(directory: directory)
        try await store.setMeta("account", [1, 2, 3])
        await store.close()
        // Another key: the sealed value does not open.
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: directory + "/profile.key"))
        let other = try await LocalStore.open(directory: directory)
        await #expect(throws: ClientError.self) { _ = try await other.meta("account") }
        await other.close()
        // A key file of the wrong size: the profile does not open at all.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: directory + "/profile.key"))
        await #expect(throws: ClientError.self) { _ = try await LocalStore.open(directory: directory) }
    }

    @Test func aValueMovedToAnotherRowDoesNotOpen() async throws {
        let directory = Self.profile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await LocalStore.open(directory: directory)
        let (first, second) = (ConversationID.random(), ConversationID.random())
        try await store.setGroup(first, [1])
        try await store.setGroup(second, [2])
        await store.close()
        // Someone with the file copies one conversation's sealed state over another's.
        let sqlite = try await SQLiteTamper.open(directory + "/profile.sqlite")
        try await sqlite.execute(
            "UPDATE groups SET value = (SELECT value FROM groups WHERE id = ?) WHERE id = ?", first.bytes, second.bytes)
        await sqlite.close()
        let reopened = try await LocalStore.open(directory: directory)
        #expect(try await reopened.group(first) == [1])
        await #expect(throws: ClientError.self) { _ = try await reopened.group(second) }
        await reopened.close()
    }
}

/// Direct access to a profile's SQLite file, as someone who copied it would have.
struct SQLiteTamper {
    let connection: SQLiteConnection

    static func open(_ path: String) async throws -> SQLiteTamper {
        var logger = Logger(label: "test.tamper")
        logger.logLevel = .critical
        return SQLiteTamper(connection: try await SQLiteConnection.open(storage: .file(path: path), logger: logger))
    }

    func execute(_ sql: String, _ first: [UInt8], _ second: [UInt8]) async throws {
        _ = try await connection.query(sql, [.blob(.init(bytes: first)), .blob(.init(bytes: second))])
    }

    func close() async { try? await connection.close() }
}
