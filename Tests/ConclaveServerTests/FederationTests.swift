@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Federation (issue 6), as far as it is built: peers pinned by key
/// fingerprint, signed server-to-server requests, and claiming a remote
/// user's key packages under both networks' policies. Each network is a
/// server in this process, on its own loopback port.
@Suite(.serialized)
struct FederationTests {
    static let acme = NetworkDomain("acme.example")!  // literals of the test
    static let globex = NetworkDomain("globex.example")!
    static let initech = NetworkDomain("initech.example")!

    @Test("Two networks pin each other; alice@acme claims bob@globex's key packages under both policies", arguments: Backend.allCases)
    func peeringAndClaim(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, domain: "acme.example") { acme in
            let claim = try await TestNetwork.run(backend == .sqlite ? .postgres : .sqlite, domain: "globex.example") { globex in
                try await Self.peerAndClaim(acme, globex)
            }
            // globex has stopped: a claim through acme is a clear 502.
            guard let claim else { return }
            RawHTTP(baseURL: acme.url).expectRefusal(try await claim(), .peerUnavailable)
        }
    }

    /// Pins acme and globex to each other and claims across them under both
    /// policies; returns the claim, to try once globex is gone.
    static func peerAndClaim(_ acme: TestNetwork, _ globex: TestNetwork) async throws -> @Sendable () async throws -> RawHTTP.Answer {
        let acmeKey = try await acme.admin.network().keyFingerprint
        let globexKey = try await globex.admin.network().keyFingerprint
        #expect(try await acme.admin.federation().mode == .listed)
        // A fingerprint that is not the key the peer publishes is refused at once.
        await expectRefused(.peerMismatch) {
            _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: acmeKey)
        }
        await expectRefused(.badRequest) {
            _ = try await acme.admin.addPeer(Self.globex, url: "ftp://globex.example", keyFingerprint: globexKey)
        }
        _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: globexKey)
        _ = try await globex.admin.addPeer(Self.acme, url: acme.url, keyFingerprint: acmeKey)
        await expectRefused(.peerExists) {
            _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: globexKey)
        }
        #expect(try await acme.admin.federation().peers.map(\.domain) == [Self.globex])
        #expect(try await acme.admin.audit().map(\.action) == ["federation.add"])

        try await acme.users("alice")
        try await globex.users("bob")
        let alice = try await acme.device("alice")
        _ = try await globex.device("bob")
        let http = RawHTTP(baseURL: acme.url)
        let token = try #require(await alice.sessionTokenForTesting)
        let bob = UserAddress(name: try #require(UserName("bob")), domain: Self.globex)
        let claim: @Sendable () async throws -> RawHTTP.Answer = {
            try await http.send(.POST, "/v1/key-packages/claim", token: token, json: KeyPackageClaim(user: bob))
        }

        // The claim crosses, signed by acme; the certificates verify with globex's key only.
        let claimed = try await claim().decode(ClaimedKeyPackages.self)
        #expect(claimed.user == bob)
        #expect(claimed.keyPackages.count == 1)
        let peer = try await http.send(.GET, "/v1/networks/globex.example", token: token).decode(PeerNetwork.self)
        #expect(peer.keyFingerprint == globexKey)
        let globexPublic = NetworkPublicKey(domain: Self.globex, rawKey: peer.signingKey.bytes)
        let acmeWellKnown = try await RawHTTP(baseURL: acme.url).send(.GET, "/.well-known/conclave").decode(WellKnown.self)
        let acmePublic = NetworkPublicKey(domain: Self.acme, rawKey: acmeWellKnown.signingKey.bytes)
        for entry in claimed.keyPackages {
            guard case .keyPackage(let package) = try MLSMessage(tlsSerialized: entry.keyPackage.bytes).body else {
                Issue.record("not a KeyPackage")
                continue
            }
            #expect(VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: globexPublic)?.user == bob)
            #expect(VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: acmePublic) == nil)
        }

        // The sending side's policy: alice's group may not reach globex.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .noNetworks))
        var refused = try await claim()
        http.expectRefusal(refused, .policyFederation)
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.globex])))
        #expect(try await claim().status == 200)
        // The receiving side refuses on its own: bob's group may only reach initech.
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.initech])))
        refused = try await claim()
        http.expectRefusal(refused, .policyFederation)
        #expect(refused.error?.message.hasPrefix("globex.example refused") == true)
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        // A network that no longer lists acme, or no longer federates, refuses it.
        _ = try await globex.admin.setFederationMode(.off)
        http.expectRefusal(try await claim(), .federationOff)
        _ = try await globex.admin.setFederationMode(.listed)
        try await globex.admin.removePeer(Self.acme)
        http.expectRefusal(try await claim(), .networkNotPinned)
        // An unknown network is named as such, and one peer's downtime is a clear 502.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        http.expectRefusal(
            try await http.send(
                .POST, "/v1/key-packages/claim", token: token,
                json: KeyPackageClaim(user: UserAddress(name: bob.name, domain: Self.initech))), .unknownNetwork)
        #expect(
            try await globex.admin.audit().map(\.action).filter { $0 != "user.identity" } == [
                "federation.add", "user.create", "group.update", "group.update", "federation.mode", "federation.mode", "federation.remove",
            ])
        return claim
    }

    /// A KeyPackage of mallory@acme.example for this device id, certified by `key`, built by `device`'s library.
    static func package(of device: RawDevice, device id: DeviceID, certifiedBy key: NetworkSigningKey) throws -> KeyPackage {
        let signer = try device.provider.generateSignatureKey(random: SystemRandom())
        guard let mallory = UserAddress("mallory@acme.example") else { throw TestSupportError("bad test input") }
        let certificate = try VerifiedDeviceCertificate.issue(
            user: mallory, device: id, signatureKey: signer.publicKey, cipherSuite: device.provider.suite, issuedAt: device.now, by: key)
        return try device.keyPackage(credential: certificate.credential, signer: signer).keyPackage
    }

    @Test(
        "Signed server-to-server requests: unlisted, forged, tampered, stale and replayed requests change nothing",
        arguments: [Backend.sqlite])
    func hostileRequests(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, domain: "globex.example", testClock: true) { network in
            let clock = try #require(network.clock)
            try await network.users("bob")
            let bob = try await network.device("bob")
            // acme's key is held by the test; acme's server is not running, so globex learns the key on first contact.
            let acmeKey = NetworkSigningKey.generate(domain: Self.acme)
            let pinned = try await network.admin.addPeer(
                Self.acme, url: "http://127.0.0.1:9", keyFingerprint: acmeKey.publicKey.fingerprint)
            #expect(pinned.pinnedBy == "admin")
            let http = RawHTTP(baseURL: network.url)
            let path = "/v1/federation/key-packages/claim"
            @Sendable func request(
                from origin: NetworkDomain = Self.acme, key: NetworkSigningKey, to destination: NetworkDomain = Self.globex,
                requester: String = "alice@acme.example", at time: Date = Date(), nonce: String = FederationRequestSignature.newNonce(),
                originURL: String = "http://127.0.0.1:9"
            ) throws -> (body: [UInt8], headers: [(String, String)]) {
                guard let address = UserAddress(requester), let bob = UserName("bob") else {
                    throw TestSupportError("bad test input")
                }
                let body = Array(try ConclaveJSON.encoder().encode(FederatedKeyPackageClaim(user: bob, requester: address)))
                let signature = FederationRequestSignature(
                    method: "POST", path: path, body: body, timestamp: time.millis, nonce: nonce, origin: origin, originURL: originURL,
                    destination: destination)
                return (body, try signature.headers(signedBy: key))
            }
            @Sendable func send(_ request: (body: [UInt8], headers: [(String, String)])) async throws -> RawHTTP.Answer {
                try await http.send(.POST, path, raw: request.body, headers: request.headers)
            }
            @Sendable func count() async throws -> Int { try await network.admin.users().first?.devices ?? -1 }

            let valid = try request(key: acmeKey)
            let answer = try await send(valid)
            #expect(answer.status == 200)
            #expect(try answer.decode(ClaimedKeyPackages.self).keyPackages.count == 1)

            // Replayed: the same signed request again.
            http.expectRefusal(try await send(valid), .replayedRequest)
            // Stale: signed ten minutes ago.
            http.expectRefusal(try await send(try request(key: acmeKey, at: Date().addingTimeInterval(-600))), .staleRequest)
            // Forged: another key claiming to be acme.
            let mallory = NetworkSigningKey.generate(domain: Self.acme)
            http.expectRefusal(try await send(try request(key: mallory)), .invalidRequestSignature)
            // Tampered: a signed request whose body was changed on the way.
            var tampered = try request(key: acmeKey)
            tampered.body = Array(
                try ConclaveJSON.encoder().encode(
                    FederatedKeyPackageClaim(user: try #require(UserName("bob")), requester: try #require(UserAddress("eve@acme.example"))))
            )
            http.expectRefusal(try await send(tampered), .invalidRequestSignature)
            // Addressed to another network, and missing headers.
            http.expectRefusal(try await send(try request(key: acmeKey, to: Self.initech)), .invalidRequestSignature)
            http.expectRefusal(try await http.send(.POST, path, json: ["user": "bob"]), .invalidRequestSignature)
            // A network acting for another network's user.
            http.expectRefusal(try await send(try request(key: acmeKey, requester: "carol@initech.example")), .forbidden)
            // Unlisted in listed mode: refused, nothing pinned.
            let initechKey = NetworkSigningKey.generate(domain: Self.initech)
            http.expectRefusal(
                try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")), .networkNotPinned)
            #expect(try await network.admin.federation().peers.map(\.domain) == [Self.acme])
            // Open mode (F9): a network is pinned on first use once the URL it gives publishes its key; another key for it
            // afterwards is refused. A URL off the network's domain (and not on the test's loopback allow-list) is refused
            // without being fetched; each network's URL is fetched at most once per interval.
            _ = try await network.admin.setFederationMode(.open)
            http.expectRefusal(
                try await send(
                    try request(
                        from: Self.initech, key: initechKey, requester: "carol@initech.example", originURL: "https://elsewhere.example")),
                .peerUnverified)
            http.expectRefusal(
                try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")), .peerUnverified)
            try await TestNetwork.run(.sqlite, domain: "initech.example") { initech in
                let realKey = initech.networkKey
                let first = try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)
                http.expectRefusal(try await send(first), .peerUnverified)  // checked moments ago: not fetched again yet
                clock.advance(by: 61)
                let again = try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)
                #expect(try await send(again).status == 200)
                let peers = try await network.admin.federation().peers
                #expect(peers.map(\.domain) == [Self.acme, Self.initech])
                #expect(peers.last?.pinnedBy == "first-use")
                #expect(peers.last?.keyFingerprint == realKey.publicKey.fingerprint)
                #expect(peers.last?.url == initech.url)
                http.expectRefusal(
                    try await send(
                        try request(from: Self.initech, key: initechKey, requester: "carol@initech.example", originURL: initech.url)),
                    .invalidRequestSignature)
                #expect(try await count() == 1)
                // The first-use pin is in the audit log; once an administrator removes the network, open mode does not pin it again.
                #expect(try await network.admin.audit().contains { $0.action == "federation.pin" && $0.actor == "federation" })
                try await network.admin.removePeer(Self.initech)
                http.expectRefusal(
                    try await send(
                        try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)),
                    .networkNotPinned)
                #expect(try await network.admin.federation().peers.map(\.domain) == [Self.acme])
                _ = try await network.admin.addPeer(Self.initech, url: initech.url, keyFingerprint: realKey.publicKey.fingerprint)
                #expect(
                    try await send(
                        try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)
                    )
                    .status == 200)
                // Nobody speaks for globex but globex's key, even in open mode.
                http.expectRefusal(
                    try await send(
                        try request(from: Self.globex, key: initechKey, requester: "bob@globex.example", originURL: network.url)),
                    .invalidRequestSignature)

                // Deliveries: a conversation starts only with a Welcome for a device that has a leaf in the delivered,
                // member-signed group state (F6), once per delivery id.
                let host = HostileNetwork(key: acmeKey)
                let alice = try host.device("alice")
                let bobDevice = try #require(await bob.device)
                let bobToken = try #require(await bob.sessionTokenForTesting)
                let bobAddress = network.address("bob")
                var room = try alice.newGroup()
                let welcome = try room.addAndMerge(
                    try await host.claimKeyPackages(of: bobAddress, for: alice.certificate.user, from: network).map(\.keyPackage))
                let conversation = try #require(ConversationID(bytes: room.groupID))
                @Sendable func deliver(_ delivery: FederatedDelivery) async throws -> RawHTTP.Answer {
                    try await host.send("/v1/federation/deliver", delivery, to: network)
                }
                let handshake = try host.delivery(
                    of: room, kind: .handshake, message: [1, 2, 3], recipients: [bobDevice], creator: alice.user)
                http.expectRefusal(try await deliver(handshake), .notFound)
                let withoutBob = try host.delivery(
                    of: try alice.newGroup(), kind: .welcome, message: [1, 2, 3], recipients: [bobDevice], creator: alice.user)
                http.expectRefusal(try await deliver(withoutBob), .policyFederation)
                let before = try await http.send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
                #expect(before.conversations.isEmpty)
                let joined = try host.delivery(of: room, kind: .welcome, message: welcome, recipients: [bobDevice], creator: alice.user)
                #expect(try await deliver(joined).status == 200)
                #expect(try await deliver(joined).status == 200)  // retried after a lost answer: stored once
                let inbox = try await http.send(.GET, "/v1/inbox", token: bobToken).decode(InboxPage.self)
                #expect(inbox.events.filter { $0.conversation == conversation }.count == 1)
                let after = try await http.send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
                #expect(after.conversations.map(\.members) == [[alice.certificate.user, bobAddress]])
                // Another network cannot deliver into a conversation acme hosts, nor start one with an id acme's tag marks (F7).
                let intruder = HostileNetwork(key: realKey, url: initech.url)
                http.expectRefusal(try await intruder.send("/v1/federation/deliver", handshake, to: network), .forbidden)
                var squatted = try alice.newGroup(id: ConversationID.hosted(by: Self.initech))
                let squatWelcome = try squatted.addAndMerge(
                    try await host.claimKeyPackages(of: bobAddress, for: alice.certificate.user, from: network).map(\.keyPackage))
                http.expectRefusal(
                    try await deliver(
                        try host.delivery(of: squatted, kind: .welcome, message: squatWelcome, recipients: [bobDevice], creator: alice.user)
                    ),
                    .forbidden)

                // Device ids are per network: acme can certify a device with the id of one of globex's, but a group may not hold
                // both; a device acme certifies with an id of its own is accepted (its key was learned from the request above).
                let rawBob = try await RawDevice.login(network, user: "bob", approvedBy: bob)
                var group = try rawBob.newGroup()
                let groupID = try #require(ConversationID(bytes: group.groupID))
                #expect(try await rawBob.create(group).status == 201)
                let collision = try await rawBob.send(
                    try group.commit(
                        adding: [try Self.package(of: rawBob, device: rawBob.certificate.device, certifiedBy: acmeKey)],
                        now: .at(rawBob.now),
                        random: rawBob.random),
                    on: &group, id: groupID)
                http.expectRefusal(collision, .invalidCredential)
                let own = try await rawBob.send(
                    try group.commit(
                        adding: [try Self.package(of: rawBob, device: DeviceID.random(), certifiedBy: acmeKey)], now: .at(rawBob.now),
                        random: rawBob.random), on: &group,
                    id: groupID)
                #expect(own.status == 201)
            }
        }
    }
}

