@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import Testing

/// Networks in separate server processes: a peer that goes down and comes
/// back, policy on both sides, and de-provisioning a remote member.
@Suite(.serialized)
struct FederationProcessTests {
    static let acme = NetworkDomain("acme.example")!  // literals of the test
    static let globex = NetworkDomain("globex.example")!
    static let initech = NetworkDomain("initech.example")!

    /// Pins two networks to each other.
    static func pin(_ first: ProcessNetwork, _ second: ProcessNetwork) async throws {
        _ = try await first.admin.addPeer(
            second.networkDomain, url: second.url, keyFingerprint: try await second.admin.network().keyFingerprint)
        _ = try await second.admin.addPeer(
            first.networkDomain, url: first.url, keyFingerprint: try await first.admin.network().keyFingerprint)
    }

    @Test("Policy on both sides, a peer down then up, and de-provisioning a remote member", arguments: Backend.allCases)
    func policyAndFaults(_ backend: Backend) async throws {
        guard let acmeNetwork = try await ProcessNetwork.start(backend, domain: "acme.example"),
            let globexNetwork = try await ProcessNetwork.start(.sqlite, domain: "globex.example")
        else { return }
        var (acme, globex) = (acmeNetwork, globexNetwork)
        try await Self.pin(acme, globex)
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
        await expectPolicyRefusal { _ = try await dora.directConversation(with: bobAddress) }

        let room = try await alice.createRoom(name: "ops", members: [bobAddress])
        try await alice.send("before", to: room.id)
        #expect(try await bob.receiveTexts(1) == ["before"])

        // globex goes down: acme keeps accepting, queues durably, and delivers when globex is back.
        globex.stop()
        for text in ["while down 1", "while down 2", "while down 3"] { try await alice.send(text, to: room.id) }
        try await globex.restart()
        #expect(try await bob.receiveTexts(3) == ["while down 1", "while down 2", "while down 3"])

        // globex's administrator forbids bob's group to reach acme: globex asks acme to remove him, alice's client commits it.
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.initech])))
        try await alice.settle(room.id, to: [acme.address("alice")])
        // And globex refuses on its own what a modified acme would still push to bob.
        let acmeKey = try DataDirectory(path: acme.dataDirectory).networkKey(domain: Self.acme)
        let bobDevice = try #require(await bob.device)
        let push = FederatedDelivery(
            conversation: room.id, conversationKind: .room, name: "ops", createdBy: try #require(UserName("alice")), createdAt: Date(),
            kind: .application, message: Base64Bytes([1, 2, 3]), messageId: "pushed", sentAt: Date(), expiresAt: nil,
            recipients: [bobDevice])
        let body = Array(try ConclaveJSON.encoder().encode(push))
        let signature = FederationRequestSignature(
            method: "POST", path: "/v1/federation/deliver", body: body, timestamp: Date().millis,
            nonce: FederationRequestSignature.newNonce(),
            origin: Self.acme, originURL: acme.url, destination: Self.globex)
        let http = RawHTTP(baseURL: globex.url)
        http.expectRefusal(
            try await http.send(.POST, "/v1/federation/deliver", raw: body, headers: try signature.headers(signedBy: acmeKey)),
            .policyFederation)
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .all))

        // globex's own lifetime bounds: bob's group keeps messages at most a day, so a room acme hosts
        // with messages that never expire loses bob (globex refuses to deliver, and asks acme to remove him).
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 86_400))
        let forever = try await alice.createRoom(name: "forever", members: [bobAddress], settings: ConversationSettings())
        try await alice.settle(forever.id, to: [acme.address("alice")])
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(messageLifetimeMax: 0))

        // globex suspends bob: acme proposes his removal from a new room, alice's client commits it.
        let second = try await alice.createRoom(name: "second", members: [bobAddress])
        _ = try await bob.receive(until: { events in
            events.contains { if case .joined(let joined) = $0 { joined.id == second.id } else { false } }
        })
        _ = try await globex.admin.suspend(try #require(UserName("bob")))
        try await alice.settle(second.id, to: [acme.address("alice")])
        try await alice.send("bob is gone", to: second.id)
    }
}

