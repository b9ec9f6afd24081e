import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Conversations and commits: creation, the 1:1 key, first commit wins, fan-out.
@Suite struct ConversationStoreTests {
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func createConversationAndDirectKeyConflict(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let aliceDevice = MemberDevice(device: try await store.addDevice(alice), user: alice)
            let bobDevice = MemberDevice(device: try await store.addDevice(bob), user: bob)
            let key = UserName.directKey(bob, alice)
            #expect(key == "alice bob")

            let direct = try await store.addRoom(aliceDevice, directKey: key)
            #expect(try await store.conversation(direct.id) == direct)
            #expect(try await store.directConversation(key: key) == direct.id)
            #expect(try await store.memberUsers(direct.id) == [alice])
            #expect(try await store.memberDevices(direct.id) == [aliceDevice])
            #expect(try await store.conversations(of: alice).map(\.conversation) == [direct])
            #expect(try await store.conversations(of: alice).map(\.members) == [[alice]])
            #expect(try await store.conversations(of: bob).isEmpty)
            #expect(try await store.conversations(withDevices: [aliceDevice.device, bobDevice.device]) == [direct.id])

            // The same pair again, from the other side: refused, and nothing of it stored.
            await #expect { try await store.addRoom(bobDevice, directKey: key) } throws: { isConflict($0) }
            #expect(try await store.count("conversations") == 1)
            #expect(try await store.count("conversation_members") == 1)
            #expect(try await store.count("conversation_devices") == 1)

            var sameID = direct
            sameID.directKey = nil
            sameID.kind = .room
            await #expect { try await store.createConversation(sameID, creator: bobDevice) } throws: { isConflict($0) }

            // Rooms have no key: any number of them.
            _ = try await store.addRoom(bobDevice)
            _ = try await store.addRoom(bobDevice)
            #expect(try await store.conversations(of: bob).count == 2)
            #expect(try await store.directConversation(key: "bob carol") == nil)
            #expect(try await store.conversation(.random()) == nil)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func firstCommitWinsAndFansOutInOrder(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let carol = try await store.addUser("carol")
            let a = MemberDevice(device: try await store.addDevice(alice), user: alice)
            let b = MemberDevice(device: try await store.addDevice(bob), user: bob)
            let c = MemberDevice(device: try await store.addDevice(carol), user: carol)
            let room = try await store.addRoom(a)

            // Epoch 0 → 1: alice adds bob.
            let welcomeBob = Delivery(kind: .welcome, data: randomBytes(900), senderDevice: a.device, sentAt: now, recipients: [b.device])
            let first = try await store.commit(room.id, from: 0, devices: [a, b], added: [bob], deliveries: [welcomeBob])
            #expect(first.outcome == .applied)
            #expect(first.notified == [b.device])
            let afterFirst = try #require(try await store.conversation(room.id))
            #expect(afterFirst.epoch == 1)

            // A competing commit from epoch 0 loses and writes nothing.
            let welcomeCarol = Delivery(kind: .welcome, data: randomBytes(900), sentAt: now, recipients: [c.device])
            let losing = try await store.commit(room.id, from: 0, devices: [a, c], added: [carol], deliveries: [welcomeCarol])
            #expect(losing.outcome == .wrongEpoch(current: 1))
            #expect(losing.notified.isEmpty)
            #expect(try await store.conversation(room.id) == afterFirst)
            #expect(try await store.memberUsers(room.id) == [alice, bob])
            #expect(try await store.allEvents(c.device).isEmpty)

            // Epoch 1 → 2: bob adds carol; 2 → 3: alice removes carol (a device that no longer exists is left out).
            let handshake2 = Delivery(kind: .handshake, data: randomBytes(700), sentAt: now, recipients: [a.device])
            let welcome2 = Delivery(kind: .welcome, data: randomBytes(900), sentAt: now, recipients: [c.device])
            let second = try await store.commit(room.id, from: 1, devices: [a, b, c], added: [carol], deliveries: [handshake2, welcome2])
            #expect(second.outcome == .applied)
            #expect(second.notified == [a.device, c.device])
            let gone = MemberDevice(device: .random(), user: carol)
            let handshake3 = Delivery(
                kind: .handshake, data: randomBytes(700), sentAt: now, recipients: [a.device, b.device, c.device, gone.device])
            let third = try await store.commit(room.id, from: 2, devices: [a, b, gone], removed: [carol], deliveries: [handshake3])
            #expect(third.outcome == .applied)
            #expect(third.notified == [a.device, b.device, c.device])

            #expect(try await store.conversation(room.id)?.epoch == 3)
            #expect(try await store.memberUsers(room.id) == [alice, bob])
            #expect(try await store.memberDevices(room.id) == [a, b].sorted { $0.device < $1.device })
            try await Self.expectInbox(store, a.device, [handshake2, handshake3], room.id)
            try await Self.expectInbox(store, b.device, [welcomeBob, handshake3], room.id)
            try await Self.expectInbox(store, c.device, [welcome2, handshake3], room.id)

            #expect(try await store.commit(.random(), from: 0, devices: [a]).outcome == .wrongEpoch(current: 0))
        }
    }

    /// The device's inbox holds exactly `deliveries`, in order, numbered 1, 2, …
    static func expectInbox(_ store: ConclaveStore, _ device: DeviceID, _ deliveries: [Delivery], _ conversation: ConversationID)
        async throws
    {
        let events = try await store.allEvents(device)
        #expect(events.map(\.seq) == Array(1...Int64(deliveries.count)))
        #expect(events.map(\.message.bytes) == deliveries.map(\.data))
        #expect(events.map(\.kind) == deliveries.map(\.kind))
        #expect(events.allSatisfy { $0.conversation == conversation })
    }
}
