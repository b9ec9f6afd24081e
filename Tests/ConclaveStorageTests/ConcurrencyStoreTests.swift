import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Many writers at once: inbox numbers stay distinct and gap-free.
@Suite struct ConcurrencyStoreTests {
    /// 50 sends at once, spread over 5 conversations, each to the same two
    /// devices, listed in either order: each device's inbox is 1…50, and both
    /// devices see the messages in the same order.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func concurrentAppendsGetGapFreeSequences(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let sender = MemberDevice(device: try await store.addDevice(alice), user: alice)
            let first = MemberDevice(device: try await store.addDevice(bob), user: bob)
            let second = MemberDevice(device: try await store.addDevice(bob), user: bob)
            var rooms: [ConversationID] = []
            for _ in 0..<5 {
                let room = try await store.addRoom(sender)
                try #require(try await store.commit(room.id, from: 0, devices: [sender, first, second], added: [bob]).outcome == .applied)
                rooms.append(room.id)
            }
            let sent = testNow()
            let outcomes = try await withThrowingTaskGroup(of: SendOutcome.self) { group in
                for index in 0..<50 {
                    let recipients = index.isMultiple(of: 2) ? [first.device, second.device] : [second.device, first.device]
                    let delivery = Delivery(
                        kind: .application, data: randomBytes(200), messageID: "m-\(index)", senderDevice: sender.device, sentAt: sent,
                        recipients: recipients)
                    let room = rooms[index % rooms.count]
                    group.addTask { try await store.appendApplication(room, epoch: 1, delivery: delivery).outcome }
                }
                return try await group.reduce(into: [SendOutcome]()) { $0.append($1) }
            }
            #expect(outcomes.count == 50)
            #expect(outcomes.allSatisfy { $0 == .stored(sentAt: sent, expiresAt: nil) })

