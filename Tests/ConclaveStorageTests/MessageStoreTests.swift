import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Application messages, acknowledgements, expiry and the sweep.
@Suite struct MessageStoreTests {
    /// Alice's device `a` and bob's devices `b1`, `b2` in one room at epoch 1.
    struct Group {
        let store: ConclaveStore
        let room: ConversationID
        let a: DeviceID
        let b1: DeviceID
        let b2: DeviceID

        init(_ store: ConclaveStore) async throws {
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            a = try await store.addDevice(alice)
            b1 = try await store.addDevice(bob)
            b2 = try await store.addDevice(bob)
            let creator = MemberDevice(device: a, user: alice)
            room = try await store.addRoom(creator).id
            let devices = [creator, MemberDevice(device: b1, user: bob), MemberDevice(device: b2, user: bob)]
            let outcome = try await store.commit(room, from: 0, devices: devices, added: [bob]).outcome
            try #require(outcome == .applied)
            self.store = store
        }

        func send(
            _ id: String?, epoch: UInt64 = 1, to recipients: [DeviceID]? = nil, at time: Date = testNow(), expiresAt: Date? = nil,
            data: [UInt8] = randomBytes(256)
        ) async throws -> SendOutcome {
            let delivery = Delivery(
                kind: .application, data: data, messageID: id, senderDevice: a, sentAt: time, expiresAt: expiresAt,
                recipients: recipients ?? [b1, b2])
            return try await store.appendApplication(room, epoch: epoch, delivery: delivery).outcome
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func duplicateMessageIDIsStoredOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            let sent = testNow()
            let expiry = sent.addingTimeInterval(3600)
            let data = randomBytes(256)
            #expect(try await group.send("m-1", at: sent, expiresAt: expiry, data: data) == .stored(sentAt: sent, expiresAt: expiry))
            let retry = try await group.send("m-1", at: sent.addingTimeInterval(5), data: randomBytes(256))
            #expect(retry == .duplicate(sentAt: sent, expiresAt: expiry))
            #expect(try await store.count("payloads") == 1)
            let events = try await store.allEvents(group.b1)
            #expect(events.map(\.message.bytes) == [data])
            #expect(events.map(\.messageId) == ["m-1"])
            #expect(events.first?.sentAt == sent)
            #expect(events.first?.expiresAt == expiry)

            // Message ids are per conversation.
            let other = try await store.addRoom(MemberDevice(device: group.a, user: try name("alice")))
            let elsewhere = Delivery(kind: .application, data: randomBytes(64), messageID: "m-1", sentAt: sent, recipients: [group.a])
            #expect(
                try await store.appendApplication(other.id, epoch: 0, delivery: elsewhere).outcome == .stored(sentAt: sent, expiresAt: nil))
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func wrongEpochAndPendingProposalsRefuseSends(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            #expect(try await group.send("old", epoch: 0) == .wrongEpoch(current: 1))
            #expect(try await group.send("future", epoch: 2) == .wrongEpoch(current: 1))
            #expect(try await store.count("payloads") == 0)
            let unknown = Delivery(kind: .application, data: randomBytes(64), sentAt: testNow(), recipients: [group.b1])
            #expect(try await store.appendApplication(.random(), epoch: 1, delivery: unknown).outcome == .unknownConversation)

            let proposal = (ref: randomBytes(32), message: randomBytes(400))
            let announce = Delivery(kind: .handshake, data: proposal.message, sentAt: testNow(), recipients: [group.a, group.b1, group.b2])
            let stale = try await store.addPendingProposals(group.room, epoch: 0, proposals: [proposal], delivery: [announce])
            #expect(stale.isEmpty)
            #expect(try await store.pendingProposals(group.room).isEmpty)
            let notified = try await store.addPendingProposals(group.room, epoch: 1, proposals: [proposal, proposal], delivery: [announce])
            #expect(notified == [group.a, group.b1, group.b2])
            let pending = try await store.pendingProposals(group.room)
            #expect(pending.map(\.epoch) == [1])
            #expect(pending.map(\.ref) == [proposal.ref])
            #expect(pending.map(\.message) == [proposal.message])

            #expect(try await group.send("blocked") == .pendingProposals)
            #expect(try await store.allEvents(group.b1).map(\.kind) == [.handshake])

            let members = try await store.memberDevices(group.room)
            #expect(try await store.commit(group.room, from: 1, devices: members).outcome == .applied)
            #expect(try await store.pendingProposals(group.room).isEmpty)
            let sent = testNow()
            #expect(try await group.send("unblocked", epoch: 2, at: sent) == .stored(sentAt: sent, expiresAt: nil))
            #expect(try await store.allEvents(group.b1).map(\.kind) == [.handshake, .application])
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func acknowledgeRemovesEntriesAndOrphanPayloads(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            for index in 1...3 { _ = try await group.send("m-\(index)") }
            #expect(try await store.allEvents(group.b1).map(\.seq) == [1, 2, 3])
            #expect(try await store.inbox(device: group.b1, after: 0, limit: 2, now: testNow()).map(\.seq) == [1, 2])
            #expect(try await store.inbox(device: group.b1, after: 2, limit: 2, now: testNow()).map(\.messageId) == ["m-3"])
            // A page says whether it held the rest of the inbox: not when it is full, or cut short by its bytes.
            let full = try await store.readInbox(device: group.b1, after: 0, limit: 3, now: testNow())
            #expect(full.events.map(\.seq) == [1, 2, 3] && !full.drained)
            let rest = try await store.readInbox(device: group.b1, after: 0, limit: 4, now: testNow())
            #expect(rest.events.map(\.seq) == [1, 2, 3] && rest.drained)
            let cut = try await store.readInbox(device: group.b1, after: 0, limit: 4, maxBytes: 1, now: testNow())
            #expect(cut.events.map(\.seq) == [1] && !cut.drained)
            let empty = try await store.readInbox(device: group.b1, after: 3, limit: 4, now: testNow())
            #expect(empty.events.isEmpty && empty.drained)

            #expect(try await store.acknowledge(device: group.b1, upTo: 2) == 2)
            #expect(try await store.allEvents(group.b1).map(\.seq) == [3])
            #expect(try await store.count("payloads") == 3)
            #expect(try await store.acknowledge(device: group.b2, upTo: 3) == 3)
            #expect(try await store.count("payloads") == 1)
            #expect(try await store.acknowledge(device: group.b1, upTo: 3) == 1)
            #expect(try await store.count("payloads") == 0)
            #expect(try await store.inboxDepth() == 0)
            #expect(try await store.acknowledge(device: group.b1, upTo: 3) == 0)

            // Numbers are never reused after an acknowledgement.
            _ = try await group.send("m-4")
            #expect(try await store.allEvents(group.b1).map(\.seq) == [4])
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func expiredPayloadsAreHiddenAndSwept(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            let now = testNow()
            let soon = now.addingTimeInterval(10)
            let after = now.addingTimeInterval(11)
            _ = try await group.send("ephemeral", at: now, expiresAt: soon)
            _ = try await group.send("lasting", at: now)

            #expect(try await store.allEvents(group.b1, now: now).map(\.messageId) == ["ephemeral", "lasting"])
            #expect(try await store.allEvents(group.b1, now: soon).map(\.messageId) == ["lasting"])
            #expect(try await store.allEvents(group.b2, now: after).map(\.seq) == [2])
            #expect(try await store.sweep(now: now) == 0)
            #expect(try await store.count("payloads") == 2)

            #expect(try await store.sweep(now: after) == 1)
            #expect(try await store.count("payloads") == 1)
            #expect(try await store.inboxDepth() == 2)
            #expect(try await store.allEvents(group.b1, now: now).map(\.messageId) == ["lasting"])

            // A payload whose recipients are all gone is swept as an orphan.
            #expect(try await group.send("nobody", to: [DeviceID.random()], at: now) == .stored(sentAt: now, expiresAt: nil))
            #expect(try await store.count("payloads") == 2)
            #expect(try await store.sweep(now: now) == 1)
            #expect(try await store.count("payloads") == 1)
        }
    }
}