/// Conversations across networks: each member talks to its own server,
/// which relays to the host; the host delivers through its durable outbox.
@Suite(.serialized)
struct FederatedConversationTests {
    /// Runs networks (in this process, nested) and pins every pair of them.
    static func federate(_ specs: [(String, Backend)], _ body: @escaping @Sendable ([TestNetwork]) async throws -> Void) async throws {
        try await start(specs[...], []) { networks in
            for network in networks {
                for other in networks where other.domain != network.domain {
                    _ = try await network.admin.addPeer(
                        other.networkDomain, url: other.url, keyFingerprint: other.networkKey.publicKey.fingerprint)
                }
            }
            try await body(networks)
        }
    }

    private static func start(
        _ specs: ArraySlice<(String, Backend)>, _ started: [TestNetwork], _ body: @escaping @Sendable ([TestNetwork]) async throws -> Void
    ) async throws {
        guard let (domain, backend) = specs.first else { return try await body(started) }
        let rest = specs.dropFirst()
        try await TestNetwork.run(backend, domain: domain) { network in try await start(rest, started + [network], body) }
    }

    @Test("1:1 and rooms across two networks, in both directions", arguments: Backend.allCases)
    func twoNetworks(_ backend: Backend) async throws {
        try await Self.federate([("acme.example", backend), ("globex.example", backend == .sqlite ? .postgres : .sqlite)]) { networks in
            try await Self.twoNetworks(networks[0], networks[1])
        }
    }

