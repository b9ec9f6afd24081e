@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Security groups (issue 5): segmentation, settings bounds, changes of
/// policy applied to existing conversations, and the audit log. Every case
/// runs against the server in process, on SQLite and on PostgreSQL.
@Suite(.serialized)
struct PolicyTests {
    static let contractors = SecurityGroupName("contractors")!  // a literal of the test
    static let short = SecurityGroupName("short")!

    @Test("Segmentation: refused on creation and on every Add, from the SDK and from a modified client", arguments: Backend.allCases)
    func segmentation(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            _ = try await admin.addGroup(Self.contractors, SecurityGroupChange(mayMessage: .only([Self.contractors])))
            try await network.users("alice", "bob")
            try await network.users("carl", "cora", group: "contractors")
            await expectRefused(.unknownGroup) {
                _ = try await admin.addUser(try #require(UserName("xavier")), password: network.password, group: "no-such-group")
            }
            await expectRefused(.unknownGroup) {
                _ = try await admin.addGroup(try #require(SecurityGroupName("odd")), SecurityGroupChange(mayMessage: .only([Self.short])))
            }
            let alice = try await network.device("alice")
            let carl = try await network.device("carl")
            let cora = try await network.device("cora")

            // The SDK refuses before anything is created; the server says why.
            await expectPolicyRefusal { _ = try await alice.directConversation(with: network.address("carl")) }
            await expectPolicyRefusal {
                _ = try await alice.createRoom(name: "mixed", members: [network.address("bob"), network.address("carl")])
            }
            #expect(try await alice.conversations().isEmpty)
            let asAlice = RawHTTP(baseURL: network.url)
            let query = PolicyQuery(members: [network.address("carl")])
            asAlice.expectRefusal(
                try await asAlice.send(.POST, "/v1/policy", token: await alice.sessionTokenForTesting, json: query), .policySegmentation)
            // Contractors among themselves are fine.
            let pair = try await carl.directConversation(with: network.address("cora"))
            try await carl.send("contractors only", to: pair.id)
            #expect(texts(try await cora.receive()) == ["contractors only"])

            // A modified client: a 1:1 with a contractor, then an Add of a contractor's key package.
            let raw = try await RawDevice.login(network, user: "alice", approvedBy: alice)
            let http = raw.http
            http.expectRefusal(
                try await raw.create(try raw.newGroup(), kind: .direct, name: nil, peer: network.address("carl")), .policySegmentation)
            var room = try raw.newGroup()
            let roomID = try #require(ConversationID(bytes: room.groupID))
            #expect(try await raw.create(room).status == 201)
            // Claiming a contractor's key packages is refused; a KeyPackage obtained otherwise is refused in the commit.
            http.expectRefusal(
                try await http.send(
                    .POST, "/v1/key-packages/claim", token: raw.token, json: KeyPackageClaim(user: network.address("carl"))),
                .policySegmentation)
            let carlPackages = [try await RawDevice.login(network, user: "carl", approvedBy: carl).keyPackage().keyPackage]
            let refused = try await raw.send(
                try room.commit(adding: carlPackages, now: validationNow, random: raw.random), on: &room, id: roomID)
            http.expectRefusal(refused, .policySegmentation)
            #expect(refused.error?.message.contains("may-message") == true)
            let unchanged = try await http.send(.GET, "/v1/conversations/\(roomID)", token: raw.token).decode(ConversationInfo.self)
            #expect(unchanged.epoch == 0)
            #expect(unchanged.members == [network.address("alice")])
            // The same commit with bob, of alice's own group, is accepted.
            let bobPackages = try await raw.claim(network.address("bob"))
            #expect(
                try await raw.send(try room.commit(adding: bobPackages, now: validationNow, random: raw.random), on: &room, id: roomID)
                    .status == 201)
        }
    }

