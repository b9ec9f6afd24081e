@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Key transparency (issue 18): a rogue server or administrator against
/// real server processes, with the database in hand: a key kept out of the
/// log, a key put in the log and shown to one user only, a split view
/// shown to a witness, and a log truncated or altered.
@Suite(.serialized)
struct TransparencyTests {
    static func tamper(_ network: ProcessNetwork, _ sql: String, _ values: [SQLValue] = []) async throws {
        try await IdentityTests.tamper(network, sql, values)
    }

    static func alarms(_ events: [ClientEvent]) -> [String] {
        events.compactMap { if case .transparencyAlarm(let reason) = $0 { reason } else { nil } }
    }

    static func transparencyReason(_ error: ClientError?) -> String? {
        if case .transparency(let reason)? = error { reason } else { nil }
    }

    /// A network with alice and bob, a device each, bob's first sync done
    /// (his entry checked: no alarm). Nil without the server binary.
    static func aliceAndBob(testClock: Bool = false) async throws -> (
        network: ProcessNetwork, alice: ConclaveClient, bob: ConclaveClient, bobAddress: UserAddress
    )? {
        guard let network = try await ProcessNetwork.start(.sqlite, testClock: testClock) else { return nil }
        do {
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            #expect(Self.alarms(try await bob.receive()).isEmpty)
            return (network, alice, bob, network.address("bob"))
        } catch {
            network.stop()
            throw error
        }
    }

    /// acme (alice and bob, a device each) and globex, pinned to each other:
    /// globex has witnessed acme's log, acme's clients require one
    /// cosignature, and alice has taken acme's cosigned head and pinned
    /// globex as its witness. Nil without the server binary.
    static func witnessedAcme(testClock: Bool = false) async throws -> (
        acme: ProcessNetwork, globex: ProcessNetwork, alice: ConclaveClient
    )? {
        guard let acme = try await ProcessNetwork.start(.sqlite, domain: "acme.example", testClock: testClock) else { return nil }
        guard let globex = try await ProcessNetwork.start(.sqlite, domain: "globex.example", testClock: testClock) else {
            acme.stop()
            return nil
        }
        do {
            try await FederationProcessTests.pin(acme, globex)
            try await acme.users("alice", "bob")
            let alice = try await acme.device("alice")
            _ = try await acme.device("bob")
            let witnessed = try await globex.admin.witnessPeers()
            #expect(witnessed.map(\.network) == [acme.networkDomain] && witnessed.first?.size == 2 && witnessed.first?.problem == nil)
            #expect(try await acme.admin.setTransparencyQuorum(1).head.witnesses.map(\.witness) == [globex.networkDomain])
            _ = try await alice.safetyNumber(with: acme.address("bob"))
            let record = try await alice.transparencyRecord()
            #expect(record.quorums["acme.example"] == 1 && record.witnesses["acme.example"]?.keys.sorted() == ["globex.example"])
            return (acme, globex, alice)
        } catch {
            acme.stop()
            globex.stop()
            throw error
        }
    }

    @Test("18.1 The server serves alice an identity key for bob that is not in the log: alice refuses it")
    func keyNotInTheLog() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bobDevice = try await network.device("bob")
        let bob = network.address("bob")
        let honest = try await alice.safetyNumber(with: bob)
        let real = try await network.withDatabase { database in
            try await database.read { connection in
                try #require(try await connection.query("SELECT public_key FROM user_identities WHERE user_name = 'bob'", []).first).blob(0)
            }
        }

