@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import Testing

/// The six ways a new user lost or misdelivered messages (issue 19),
/// each replayed against a server and now delivered once, to the right
/// devices, or refused visibly.
@Suite(.serialized)
struct LifecycleTests {
    @Test("19.1 A 1:1 stays two users: adding is refused, leaving hides it, and bob's next message reaches alice only")
    func directStaysTwoUsers() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carol = try await network.device("carol")
            let direct = try await alice.directConversation(with: network.address("bob"))

            await #expect(throws: ClientError.self) { try await alice.add([network.address("carol")], to: direct.id) }
            try await alice.leave(direct.id)
            #expect(try await alice.conversations().first { $0.id == direct.id }?.hidden == true)

            let sent = try await bob.send("for alice only", to: direct.id)
            #expect(Set(sent.recipients.map(\.user)) == [network.address("alice")])
            #expect(texts(try await alice.receive()) == ["for alice only"])
            #expect(texts(try await carol.receive()).isEmpty)
            // Alice answers in the same 1:1, which shows again.
            try await alice.send("still here", to: direct.id)
            #expect(texts(try await bob.receive()) == ["still here"])
            #expect(try await alice.conversations().first { $0.id == direct.id }?.hidden == false)
            #expect(try await alice.directConversation(with: network.address("bob")).id == direct.id)
        }
    }

    @Test("19.2 After suspension and a new device the 1:1 heals both ways; while the peer has no device, send fails visibly")
    func directHealsAfterSuspension() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "erin")
            let alice = try await network.device("alice")
            let erin = try await network.device("erin")
            let direct = try await alice.directConversation(with: network.address("erin"))
            try await alice.send("before", to: direct.id)
            #expect(texts(try await erin.receive()) == ["before"])

            _ = try await network.admin.suspend(UserName("erin")!)  // a literal of the test
            // No device of erin's is left: nothing is "sent" into a conversation that holds alice alone.
            await #expect(throws: ClientError.self) { try await alice.send("into the void", to: direct.id) }
            _ = try await network.admin.unsuspend(UserName("erin")!)
            await #expect(throws: ClientError.self) { try await alice.send("still nobody", to: direct.id) }

            // erin's phone signs in again (its session ended with the suspension) and approves her laptop.
            try await erin.login(server: network.url, user: "erin@\(network.domain)", password: network.password, deviceName: "phone")
            let laptop = try await network.device("erin", "laptop", approvedBy: erin)
            let sent = try await alice.send("to the new device", to: direct.id)
            let laptopDevice = await laptop.device
            #expect(sent.recipients.map(\.device) == [laptopDevice].compactMap { $0 })
            #expect(texts(try await laptop.receive()) == ["to the new device"])
            let answer = try await laptop.directConversation(with: network.address("alice"))
            #expect(answer.id == direct.id)
            try await laptop.send("back again", to: answer.id)
            #expect(texts(try await alice.receive()) == ["back again"])
        }
    }

    @Test("19.2b The heal works from the side that lost its devices too: erin writes first after a reset")
    func directHealsFromTheResetSide() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "erin")
            let alice = try await network.device("alice")
            _ = try await network.device("erin")
            let direct = try await alice.directConversation(with: network.address("erin"))
            #expect(try await network.admin.resetDevices(UserName("erin")!) == 1)  // a literal of the test
            let tablet = try await network.device("erin", "tablet")
            let mine = try await tablet.directConversation(with: network.address("alice"))
            #expect(mine.id == direct.id)
            let sent = try await tablet.send("new tablet", to: mine.id)
            #expect(sent.recipients.map(\.user) == [network.address("alice")])
            #expect(texts(try await alice.receive()) == ["new tablet"])
            try await alice.send("welcome back", to: direct.id)
            #expect(texts(try await tablet.receive()) == ["welcome back"])
        }
    }

    @Test("19.3 Added and removed before he synced: dave gets what was sent while he was a member, and everything after")
    func addedAndRemovedBeforeSync() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob", "dave")
            let alice = try await network.device("alice")
            _ = try await network.device("bob")
            let dave = try await network.device("dave")
            let room = try await alice.createRoom(name: "ops", members: [network.address("bob")])
            _ = try await alice.add([network.address("dave")], to: room.id)
            try await alice.send("while dave is in", to: room.id)
            _ = try await alice.remove(network.address("dave"), from: room.id)
            try await alice.send("after dave left", to: room.id)
            let direct = try await alice.directConversation(with: network.address("dave"))
            try await alice.send("a 1:1 later", to: direct.id)

            let events = try await dave.receive()
            #expect(texts(events) == ["while dave is in", "a 1:1 later"])
            #expect(events.contains { if case .removed(room.id, _) = $0 { true } else { false } })
            #expect(!events.contains { if case .warning = $0 { true } else { false } })
            #expect(try await dave.receive().isEmpty)
        }
    }

    @Test("19.4 An expired session says so and what to run; signing in again keeps the device and its unread messages")
    func expiredSession() async throws {
        let oneHourSessions: @Sendable (inout ServerConfiguration) -> Void = { $0.sessionLifetime = 3600 }
        try await TestNetwork.run(.sqlite, testClock: true, configure: oneHourSessions) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await bob.directConversation(with: network.address("alice"))
            network.clock?.advance(by: 1800)
            try await bob.login(server: network.url, user: "bob@\(network.domain)", password: network.password, deviceName: "phone")
            try await bob.send("unread", to: direct.id)
            network.clock?.advance(by: 2400)  // alice's session is 70 minutes old, bob's 40

            let error = await #expect(throws: ClientError.self) { try await alice.receive() }
            #expect(error?.code == .sessionExpired)
            #expect(error?.description.contains("conclave login") == true)
            let device = await alice.device
            try await alice.login(server: network.url, user: "alice@\(network.domain)", password: network.password, deviceName: "phone")
            #expect(await alice.device == device)
            #expect(texts(try await alice.receive()) == ["unread"])
            // A wrong password does not renew it.
            await #expect(throws: ClientError.self) {
                try await alice.login(
                    server: network.url, user: "alice@\(network.domain)", password: "wrong password!", deviceName: "phone")
            }
        }
    }

    @Test("19.7 A message of the epoch this device's own commit ended is still read (found by the history test)")
    func messageOfTheEpochBeforeOwnCommit() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            _ = try await network.device("carol")
            let room = try await alice.createRoom(name: "ops", members: [network.address("bob"), network.address("carol")])
            _ = try await bob.receive()
            try await bob.send("sent before alice's commit", to: room.id)
            // Alice commits without reading first: her commit moves the epoch while bob's message waits in her inbox.
            _ = try await alice.remove(network.address("carol"), from: room.id)
            try await bob.send("after it", to: room.id)
            #expect(texts(try await alice.receive()) == ["sent before alice's commit", "after it"])
            // The kept epoch is gone once the inbox was read to its end.
            #expect(try await alice.retainedEpochCountForTesting(room.id) == 0)
        }
    }

    @Test("19.8 Removed, then added back: the device joins again and reads on (found by the history test)")
    func removedThenAddedBack() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(name: "ops", members: [network.address("bob")])
            _ = try await bob.receive()
            _ = try await alice.remove(network.address("bob"), from: room.id)
            #expect(try await bob.receive().contains { if case .removed(room.id, _) = $0 { true } else { false } })
            _ = try await alice.add([network.address("bob")], to: room.id)
            try await alice.send("welcome back", to: room.id)
            #expect(texts(try await bob.receive()) == ["welcome back"])
            try await bob.send("glad to be back", to: room.id)
            #expect(texts(try await alice.receive()) == ["glad to be back"])
        }
    }

    @Test("19.5 One broken conversation is reported and skipped; the others' messages are delivered")
    func brokenConversationIsSkipped() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let broken = try await alice.createRoom(name: "broken", members: [network.address("bob")])
            let fine = try await alice.createRoom(name: "fine", members: [network.address("bob")])
            _ = try await bob.receive()
            try await bob.corruptGroupStateForTesting(broken.id)
            try await alice.send("lost to a broken state", to: broken.id)
            try await alice.send("delivered", to: fine.id)
            let events = try await bob.receive()
            #expect(texts(events) == ["delivered"])
            #expect(events.contains { if case .warning = $0 { true } else { false } })
        }
    }

    @Test("19.5b Decrypted events are held on the device until confirmed: a crash before printing loses nothing")
    func heldUntilConfirmed() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await alice.directConversation(with: network.address("bob"))
            for index in 1...3 { try await alice.send("held \(index)", to: direct.id) }
            let pending = try await bob.pendingEvents()
            #expect(texts(pending.map(\.event)) == ["held 1", "held 2", "held 3"])
            let profile = bob.profile
            await bob.close()  // the process dies before printing

            let again = try await ConclaveClient.open(profile: profile)
            let replayed = try await again.pendingEvents()
            #expect(texts(replayed.map(\.event)) == ["held 1", "held 2", "held 3"])
            try await again.confirm(through: try #require(replayed.dropLast().last?.sequence))
            #expect(texts(try await again.receive()) == ["held 3"])
            #expect(try await again.receive().isEmpty)
        }
    }

    @Test("19.6 Empty messages and a second room of the same name are refused before anything is sent")
    func refusals() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await alice.directConversation(with: network.address("bob"))
            for text in ["", "  \n"] {
                await #expect(throws: ClientError.self) { try await alice.send(text, to: direct.id) }
            }
            #expect(try await bob.receive().filter { if case .message = $0 { true } else { false } }.isEmpty)
            let room = try await alice.createRoom(name: "team", members: [network.address("bob")])
            let error = await #expect(throws: ClientError.self) {
                try await alice.createRoom(name: "team", members: [network.address("bob")])
            }
            #expect(error?.description.contains(room.id.description) == true)
            #expect(try await alice.findConversation("team").id == room.id)
            let second = try await alice.createRoom(name: "team", members: [network.address("bob")], allowDuplicateName: true)
            #expect(second.id != room.id)
        }
    }
}
