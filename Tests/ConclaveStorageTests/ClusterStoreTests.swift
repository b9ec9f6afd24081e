import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Synchronization
import Testing

@testable import ConclaveStorage

/// What the hot path serves from memory, and what server processes sharing
/// one PostgreSQL database tell each other.
@Suite struct ClusterStoreTests {
    @Test func arraysArePostgreSQLArrayLiterals() {
        #expect(ConclaveStore.arrayLiteral([]) == "{}")
        #expect(ConclaveStore.arrayLiteral(["a", #"b"c"#, #"d\e"#, "f,g", nil, "NULL"]) == #"{"a","b\"c","d\\e","f,g",NULL,"NULL"}"#)
        #expect(ConclaveStore.arrayLiteral(["1", nil, "-3"], quoted: false) == "{1,NULL,-3}")
        #expect(ConclaveStore.byteaArrayLiteral([[0x00, 0xAB], [], [0xFF]]) == #"{"\\x00ab","\\x","\\xff"}"#)
    }

    @Test func noticesSplitUnderTheLimitAndParseBack() throws {
        let devices = (0..<600).map { _ in DeviceID.random() }
        let notices = ConclaveStore.notices(.inbox(devices), from: "p1")
        #expect(notices.count > 1)
        #expect(notices.allSatisfy { $0.utf8.count <= ConclaveStore.noticeBytes && $0.hasPrefix("i p1 ") })
        let parsed = notices.compactMap { ConclaveStore.signal(from: $0, ignoring: "p2") }
        #expect(parsed.flatMap { signal -> [DeviceID] in if case .inbox(let list) = signal { list } else { [] } } == devices)
        #expect(ConclaveStore.notices(.invalidate, from: "p1") == ["c p1"])
        #expect(ConclaveStore.notices(.disconnect([]), from: "p1").isEmpty)
        #expect(ConclaveStore.signal(from: "c p1", ignoring: "p1") == nil)  // our own
        #expect(ConclaveStore.signal(from: "c p1", ignoring: "p2") == .invalidate)
        for garbage in ["", "c", "x p1", "zz p1 a"] { #expect(ConclaveStore.signal(from: garbage, ignoring: "p2") == nil) }
    }

    /// A session and a conversation's devices come from memory once read,
    /// and a write that changes them is seen at once.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func cachesFollowWrites(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let device = try await store.addDevice(alice)
            let token = randomBytes(32)
            try await store.createSession(tokenHash: token, device: device, createdAt: testNow(), expiresAt: testNow() + 3600)
            #expect(try await store.session(tokenHash: token, now: testNow())?.device.id == device)
            #expect(store.caches.session(token, now: testNow()) != nil)
            #expect(try await store.session(tokenHash: token, now: testNow() + 7200) == nil)  // expired, though cached
            try await store.deleteSession(tokenHash: token)
            #expect(try await store.session(tokenHash: token, now: testNow()) == nil)

            let creator = MemberDevice(device: device, user: alice)
            let room = try await store.addRoom(creator).id
            #expect(try await store.memberDevices(room) == [creator])
            let bob = try await store.addUser("bob")
            let other = MemberDevice(device: try await store.addDevice(bob), user: bob)
            try await store.commit(room, from: 0, devices: [creator, other], added: [bob])
            #expect(Set(try await store.memberDevices(room)) == [creator, other])
        }
    }

    /// Two stores on one PostgreSQL database, as two server processes: a
    /// message stored by one wakes the other's recipients, a cut-off ends
    /// their connections, and a write drops the other's cached session.
    @Test func processesOnOneDatabaseTellEachOther() async throws {
        try await withSharedDatabase { first, second in
            let (signals, continuation) = AsyncStream<ClusterSignal>.makeStream()
            let follower = Task { try await second.followCluster { continuation.yield($0) } }
            defer { follower.cancel() }
            var received = signals.makeAsyncIterator()
            #expect(await received.next() == .resync)  // listening

            let alice = try await first.addUser("alice")
            let bob = try await first.addUser("bob")
            let a = try await first.addDevice(alice)
            let b = try await first.addDevice(bob)
            let token = randomBytes(32)
            try await first.createSession(tokenHash: token, device: b, createdAt: testNow(), expiresAt: testNow() + 3600)
            #expect(try await second.session(tokenHash: token, now: testNow())?.device.id == b)  // now cached by the second
            let creator = MemberDevice(device: a, user: alice)
            let room = try await first.addRoom(creator).id
            try await first.commit(room, from: 0, devices: [creator, MemberDevice(device: b, user: bob)], added: [bob])
            try await first.announceDisconnect([a])  // a marker: notifications arrive in commit order
            while let signal = await received.next(), signal != .disconnect([a]) { #expect(signal == .invalidate) }

            let delivery = Delivery(
                kind: .application, data: randomBytes(64), messageID: "m1", senderDevice: a, sentAt: testNow(), recipients: [b])
            let sequences = try await first.appendApplication(room, epoch: 1, delivery: delivery).sequences
            #expect(sequences.keys.contains(b))
            try await first.announceInbox(sequences.keys)  // after the commit, outside the message's transaction
            #expect(await received.next() == .inbox([b]))  // a message invalidates nothing

            try await first.deleteSession(tokenHash: token)
            #expect(await received.next() == .invalidate)
            #expect(try await second.session(tokenHash: token, now: testNow()) == nil)

            try await first.announceDisconnect([b])
            #expect(await received.next() == .disconnect([b]))
        }
    }

    /// Wake-ups that arrive while one notification is being sent go out
    /// together in the next; every caller returns once its own went out, and
    /// a failed send fails exactly the callers it carried.
    @Test func announcementsGatherWhileOneIsSent() async throws {
        let announcer = InboxAnnouncer()
        let devices = (0..<5).map { _ in DeviceID.random() }
        let (started, starting) = AsyncStream<Void>.makeStream()
        let (release, releasing) = AsyncStream<Void>.makeStream()
        let sent = Mutex<[Set<DeviceID>]>([])
        let send: @Sendable (Set<DeviceID>) async throws -> Void = { batch in
            sent.withLock { $0.append(batch) }
            starting.yield()
            var iterator = release.makeAsyncIterator()
            _ = await iterator.next()
            if batch.contains(devices[4]) { throw StoreError.database("notification failed") }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await announcer.announce([devices[0]], send: send) }
            var iterator = started.makeAsyncIterator()
            _ = await iterator.next()  // the first notification is being sent
            for device in devices[1...3] { group.addTask { try await announcer.announce([device], send: send) } }
            try await withDeadline(.seconds(30), "three announcements waiting") {
                while announcer.waiting < 3 { await Task.yield() }
            }
            releasing.yield()  // the first ends; the three gathered go out in one
            _ = await iterator.next()
            releasing.yield()
            try await group.waitForAll()
        }
        #expect(sent.withLock { $0 } == [[devices[0]], Set(devices[1...3])])
        // A failed notification is the error of those it carried.
        releasing.yield()
        await #expect(throws: StoreError.self) { try await announcer.announce([devices[4]], send: send) }
        try await announcer.announce([], send: send)  // nothing to say: nothing sent
        #expect(sent.withLock { $0.count } == 3)
    }

    /// Two processes starting at once on a new database migrate it once.
    @Test func migrationsTakeTurns() async throws {
        try await withSharedDatabase(migrated: false) { first, second in
            async let one: Void = first.migrate()
            async let two: Void = second.migrate()
            _ = try await (one, two)
            #expect(try await first.count("schema_version") == 1)
            let version = try await first.database.read { try await $0.query("SELECT version FROM schema_version", []) }
            #expect(try version.first?.integer(0) == Int64(Schema.migrations(.postgres).count))
        }
    }

    /// Of two processes, one at a time does exclusive work; the other
    /// starts once the first is done.
    @Test func exclusiveWorkTakesTurns() async throws {
        try await withSharedDatabase { first, second in
            let (events, log) = AsyncStream<String>.makeStream()
            let (release, releaser) = AsyncStream<Void>.makeStream()
            let holder = Task {
                try await first.exclusively(.federationRelay) {
                    log.yield("first started")
                    for await _ in release { break }
                    log.yield("first done")
                }
            }
            var seen = events.makeAsyncIterator()
            #expect(await seen.next() == "first started")
            let waiter = Task { try await second.exclusively(.federationRelay) { log.yield("second started") } }
            releaser.yield()
            #expect(await seen.next() == "first done")
            #expect(await seen.next() == "second started")
            try await holder.value
            try await waiter.value
        }
    }
}

/// Two stores on one new PostgreSQL database (skipped without PostgreSQL,
/// as ``withStore(_:_:)``), migrated unless told otherwise.
func withSharedDatabase(
    migrated: Bool = true, _ body: @Sendable (ConclaveStore, ConclaveStore) async throws -> Void
) async throws {
    guard let url = try await ConclaveTestSupport.Backend.postgresDatabase() else { return }
    let first = try PostgresDatabase(url: url, logger: testLogger)
    let second = try PostgresDatabase(url: url, logger: testLogger)
    try await first.withRunning {
        try await second.withRunning {
            let stores = (ConclaveStore(database: first), ConclaveStore(database: second))
            if migrated { try await stores.0.migrate() }
            try await body(stores.0, stores.1)
        }
    }
}
