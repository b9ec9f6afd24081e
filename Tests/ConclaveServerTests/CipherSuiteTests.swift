@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Post-quantum conversations (issue 21): the security group's cipher-suite
/// policy (P4), key packages of each suite, the suite a new conversation
/// gets, and moving a conversation to another suite by ReInit (D25). Every
/// case runs against the server in process, on SQLite and on PostgreSQL.
@Suite(.serialized)
struct CipherSuiteTests {
    static let classic = SecurityGroupName("classic")!  // literals of the test
    static let quantum = SecurityGroupName("quantum")!
    static let hybrid = CipherSuite.xwingChacha20Sha256Ed25519
    static let classical = CipherSuite.x25519Aes128Sha256Ed25519

    @Test(
        "P4: a conversation gets the strongest suite every device supports and policy allows; other suites are refused",
        arguments: Backend.allCases)
    func policy(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            _ = try await admin.addGroup(Self.classic, SecurityGroupChange(cipherSuites: .classical))
            _ = try await admin.addGroup(Self.quantum, SecurityGroupChange(cipherSuites: .pqRequired))
            try await network.users("alice", "bob")
            try await network.users("carl", group: "classic")
            try await network.users("dave", group: "quantum")
            let (alice, bob) = (try await network.device("alice"), try await network.device("bob"))
            let (carl, dave) = (try await network.device("carl"), try await network.device("dave"))

            // pq-preferred (the default), and every device keeps key packages of 0x004D: the hybrid suite.
            let room = try await alice.createRoom(name: "hybrid", members: [network.address("bob")])
            #expect(room.cipherSuite == Self.hybrid.rawValue && room.isPostQuantum)
            try await alice.send("post-quantum", to: room.id)
            #expect(texts(try await bob.receive()) == ["post-quantum"])
            #expect(try await bob.findConversation("hybrid").isPostQuantum)
            let pair = try await dave.directConversation(with: network.address("alice"))
            #expect(pair.isPostQuantum)
            // A classical group: suite 1. Classical and pq-required never share a conversation.
            #expect(try await alice.directConversation(with: network.address("carl")).cipherSuite == Self.classical.rawValue)
            await expectPolicyRefusal { _ = try await carl.directConversation(with: network.address("dave")) }
            let bounds = try await alice.policyBounds(with: [network.address("dave")])
            #expect(bounds.cipherSuites == [Self.hybrid.rawValue])

            // A device that cannot (a suite-1-only client of bob's): a pq-required user's conversation with bob is
            // refused, naming bob; a pq-preferred one falls back to suite 1 with every device.
            let old = try await RawDevice.login(network, user: "bob", approvedBy: bob)
            #expect(try await old.upload([try old.keyPackage()]).status == 200)
            do {
                _ = try await dave.createRoom(name: "needs pq", members: [network.address("bob")])
                Issue.record("a device without the post-quantum suite was let into a pq-required room")
            } catch ClientError.policy(let message) {
                #expect(message.contains("bob@acme.example") && message.contains("post-quantum"))
            }
            #expect(try await dave.conversations().allSatisfy { $0.name != "needs pq" })
            let fallback = try await alice.createRoom(name: "fallback", members: [network.address("bob")])
            #expect(fallback.cipherSuite == Self.classical.rawValue)
            #expect(fallback.devices.count == 3)
            // Moving it to 0x004D, which bob's old device could not follow: refused before anything changes by the
            // SDK, and by the server (D25) to a modified client, so that the room is never left frozen.
            do {
                _ = try await alice.moveConversation(fallback.id, to: Self.hybrid)
                Issue.record("a move was started that a member device could not follow")
            } catch ClientError.invalid(let why) {
                #expect(why.contains("could not follow the move"))
            }
            await expectRefused(.conflict) { try await alice.commitReInitForTesting(fallback.id, to: Self.hybrid) }
            try await alice.send("still here", to: fallback.id)
            // A room of suite 1 refuses a pq-required user: the SDK before anything changes, the server from a
            // modified client (P4).
            await expectPolicyRefusal { _ = try await alice.add([network.address("dave")], to: fallback.id) }
            await expectRefused(.policyCipherSuite) { _ = try await alice.addUsersForTesting([network.address("dave")], to: fallback.id) }
            let raw = try await RawDevice.login(network, user: "dave", approvedBy: dave)
            raw.http.expectRefusal(try await raw.create(try raw.newGroup()), .policyCipherSuite)

            // Key packages by suite: counted and claimed per suite; unknown suites are refused.
            let http = RawHTTP(baseURL: network.url)
            let token = await alice.sessionTokenForTesting
            let count = try await http.send(.GET, "/v1/key-packages/count?cipher_suite=77", token: token).decode(KeyPackageCount.self)
            #expect(count.cipherSuite == 77 && count.available > 0 && count.lastResort)
            http.expectRefusal(try await http.send(.GET, "/v1/key-packages/count?cipher_suite=4", token: token), .badRequest)
            for suites: [UInt16] in [[], [0x7777], [1, 1]] {
                http.expectRefusal(
                    try await http.send(
                        .POST, "/v1/key-packages/claim", token: token,
                        json: KeyPackageClaim(user: network.address("bob"), cipherSuites: suites)), .badRequest)
            }
            #expect(try await old.upload([try old.keyPackage()]).status == 200)
            let claimed = try await http.send(
                .POST, "/v1/key-packages/claim", token: token,
                json: KeyPackageClaim(user: network.address("bob"), cipherSuites: [Self.hybrid.rawValue])
            ).decode(ClaimedKeyPackages.self)
            #expect(claimed.cipherSuite == Self.hybrid.rawValue && claimed.missing == [old.certificate.device])
            // An upload mixes no suites, and a suite-1 device's key package of 0x004D is accepted (same signature scheme).
            let mixed = try await http.send(
                .POST, "/v1/key-packages", token: old.token,
                json: KeyPackageUpload(
                    keyPackages: [try old.keyPackage(), try Self.hybridPackage(of: old)].map {
                        Base64Bytes(MLSMessage(body: .keyPackage($0.keyPackage)).tlsSerialized)
                    }, lastResort: nil))
            http.expectRefusal(mixed, .badRequest)
            let upgraded = try await http.send(
                .POST, "/v1/key-packages", token: old.token,
                json: KeyPackageUpload(
                    keyPackages: [Base64Bytes(MLSMessage(body: .keyPackage(try Self.hybridPackage(of: old).keyPackage)).tlsSerialized)],
                    lastResort: nil)
            ).decode(KeyPackageCount.self)
            #expect(upgraded.cipherSuite == Self.hybrid.rawValue && upgraded.available == 1)
        }
    }

    /// A key package of the hybrid suite for a suite-1 raw device.
    static func hybridPackage(of device: RawDevice) throws -> KeyPackageBundle {
        try KeyPackageBundle.create(
            try CipherSuiteProvider(hybrid), credential: device.certificate.credential, signer: device.signer,
            lifetime: Lifetime(notBefore: device.now - 60, notAfter: device.now + 86_400),
            capabilities: ConversationSettings.capabilities(hybrid), leafExtensions: device.leafExtensions, random: device.random)
    }

    @Test("D25: a room moves to the post-quantum suite by ReInit, every member following; a stopped move is finished by another member")
    func move() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await Self.moveScenario(network)
        }
    }

    @Test("D25 on PostgreSQL")
    func moveOnPostgres() async throws {
        try await TestNetwork.run(.postgres) { network in
            try await Self.moveScenario(network)
        }
    }

    static func moveScenario(_ network: TestNetwork) async throws {
        let admin = network.admin
        _ = try await admin.updateGroup(.default, SecurityGroupChange(cipherSuites: .classical))
        try await network.users("alice", "bob", "carl")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let laptop = try await network.device("bob", "laptop", approvedBy: bob)
        let carl = try await network.device("carl")
        let room = try await alice.createRoom(name: "moving", members: [network.address("bob"), network.address("carl")])
        #expect(room.cipherSuite == classical.rawValue && room.devices.count == 4)
        for device in [bob, laptop, carl] { _ = try await device.receive() }
        let http = RawHTTP(baseURL: network.url)
        let aliceToken = await alice.sessionTokenForTesting
        let info = try await http.send(.GET, "/v1/conversations/\(room.id)/group-info", token: aliceToken).decode(GroupInfoResponse.self)
        http.expectRefusal(
            try await http.send(
                .POST, "/v1/conversations/\(room.id)/successor", token: aliceToken,
                json: StartSuccessor(groupInfo: info.groupInfo, welcome: nil)), .conflict)

        // The classical policy forbids the move; once it allows post-quantum, alice moves the room.
        await expectPolicyRefusal { _ = try await alice.moveConversation(room.id, to: hybrid) }
        _ = try await admin.updateGroup(.default, SecurityGroupChange(cipherSuites: .pqPreferred))
        try await bob.send("sent before the move", to: room.id)
        let moved = try await alice.moveConversation(room.id, to: hybrid)
        #expect(moved.id == room.id && moved.isPostQuantum && moved.epoch == 1 && moved.devices.count == 4)
        #expect(try await alice.generationForTesting(room.id) == 1)
        // alice reads bob's message of the old group (kept for it); everyone else joins the new group.
        #expect(texts(try await alice.receive()) == ["sent before the move"])
        for device in [bob, laptop, carl] {
            let events = try await device.receive()
            #expect(events.contains { if case .cipherSuiteChanged(let c) = $0 { c.isPostQuantum && c.id == room.id } else { false } })
            #expect(try await device.findConversation("moving").isPostQuantum)
        }
        try await carl.send("after the move", to: room.id)
        #expect(texts(try await alice.receive()) == ["after the move"])
        #expect(texts(try await laptop.receive()) == ["after the move"])
        // The server refuses a message meant for the old group (no generation in its authenticated data).
        var state = try #require(try await carl.groupForTesting(room.id))
        let stale = try state.encrypt([1], random: SystemRandom())
        let carlToken = await carl.sessionTokenForTesting
        http.expectRefusal(
            try await http.send(
                .POST, "/v1/conversations/\(room.id)/messages", token: carlToken,
                json: SendMessage(messageId: "stale-1", message: Base64Bytes(stale.tlsSerialized))), .wrongEpoch)

        // carl commits a move back to suite 1 and stops there: the room takes nothing more, and says why.
        try await carl.commitReInitForTesting(room.id, to: classical)
        _ = try await alice.receive()
        do {
            try await alice.send("while moving", to: room.id)
            Issue.record("a message was sent to a group whose ReInit was committed")
        } catch ClientError.invalid(let why) {
            #expect(why.contains("moving"))
        }
        // bob, who has not read the ReInit yet, commits in the old group: refused.
        let late = try await bob.captureNextCommitForTesting(room.id)
        let bobToken = await bob.sessionTokenForTesting
        http.expectRefusal(try await http.send(.POST, "/v1/conversations/\(room.id)/commits", token: bobToken, json: late), .conflict)
        // carl is suspended meanwhile; bob finishes the move, without carl's device.
        _ = try await admin.suspend(try #require(UserName("carl")))
        let back = try await bob.moveConversation(room.id, to: classical)
        #expect(back.cipherSuite == classical.rawValue && back.devices.count == 3)
        #expect(back.members == [network.address("alice"), network.address("bob")])
        #expect(try await bob.generationForTesting(room.id) == 2)
        for device in [alice, laptop] {
            let events = try await device.receive()
            // The move left carl out: members see it as they see a removal.
            #expect(
                events.contains {
                    if case .membersChanged(let change) = $0 { change.removedUsers == [network.address("carl")] } else { false }
                })
            #expect(try await device.findConversation("moving").cipherSuite == classical.rawValue)
            #expect(try await device.generationForTesting(room.id) == 2)
        }
        try await alice.send("settled", to: room.id)
        // bob's move read carl's message before it; each device gets every message once.
        for (device, expected) in [(bob, ["after the move", "settled"]), (laptop, ["settled"])] {
            #expect(texts(try await device.receive()) == expected)
        }
        // carl comes back: his device, left out of the new group, joins it from an ordinary Add (no reinit PSK).
        _ = try await admin.unsuspend(try #require(UserName("carl")))
        try await carl.login(server: network.url, user: "carl@acme.example", password: network.password, deviceName: "phone")
        _ = try await carl.receive()  // tops its key packages up again (suspension deleted them)
        _ = try await alice.add([network.address("carl")], to: room.id)
        _ = try await carl.receive()
        #expect(try await carl.findConversation("moving").cipherSuite == classical.rawValue)
        #expect(try await carl.generationForTesting(room.id) == 2)
        try await alice.send("welcome back", to: room.id)
        #expect(texts(try await carl.receive()) == ["welcome back"])
    }

    @Test("D25: a successor started with a Welcome nobody can use: members rejoin it from the server's GroupInfo")
    func unusableWelcome() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(name: "decoy", members: [network.address("bob")])
            _ = try await bob.receive()
            // bob, a modified client, moves the room to suite 1 and starts the new group with a Welcome for another group.
            try await bob.commitReInitForTesting(room.id, to: Self.classical)
            try await bob.startSuccessorWithUnusableWelcomeForTesting(room.id)
            let events = try await alice.receive()
            #expect(events.contains { if case .warning(let text) = $0 { text.contains("refused the new group") } else { false } })
            // alice is stuck in the old group until she runs the move herself, which rejoins the new group by external commit.
            do {
                try await alice.send("stuck?", to: room.id)
                Issue.record("a message was sent to a frozen group")
            } catch ClientError.invalid(let why) {
                #expect(why.contains("moving"))
            }
            let rejoined = try await alice.moveConversation(room.id, to: Self.classical)
            #expect(rejoined.cipherSuite == Self.classical.rawValue)
            #expect(try await alice.generationForTesting(room.id) == 1)
            try await bob.send("after the move", to: room.id)
            #expect(texts(try await alice.receive()) == ["after the move"])
            try await alice.send("back", to: room.id)
            #expect(texts(try await bob.receive()) == ["back"])
        }
    }
}
