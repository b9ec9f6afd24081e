import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Schema migrations, users, devices and sessions.
@Suite struct UserStoreTests {
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func migrateTwiceIsIdempotent(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            try await store.migrate()
            try await store.migrate()
            let versions = try await store.database.read { connection in
                try await connection.query("SELECT version FROM schema_version", []).map { try $0.integer(0) }
            }
            #expect(versions == [16])  // the newest migration: the expiry index of payloads that expire
            #expect(try await store.user(named: alice) != nil)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func failedTransactionStoresNothing(_ backend: Backend) async throws {
        struct Abort: Error {}
        try await withStore(backend) { store in
            await #expect(throws: Abort.self) {
                try await store.database.transaction { connection in
                    try await connection.execute(
                        "INSERT INTO users (name, password_hash, security_group, suspended, created_at) VALUES (?, ?, ?, ?, ?)",
                        [.text("ghost"), .text("x"), .text("staff"), .integer(0), .integer(1)])
                    throw Abort()
                }
            }
            #expect(try await store.count("users") == 0)
            // The connection is usable afterwards.
            try await store.addUser("alice")
            #expect(try await store.count("users") == 1)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func usersAreCreatedListedAndUnique(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let created = testNow()
            let bob = try await store.addUser("bob", at: created)
            let alice = try await store.addUser("alice", at: created)
            _ = try await store.addDevice(alice)
            _ = try await store.addDevice(alice)

            let stored = try #require(try await store.user(named: bob))
            #expect(
                stored
                    == UserRecord(name: bob, passwordHash: "$argon2id$bob", securityGroup: "default", suspended: false, createdAt: created)
            )
            #expect(try await store.user(named: try name("carol")) == nil)

            let duplicate = UserRecord(name: alice, passwordHash: "other", securityGroup: "default", suspended: false, createdAt: created)
            await #expect { try await store.createUser(duplicate) } throws: { isConflict($0) }
            #expect(try await store.user(named: alice)?.passwordHash == "$argon2id$alice")

            let listed = try await store.users()
            #expect(listed.map(\.user.name) == [alice, bob])
            #expect(listed.map(\.devices) == [2, 0])
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func devicesRoundTripAndSignatureKeysAreUnique(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let earlier = Date(millis: testNow().millis - 1000)
            let device = DeviceRecord(
                id: .random(), user: alice, name: "phone", signatureKey: randomBytes(32), certificate: randomBytes(200), createdAt: earlier,
                lastSeenAt: nil)
            try await store.createDevice(device)
            let second = try await store.addDevice(alice)
            #expect(try await store.device(device.id) == device)
            #expect(try await store.devices(of: alice).map(\.id) == [device.id, second])
            #expect(try await store.device(.random()) == nil)

            var copy = device
            copy.id = .random()
            await #expect { try await store.createDevice(copy) } throws: { isConflict($0) }
            copy.signatureKey = randomBytes(32)
            copy.user = try name("nobody")
            // A missing user is a broken reference, not a conflict.
            await #expect { try await store.createDevice(copy) } throws: { $0 is StoreError && !isConflict($0) }
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func suspensionEndsSessions(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let later = now.addingTimeInterval(3600)
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let aliceDevice = try await store.addDevice(alice)
            let bobDevice = try await store.addDevice(bob)
            let aliceToken = randomBytes(32)
            let bobToken = randomBytes(32)
            try await store.createSession(tokenHash: aliceToken, device: aliceDevice, createdAt: now, expiresAt: later)
            try await store.createSession(tokenHash: bobToken, device: bobDevice, createdAt: now, expiresAt: later)

            let live = try #require(try await store.session(tokenHash: aliceToken, now: now))
            #expect(live.device.id == aliceDevice)
            #expect(live.user.name == alice)

            #expect(try await store.setSuspended(alice, true))
            #expect(try await store.user(named: alice)?.suspended == true)
            #expect(try await store.session(tokenHash: aliceToken, now: now) == nil)
            #expect(try await store.session(tokenHash: bobToken, now: now)?.device.id == bobDevice)
            #expect(try await store.count("sessions") == 1)

            // A session of a suspended user is refused even if it exists.
            let newToken = randomBytes(32)
            try await store.createSession(tokenHash: newToken, device: aliceDevice, createdAt: now, expiresAt: later)
            #expect(try await store.session(tokenHash: newToken, now: now) == nil)

            #expect(try await store.setSuspended(alice, false))
            #expect(try await store.session(tokenHash: aliceToken, now: now) == nil)
            #expect(try await store.session(tokenHash: newToken, now: now)?.user.name == alice)
            #expect(try await store.setSuspended(try name("nobody"), true) == false)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func sessionsExpire(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let device = try await store.addDevice(alice)
            let token = randomBytes(32)
            try await store.createSession(tokenHash: token, device: device, createdAt: now, expiresAt: now.addingTimeInterval(60))

            #expect(try await store.session(tokenHash: token, now: now) != nil)
            #expect(try await store.session(tokenHash: token, now: now.addingTimeInterval(59.999)) != nil)
            #expect(try await store.session(tokenHash: token, now: now.addingTimeInterval(60)) == nil)
            #expect(try await store.session(tokenHash: token, now: now.addingTimeInterval(3600)) == nil)
            #expect(try await store.session(tokenHash: randomBytes(32), now: now) == nil)

            try await store.deleteSession(tokenHash: token)
            #expect(try await store.session(tokenHash: token, now: now) == nil)
            #expect(try await store.count("sessions") == 0)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func deletingUserCascades(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let phone = try await store.addDevice(alice)
            let laptop = try await store.addDevice(alice)
            let bobDevice = try await store.addDevice(bob)
            for device in [phone, laptop, bobDevice] {
                try await store.createSession(
                    tokenHash: randomBytes(32), device: device, createdAt: now, expiresAt: now.addingTimeInterval(60))
                try await store.addKeyPackages(
                    device: device, [(randomBytes(32), randomBytes(300))], lastResort: (randomBytes(32), randomBytes(300)), now: now)
            }
            let room = try await store.addRoom(MemberDevice(device: bobDevice, user: bob))
            let members = [bobDevice, phone, laptop].map { MemberDevice(device: $0, user: $0 == bobDevice ? bob : alice) }
            let welcome = Delivery(kind: .welcome, data: randomBytes(500), sentAt: now, recipients: [phone, laptop])
            #expect(try await store.commit(room.id, from: 0, devices: members, added: [alice], deliveries: [welcome]).outcome == .applied)
            #expect(try await store.count("inbox") == 2)

            let deleted = try #require(try await store.deleteUser(alice))
            #expect(Set(deleted) == [phone, laptop])
            #expect(try await store.user(named: alice) == nil)
            #expect(try await store.device(phone) == nil)
            #expect(try await store.devices(of: alice).isEmpty)
            #expect(try await store.count("sessions") == 1)
            #expect(try await store.count("key_packages") == 2)
            #expect(try await store.count("inbox") == 0)
            #expect(try await store.packageCount(phone) == PackageCount(available: 0, lastResort: false))
            #expect(try await store.memberUsers(room.id) == [bob])
            #expect(try await store.memberDevices(room.id) == [MemberDevice(device: bobDevice, user: bob)])
            #expect(try await store.deleteUser(alice) == nil)

            #expect(try await store.deleteDevices(of: bob) == [bobDevice])
            #expect(try await store.user(named: bob) != nil)
            #expect(try await store.count("sessions") == 0)
            #expect(try await store.count("key_packages") == 0)
        }
    }
}