    static func twoNetworks(_ acme: TestNetwork, _ globex: TestNetwork) async throws {
        try await acme.users("alice")
        try await globex.users("bob")
        let alice = try await acme.device("alice")
        let bob = try await globex.device("bob")
        let bobAddress = globex.address("bob")
        let aliceAddress = acme.address("alice")

        // alice starts a 1:1, hosted by acme; bob reads and answers through globex.
        let direct = try await alice.directConversation(with: bobAddress)
        try await alice.send("hello from acme", to: direct.id)
        #expect(try await bob.receiveTexts(1) == ["hello from acme"])
        let bobView = try await bob.findConversation(direct.id.description)
        #expect(bobView.members == [aliceAddress, bobAddress])
        try await bob.send("hello from globex", to: direct.id)
        #expect(try await alice.receiveTexts(1) == ["hello from globex"])

        // bob creates a room hosted by globex with alice.
        let room = try await bob.createRoom(name: "globex room", members: [aliceAddress])
        try await bob.send("welcome to globex", to: room.id)
        let received = messages(try await alice.receive(until: { texts($0).count >= 1 }))
        #expect(received.map(\.text) == ["welcome to globex"])
        #expect(received.first?.from == bobAddress)
        #expect(received.first?.room == "globex room")
        try await alice.send("thanks", to: room.id)
        #expect(try await bob.receiveTexts(1) == ["thanks"])
        // Both servers list the conversations with every member.
        let bobToken = await bob.sessionTokenForTesting
        let listed = try await RawHTTP(baseURL: globex.url).send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
        #expect(Set(listed.conversations.map(\.id)) == [direct.id, room.id])
        #expect(listed.conversations.allSatisfy { Set($0.members) == [aliceAddress, bobAddress] })
        // bob's second device joins both conversations by external commit, through globex, and reads on.
        let laptop = try await globex.device("bob", "laptop", approvedBy: bob)
        #expect(Set(try await laptop.conversations().map(\.id)) == [direct.id, room.id])
        _ = try await alice.receive(until: { $0.contains { if case .membersChanged = $0 { true } else { false } } })
        try await alice.send("to both of bob's devices", to: direct.id)
        #expect(try await laptop.receiveTexts(1) == ["to both of bob's devices"])
        #expect(try await bob.receiveTexts(1) == ["to both of bob's devices"])

        // acme unpins globex: bob leaves the conversations acme hosts.
        try await acme.admin.removePeer(FederationTests.globex)
        try await alice.settle(direct.id, to: [aliceAddress])
    }

