@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Users vouch for their own devices (issue 12): attacks by a rogue
/// administrator or server against real server processes, using the admin
/// API, the database, and modified clients.
@Suite(.serialized)
struct IdentityTests {
    static func tamper(_ network: ProcessNetwork, _ sql: String, _ values: [SQLValue] = []) async throws {
        try await network.withDatabase { database in
            try await database.transaction { connection in try await connection.execute(sql, values) }
        }
    }

    static func has(_ events: [ClientEvent], _ match: (ClientEvent) -> Bool) -> Bool { events.contains(where: match) }

    @Test("12.1 A rogue administrator signs a device in as bob: it stays pending, and joining anyway gets it removed before alice writes")
    func rogueAdministratorsDevice() async throws {
        guard var network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let room = try await alice.createRoom(name: "board", members: [network.address("bob")])
        _ = try await bob.receive()

        // The administrator sets a password of their own (audited) and signs in a device as bob.
        let bobName = try #require(UserName("bob"))
        _ = try await network.admin.updateUser(bobName, UserChange(password: "the administrator's own"))
        #expect(try await network.admin.audit().contains { $0.action == "user.password_reset" && $0.target == "user:bob" })
        let rogue = try await network.profile("bob", "rogue")
        try await rogue.login(server: network.url, user: "bob@\(network.domain)", password: "the administrator's own", deviceName: "rogue")
        #expect(await rogue.isPending)
        #expect(try await rogue.conversations().isEmpty)
        // bob is told.
        #expect(Self.has(try await bob.receive()) { if case .ownDevice(_, .signedIn) = $0 { true } else { false } })
        // The server keeps a pending device out: it may not join by external commit.
        await #expect(throws: ClientError.self) { _ = try await rogue.joinIgnoringApprovalForTesting() }

        // A rogue server goes further: it marks the device approved, and the modified client joins anyway.
        try await Self.tamper(network, "UPDATE devices SET pending = 0 WHERE name = 'rogue'")
        try await network.restart()  // the rogue server serves what it wrote (its caches start empty)
        _ = try await rogue.joinIgnoringApprovalForTesting()
        #expect(try await rogue.conversations().map(\.id) == [room.id])
        try await alice.send("the board meets at nine", to: room.id)
        // alice's client removed the unapproved device first, and said so; the rogue device reads nothing.
        let aliceEvents = try await alice.receive()
        let rogueDevice = try #require(await rogue.device)
        #expect(
            Self.has(aliceEvents) { if case .untrustedDevice(room.id, let device) = $0 { device.device == rogueDevice } else { false } })
        #expect(messages(try await rogue.receive()).isEmpty)
        let bobEvents = try await bob.receive()
        #expect(texts(bobEvents) == ["the board meets at nine"])
        #expect(Self.has(bobEvents) { if case .untrustedDevice(room.id, _) = $0 { true } else { false } })
        try await bob.send("and bob's answer", to: room.id)
        #expect(messages(try await rogue.receive()).isEmpty)
        #expect(texts(try await alice.receive()) == ["and bob's answer"])
    }

    @Test("12.2 The server substitutes the new device's key during approval: no device matches the code, nothing is signed")
    func substitutedKeyDuringApproval() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("bob")
        let bob = try await network.device("bob")
        let laptop = try await network.device("bob", "laptop")
        let code = try #require(await laptop.approvalCode)
        // The server hands the approving device a transfer key of its own.
        let attacker = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519).generateHPKEKeyPair(random: SystemRandom())
        try await Self.tamper(
            network, "UPDATE devices SET transfer_key = ? WHERE name = 'laptop'", [.blob(attacker.publicKey.bytes)])
        await #expect(throws: ClientError.self) { try await bob.approveDevice(code: code) }
        try await laptop.sync()
        #expect(await laptop.isPending)
        let approval = try await network.withDatabase { database in
            try await database.read { connection in
                try await connection.query("SELECT approval, sealed_identity FROM devices WHERE name = 'laptop'", []).first
            }
        }
        #expect(approval?.values == [.null, .null])
        // With the real key back, the same code approves it.
        let laptopKey = try #require(await laptop.transferKeyForTesting)
        try await Self.tamper(network, "UPDATE devices SET transfer_key = ? WHERE name = 'laptop'", [.blob(laptopKey)])
        try await bob.approveDevice(code: code)
        try await laptop.sync()
        #expect(await !laptop.isPending)
    }

    @Test("12.3 The server serves another identity key for bob: alice is told; once she verified bob, she refuses to send")
    func substitutedIdentityKey() async throws {
        guard var network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob", "carol")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let carol = try await network.device("carol")
        let direct = try await alice.directConversation(with: network.address("bob"))
        let other = try await alice.directConversation(with: network.address("carol"))
        try await bob.send("hi alice", to: direct.id)
        #expect(texts(try await alice.receive()) == ["hi alice"])
        // alice verifies bob's safety number with him; carol she never verifies.
        let number = try await bob.safetyNumber(with: network.address("alice"))
        #expect(try await alice.safetyNumber(with: network.address("bob")) == number)
        try await alice.verify(network.address("bob"), safetyNumber: number)
        await #expect(throws: ClientError.self) {
            try await alice.verify(network.address("carol"), safetyNumber: String(repeating: "12345 ", count: 12))
        }

        // The rogue server makes identity keys of its own for bob and carol and a device of each, approved by them.
        for (name, conversation) in [("bob", direct), ("carol", other)] {
            let fake = UserIdentityKey.generate()
            try await Self.tamper(
                network, "UPDATE user_identities SET public_key = ? WHERE user_name = ?", [.blob(fake.publicKey.rawKey), .text(name)])
            _ = try await network.admin.updateUser(try #require(UserName(name)), UserChange(password: "the server's own"))
            let impostor = try await network.profile(name, "impostor")
            try await impostor.login(server: network.url, user: "\(name)@\(network.domain)", password: "the server's own", deviceName: "x")
            try await Self.tamper(network, "UPDATE devices SET pending = 0 WHERE name = 'x'")
            try await impostor.adoptIdentityForTesting(fake)
            _ = try await impostor.joinIgnoringApprovalForTesting()
            #expect(try await impostor.conversations().map(\.id) == [conversation.id])
        }
        // It logs its keys (at start, the server logs what its database holds): keys not in the log are refused (18.1).
        try await network.restart()
        // carol (not verified): alice is told her identity changed (trust on first use cannot tell more).
        try await alice.send("to carol", to: other.id)
        #expect(
            Self.has(try await alice.receive()) {
                if case .identityChanged(let user) = $0 { user == network.address("carol") } else { false }
            })
        // bob (verified): nothing is sent until alice verifies again.
        let error = await #expect(throws: ClientError.self) { try await alice.send("to bob", to: direct.id) }
        guard case .identityChanged(let user)? = error else {
            Issue.record("expected identityChanged, got \(String(describing: error))")
            return
        }
        #expect(user == network.address("bob"))
        #expect(error?.description.contains("safety-number") == true)
        _ = carol
    }

    @Test("12.4 The CLI: login prints the approval code, device approve and list, safety-number and verify")
    func commandLine() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let passwordFile = network.root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data(network.password.utf8))
        func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(["--profile", network.root + "/cli-" + profile] + arguments)
        }
        func login(_ profile: String, _ user: String, json: Bool = false) async throws -> (status: Int32, output: String, error: String) {
            try await cli(
                profile,
                ["login", "--server", network.url, "--user", "\(user)@\(network.domain)", "--password-file", passwordFile]
                    + (json ? ["--json"] : []))
        }
        #expect(try await login("alice", "alice").status == 0)
        #expect(try await login("phone", "bob").status == 0)
        let pending = try await login("laptop", "bob", json: true)
        #expect(pending.status == 0, "\(pending.error)")
        let line = try JSONSerialization.jsonObject(with: Data((pending.output.split(separator: "\n").first ?? "").utf8)) as? [String: Any]
        #expect(line?["pending"] as? Bool == true)
        let code = try #require(line?["approval_code"] as? String)
        #expect(line?["device"] is String)
        let listed = try await cli("phone", ["device", "list", "--json"])
        #expect(listed.output.split(separator: "\n").count == 2)
        #expect(listed.output.contains("\"pending\":true"))
        #expect(try await cli("phone", ["device", "approve", "AAAAA-AAAAA-AAAAA-AAAAA"]).status != 0)
        let approved = try await cli("phone", ["device", "approve", code.lowercased()])
        #expect(approved.status == 0, "\(approved.error)")
        let told = try await cli("laptop", ["receive", "--json"])
        #expect(told.output.contains("\"type\":\"approved\""))

        let aliceNumber = try await cli("alice", ["safety-number", "bob@\(network.domain)"])
        let bobNumber = try await cli("laptop", ["safety-number", "alice@\(network.domain)"])
        #expect(aliceNumber.status == 0)
        #expect(aliceNumber.output == bobNumber.output)
        let digits = aliceNumber.output.filter(\.isWholeNumber)
        #expect(digits.count == 60)
        #expect(try await cli("alice", ["verify", "bob@\(network.domain)", String(digits.reversed())]).status != 0)
        #expect(
            try await cli("alice", ["verify", "bob@\(network.domain)"] + aliceNumber.output.split(separator: " ").map(String.init)).status
                == 0)
        #expect(try await cli("alice", ["safety-number", "bob@\(network.domain)"]).output.contains("(verified)"))
    }
}
