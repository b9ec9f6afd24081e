@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Federation (issue 6), as far as it is built: peers pinned by key
/// fingerprint, signed server-to-server requests, and claiming a remote
/// user's key packages under both networks' policies. Real server
/// processes on loopback, one per network.
@Suite(.serialized)
struct FederationTests {
    static let acme = NetworkDomain("acme.example")!  // literals of the test
    static let globex = NetworkDomain("globex.example")!
    static let initech = NetworkDomain("initech.example")!

    @Test("Two networks pin each other; alice@acme claims bob@globex's key packages under both policies", arguments: Backend.allCases)
    func peeringAndClaim(_ backend: Backend) async throws {
        guard let acme = try await TestNetwork.start(backend, domain: "acme.example"),
            let globex = try await TestNetwork.start(backend == .sqlite ? .postgres : .sqlite, domain: "globex.example")
        else { return }
        defer {
            acme.stop()
            globex.stop()
        }
        let acmeKey = try await acme.admin.network().keyFingerprint
        let globexKey = try await globex.admin.network().keyFingerprint
        #expect(try await acme.admin.federation().mode == .listed)
        // A fingerprint that is not the key the peer publishes is refused at once.
        await PolicyTests.expectRefused("peer_mismatch") {
            _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: acmeKey)
        }
        await PolicyTests.expectRefused("bad_request") {
            _ = try await acme.admin.addPeer(Self.globex, url: "ftp://globex.example", keyFingerprint: globexKey)
        }
        _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: globexKey)
        _ = try await globex.admin.addPeer(Self.acme, url: acme.url, keyFingerprint: acmeKey)
        await PolicyTests.expectRefused("peer_exists") {
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
        func claim() async throws -> RawHTTP.Answer {
            try await http.send(.POST, "/v1/key-packages/claim", token: token, json: KeyPackageClaim(user: bob))
        }

        // The claim crosses, signed by acme; the certificates verify with globex's key only.
        let claimed = try await claim().decode(ClaimedKeyPackages.self)
        #expect(claimed.user == bob)
        #expect(claimed.keyPackages.count == 1)
        let peer = try await http.send(.GET, "/v1/networks/globex.example", token: token).decode(PeerNetwork.self)
        #expect(peer.keyFingerprint == globexKey)
        let globexPublic = NetworkPublicKey(domain: Self.globex, rawKey: peer.signingKey.bytes)
        let acmePublic = NetworkPublicKey(domain: Self.acme, rawKey: try await RawDevice.login(acme, user: "alice").networkKey.rawKey)
        for entry in claimed.keyPackages {
            guard case .keyPackage(let package) = try MLSMessage(tlsSerialized: entry.keyPackage.bytes).body else {
                Issue.record("not a KeyPackage")
                continue
            }
            #expect(DeviceCertificate.verify(leaf: package.leafNode, networkKey: globexPublic)?.user == bob)
            #expect(DeviceCertificate.verify(leaf: package.leafNode, networkKey: acmePublic) == nil)
        }

        // The sending side's policy: alice's group may not reach globex.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .noNetworks))
        var refused = try await claim()
        http.expectRefusal(refused, 403, code: "policy_federation")
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.globex])))
        #expect(try await claim().status == 200)
        // The receiving side refuses on its own: bob's group may only reach initech.
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.initech])))
        refused = try await claim()
        http.expectRefusal(refused, 403, code: "policy_federation")
        #expect(refused.error?.message.hasPrefix("globex.example refused") == true)
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        // A network that no longer lists acme, or no longer federates, refuses it.
        _ = try await globex.admin.setFederationMode(.off)
        http.expectRefusal(try await claim(), 403, code: "federation_off")
        _ = try await globex.admin.setFederationMode(.listed)
        try await globex.admin.removePeer(Self.acme)
        http.expectRefusal(try await claim(), 403, code: "unknown_network")
        // An unknown network is named as such, and one peer's downtime is a clear 502.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        http.expectRefusal(
            try await http.send(
                .POST, "/v1/key-packages/claim", token: token,
                json: KeyPackageClaim(user: UserAddress(name: bob.name, domain: Self.initech))), 404, code: "unknown_network")
        #expect(
            try await globex.admin.audit().map(\.action) == [
                "federation.add", "user.create", "group.update", "group.update", "federation.mode", "federation.mode", "federation.remove",
            ])
        globex.stop()
        http.expectRefusal(try await claim(), 502, code: "peer_unavailable")
    }

    /// A KeyPackage of mallory@acme.example for this device id, certified by `key`, built by `device`'s library.
    static func package(of device: RawDevice, device id: DeviceID, certifiedBy key: NetworkSigningKey) throws -> KeyPackage {
        let signer = try device.provider.generateSignatureKey(random: SystemRandom())
        guard let mallory = UserAddress("mallory@acme.example") else { throw ConclaveServerProcessError("bad test input") }
        let certificate = try DeviceCertificate.issue(
            user: mallory, device: id, signatureKey: signer.publicKey, cipherSuite: device.provider.suite, issuedAt: device.now, by: key)
        return try device.keyPackage(credential: certificate.credential, signer: signer).keyPackage
    }

    @Test(
        "Signed server-to-server requests: unlisted, forged, tampered, stale and replayed requests change nothing",
        arguments: [Backend.sqlite])
    func hostileRequests(_ backend: Backend) async throws {
        guard let network = try await TestNetwork.start(backend, domain: "globex.example") else { return }
        defer { network.stop() }
        try await network.users("bob")
        let bob = try await network.device("bob")
        // acme's key is held by the test; acme's server is not running, so globex learns the key on first contact.
        let acmeKey = NetworkSigningKey.generate(domain: Self.acme)
        let pinned = try await network.admin.addPeer(Self.acme, url: "http://127.0.0.1:9", keyFingerprint: acmeKey.publicKey.fingerprint)
        #expect(pinned.pinnedBy == "admin")
        let http = RawHTTP(baseURL: network.url)
        let path = "/v1/federation/key-packages/claim"
        func request(
            from origin: NetworkDomain = Self.acme, key: NetworkSigningKey, to destination: NetworkDomain = Self.globex,
            requester: String = "alice@acme.example", at time: Date = Date(), nonce: String = FederationRequestSignature.newNonce(),
            originURL: String = "http://127.0.0.1:9"
        ) throws -> (body: [UInt8], headers: [(String, String)]) {
            guard let address = UserAddress(requester), let bob = UserName("bob") else {
                throw ConclaveServerProcessError("bad test input")
            }
            let body = Array(try ConclaveJSON.encoder().encode(FederatedKeyPackageClaim(user: bob, requester: address)))
            let signature = FederationRequestSignature(
                method: "POST", path: path, body: body, timestamp: time.millis, nonce: nonce, origin: origin, originURL: originURL,
                destination: destination)
            return (body, try signature.headers(signedBy: key))
        }
        func send(_ request: (body: [UInt8], headers: [(String, String)])) async throws -> RawHTTP.Answer {
            try await http.send(.POST, path, raw: request.body, headers: request.headers)
        }
        func count() async throws -> Int { try await network.admin.users().first?.devices ?? -1 }

        let valid = try request(key: acmeKey)
        let answer = try await send(valid)
        #expect(answer.status == 200)
        #expect(try answer.decode(ClaimedKeyPackages.self).keyPackages.count == 1)

        // Replayed: the same signed request again.
        http.expectRefusal(try await send(valid), 401, code: "replayed_request")
        // Stale: signed ten minutes ago.
        http.expectRefusal(try await send(try request(key: acmeKey, at: Date().addingTimeInterval(-600))), 401, code: "stale_request")
        // Forged: another key claiming to be acme.
        let mallory = NetworkSigningKey.generate(domain: Self.acme)
        http.expectRefusal(try await send(try request(key: mallory)), 401, code: "invalid_request_signature")
        // Tampered: a signed request whose body was changed on the way.
        var tampered = try request(key: acmeKey)
        tampered.body = Array(
            try ConclaveJSON.encoder().encode(
                FederatedKeyPackageClaim(user: try #require(UserName("bob")), requester: try #require(UserAddress("eve@acme.example")))))
        http.expectRefusal(try await send(tampered), 401, code: "invalid_request_signature")
        // Addressed to another network, and missing headers.
        http.expectRefusal(try await send(try request(key: acmeKey, to: Self.initech)), 401, code: "invalid_request_signature")
        http.expectRefusal(try await http.send(.POST, path, json: ["user": "bob"]), 401, code: "invalid_request_signature")
        // A network acting for another network's user.
        http.expectRefusal(try await send(try request(key: acmeKey, requester: "carol@initech.example")), 403, code: "forbidden")
        // Unlisted in listed mode: refused, nothing pinned.
        let initechKey = NetworkSigningKey.generate(domain: Self.initech)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")), 403,
            code: "unknown_network")
        #expect(try await network.admin.federation().peers.map(\.domain) == [Self.acme])
        // Open mode: a network is pinned on first use once the URL it gives publishes its key; another key for it
        // afterwards is refused.
        _ = try await network.admin.setFederationMode(.open)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")), 403,
            code: "peer_mismatch")
        guard let initech = try await TestNetwork.start(.sqlite, domain: "initech.example") else { return }
        defer { initech.stop() }
        let realKey = try DataDirectory(path: initech.dataDirectory).networkKey(domain: Self.initech)
        let first = try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)
        #expect(try await send(first).status == 200)
        let peers = try await network.admin.federation().peers
        #expect(peers.map(\.domain) == [Self.acme, Self.initech])
        #expect(peers.last?.pinnedBy == "first-use")
        #expect(peers.last?.keyFingerprint == realKey.publicKey.fingerprint)
        #expect(peers.last?.url == initech.url)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example", originURL: initech.url)),
            401, code: "invalid_request_signature")
        #expect(try await count() == 1)
        // The first-use pin is in the audit log; once an administrator removes the network, open mode does not pin it again.
        #expect(try await network.admin.audit().contains { $0.action == "federation.pin" && $0.actor == "federation" })
        try await network.admin.removePeer(Self.initech)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url)), 403,
            code: "unknown_network")
        #expect(try await network.admin.federation().peers.map(\.domain) == [Self.acme])
        _ = try await network.admin.addPeer(Self.initech, url: initech.url, keyFingerprint: realKey.publicKey.fingerprint)
        #expect(
            try await send(try request(from: Self.initech, key: realKey, requester: "carol@initech.example", originURL: initech.url))
                .status == 200)
        // Nobody speaks for globex but globex's key, even in open mode.
        http.expectRefusal(
            try await send(try request(from: Self.globex, key: initechKey, requester: "bob@globex.example", originURL: network.url)), 401,
            code: "invalid_request_signature")

        // Deliveries: a conversation starts only with a Welcome for a listed member's device, once per delivery id.
        func deliver(_ delivery: FederatedDelivery, from origin: NetworkDomain = Self.acme, key: NetworkSigningKey? = nil)
            async throws -> RawHTTP.Answer
        {
            let body = Array(try ConclaveJSON.encoder().encode(delivery))
            let signature = FederationRequestSignature(
                method: "POST", path: "/v1/federation/deliver", body: body, timestamp: Date().millis,
                nonce: FederationRequestSignature.newNonce(), origin: origin,
                originURL: origin == Self.acme ? "http://127.0.0.1:9" : initech.url, destination: Self.globex)
            return try await http.send(
                .POST, "/v1/federation/deliver", raw: body, headers: try signature.headers(signedBy: key ?? acmeKey))
        }
        let bobDevice = try #require(await bob.device)
        let bobToken = try #require(await bob.sessionTokenForTesting)
        let conversation = ConversationID.random()
        func delivery(_ kind: InboxEventKind, members: [String], id: String = FederationRequestSignature.newNonce()) throws
            -> FederatedDelivery
        {
            FederatedDelivery(
                conversation: conversation, conversationKind: .room, name: "pushed", createdBy: try #require(UserName("alice")),
                createdAt: Date(), kind: kind, message: Base64Bytes([1, 2, 3]), messageId: nil, sentAt: Date(), expiresAt: nil,
                recipients: [bobDevice], members: members, deliveryId: id)
        }
        http.expectRefusal(try await deliver(try delivery(.handshake, members: ["alice", "bob@globex.example"])), 404, code: "not_found")
        http.expectRefusal(try await deliver(try delivery(.welcome, members: ["alice"])), 403, code: "policy_federation")
        let before = try await http.send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
        #expect(before.conversations.isEmpty)
        let welcome = try delivery(.welcome, members: ["alice", "bob@globex.example"])
        #expect(try await deliver(welcome).status == 200)
        #expect(try await deliver(welcome).status == 200)  // retried after a lost answer: stored once
        let inbox = try await http.send(.GET, "/v1/inbox", token: bobToken).decode(InboxPage.self)
        #expect(inbox.events.filter { $0.conversation == conversation }.count == 1)
        let expected = [try #require(UserAddress("alice@acme.example")), try #require(UserAddress("bob@globex.example"))]
        let after = try await http.send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
        #expect(after.conversations.map(\.members) == [expected])
        // Another network cannot deliver into a conversation acme hosts.
        http.expectRefusal(
            try await deliver(try delivery(.handshake, members: ["alice", "bob@globex.example"]), from: Self.initech, key: realKey), 403,
            code: "forbidden")

        // Device ids are per network: acme can certify a device with the id of one of globex's, but a group may not hold
        // both; a device acme certifies with an id of its own is accepted (its key was learned from the request above).
        let rawBob = try await RawDevice.login(network, user: "bob")
        var group = try rawBob.newGroup()
        let groupID = try #require(ConversationID(bytes: group.groupID))
        #expect(try await rawBob.create(group).status == 201)
        let collision = try await rawBob.send(
            try group.commit(
                adding: [try Self.package(of: rawBob, device: rawBob.certificate.device, certifiedBy: acmeKey)], random: rawBob.random),
            on: &group, id: groupID)
        http.expectRefusal(collision, 400, code: "invalid_credential")
        let own = try await rawBob.send(
            try group.commit(
                adding: [try Self.package(of: rawBob, device: DeviceID.random(), certifiedBy: acmeKey)], random: rawBob.random), on: &group,
            id: groupID)
        #expect(own.status == 201)
    }
}