        let fake = UserIdentityKey.generate()
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(fake.publicKey.rawKey)])
        let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bob) }
        #expect(Self.transparencyReason(error)?.contains("is not the one acme.example's log holds") == true)
        // Nothing is sent to a device approved under a key that cannot be checked.
        let room = try await alice.createRoom(name: "board", members: [bob])
        let refused = await #expect(throws: ClientError.self) { _ = try await alice.send("the board meets at nine", to: room.id) }
        #expect(Self.transparencyReason(refused) != nil)
        // bob's own device, checking its entry at its first sync, is told the server serves another key for him.
        let bobEvents = try await bobDevice.receive()
        #expect(texts(bobEvents).isEmpty)
        #expect(Self.alarms(bobEvents).contains { $0.contains("is not the one acme.example's log holds") })

        // Served the logged key again, alice's client goes on.
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(real)])
        #expect(try await alice.safetyNumber(with: bob) == honest)
        _ = try await alice.send("the board meets at ten", to: room.id)
        #expect(try await bobDevice.receiveTexts(1) == ["the board meets at ten"])
    }

    @Test(
        "18.2 The server logs a second key for bob and shows it to alice only: bob's device finds it at its next self-check, and alice's client sees the change"
    )
    func keyShownToOneUser() async throws {
        guard let setup = try await Self.aliceAndBob(testClock: true) else { return }
        var network = setup.network
        let (alice, bob, bobAddress) = (setup.alice, setup.bob, setup.bobAddress)
        defer { network.stop() }
        // bob's first sync checked his entry: as he published it.
        #expect(try await bob.transparencyRecord().selfCheck?.problem == nil)
        let real = try await network.withDatabase { database in
            try await database.read { connection in
                try #require(try await connection.query("SELECT public_key FROM user_identities WHERE user_name = 'bob'", []).first).blob(0)
            }
        }

        // The rogue server puts a key of its own for bob in the log (it restarts: the store logs what it serves)...
        let fake = UserIdentityKey.generate()
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(fake.publicKey.rawKey)])
        try await network.restart()
        // ...which alice's client takes: it is in the log, and she never saw bob's key before. bob's device is not approved by it.
        _ = try await alice.directConversation(with: bobAddress)
        let seenByAlice = try await alice.safetyNumber(with: bobAddress)
        // ...and shows bob his own key again (logged anew) before his device looks.
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(real)])
        try await network.restart()
        #expect(seenByAlice != (try await alice.safetyNumber(with: bobAddress)))

        // Within the day, bob's device does not look again; at its next daily self-check it finds the entry.
        #expect(Self.alarms(try await bob.receive()).isEmpty)
        try await network.advanceClock(by: 25 * 3600)
        let alarms = Self.alarms(try await bob.receive())
        #expect(alarms.count == 1)
        #expect(alarms.first?.contains("names an identity key for you that is not yours") == true)
        #expect(try await bob.transparencyRecord().selfCheck?.problem?.contains("not yours") == true)

        // bob reports it; his own key is what the server serves now. alice's client sees the change when bob writes.
        let room = try await bob.createRoom(name: "report", members: [network.address("alice")])
        let events = try await alice.receive()
        #expect(events.contains { if case .identityChanged(let user) = $0 { user == bobAddress } else { false } })
        try await bob.send("it was not my key", to: room.id)
        #expect(try await alice.receiveTexts(1) == ["it was not my key"])
    }

    @Test(
        "18.3 A network that drops its quorum is refused by alice; shown two heads of one size, the witness refuses and keeps the evidence, and alice, who saw the earlier log, refuses and keeps it too"
    )
    func splitView() async throws {
        guard let setup = try await Self.witnessedAcme() else { return }
        var acme = setup.acme
        let (globex, alice) = (setup.globex, setup.alice)
        defer {
            acme.stop()
            globex.stop()
        }
        let bob = acme.address("bob")

        // The rogue server says no quorum is needed, and logs a new user's key without asking its witness.
        try await Self.tamper(acme, "UPDATE transparency_state SET quorum = 0")
        try await acme.restart()
        try await acme.users("carol")
        _ = try await acme.device("carol")
        let unwitnessed = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: acme.address("carol")) }
        #expect(Self.transparencyReason(unwitnessed)?.contains("0 of the 1 witness cosignature(s) required") == true)

        // The witness sees that log, then the server rewrites bob's entry in place: a head of the same size, another root.
        let sizeSeen = try #require(try await globex.admin.witnessPeers().first?.size)
        let fake = UserIdentityKey.generate()
        try await Self.rewriteNewestEntry(acme, of: "bob", identityKey: fake.publicKey.rawKey)
        try await Self.tamper(acme, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(fake.publicKey.rawKey)])
        try await acme.restart()

        // The witness refuses to cosign, and keeps both heads.
        let refused = try await globex.admin.witnessPeers()
        #expect(refused.first?.problem?.contains("two heads of the same size with different roots") == true)
        let status = try await globex.admin.transparency()
        #expect(status.evidence.count == 1)
        let evidence = try #require(status.evidence.first)
        let (first, second) = (try evidence.first.signed(), try evidence.second.signed())
        #expect(first.head.size == sizeSeen && second.head.size == sizeSeen && first.head.root != second.head.root)
        let wellKnown = try await RawHTTP(baseURL: acme.url).send(.GET, "/.well-known/conclave").decode(WellKnown.self)
        let acmeKey = NetworkPublicKey(domain: acme.networkDomain, rawKey: wellKnown.signingKey.bytes)
        #expect(first.isValid(for: acmeKey) && second.isValid(for: acmeKey))
        // A second round finds the same contradiction and keeps no second copy.
        _ = try await globex.admin.witnessPeers()
        #expect(try await globex.admin.transparency().evidence.count == 1)

        // alice refuses the rewritten log, which does not extend the head she accepted, and keeps the two heads.
        let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bob) }
        #expect(Self.transparencyReason(error)?.contains("does not extend one it showed before") == true)
        let kept = try await alice.transparencyRecord().evidence
        #expect(kept.count == 1 && kept.first?.network == acme.networkDomain)
    }

    @Test(
        "18.6 Where a quorum is required, a head no witness signed for over a day is refused (a server cannot keep showing an old log), and taken again once a witness signs it anew"
    )
    func staleHead() async throws {
        guard let (acme, globex, alice) = try await Self.witnessedAcme(testClock: true) else { return }
        defer {
            acme.stop()
            globex.stop()
        }
        let bob = acme.address("bob")
        let number = try await alice.safetyNumber(with: bob)

        // A day passes for acme and alice, not for the witness: whatever it signs (acme asks it again) is over a day old.
        try await acme.advanceClock(by: 25 * 3600)
        let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bob) }
        #expect(Self.transparencyReason(error)?.contains("last cosigned by its witnesses over a day ago") == true)

        // The witness's day passes too, and it signs the same head anew: alice takes it.
        try await globex.advanceClock(by: 25 * 3600)
        _ = try await globex.admin.witnessPeers()
        #expect(try await alice.safetyNumber(with: bob) == number)
        #expect(try await alice.transparencyRecord().evidence.isEmpty)
    }

    @Test(
        "18.7 A server cannot meet its quorum with a witness of its own making, not even one it showed beside the real one: alice counts only the witnesses she pinned"
    )
    func madeUpWitness() async throws {
        guard let (acme, globex, alice) = try await Self.witnessedAcme() else { return }
        defer {
            acme.stop()
            globex.stop()
        }

        // The rogue server takes a peer whose key it holds as a second "witness".
        let rogue = HostileNetwork(domain: try #require(NetworkDomain("initech.example")))
        try await rogue.servingIdentities { rogue in
            _ = try await acme.admin.addPeer(rogue.domain, url: rogue.url, keyFingerprint: rogue.fingerprint)
            let http = RawHTTP(baseURL: acme.url)
            // The made-up witness cosigns the newest head (its row written straight into the database).
            let cosignNewest = { @Sendable () async throws -> TransparencyHeadInfo in
                let head = try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self).signed().head
                let cosignature = try WitnessCosignature.sign(head, at: Date(), by: rogue.key)
                try await Self.tamper(
                    acme, "INSERT INTO transparency_cosignatures (size, witness, head, signature, cosigned_at) VALUES (?, ?, ?, ?, ?)",
                    [
                        .integer(Int64(head.size)), .text(rogue.domain.value), .blob(head.tlsSerialized),
                        .blob(cosignature.signature.bytes), .integer(Int64(cosignature.time)),
                    ])
                return try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self)
            }
            // An honest head, cosigned by the real witness and by the made-up one: alice takes it, and pins no new witness.
            try await acme.users("carol")
            _ = try await acme.device("carol")
            _ = try await globex.admin.witnessPeers()
            #expect(try await cosignNewest().witnesses.map(\.witness.value).sorted() == ["globex.example", "initech.example"])
            _ = try await alice.safetyNumber(with: acme.address("carol"))
            #expect(try await alice.transparencyRecord().witnesses["acme.example"]?.keys.sorted() == ["globex.example"])

            // Then it drops its real witness: a key only the made-up witness cosigns is refused.
            try await acme.admin.removePeer(globex.networkDomain)
            try await acme.users("dave")
            _ = try await acme.device("dave")
            #expect(try await cosignNewest().witnesses.map(\.witness) == [rogue.domain])
            let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: acme.address("dave")) }
            #expect(Self.transparencyReason(error)?.contains("0 of the 1 witness cosignature(s) required") == true)
            #expect(try await alice.transparencyRecord().witnesses["acme.example"]?.keys.sorted() == ["globex.example"])
        }
    }

    @Test("18.8 The server serves bob's older entry (same key, a proof that holds) after alice was shown a newer one: alice refuses it")
    func replayedEntry() async throws {
        guard let (network, alice, bob, bobAddress) = try await Self.aliceAndBob() else { return }
        defer { network.stop() }
        _ = try await network.device("bob", "laptop", approvedBy: bob)  // bob's second entry: the laptop approved
        _ = try await alice.safetyNumber(with: bobAddress)
        // The rogue server hides bob's newest entry from its own lookup: it serves the one before, still in the log.
        try await Self.tamper(
            network,
            "UPDATE transparency_log SET user_name = 'ghost' WHERE position = (SELECT max(position) FROM transparency_log WHERE user_name = 'bob')"
        )
        let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bobAddress) }
        #expect(Self.transparencyReason(error)?.contains("older entry") == true)
    }

    @Test(
        "18.10 The server moves bob to an index of its own making to serve an entry there: alice, who saw his index, refuses it, and bob's device finds its key under another index"
    )
    func movedIndex() async throws {
        guard let (network, alice, bob, bobAddress) = try await Self.aliceAndBob(testClock: true) else { return }
        defer { network.stop() }
        _ = try await alice.safetyNumber(with: bobAddress)
        // The rogue server appends, as bob's newest, an entry naming his key under a fresh index, version 1.
        let (size, bytes) = try await network.withDatabase { database in
            try await database.read { connection in
                let size = try #require(try await connection.query("SELECT size FROM transparency_state", []).first).integer(0)
                let row = try #require(
                    try await connection.query(
                        "SELECT entry FROM transparency_log WHERE user_name = 'bob' ORDER BY position DESC LIMIT 1", []
                    ).first)
                return (size, try row.blob(0))
            }
        }
        var moved = try TransparencyEntry(tlsSerialized: bytes)
        moved.index = (0..<32).map { _ in UInt8.random(in: 0...255) }
        moved.version = 1
        try await Self.tamper(
            network, "INSERT INTO transparency_log (position, user_name, entry) VALUES (?, 'bob', ?)",
            [.integer(size), .blob(moved.tlsSerialized)])
        try await Self.tamper(network, "UPDATE transparency_state SET size = size + 1")

        let error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bobAddress) }
        #expect(Self.transparencyReason(error)?.contains("under another index") == true)
        try await network.advanceClock(by: 25 * 3600)
        let alarms = Self.alarms(try await bob.receive())
        #expect(alarms.contains { $0.contains("under another index") }, "\(alarms)")
    }

    @Test(
        "18.9 alice's pin of bob's key is proved in the log again after a day: once the log holds another key for bob, his old key no longer passes unnoticed"
    )
    func pinProvedAgain() async throws {
        guard let setup = try await Self.aliceAndBob(testClock: true) else { return }
        var network = setup.network
        let (alice, bob, bobAddress) = (setup.alice, setup.bob, setup.bobAddress)
        defer { network.stop() }
        let room = try await alice.createRoom(name: "board", members: [bobAddress])
        _ = try await bob.receive()
        try await bob.send("first", to: room.id)
        #expect(try await alice.receiveTexts(1) == ["first"])
        let changed = { @Sendable (events: [ClientEvent]) in
            events.contains { if case .identityChanged(let user) = $0 { user == bobAddress } else { false } }
        }

        // The log now holds another key for bob (the server logged one of its own); bob's device signs with his own.
        let fake = UserIdentityKey.generate()
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(fake.publicKey.rawKey)])
        try await network.restart()
        // Within the day alice takes bob's leaf on her pin, proved in the log the day before...
        try await bob.send("second", to: room.id)
        let sameDay = try await alice.receive()
        #expect(texts(sameDay) == ["second"] && !changed(sameDay))
        // ...after it, she proves the pin again first, and is told bob's key changed.
        try await network.advanceClock(by: 25 * 3600)
        try await bob.send("third", to: room.id)
        #expect(changed(try await alice.receive()))
    }

    @Test(
        "18.4 The log truncated, or an entry altered, in the database: every client that saw the earlier head refuses; the auditor reports it"
    )
    func truncatedOrAltered() async throws {
        guard var network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob", "carol")
        let alice = try await network.device("alice")
        _ = try await network.device("bob")
        _ = try await network.device("carol")
        let bob = network.address("bob")
        _ = try await alice.safetyNumber(with: bob)  // alice saw the head of 3 entries
        var audit = TransparencyAuditState()
        let clean = try await TransparencyAuditor.audit(server: network.url, state: &audit)
        #expect(clean.problems.isEmpty && clean.entries == 3 && clean.users == 3)

        let saved = audit

        // Altered: bob's entry rewritten in place (and the key served with it); the log then grows.
        let fake = UserIdentityKey.generate()
        try await Self.rewriteNewestEntry(network, of: "bob", identityKey: fake.publicKey.rawKey)
        try await Self.tamper(network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'", [.blob(fake.publicKey.rawKey)])
        try await network.restart()
        try await network.users("dave")
        _ = try await network.device("dave")
        var error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bob) }
        #expect(Self.transparencyReason(error)?.contains("does not extend one it showed before (the consistency proof fails)") == true)
        var report = try await TransparencyAuditor.audit(server: network.url, state: &audit)
        #expect(report.entries == 4 && report.problems.contains { $0.contains("an entry was altered") })

        // Truncated: carol's and dave's entries go (and their keys, so that the server serves what its log says).
        try await Self.tamper(network, "DELETE FROM transparency_log WHERE position >= 2")
        try await Self.tamper(network, "DELETE FROM user_identities WHERE user_name IN ('carol', 'dave')")
        try await Self.tamper(network, "UPDATE transparency_state SET size = 2")
        try await network.restart()
        error = await #expect(throws: ClientError.self) { _ = try await alice.safetyNumber(with: bob) }
        #expect(Self.transparencyReason(error)?.contains("does not extend one it showed before (it has no consistency proof)") == true)
        audit = saved
        report = try await TransparencyAuditor.audit(server: network.url, state: &audit)
        #expect(report.problems.contains { $0.contains("it was truncated") })
        // What alice saw is kept on her device as evidence.
        #expect(try await alice.transparencyRecord().evidence.count == 2)
    }

    @Test("18.5 The CLI: transparency status, check and audit; admin transparency show, quorum and witness")
    func commandLine() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let passwordFile = network.root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data(network.password.utf8))
        func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(["--profile", network.root + "/cli-" + profile] + arguments)
        }
        let admin = ["admin", "--server", network.url, "--token-file", network.dataDirectory + "/admin.token"]
        for user in ["alice", "bob"] {
            let login = try await cli(
                user, ["login", "--server", network.url, "--user", "\(user)@\(network.domain)", "--password-file", passwordFile])
            #expect(login.status == 0, "\(login.error)")
        }
        #expect(try await cli("alice", ["transparency", "status"]).output.contains("no tree head accepted yet"))
        #expect(try await cli("alice", ["safety-number", "bob@\(network.domain)"]).status == 0)
        let status = try await cli("alice", ["transparency", "status"])
        #expect(status.status == 0)
        #expect(status.output.contains("acme.example: 2 entries") && status.output.contains("witnesses: none (quorum required: 0)"))
        #expect(try await cli("alice", ["transparency", "status", "--json"]).output.contains("\"quorums\""))
        #expect(status.output.contains("witnesses this device counts: none pinned yet"))
        let forget = try await cli("alice", ["transparency", "forget-witnesses", "acme.example"])
        #expect(forget.status == 0 && forget.output.contains("no witnesses were pinned for acme.example"), "\(forget.error)")
        #expect(try await cli("alice", ["transparency", "forget-witnesses", "not a domain"]).status != 0)
        let check = try await cli("bob", ["transparency", "check"])
        #expect(check.status == 0 && check.output.contains("as your devices published them"), "\(check.error)")

        let state = network.root + "/audit.json"
        let audit = try await ConclaveServerProcess.runCLI(["transparency", "audit", "--server", network.url, "--state", state])
        #expect(audit.status == 0, "\(audit.error)")
        #expect(audit.output.contains("2 entries of 2 users") && audit.output.contains("consistent with every head seen"))

        let show = try await ConclaveServerProcess.runCLI(admin + ["transparency", "show"])
        #expect(show.status == 0 && show.output.contains("head: 2 entries") && show.output.contains("quorum required: 0"))
        #expect(try await ConclaveServerProcess.runCLI(admin + ["transparency", "quorum", "17"]).status != 0)
        #expect(try await ConclaveServerProcess.runCLI(admin + ["transparency", "quorum", "1"]).output.contains("quorum required: 1"))
        #expect(try await ConclaveServerProcess.runCLI(admin + ["transparency", "witness"]).status == 0)

        // A key the log does not hold: bob's own device raises the alarm (exit 3), and the auditor still finds the log consistent.
        try await Self.tamper(
            network, "UPDATE user_identities SET public_key = ? WHERE user_name = 'bob'",
            [.blob(UserIdentityKey.generate().publicKey.rawKey)])
        #expect(try await ConclaveServerProcess.runCLI(admin + ["transparency", "quorum", "0"]).status == 0)
        let alarm = try await cli("bob", ["receive"])
        #expect(alarm.output.contains("key transparency"), "\(alarm.output) \(alarm.error)")
        #expect(try await cli("bob", ["transparency", "check"]).status == 3)
        #expect(try await ConclaveServerProcess.runCLI(["transparency", "audit", "--server", network.url, "--state", state]).status == 0)
    }

    /// Replaces a user's newest entry in place with one naming another key
    /// (the index and version kept), as someone with the database could.
    static func rewriteNewestEntry(_ network: ProcessNetwork, of user: String, identityKey: [UInt8]) async throws {
        let (position, bytes) = try await network.withDatabase { database in
            try await database.read { connection in
                let row = try #require(
                    try await connection.query(
                        "SELECT position, entry FROM transparency_log WHERE user_name = ? ORDER BY position DESC LIMIT 1", [.text(user)]
                    ).first)
                return (try row.integer(0), try row.blob(1))
            }
        }
        var entry = try TransparencyEntry(tlsSerialized: bytes)
        entry.identityKey = identityKey
        try await Self.tamper(
            network, "UPDATE transparency_log SET entry = ? WHERE position = ?", [.blob(entry.tlsSerialized), .integer(position)])
    }
}