    @Test("A room with members from three networks", arguments: [Backend.sqlite])
    func threeNetworks(_ backend: Backend) async throws {
        try await Self.federate([("acme.example", backend), ("globex.example", backend), ("initech.example", backend)]) { networks in
            try await Self.threeNetworks(networks)
        }
    }

    static func threeNetworks(_ networks: [TestNetwork]) async throws {
        try await networks[0].users("alice")
        try await networks[1].users("bob")
        try await networks[2].users("carol")
        let alice = try await networks[0].device("alice")
        let bob = try await networks[1].device("bob")
        let carol = try await networks[2].device("carol")
        let room = try await alice.createRoom(name: "tri", members: [networks[1].address("bob"), networks[2].address("carol")])
        #expect(room.members.count == 3)
        try await alice.send("one", to: room.id)
        #expect(try await bob.receiveTexts(1) == ["one"])
        #expect(try await carol.receiveTexts(1) == ["one"])
        try await carol.send("two", to: room.id)
        #expect(try await bob.receiveTexts(1) == ["two"])
        #expect(try await alice.receiveTexts(1) == ["two"])
        try await bob.send("three", to: room.id)
        #expect(try await alice.receiveTexts(1) == ["three"])
        #expect(try await carol.receiveTexts(1) == ["three"])

        // initech tightens carol's group to acme only: initech asks acme to remove her, and bob's client commits it.
        let (aliceAddress, bobAddress) = (networks[0].address("alice"), networks[1].address("bob"))
        _ = try await networks[2].admin.updateGroup(.default, SecurityGroupChange(federation: .only([FederationTests.acme])))
        try await bob.settle(room.id, to: [aliceAddress, bobAddress])
        // acme, the host, tightens alice's group to initech only: acme proposes her removal, bob's client commits it via globex.
        _ = try await networks[0].admin.updateGroup(.default, SecurityGroupChange(federation: .only([FederationTests.initech])))
        try await bob.settle(room.id, to: [bobAddress])
    }
}

extension ClientEvent {
    /// Whether this event is joining that conversation.
    static func joined(where id: ConversationID) -> (ClientEvent) -> Bool {
        { if case .joined(let conversation) = $0 { conversation.id == id } else { false } }
    }
}
