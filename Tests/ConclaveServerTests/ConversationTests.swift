@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// End-to-end conversations against a real server process, on SQLite and
/// PostgreSQL.
@Suite(.serialized)
struct ConversationTests {
    @Test("1:1 and rooms, offline delivery, at-least-once made exactly-once", arguments: Backend.allCases)
    func directAndRooms(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carol = try await network.device("carol")

            let direct = try await alice.directConversation(with: network.address("bob"))
            try await alice.send("hello bob", to: direct.id)
            let received = messages(try await bob.receive())
            #expect(received.map(\.text) == ["hello bob"])
            #expect(received.first?.from == network.address("alice"))
            #expect(received.first?.room == nil)
            // Bob asking for the 1:1 finds the same conversation; the server refuses a second one.
            #expect(try await bob.directConversation(with: network.address("alice")).id == direct.id)

            let room = try await alice.createRoom(name: "ops", members: [network.address("bob"), network.address("carol")])
            #expect(Set(room.members) == [network.address("alice"), network.address("bob"), network.address("carol")])
            for index in 1...5 { try await bob.send("room \(index)", to: room.id) }
            // Carol was offline for all of it: everything arrives, in order, once.
            #expect(texts(try await carol.receive()) == (1...5).map { "room \($0)" })
            #expect(texts(try await carol.receive()).isEmpty)
            #expect(texts(try await alice.receive()) == (1...5).map { "room \($0)" })

            // Removal: carol is removed; she learns it, and cannot read what follows.
            _ = try await alice.remove(network.address("carol"), from: room.id)
            let carolEvents = try await carol.receive()
            #expect(carolEvents.contains { if case .removed(room.id, _) = $0 { true } else { false } })
            try await bob.send("after carol left", to: room.id)
            #expect(texts(try await carol.receive()).isEmpty)
            #expect(texts(try await alice.receive()) == ["after carol left"])
        }
    }

    @Test("A second device joins the user's conversations and is seen as a new leaf", arguments: Backend.allCases)
    func secondDevice(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(name: "team", members: [network.address("bob")])
            let direct = try await alice.directConversation(with: network.address("bob"))
            _ = try await bob.receive()

            let laptop = try await network.device("bob", "laptop", approvedBy: bob)
            #expect(Set(try await laptop.conversations().map(\.id)) == [room.id, direct.id])
            let aliceEvents = try await alice.receive()
            #expect(aliceEvents.contains { if case .membersChanged = $0 { true } else { false } })
            try await alice.send("to both of bob's devices", to: room.id)
            #expect(texts(try await laptop.receive()) == ["to both of bob's devices"])
            #expect(texts(try await bob.receive()) == ["to both of bob's devices"])
            // A room created after the second device signed in includes it from the start.
            let later = try await alice.createRoom(name: "later", members: [network.address("bob")])
            try await alice.send("new room", to: later.id)
            #expect(texts(try await laptop.receive()) == ["new room"])
            // The laptop's messages reach alice and bob's phone.
            try await laptop.send("from the laptop", to: direct.id)
            #expect(texts(try await alice.receive()) == ["from the laptop"])
            #expect(texts(try await bob.receive()) == ["new room", "from the laptop"])
        }
    }

    @Test("Leaving a room: the server proposes the removal and a member commits it", arguments: Backend.allCases)
    func leave(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carol = try await network.device("carol")
            let room = try await alice.createRoom(name: "leavers", members: [network.address("bob"), network.address("carol")])
            _ = try await bob.receive()
            _ = try await carol.receive()
            try await carol.leave(room.id)
            #expect(try await carol.conversations().isEmpty)
            // Bob's client commits the server's Remove proposal on its next sync; sends wait for it.
            _ = try await bob.receive()
            try await bob.send("carol is gone", to: room.id)
            #expect(texts(try await alice.receive()) == ["carol is gone"])
            let members = try await alice.conversations().first { $0.id == room.id }?.members ?? []
            #expect(Set(members) == [network.address("alice"), network.address("bob")])
        }
    }

    @Test("The WebSocket pushes new messages as they arrive", arguments: [Backend.sqlite])
    func pushedEvents(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await alice.directConversation(with: network.address("bob"))
            _ = try await bob.receive()
            // bob listens on his WebSocket; alice sends once bob's stream is open (it starts with what is pending: nothing).
            let received = try await withThrowingTaskGroup(of: [ClientEvent].self) { group in
                let events = bob.events()
                group.addTask {
                    try await withDeadline(.seconds(30), "the pushed message") {
                        for try await event in events where texts([event]) == ["pushed"] { return [event] }
                        return []
                    }
                }
                try await alice.send("pushed", to: direct.id)
                return try await group.next() ?? []
            }
            let pushed = texts(received).first
            #expect(pushed == "pushed")
        }
    }
}

/// Conversation settings live in the group's context; the server reads the
/// message lifetime from it and stamps and enforces the expiry.
@Suite(.serialized)
struct ConversationSettingsTests {
    @Test("A room's message lifetime sets expires_at; expired ciphertext is not delivered", arguments: Backend.allCases)
    func messageLifetime(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, testClock: true) { network in
            let clock = try #require(network.clock)
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(
                name: "ephemeral", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 5, burnOnRead: 60))
            #expect(room.messageLifetime == 5)
            #expect(room.burnOnRead == 60)
            let accepted = try await alice.send("short-lived", to: room.id)
            let expiresAt = try #require(accepted.expiresAt)
            #expect(abs(expiresAt.timeIntervalSince(accepted.sentAt) - 5) < 0.01)
            let first = messages(try await bob.receive())
            #expect(first.map(\.text) == ["short-lived"])
            #expect(first.first?.burnOnRead == 60)
            #expect(abs((first.first?.expiresAt ?? .distantPast).timeIntervalSince(expiresAt)) < 0.002)
            // A message nobody fetched before its expiry is never delivered.
            try await alice.send("too late", to: room.id)
            clock.advance(by: 5.3)
            #expect(texts(try await bob.receive()).isEmpty)
            let info = try await RawHTTP(baseURL: network.url).send(
                .GET, "/v1/conversations/\(room.id)", token: await alice.sessionTokenForTesting
            ).decode(ConversationInfo.self)
            #expect(info.messageLifetime == 5)
            // 1:1 without settings: no expiry.
            let direct = try await alice.directConversation(with: network.address("bob"))
            #expect(try await alice.send("forever", to: direct.id).expiresAt == nil)
        }
    }
}