/// Federating two networks with the CLI alone, as docs/federation.md tells
/// two administrators to.
@Suite(.serialized)
struct FederationCommandLineTests {
    @Test("admin federation add/list/mode/remove, then send and receive across networks with the CLI")
    func federateWithTheCLI() async throws {
        guard let acme = try await ProcessNetwork.start(.sqlite, domain: "acme.example"),
            let globex = try await ProcessNetwork.start(.sqlite, domain: "globex.example")
        else { return }
        defer {
            acme.stop()
            globex.stop()
        }
        let root = acme.root
        let passwordFile = root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((acme.password + "\n").utf8))
        func admin(_ network: ProcessNetwork) -> [String] {
            ["admin", "--server", network.url, "--token-file", network.dataDirectory + "/admin.token"]
        }
        func run(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(arguments)
        }
        func fingerprint(_ network: ProcessNetwork) async throws -> String {
            let shown = try await run(admin(network) + ["network", "show", "--json"])
            let info = try ConclaveJSON.decoder().decode(NetworkInfo.self, from: Data(shown.output.utf8))
            return info.keyFingerprint
        }
        let (acmeKey, globexKey) = (try await fingerprint(acme), try await fingerprint(globex))
        let wrong = try await run(admin(acme) + ["federation", "add", "globex.example", "--url", globex.url, "--key", acmeKey])
        #expect(wrong.status != 0)
        #expect(wrong.error.contains("publishes another key"))
        let added = try await run(admin(acme) + ["federation", "add", "globex.example", "--url", globex.url, "--key", globexKey])
        #expect(added.status == 0, "\(added.error)")
        #expect(added.output.contains("pinned globex.example"))
        #expect(try await run(admin(globex) + ["federation", "add", "acme.example", "--url", acme.url, "--key", acmeKey]).status == 0)
        let listed = try await run(admin(acme) + ["federation", "list", "--json"])
        let state = try ConclaveJSON.decoder().decode(FederationState.self, from: Data(listed.output.utf8))
        #expect(state.mode == .listed)
        #expect(state.peers.map(\.domain.value) == ["globex.example"])
        #expect(try await run(admin(acme) + ["federation", "mode", "open"]).output.contains("federation mode: open"))
        #expect(try await run(admin(acme) + ["federation", "mode", "sideways"]).status != 0)
        #expect(try await run(admin(acme) + ["federation", "list"]).output.contains("federation mode: open"))

        #expect(try await run(admin(acme) + ["user", "add", "alice", "--password-file", passwordFile]).status == 0)
        #expect(try await run(admin(globex) + ["user", "add", "bob", "--password-file", passwordFile]).status == 0)
        func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await run(["--profile", root + "/" + profile] + arguments)
        }
        #expect(
            try await cli("alice", ["login", "--server", acme.url, "--user", "alice@acme.example", "--password-file", passwordFile]).status
                == 0)
        #expect(
            try await cli("bob", ["login", "--server", globex.url, "--user", "bob@globex.example", "--password-file", passwordFile]).status
                == 0)
        let sent = try await cli("alice", ["send", "bob@globex.example", "hello", "globex"])
        #expect(sent.status == 0, "\(sent.error)")
        let received = try await cli("bob", ["receive", "--wait", "5s", "--json"])
        #expect(received.status == 0, "\(received.error)")
        #expect(received.output.contains("\"text\":\"hello globex\""))
        #expect(received.output.contains("\"from\":\"alice@acme.example\""))
        #expect(try await cli("bob", ["send", "alice@acme.example", "hello", "acme"]).status == 0)
        #expect(try await cli("alice", ["receive", "--wait", "5s", "--json"]).output.contains("\"text\":\"hello acme\""))

        #expect(try await run(admin(acme) + ["federation", "remove", "globex.example"]).output.contains("removed globex.example"))
        let audit = try await run(admin(acme) + ["audit"]).output
        for action in ["federation.add", "federation.mode", "federation.remove"] { #expect(audit.contains(action)) }
    }
}