            let firstInbox = try await store.allEvents(first.device)
            let secondInbox = try await store.allEvents(second.device)
            #expect(firstInbox.map(\.seq) == Array(1...50))
            #expect(secondInbox.map(\.seq) == Array(1...50))
            #expect(Set(firstInbox.compactMap(\.messageId)) == Set((0..<50).map { "m-\($0)" }))
            #expect(firstInbox.map(\.messageId) == secondInbox.map(\.messageId))
            #expect(try await store.count("payloads") == 50)
        }
    }

    /// 200 sends over 10 conversations, each to the same 5 devices listed in
    /// a random order. On PostgreSQL, locking device rows in list or scan
    /// order deadlocks (SQLSTATE 40P01) here; the store locks them by id.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func overlappingFanOutsDoNotDeadlock(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let sender = MemberDevice(device: try await store.addDevice(alice), user: alice)
            var devices: [DeviceID] = []
            for _ in 0..<5 { devices.append(try await store.addDevice(alice)) }
            var rooms: [ConversationID] = []
            for _ in 0..<10 { rooms.append(try await store.addRoom(sender).id) }
            let outcomes = try await withThrowingTaskGroup(of: SendOutcome.self) { group in
                for index in 0..<200 {
                    let delivery = Delivery(
                        kind: .application, data: randomBytes(64), messageID: "m-\(index)", senderDevice: sender.device, sentAt: testNow(),
                        recipients: devices.shuffled())
                    let room = rooms[index % rooms.count]
                    group.addTask { try await store.appendApplication(room, epoch: 0, delivery: delivery).outcome }
                }
                return try await group.reduce(into: [SendOutcome]()) { $0.append($1) }
            }
            #expect(outcomes.count == 200)
            for device in devices {
                #expect(try await store.allEvents(device).map(\.seq) == Array(1...200))
            }
        }
    }

    /// 60 sends at once (on PostgreSQL, stored in batches): each is answered
    /// as it would be alone: stored, a retry of a stored id (D17), the
    /// wrong epoch (D8), or an unknown conversation.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func concurrentSendsAreAnsweredEachAsAlone(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let sender = MemberDevice(device: try await store.addDevice(alice), user: alice)
            let recipient = try await store.addDevice(alice)
            let room = try await store.addRoom(sender).id
            let sent = testNow()
            let outcomes = try await withThrowingTaskGroup(of: (Int, SendOutcome).self) { group in
                for index in 0..<60 {
                    // 0–14 new, 15–29 one id over and over, 30–44 at a wrong epoch, 45–59 to no conversation.
                    let id = (15..<30).contains(index) ? "again" : "m-\(index)"
                    let delivery = Delivery(
                        kind: .application, data: randomBytes(100), messageID: id, senderDevice: sender.device, sentAt: sent,
                        recipients: [recipient])
                    let (conversation, epoch): (ConversationID, UInt64) = index < 30 ? (room, 0) : index < 45 ? (room, 7) : (.random(), 0)
                    group.addTask { (index, try await store.appendApplication(conversation, epoch: epoch, delivery: delivery).outcome) }
                }
                return try await group.reduce(into: [Int: SendOutcome]()) { $0[$1.0] = $1.1 }
            }
            #expect((0..<15).allSatisfy { outcomes[$0] == .stored(sentAt: sent, expiresAt: nil) })
            let again = (15..<30).compactMap { outcomes[$0] }
            #expect(again.filter { $0 == .stored(sentAt: sent, expiresAt: nil) }.count == 1)
            #expect(again.filter { $0 == .duplicate(sentAt: sent, expiresAt: nil) }.count == 14)
            #expect((30..<45).allSatisfy { outcomes[$0] == .wrongEpoch(current: 0) })
            #expect((45..<60).allSatisfy { outcomes[$0] == .unknownConversation })
            #expect(try await store.allEvents(recipient).map(\.seq) == Array(1...16))

            // Retries of stored ids, at the right epoch or a wrong one, beside new messages: the retries are answered as
            // the first time (D17), with its time, and only the new messages reach the inbox.
            let later = sent.addingTimeInterval(5)
            let second = try await withThrowingTaskGroup(of: (Int, SendOutcome).self) { group in
                for index in 0..<30 {
                    let id = index < 20 ? "m-\(index % 10)" : "n-\(index)"
                    let delivery = Delivery(
                        kind: .application, data: randomBytes(100), messageID: id, senderDevice: sender.device, sentAt: later,
                        recipients: [recipient])
                    let epoch: UInt64 = index < 10 ? 7 : 0
                    group.addTask { (index, try await store.appendApplication(room, epoch: epoch, delivery: delivery).outcome) }
                }
                return try await group.reduce(into: [Int: SendOutcome]()) { $0[$1.0] = $1.1 }
            }
            #expect((0..<20).allSatisfy { second[$0] == .duplicate(sentAt: sent, expiresAt: nil) })
            #expect((20..<30).allSatisfy { second[$0] == .stored(sentAt: later, expiresAt: nil) })
            #expect(try await store.allEvents(recipient).map(\.seq) == Array(1...26))
        }
    }

    /// Concurrent commits on one group from the same epoch: exactly one wins.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func concurrentCommitsHaveOneWinner(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let sender = MemberDevice(device: try await store.addDevice(alice), user: alice)
            let receiver = MemberDevice(device: try await store.addDevice(bob), user: bob)
            let room = try await store.addRoom(sender)
            let outcomes = try await withThrowingTaskGroup(of: CommitOutcome.self) { group in
                for _ in 0..<10 {
                    let welcome = Delivery(kind: .welcome, data: randomBytes(500), sentAt: testNow(), recipients: [receiver.device])
                    group.addTask {
                        try await store.commit(room.id, from: 0, devices: [sender, receiver], added: [bob], deliveries: [welcome]).outcome
                    }
                }
                return try await group.reduce(into: [CommitOutcome]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .applied }.count == 1)
            #expect(outcomes.filter { $0 == .wrongEpoch(current: 1) }.count == 9)
            #expect(try await store.allEvents(receiver.device).map(\.seq) == [1])
            #expect(try await store.conversation(room.id)?.epoch == 1)
        }
    }

    /// Reads and writes still in flight when the SQLite database closes
    /// (a server stopping while connections' tasks end) each either finish
    /// or fail with a typed error; none touches a connection off its thread.
    @Test func queriesRacingTheCloseFailCleanly() async throws {
        for _ in 0..<20 {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-close-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let database = try await SQLiteDatabase.open(path: folder.appendingPathComponent("conclave.sqlite").path, logger: testLogger)
            let store = ConclaveStore(database: database)
            try await store.migrate()
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        do {
                            if index.isMultiple(of: 2) {
                                _ = try await database.read { try await $0.query("SELECT count(*) FROM users", []) }
                            } else {
                                _ = try await database.transaction { try await $0.query("SELECT count(*) FROM devices", []) }
                            }
                            return true
                        } catch {
                            return error is StoreError
                        }
                    }
                }
                group.addTask {
                    try? await database.close()
                    return true
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.allSatisfy { $0 })
        }
    }

    /// Prepared statements are found by a hash of a text's length and a
    /// few of its bytes: statements that differ only in other bytes are
    /// still each prepared and run as themselves.
    @Test func statementsThatDifferOutsideTheHashedBytesRunAsThemselves() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-statements-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = try await SQLiteDatabase.open(path: folder.appendingPathComponent("conclave.sqlite").path, logger: testLogger)
        // 100 texts of 237 bytes, alike but for the digits at 39 and 40 (the hash samples bytes 0, 15, 31, 47, …).
        let texts = (0..<100).map { value in
            "SELECT " + String(repeating: "0 + ", count: 8) + String(format: "%02d", value) + String(repeating: " + 0", count: 49)
        }
        #expect(Set(texts.map(\.utf8.count)).count == 1)
        for _ in 0..<2 {
            for (value, text) in texts.enumerated() {
                let rows = try await database.read { try await $0.query(text, []) }
                #expect(try rows.first?.integer(0) == Int64(value), "\(text)")
            }
        }
        try await database.close()
    }
    /// An insert that returns its row's id (SQLite reads it from the
    /// connection rather than through `RETURNING`): a new id each time, nil
    /// when `ON CONFLICT DO NOTHING` inserted nothing (and not the previous
    /// row's id), and texts bound as they are, the empty one as '' not NULL.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func insertsReturnTheirRowsID(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let key = store.database.dialect == .sqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY"
            let insert = "INSERT INTO scratch (name, note) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
            let ids = try await store.database.transaction { connection in
                try await connection.execute("CREATE TABLE scratch (id \(key), name TEXT NOT NULL UNIQUE, note TEXT)")
                let first = try await connection.insertReturningID(insert, [.text("a"), .text("")])
                let second = try await connection.insertReturningID(insert, [.text("b"), .text("été ✓")])
                let again = try await connection.insertReturningID(insert, [.text("a"), .text("other")])
                return [first, second, again]
            }
            #expect(ids[0] != nil && ids[1] != nil && ids[0] != ids[1] && ids[2] == nil)
            let rows = try await store.database.read { try await $0.query("SELECT id, note, note IS NULL FROM scratch ORDER BY name", []) }
            #expect(try rows.map { try $0.integer(0) } == ids.prefix(2).compactMap { $0 })
            #expect(try rows.map { try $0.text(1) } == ["", "été ✓"])
            #expect(try rows.map { try $0.integer(2) } == [0, 0])
        }
    }

    /// SQLite overwrites what is deleted (acknowledged and expired
    /// ciphertext), whatever the default of the library it was built with.
    @Test func sqliteOverwritesWhatItDeletes() async throws {
        try await withStore(.sqlite) { store in
            let rows = try await store.database.transaction { try await $0.query("PRAGMA secure_delete", []) }
            #expect(try rows.first?.integer(0) == 1)
        }
    }
}