    @Test("Settings: the members' bounds give defaults and refuse what lies outside them", arguments: Backend.allCases)
    func settingsBounds(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            await expectRefused(.invalidPolicy) {
                _ = try await admin.addGroup(
                    try #require(SecurityGroupName("bad")), SecurityGroupChange(messageLifetimeMin: 7200, messageLifetimeMax: 3600))
            }
            // short: messages live at most an hour (30 minutes unless the creator says otherwise); no burn-on-read.
            _ = try await admin.addGroup(
                Self.short, SecurityGroupChange(messageLifetimeMax: 3600, messageLifetimeDefault: 1800, burnOnReadMax: 0))
            try await network.users("alice", "bob")
            try await network.users("dave", "dana", group: "short")
            let alice = try await network.device("alice")
            let dave = try await network.device("dave")
            _ = try await network.device("dana")
            _ = try await network.device("bob")

            let direct = try await alice.directConversation(with: network.address("dave"))
            #expect(direct.messageLifetime == 1800)
            #expect(direct.burnOnRead == 0)
            await expectPolicyRefusal {
                _ = try await alice.createRoom(
                    name: "long", members: [network.address("dave")], settings: ConversationSettings(messageLifetime: 7200))
            }
            await expectPolicyRefusal {
                _ = try await alice.createRoom(
                    name: "burning", members: [network.address("dave")],
                    settings: ConversationSettings(messageLifetime: 600, burnOnRead: 30))
            }
            var room = try await alice.createRoom(name: "ops", members: [network.address("dave")])
            #expect(room.messageLifetime == 1800)
            room = try await alice.setSettings(ConversationSettings(messageLifetime: 600), in: room.id)
            #expect(room.messageLifetime == 600)
            _ = try await dave.receive()
            #expect(try await dave.findConversation(room.id.description).messageLifetime == 600)
            await expectPolicyRefusal { _ = try await alice.setSettings(ConversationSettings(), in: room.id) }
            // A room of the default group may keep messages forever and burn them; dave may not join it.
            let open = try await alice.createRoom(
                name: "open", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 0, burnOnRead: 60))
            await expectRefused(.policySettings) { _ = try await alice.add([network.address("dave")], to: open.id) }

            // A modified client: settings out of bounds at creation, and in a commit's GroupContextExtensions.
            let raw = try await RawDevice.login(network, user: "alice", approvedBy: alice)
            let http = raw.http
            http.expectRefusal(
                try await raw.create(try raw.newGroup(), kind: .direct, name: nil, peer: network.address("dana")), .policySettings)
            let settings = ConversationSettings(messageLifetime: 600)
            var group = try raw.newGroup(extensions: [raw.externalSenders, settings.extension])
            let id = try #require(ConversationID(bytes: group.groupID))
            #expect(try await raw.create(group).status == 201)
            let danaPackages = try await raw.claim(network.address("dana"))
            #expect(
                try await raw.send(try group.commit(adding: danaPackages, now: validationNow, random: raw.random), on: &group, id: id)
                    .status == 201)
            let tooLong = ConversationSettings(messageLifetime: 7200)
            let commit = try group.commit(
                proposals: [.groupContextExtensions([raw.externalSenders, tooLong.extension])], now: validationNow, random: raw.random)
            http.expectRefusal(try await raw.send(commit, on: &group, id: id), .policySettings)
            let info = try await http.send(.GET, "/v1/conversations/\(id)", token: raw.token).decode(ConversationInfo.self)
            #expect(info.epoch == 1)
            #expect(info.messageLifetime == 600)
        }
    }

    @Test("A change of policy applies at once: server Remove and settings proposals, committed by members", arguments: Backend.allCases)
    func policyChange(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            try await network.users("alice", "bob", "carl")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carl = try await network.device("carl")
            let room = try await alice.createRoom(name: "all hands", members: [network.address("bob"), network.address("carl")])
            _ = try await bob.receive()
            _ = try await carl.receive()
            let carlState = try #require(try await carl.groupForTesting(room.id))

            // carl moves to a group that may only message itself: the server proposes carl's removal.
            _ = try await admin.addGroup(Self.contractors, SecurityGroupChange(mayMessage: .only([Self.contractors])))
            #expect(try await admin.setGroup(of: try #require(UserName("carl")), to: Self.contractors).group == "contractors")
            // bob's client commits it on its next receive; nobody has to do anything.
            _ = try await bob.receive()
            let http = RawHTTP(baseURL: network.url)
            let carlToken = try #require(await carl.sessionTokenForTesting)
            let carlInbox = try await http.send(.GET, "/v1/inbox", token: carlToken).decode(InboxPage.self)
            #expect(try await bob.findConversation(room.id.description).members == [network.address("alice"), network.address("bob")])
            _ = try await alice.receive()
            try await alice.send("after carl", to: room.id)
            let bobToken = try #require(await bob.sessionTokenForTesting)
            let bobInbox = try await http.send(.GET, "/v1/inbox", token: bobToken).decode(InboxPage.self)
            #expect(texts(try await bob.receive()) == ["after carl"])
            #expect(try await carl.receive().contains { if case .removed(room.id, _) = $0 { true } else { false } })

            // carl's own state, as it was: it processes its removal and opens nothing after it.
            var state = carlState
            var removedSelf = false
            for event in carlInbox.events where event.conversation == room.id && event.kind == .handshake {
                if case .commit(let summary) = try? state.process(try MLSMessage(tlsSerialized: event.message.bytes), now: validationNow) {
                    removedSelf = removedSelf || summary.removedSelf
                }
            }
            #expect(removedSelf)
            let later = try #require(bobInbox.events.first { $0.kind == .application && $0.conversation == room.id })
            #expect(throws: MLSError.self) { _ = try state.process(try MLSMessage(tlsSerialized: later.message.bytes), now: validationNow) }

            // The default group's lifetime now has a maximum of a day: the server proposes it, a member commits it.
            _ = try await admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 86_400))
            _ = try await alice.receive()
            _ = try await bob.receive()
            #expect(try await bob.findConversation(room.id.description).messageLifetime == 86_400)
            let accepted = try await alice.send("kept for a day", to: room.id)
            #expect(accepted.expiresAt.map { Int($0.timeIntervalSince(accepted.sentAt)) } == 86_400)
            #expect(texts(try await bob.receive()) == ["kept for a day"])
            // Groups in use cannot be deleted; the default group never.
            await expectRefused(.groupInUse) { try await admin.deleteGroup(Self.contractors) }
            await expectRefused(.groupInUse) { try await admin.deleteGroup(.default) }
        }
    }

    @Test(
        "Audit log: every admin action, chained and signed; a row altered or deleted in the database is found", arguments: Backend.allCases)
    func auditLog(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            let alice = try #require(UserName("alice"))
            let staff = try #require(SecurityGroupName("staff"))
            try await network.users("alice")
            _ = try await admin.addGroup(staff, SecurityGroupChange())
            _ = try await admin.setGroup(of: alice, to: staff)
            _ = try await admin.updateGroup(staff, SecurityGroupChange(messageLifetimeMax: 604_800))
            _ = try await admin.suspend(alice)
            _ = try await admin.unsuspend(alice)
            _ = try await admin.resetDevices(alice)
            await expectRefused(.groupInUse) { try await admin.deleteGroup(staff) }
            try await admin.delete(alice)
            try await admin.deleteGroup(staff)

            let entries = try await admin.audit()
            #expect(
                entries.map(\.action) == [
                    "user.create", "group.create", "user.update", "group.update", "user.suspend", "user.unsuspend", "user.reset_devices",
                    "user.delete", "group.delete",
                ])
            #expect(entries.allSatisfy { $0.actor == "token" })
            #expect(entries[2].target == "user:alice")
            #expect(entries[2].before?.contains("\"group\":\"default\"") == true)
            #expect(entries[2].after?.contains("\"group\":\"staff\"") == true)
            #expect(entries[3].after?.contains("\"message_lifetime_max\":604800") == true)
            #expect(try await admin.audit(since: Date().addingTimeInterval(3600)).isEmpty)
            #expect(try await admin.audit(since: entries[4].at).count >= 5)
            let intact = try await admin.verifyAudit().verification
            #expect(intact.isIntact)
            #expect(intact.entries == 9)
            #expect(intact.head == entries[8].hash)

            // Someone with the database alters entry 3: the chain breaks there.
            let database = network.store.database
            try await database.transaction { connection in
                try await connection.execute("UPDATE audit_log SET after = ? WHERE seq = 3", [.text("{\"group\":\"default\"}")])
            }
            var result = try await admin.verifyAudit().verification
            #expect(result.brokenAt == 3)
            // Recomputing that entry's hash does not help without the network key: its signature fails.
            var forged = entries[2]
            forged.after = "{\"group\":\"default\"}"
            let forgedHash = forged.computedHash
            try await database.transaction { connection in
                try await connection.execute("UPDATE audit_log SET hash = ? WHERE seq = 3", [.text(forgedHash)])
            }
            result = try await admin.verifyAudit().verification
            #expect(result.brokenAt == 3)
            #expect(result.problem?.contains("signature") == true)
            // Put entry 3 back and delete entry 5: the gap is found.
            try await database.transaction { connection in
                try await connection.execute(
                    "UPDATE audit_log SET after = ?, hash = ? WHERE seq = 3", [.text(entries[2].after ?? ""), .text(entries[2].hash)])
            }
            #expect(try await admin.verifyAudit().verification.isIntact)
            try await database.transaction { connection in try await connection.execute("DELETE FROM audit_log WHERE seq = 5") }
            result = try await admin.verifyAudit().verification
            #expect(result.brokenAt == 6)
            #expect(result.problem?.contains("entry 5 is missing") == true)
        }
    }

    @Test("Lifetime and burn-on-read on both sides, on an injected clock", arguments: Backend.allCases)
    func ephemerality(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, testClock: true) { network in
            let clock = try #require(network.clock)
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")

            // Lifetime: an hour.
            let room = try await alice.createRoom(
                name: "hourly", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 3600))
            _ = try await bob.receive()
            let sent = try await alice.send("gone within the hour", to: room.id)
            #expect(sent.expiresAt == sent.sentAt.addingTimeInterval(3600))
            try await bob.sync()  // decrypted on the way, held sealed for the next receive
            #expect(try await bob.heldMessageCountsForTesting().onDisk == 1)
            clock.advance(by: 3601)
            #expect(texts(try await bob.receive()).isEmpty)  // the plaintext went at expiry
            #expect(try await bob.heldMessageCountsForTesting().onDisk == 0)
            // Ciphertext nobody fetched in time: the server no longer delivers it, and the sweeper deletes it.
            try await alice.send("never read", to: room.id)
            clock.advance(by: 3601)
            #expect(texts(try await bob.receive()).isEmpty)
            _ = try await network.store.sweep(now: clock.now())  // what the sweeper does on its next round
            #expect(try await Self.payloads(network.store.database, room.id) == 0)

            // Burn-on-read: never written to disk, deleted by the server once every recipient acknowledged.
            let burning = try await alice.createRoom(
                name: "burning", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 0, burnOnRead: 30))
            _ = try await bob.receive()
            try await alice.send("burn after reading", to: burning.id)
            try await bob.sync()
            let held = try await bob.heldMessageCountsForTesting()
            #expect(held.onDisk == 0)
            #expect(held.inMemory == 1)
            let read = messages(try await bob.receive())
            #expect(read.map(\.text) == ["burn after reading"])
            #expect(read.first?.burnOnRead == 30)
            #expect(try await bob.heldMessageCountsForTesting().inMemory == 0)
            #expect(try await Self.payloads(network.store.database, burning.id) == 0)
        }
    }

    /// The application payloads of a conversation left in the server's database.
    static func payloads(_ database: any SQLDatabase, _ id: ConversationID) async throws -> Int64 {
        let rows = try await database.read { connection in
            try await connection.query(
                "SELECT COUNT(*) FROM payloads WHERE conversation_id = ? AND kind = 'application'", [.blob(id.bytes)])
        }
        return try rows.first?.integer(0) ?? -1
    }
}