/// Conversations across networks: each member talks to its own server,
/// which relays to the host; the host delivers through its durable outbox.
@Suite(.serialized)
struct FederatedConversationTests {
    /// Starts networks and pins every pair of them.
    static func federate(_ specs: [(String, Backend)]) async throws -> [TestNetwork]? {
        var networks: [TestNetwork] = []
        for (domain, backend) in specs {
            guard let network = try await TestNetwork.start(backend, domain: domain) else {
                for started in networks { started.stop() }
                return nil
            }
            networks.append(network)
        }
        for network in networks {
            for other in networks where other.domain != network.domain {
                let fingerprint = try await other.admin.network().keyFingerprint
                _ = try await network.admin.addPeer(try #require(NetworkDomain(other.domain)), url: other.url, keyFingerprint: fingerprint)
            }
        }
        return networks
    }

    /// Receives until `done` holds for everything received so far (up to 30 s).
    static func receive(_ client: ConclaveClient, until done: ([ClientEvent]) -> Bool) async throws -> [ClientEvent] {
        var events: [ClientEvent] = []
        for _ in 0..<150 {
            events += try await client.receive()
            if done(events) { return events }
            try await Task.sleep(for: .milliseconds(200))
        }
        return events
    }

    static func receiveTexts(_ client: ConclaveClient, _ count: Int) async throws -> [String] {
        texts(try await receive(client) { texts($0).count >= count })
    }

    @Test("1:1 and rooms across two networks, in both directions", arguments: Backend.allCases)
    func twoNetworks(_ backend: Backend) async throws {
        guard
            let networks = try await Self.federate([
                ("acme.example", backend), ("globex.example", backend == .sqlite ? .postgres : .sqlite),
            ])
        else { return }
        let (acme, globex) = (networks[0], networks[1])
        defer { for network in networks { network.stop() } }
        try await acme.users("alice")
        try await globex.users("bob")
        let alice = try await acme.device("alice")
        let bob = try await globex.device("bob")
        let bobAddress = globex.address("bob")
        let aliceAddress = acme.address("alice")

        // alice starts a 1:1, hosted by acme; bob reads and answers through globex.
        let direct = try await alice.directConversation(with: bobAddress)
        try await alice.send("hello from acme", to: direct.id)
        #expect(try await Self.receiveTexts(bob, 1) == ["hello from acme"])
        let bobView = try await bob.findConversation(direct.id.description)
        #expect(bobView.members == [aliceAddress, bobAddress])
        try await bob.send("hello from globex", to: direct.id)
        #expect(try await Self.receiveTexts(alice, 1) == ["hello from globex"])

        // bob creates a room hosted by globex with alice.
        let room = try await bob.createRoom(name: "globex room", members: [aliceAddress])
        try await bob.send("welcome to globex", to: room.id)
        let received = messages(try await Self.receive(alice) { texts($0).count >= 1 })
        #expect(received.map(\.text) == ["welcome to globex"])
        #expect(received.first?.from == bobAddress)
        #expect(received.first?.room == "globex room")
        try await alice.send("thanks", to: room.id)
        #expect(try await Self.receiveTexts(bob, 1) == ["thanks"])
        // Both servers list the conversations with every member.
        let bobToken = await bob.sessionTokenForTesting
        let listed = try await RawHTTP(baseURL: globex.url).send(.GET, "/v1/conversations", token: bobToken).decode(ConversationList.self)
        #expect(Set(listed.conversations.map(\.id)) == [direct.id, room.id])
        #expect(listed.conversations.allSatisfy { Set($0.members) == [aliceAddress, bobAddress] })
        // bob's second device joins both conversations by external commit, through globex, and reads on.
        let laptop = try await globex.device("bob", "laptop")
        #expect(Set(try await laptop.conversations().map(\.id)) == [direct.id, room.id])
        _ = try await Self.receive(alice) { $0.contains { if case .membersChanged = $0 { true } else { false } } }
        try await alice.send("to both of bob's devices", to: direct.id)
        #expect(try await Self.receiveTexts(laptop, 1) == ["to both of bob's devices"])
        #expect(try await Self.receiveTexts(bob, 1) == ["to both of bob's devices"])

        // acme unpins globex: bob leaves the conversations acme hosts.
        try await acme.admin.removePeer(FederationTests.globex)
        #expect(try await Self.membersSettle(alice, direct.id, to: [aliceAddress]))
    }

    @Test("A room with members from three networks", arguments: [Backend.sqlite])
    func threeNetworks(_ backend: Backend) async throws {
        guard
            let networks = try await Self.federate([
                ("acme.example", backend), ("globex.example", backend), ("initech.example", backend),
            ])
        else { return }
        defer { for network in networks { network.stop() } }
        try await networks[0].users("alice")
        try await networks[1].users("bob")
        try await networks[2].users("carol")
        let alice = try await networks[0].device("alice")
        let bob = try await networks[1].device("bob")
        let carol = try await networks[2].device("carol")
        let room = try await alice.createRoom(name: "tri", members: [networks[1].address("bob"), networks[2].address("carol")])
        #expect(room.members.count == 3)
        try await alice.send("one", to: room.id)
        #expect(try await Self.receiveTexts(bob, 1) == ["one"])
        #expect(try await Self.receiveTexts(carol, 1) == ["one"])
        try await carol.send("two", to: room.id)
        #expect(try await Self.receiveTexts(bob, 1) == ["two"])
        #expect(try await Self.receiveTexts(alice, 1) == ["two"])
        try await bob.send("three", to: room.id)
        #expect(try await Self.receiveTexts(alice, 1) == ["three"])
        #expect(try await Self.receiveTexts(carol, 1) == ["three"])

        // initech tightens carol's group to acme only: initech asks acme to remove her, and bob's client commits it.
        let (aliceAddress, bobAddress) = (networks[0].address("alice"), networks[1].address("bob"))
        _ = try await networks[2].admin.updateGroup(.default, SecurityGroupChange(federation: .only([FederationTests.acme])))
        #expect(try await FederatedConversationTests.membersSettle(bob, room.id, to: [aliceAddress, bobAddress]))
        // acme, the host, tightens alice's group to initech only: acme proposes her removal, bob's client commits it via globex.
        _ = try await networks[0].admin.updateGroup(.default, SecurityGroupChange(federation: .only([FederationTests.initech])))
        #expect(try await FederatedConversationTests.membersSettle(bob, room.id, to: [bobAddress]))
    }

    @Test("Policy on both sides, a peer down then up, and de-provisioning a remote member", arguments: Backend.allCases)
    func policyAndFaults(_ backend: Backend) async throws {
        guard let networks = try await Self.federate([("acme.example", backend), ("globex.example", .sqlite)]) else { return }
        var (acme, globex) = (networks[0], networks[1])
        defer {
            acme.stop()
            globex.stop()
        }
        try await acme.users("alice", "dora")
        try await globex.users("bob")
        let alice = try await acme.device("alice")
        let bob = try await globex.device("bob")
        let bobAddress = globex.address("bob")

        // The sending side: dora's group may not reach other networks.
        let local = try #require(SecurityGroupName("local"))
        _ = try await acme.admin.addGroup(local, SecurityGroupChange(federation: .noNetworks))
        _ = try await acme.admin.setGroup(of: try #require(UserName("dora")), to: local)
        let dora = try await acme.device("dora")
        await PolicyTests.expectRefused("policy") { _ = try await dora.directConversation(with: bobAddress) }

        let room = try await alice.createRoom(name: "ops", members: [bobAddress])
        try await alice.send("before", to: room.id)
        #expect(try await Self.receiveTexts(bob, 1) == ["before"])

        // globex goes down: acme keeps accepting, queues durably, and delivers when globex is back.
        globex.stop()
        for text in ["while down 1", "while down 2", "while down 3"] { try await alice.send(text, to: room.id) }
        try await globex.restart()
        #expect(try await Self.receiveTexts(bob, 3) == ["while down 1", "while down 2", "while down 3"])

        // globex's administrator forbids bob's group to reach acme: globex asks acme to remove him, alice's client commits it.
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .only([FederationTests.initech])))
        #expect(try await Self.membersSettle(alice, room.id, to: [acme.address("alice")]))
        // And globex refuses on its own what a modified acme would still push to bob.
        let acmeKey = try DataDirectory(path: acme.dataDirectory).networkKey(domain: FederationTests.acme)
        let bobDevice = try #require(await bob.device)
        let push = FederatedDelivery(
            conversation: room.id, conversationKind: .room, name: "ops", createdBy: try #require(UserName("alice")), createdAt: Date(),
            kind: .application, message: Base64Bytes([1, 2, 3]), messageId: "pushed", sentAt: Date(), expiresAt: nil,
            recipients: [bobDevice], members: ["alice", "bob@globex.example"])
        let body = Array(try ConclaveJSON.encoder().encode(push))
        let signature = FederationRequestSignature(
            method: "POST", path: "/v1/federation/deliver", body: body, timestamp: Date().millis,
            nonce: FederationRequestSignature.newNonce(),
            origin: FederationTests.acme, originURL: acme.url, destination: FederationTests.globex)
        let http = RawHTTP(baseURL: globex.url)
        http.expectRefusal(
            try await http.send(.POST, "/v1/federation/deliver", raw: body, headers: try signature.headers(signedBy: acmeKey)), 403,
            code: "policy_federation")
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .all))

        // globex's own lifetime bounds: bob's group keeps messages at most a day, so a room acme hosts
        // with messages that never expire loses bob (globex refuses to deliver, and asks acme to remove him).
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 86_400))
        let forever = try await alice.createRoom(name: "forever", members: [bobAddress], settings: ConversationSettings())
        #expect(try await Self.membersSettle(alice, forever.id, to: [acme.address("alice")]))
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 0))

        // globex suspends bob: acme proposes his removal from a new room, alice's client commits it.
        let second = try await alice.createRoom(name: "second", members: [bobAddress])
        _ = try await Self.receive(bob) { $0.contains(where: ClientEvent.joined(where: second.id)) }
        _ = try await globex.admin.suspend(try #require(UserName("bob")))
        #expect(try await Self.membersSettle(alice, second.id, to: [acme.address("alice")]))
        try await alice.send("bob is gone", to: second.id)
    }

    /// Receives until this device sees exactly these members (up to 20 s).
    static func membersSettle(_ client: ConclaveClient, _ id: ConversationID, to expected: [UserAddress]) async throws -> Bool {
        for _ in 0..<100 {
            _ = try await client.receive()
            if try await client.findConversation(id.description).members == expected { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}

extension ClientEvent {
    /// Whether this event is joining that conversation.
    static func joined(where id: ConversationID) -> (ClientEvent) -> Bool {
        { if case .joined(let conversation) = $0 { conversation.id == id } else { false } }
    }
}

/// Federating two networks with the CLI alone, as docs/federation.md tells
/// two administrators to.
@Suite(.serialized)
struct FederationCommandLineTests {
    @Test("admin federation add/list/mode/remove, then send and receive across networks with the CLI")
    func federateWithTheCLI() async throws {
        guard let acme = try await TestNetwork.start(.sqlite, domain: "acme.example"),
            let globex = try await TestNetwork.start(.sqlite, domain: "globex.example")
        else { return }
        defer {
            acme.stop()
            globex.stop()
        }
        let root = acme.root
        let passwordFile = root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((acme.password + "\n").utf8))
        func admin(_ network: TestNetwork) -> [String] {
            ["admin", "--server", network.url, "--token-file", network.dataDirectory + "/admin.token"]
        }
        func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
            try ConclaveServerProcess.runCLI(arguments)
        }
        func fingerprint(_ network: TestNetwork) throws -> String {
            let shown = try run(admin(network) + ["network", "show", "--json"])
            let info = try ConclaveJSON.decoder().decode(NetworkInfo.self, from: Data(shown.output.utf8))
            return info.keyFingerprint
        }
        let (acmeKey, globexKey) = (try fingerprint(acme), try fingerprint(globex))
        let wrong = try run(admin(acme) + ["federation", "add", "globex.example", "--url", globex.url, "--key", acmeKey])
        #expect(wrong.status != 0)
        #expect(wrong.error.contains("publishes another key"))
        let added = try run(admin(acme) + ["federation", "add", "globex.example", "--url", globex.url, "--key", globexKey])
        #expect(added.status == 0, "\(added.error)")
        #expect(added.output.contains("pinned globex.example"))
        #expect(try run(admin(globex) + ["federation", "add", "acme.example", "--url", acme.url, "--key", acmeKey]).status == 0)
        let listed = try run(admin(acme) + ["federation", "list", "--json"])
        let state = try ConclaveJSON.decoder().decode(FederationState.self, from: Data(listed.output.utf8))
        #expect(state.mode == .listed)
        #expect(state.peers.map(\.domain.value) == ["globex.example"])
        #expect(try run(admin(acme) + ["federation", "mode", "open"]).output.contains("federation mode: open"))
        #expect(try run(admin(acme) + ["federation", "mode", "sideways"]).status != 0)
        #expect(try run(admin(acme) + ["federation", "list"]).output.contains("federation mode: open"))

        #expect(try run(admin(acme) + ["user", "add", "alice", "--password-file", passwordFile]).status == 0)
        #expect(try run(admin(globex) + ["user", "add", "bob", "--password-file", passwordFile]).status == 0)
        func cli(_ profile: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
            try run(["--profile", root + "/" + profile] + arguments)
        }
        #expect(
            try cli("alice", ["login", "--server", acme.url, "--user", "alice@acme.example", "--password-file", passwordFile]).status == 0)
        #expect(
            try cli("bob", ["login", "--server", globex.url, "--user", "bob@globex.example", "--password-file", passwordFile]).status == 0)
        let sent = try cli("alice", ["send", "bob@globex.example", "hello", "globex"])
        #expect(sent.status == 0, "\(sent.error)")
        let received = try cli("bob", ["receive", "--wait", "5s", "--json"])
        #expect(received.status == 0, "\(received.error)")
        #expect(received.output.contains("\"text\":\"hello globex\""))
        #expect(received.output.contains("\"from\":\"alice@acme.example\""))
        #expect(try cli("bob", ["send", "alice@acme.example", "hello", "acme"]).status == 0)
        #expect(try cli("alice", ["receive", "--wait", "5s", "--json"]).output.contains("\"text\":\"hello acme\""))

        #expect(try run(admin(acme) + ["federation", "remove", "globex.example"]).output.contains("removed globex.example"))
        let audit = try run(admin(acme) + ["audit"]).output
        for action in ["federation.add", "federation.mode", "federation.remove"] { #expect(audit.contains(action)) }
    }
}
