@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Attacks by a hand-modified peer network (played by the test, holding its
/// own signing key) on a real network in process: what the member's network
/// checks on its own (F6, F7, F8 in docs/federation.md) and what its
/// clients check (C2–C5 in docs/client.md).
@Suite(.serialized)
struct HostilePeerTests {
    static let acme = NetworkDomain("acme.example")!  // literals of the test

    /// globex with these users, and acme (hostile) pinned by it.
    static func globexAndHostileAcme(
        _ users: [String], _ body: @escaping @Sendable (TestNetwork, HostileNetwork) async throws -> Void
    ) async throws {
        try await TestNetwork.run(.sqlite, domain: "globex.example") { globex in
            for user in users { try await globex.users(user) }
            try await HostileNetwork(domain: Self.acme).servingIdentities { acme in
                _ = try await globex.admin.addPeer(Self.acme, url: acme.url, keyFingerprint: acme.fingerprint)
                try await body(globex, acme)
            }
        }
    }

    static func removalRequests(_ store: ConclaveStore) async throws -> Int64 {
        try await store.database.read { connection in
            try await connection.query("SELECT COUNT(*) FROM federation_outbox WHERE path LIKE '%/remove-devices'", []).first?.integer(0)
                ?? -1
        }
    }

    @Test("11.1: a peer cannot redirect a local 1:1 by naming two local users in its own conversation")
    func aPeerCannotRedirectALocalOneToOne() async throws {
        try await Self.globexAndHostileAcme(["alice", "ceo"]) { globex, acme in
            let alice = try await globex.device("alice")
            let ceo = try await globex.device("ceo")
            let mallory = try acme.device("mallory")
            // acme builds a "1:1" holding alice, ceo and its own user, with their real key packages.
            var fake = try mallory.newGroup()
            var packages: [KeyPackage] = []
            for user in ["alice", "ceo"] {
                packages += try await acme.claimKeyPackages(of: globex.address(user), for: mallory.certificate.user, from: globex)
                    .map(\.keyPackage)
            }
            let welcome = try fake.addAndMerge(packages)
            let recipients = [try #require(await alice.device), try #require(await ceo.device)]
            let delivery = try acme.delivery(
                of: fake, kind: .welcome, message: welcome, recipients: recipients, conversationKind: .direct, creator: mallory.user)
            // F6: a 1:1 of three users keeps none of globex's users: nothing stored, and acme is asked to remove them.
            RawHTTP(baseURL: globex.url).expectRefusal(
                try await acme.send("/v1/federation/deliver", delivery, to: globex), .policyFederation)
            #expect(try await Self.removalRequests(globex.store) == 2)
            let token = try #require(await alice.sessionTokenForTesting)
            let listed = try await RawHTTP(baseURL: globex.url).send(.GET, "/v1/conversations", token: token).decode(ConversationList.self)
            #expect(listed.conversations.isEmpty)
            // alice's 1:1 with ceo is theirs alone, hosted by globex; only ceo reads it.
            let direct = try await alice.directConversation(with: globex.address("ceo"))
            #expect(direct.members == [globex.address("alice"), globex.address("ceo")])
            #expect(direct.id.isHosted(by: globex.networkDomain))
            try await alice.send("for the ceo only", to: direct.id)
            #expect(texts(try await ceo.receive()) == ["for the ceo only"])
        }
    }

    @Test("11.2: segmentation holds among a network's own users in a room another network hosts")
    func segmentationHoldsInPeerHostedRooms() async throws {
        try await Self.globexAndHostileAcme(["carl", "dana"]) { globex, acme in
            let contractors = try #require(SecurityGroupName("contractors"))
            _ = try await globex.admin.addGroup(contractors, SecurityGroupChange(mayMessage: .only([contractors])))
            _ = try await globex.admin.setGroup(of: try #require(UserName("carl")), to: contractors)
            let carl = try await globex.device("carl")
            let dana = try await globex.device("dana")
            let mallory = try acme.device("mallory")
            var room = try mallory.newGroup()
            var packages: [KeyPackage] = []
            for user in ["carl", "dana"] {
                packages += try await acme.claimKeyPackages(of: globex.address(user), for: mallory.certificate.user, from: globex)
                    .map(\.keyPackage)
            }
            let welcome = try room.addAndMerge(packages)
            let recipients = [try #require(await carl.device), try #require(await dana.device)]
            let delivery = try acme.delivery(of: room, kind: .welcome, message: welcome, recipients: recipients, creator: mallory.user)
            // F6 (P1 on globex's side): carl and dana may not share it; carl, first, stays, dana is refused and her removal asked.
            #expect(try await acme.send("/v1/federation/deliver", delivery, to: globex).status == 200)
            #expect(try await Self.removalRequests(globex.store) == 1)
            #expect(try await carl.receive().contains { if case .joined = $0 { true } else { false } })
            #expect(try await dana.receive().isEmpty)
            let id = try #require(ConversationID(bytes: room.groupID))
            #expect(try await globex.store.memberUsers(id) == [try #require(UserName("carl"))])
        }
    }

    @Test("11.17: a peer-hosted conversation's lifetime is read from the group's context, and clients take expiry from it")
    func settingsComeFromTheGroupContext() async throws {
        try await Self.globexAndHostileAcme(["bob"]) { globex, acme in
            _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 86_400))
            let bob = try await globex.device("bob")
            let bobDevice = try #require(await bob.device)
            let mallory = try acme.device("mallory")
            // Messages that never expire: outside bob's bounds, whatever a host would claim.
            var forever = try mallory.newGroup()
            let first = try forever.addAndMerge(
                try await acme.claimKeyPackages(of: globex.address("bob"), for: mallory.certificate.user, from: globex).map(\.keyPackage))
            let refused = try acme.delivery(of: forever, kind: .welcome, message: first, recipients: [bobDevice], creator: mallory.user)
            RawHTTP(baseURL: globex.url).expectRefusal(
                try await acme.send("/v1/federation/deliver", refused, to: globex), .policyFederation)
            // An hour: inside them. bob joins; a message's expiry is the hour the group agreed on, though the host stamps none.
            var hourly = try mallory.newGroup(settings: ConversationSettings(messageLifetime: 3600))
            let second = try hourly.addAndMerge(
                try await acme.claimKeyPackages(of: globex.address("bob"), for: mallory.certificate.user, from: globex).map(\.keyPackage))
            let accepted = try acme.delivery(of: hourly, kind: .welcome, message: second, recipients: [bobDevice], creator: mallory.user)
            #expect(try await acme.send("/v1/federation/deliver", accepted, to: globex).status == 200)
            _ = try await bob.receive()
            let body = Array(try ConclaveJSON.encoder().encode(["id": "m-1", "text": "hourly"]))
            let message = try hourly.encrypt(body, random: SystemRandom()).tlsSerialized
            var application = try acme.delivery(
                of: hourly, kind: .application, message: message, recipients: [bobDevice], creator: mallory.user)
            (application.groupInfo, application.ratchetTree) = (nil, nil)
            #expect(try await acme.send("/v1/federation/deliver", application, to: globex).status == 200)
            let received = messages(try await bob.receive())
            #expect(received.map(\.text) == ["hourly"])
            #expect(received.first.flatMap { $0.expiresAt?.timeIntervalSince($0.sentAt) } == 3600)
        }
    }

    @Test("11.9: refused deliveries queue one removal request, not one each")
    func refusedDeliveriesQueueOnce() async throws {
        try await Self.globexAndHostileAcme(["bob"]) { globex, acme in
            _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 86_400))
            let bob = try await globex.device("bob")
            let mallory = try acme.device("mallory")
            var room = try mallory.newGroup()
            let welcome = try room.addAndMerge(
                try await acme.claimKeyPackages(of: globex.address("bob"), for: mallory.certificate.user, from: globex).map(\.keyPackage))
            for _ in 0..<5 {
                let delivery = try acme.delivery(
                    of: room, kind: .welcome, message: welcome, recipients: [try #require(await bob.device)], creator: mallory.user)
                RawHTTP(baseURL: globex.url).expectRefusal(
                    try await acme.send("/v1/federation/deliver", delivery, to: globex), .policyFederation)
            }
            #expect(try await Self.removalRequests(globex.store) == 1)
            // Junk that names devices of no member of anything queues nothing.
            let junk = try acme.delivery(
                of: try mallory.newGroup(), kind: .welcome, message: [1], recipients: [DeviceID.random()], creator: mallory.user)
            RawHTTP(baseURL: globex.url).expectRefusal(try await acme.send("/v1/federation/deliver", junk, to: globex), .policyFederation)
            #expect(try await Self.removalRequests(globex.store) == 1)
        }
    }

    @Test("11.16: a device whose certificate does not verify reads nothing: the client removes it or refuses to send")
    func anUntrustedLeafReadsNothing() async throws {
        try await Self.globexAndHostileAcme(["bob"]) { globex, acme in
            // globex learns initech's real key on first contact (any signed request of initech).
            let initech = HostileNetwork(domain: NetworkDomain("initech.example")!)  // a literal of the test
            _ = try await globex.admin.addPeer(initech.domain, url: initech.url, keyFingerprint: initech.fingerprint)
            let carolOfInitech = try initech.device("carol")
            _ = try await initech.claimKeyPackages(of: globex.address("bob"), for: carolOfInitech.certificate.user, from: globex)
            let bob = try await globex.device("bob")
            let mallory = try acme.device("mallory")
            var room = try mallory.newGroup()
            let welcome = try room.addAndMerge(
                try await acme.claimKeyPackages(of: globex.address("bob"), for: mallory.certificate.user, from: globex).map(\.keyPackage))
            let bobDevice = try #require(await bob.device)
            #expect(
                try await acme.send(
                    "/v1/federation/deliver",
                    try acme.delivery(of: room, kind: .welcome, message: welcome, recipients: [bobDevice], creator: mallory.user),
                    to: globex
                ).status == 200)
            _ = try await bob.receive()
            // acme, the host, adds a device it says is carol@initech, certified by acme's own key.
            let forged = try HostileDevice.impersonating(try #require(UserAddress("carol@initech.example")), certifiedBy: acme.key)
            let output = try room.commit(adding: [try forged.keyPackage()], now: validationNow, random: SystemRandom())
            try room.mergePendingCommit()
            let commit = try acme.delivery(
                of: room, kind: .handshake, message: output.commit.tlsSerialized, recipients: [bobDevice], creator: mallory.user)
            #expect(try await acme.send("/v1/federation/deliver", commit, to: globex).status == 200)
            let events = try await bob.receive()
            #expect(events.contains { if case .warning(let text) = $0 { text.contains("without a valid certificate") } else { false } })
            // bob's client will not send into the group before that leaf is removed; the host (which answers only identity
            // requests here) cannot take the removal, so the send is refused, clearly, and nothing was sent.
            let id = try #require(ConversationID(bytes: room.groupID))
            await expectRefused(.peerInvalid) { try await bob.send("not for the forged device", to: id) }
        }
    }

    @Test("11.4: a rogue administrator re-pins a peer network to a server of their own: clients keep the key they first saw")
    func clientsPinPeerNetworkKeys() async throws {
        try await TestNetwork.run(.sqlite, domain: "acme.example") { acme in
            try await TestNetwork.run(.sqlite, domain: "globex.example") { globex in
                try await TestNetwork.run(.sqlite, domain: "globex.example") { impostor in
                    for (network, peer) in [(acme, globex), (globex, acme)] {
                        _ = try await network.admin.addPeer(
                            peer.networkDomain, url: peer.url, keyFingerprint: peer.networkKey.publicKey.fingerprint)
                    }
                    try await acme.users("alice")
                    try await globex.users("victor")
                    try await impostor.users("victor")
                    let alice = try await acme.device("alice")
                    let victor = try await globex.device("victor")
                    let fakeVictor = try await impostor.device("victor")
                    let direct = try await alice.directConversation(with: globex.address("victor"))
                    try await alice.send("hello victor", to: direct.id)
                    #expect(try await victor.receiveTexts(1) == ["hello victor"])
                    // acme's administrator points globex.example at a server of their own, with another key.
                    try await acme.admin.removePeer(globex.networkDomain)
                    _ = try await acme.admin.addPeer(
                        globex.networkDomain, url: impostor.url, keyFingerprint: impostor.networkKey.publicKey.fingerprint)
                    _ = try await impostor.admin.addPeer(
                        acme.networkDomain, url: acme.url, keyFingerprint: acme.networkKey.publicKey.fingerprint)
                    // alice's client refuses, clearly, to send to the victor its server now names; the impostor gets nothing.
                    do {
                        try await alice.send("the board meets at nine", to: direct.id)
                        Issue.record("sent to a network whose key changed")
                    } catch let error as ClientError {
                        guard case .networkKeyChanged(let domain) = error else { throw error }
                        #expect(domain == globex.networkDomain)
                    }
                    #expect(messages(try await fakeVictor.receive()).isEmpty)
                }
            }
        }
    }
}
