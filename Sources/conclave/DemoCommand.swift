import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveSupport
import Foundation
import Logging

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a network in-process on a temporary directory and show it working.",
        discussion: """
            Provisions alice, bob and carol on demo.example and shows, with a transcript: a 1:1 conversation, a room, a file, \
            offline delivery, a second device of bob joining his conversations, a security group that walls off \
            contractors (a refusal, a removal applied at once, the audit log), a conversation with a user of a second, \
            federated network (globex.example), and that the server holds no plaintext. \
            Exits non-zero if any step fails.
            """)

    @Option(name: .long, help: "Keep the demo's files here instead of a temporary directory.") var directory: String?

    func run() async throws {
        let root = directory ?? NSTemporaryDirectory() + "conclave-demo-\(UUID().uuidString.prefix(8))"
        guard let port = LoopbackPort.free() else { throw ValidationError("no free port on 127.0.0.1") }
        let logger = {
            var logger = Logger(label: "conclave.demo")
            logger.logLevel = .warning
            return logger
        }()
        let network = NetworkDomain("demo.example")!  // a literal, valid domain
        guard let peerPort = LoopbackPort.free(), let peerNetwork = NetworkDomain("globex.example") else {
            throw ValidationError("no free port on 127.0.0.1")
        }
        print("== starting networks demo.example (127.0.0.1:\(port)) and globex.example (127.0.0.1:\(peerPort)) in \(root)")
        let hasher = PasswordHasher(rounds: 1 << 14)
        let failures = try await withLocalNetwork(
            directory: root + "/server", network: network, port: port, passwordHasher: hasher, logger: logger
        ) { url, token in
            try await withLocalNetwork(
                directory: root + "/globex", network: peerNetwork, port: peerPort, passwordHasher: hasher, logger: logger
            ) { peerURL, peerToken in
                try await DemoScenario(root: root, url: url, adminToken: token, peerURL: peerURL, peerAdminToken: peerToken).run()
            }
        }
        if failures > 0 {
            print("== \(failures) step(s) FAILED")
            throw ExitCode.failure
        }
        print("== every step passed")
    }
}

/// The demo's script, step by step; every step checks what it shows.
struct DemoScenario {
    let root: String
    let url: String
    let adminToken: String
    /// A second network, globex.example, for the federation step.
    let peerURL: String
    let peerAdminToken: String

    final class Tally: @unchecked Sendable {  // used from one task at a time, in order
        var failures = 0
    }

    func check(_ condition: Bool, _ text: String, _ tally: Tally) {
        print(condition ? "   ok   \(text)" : "   FAIL \(text)")
        if !condition { tally.failures += 1 }
    }

    func messages(_ events: [ClientEvent]) -> [ReceivedMessage] {
        events.compactMap { if case .message(let message) = $0 { message } else { nil } }
    }

    /// Receives until `count` messages arrived (up to 10 s): messages to
    /// another network arrive through the host's outbox.
    func receive(_ client: ConclaveClient, count: Int) async throws -> [ReceivedMessage] {
        var received: [ReceivedMessage] = []
        for _ in 0..<50 where received.count < count {
            received += messages(try await client.receive())
            if received.count < count { try await Task.sleep(for: .milliseconds(200)) }
        }
        return received
    }

    func run() async throws -> Int {
        let tally = Tally()
        let admin = AdminClient(server: url, token: adminToken)
        let password = "correct horse battery staple"
        print("== administrator provisions alice, bob and carol")
        for name in ["alice", "bob", "carol"] {
            guard let user = UserName(name) else { continue }
            let created = try await admin.addUser(user, password: password, group: nil)
            print("   admin: created \(created.address)")
        }
        func device(_ name: String, _ deviceName: String) async throws -> ConclaveClient {
            let client = try await ConclaveClient.open(profile: root + "/profiles/\(name)-\(deviceName)")
            try await client.login(server: url, user: "\(name)@demo.example", password: password, deviceName: deviceName)
            print("   \(name) signed in on \(deviceName) (device \(await client.device?.description ?? "?"))")
            return client
        }
        let alice = try await device("alice", "phone")
        let bob = try await device("bob", "phone")
        let carol = try await device("carol", "phone")
        guard let bobAddress = UserAddress("bob@demo.example"), let carolAddress = UserAddress("carol@demo.example") else { return 1 }

        print("== 1:1: alice writes to bob")
        let direct = try await alice.directConversation(with: bobAddress)
        try await alice.send("Hi Bob, lunch at noon?", to: direct.id)
        print("   alice → bob: Hi Bob, lunch at noon?")
        let bobInbox = messages(try await bob.receive())
        for message in bobInbox { print("   bob received from \(message.from): \(message.text)") }
        check(bobInbox.map(\.text) == ["Hi Bob, lunch at noon?"], "bob decrypted exactly alice's message", tally)
        try await bob.send("Noon works.", to: direct.id)
        check(messages(try await alice.receive()).map(\.text) == ["Noon works."], "alice decrypted bob's reply", tally)

        print("== room: alice creates #launch with bob and carol")
        let room = try await alice.createRoom(name: "launch", members: [bobAddress, carolAddress])
        print("   room \(room.id) members: \(room.members.map(\.description).joined(separator: ", "))")
        check(room.isPostQuantum, "#launch is hybrid post-quantum (MLS suite 0x004D, X-Wing), as every device supports it", tally)
        try await alice.send("Launch is on Thursday.", to: room.id)
        check(messages(try await bob.receive()).map(\.text) == ["Launch is on Thursday."], "bob read the room message", tally)
        check(messages(try await carol.receive()).map(\.text) == ["Launch is on Thursday."], "carol read the room message", tally)

        print("== offline delivery: carol is away while bob writes three messages")
        for text in ["Slides are ready.", "Demo at 3pm.", "Bring coffee."] { try await bob.send(text, to: room.id) }
        let carolBack = messages(try await carol.receive())
        for message in carolBack { print("   carol (back online) received from \(message.from): \(message.text)") }
        check(
            carolBack.map(\.text) == ["Slides are ready.", "Demo at 3pm.", "Bring coffee."], "carol got all three, in order, once", tally)
        check(messages(try await carol.receive()).isEmpty, "nothing is delivered twice", tally)
        _ = try await alice.receive()

        print("== files: bob shares the launch plan in #launch, encrypted on his device")
        let plan = root + "/launch-plan.txt"
        let planText = "Launch plan: doors open at 9, keynote at 10.\n" + String(repeating: "agenda line\n", count: 10_000)
        try Data(planText.utf8).write(to: URL(fileURLWithPath: plan))
        let shared = try await bob.sendFile(at: plan, caption: "the plan", to: room.id)
        print("   bob → #launch: \(shared.file.name) (\(shared.file.size) bytes), sealed with a key of its own")
        var saved: [String] = []
        for (name, client) in [("alice", alice), ("carol", carol)] {
            for message in messages(try await client.receive()) {
                guard let file = message.file else { continue }
                let path = try await client.saveFile(file, in: room.id, to: root + "/downloads-\(name)")
                print("   \(name) saved \(path)")
                saved.append(path)
            }
        }
        check(
            saved.count == 2 && saved.allSatisfy { FileManager.default.contents(atPath: $0) == Data(planText.utf8) },
            "alice and carol decrypted the file and checked its size and SHA-256", tally)

        print("== second device: bob signs in on his laptop, and approves it from his phone")
        let laptop = try await device("bob", "laptop")
        let code = await laptop.approvalCode
        print("   the laptop waits for approval; it shows the code \(code ?? "?")")
        let waiting = try await laptop.conversations()
        check(code != nil && waiting.isEmpty, "a device bob has not approved is in no conversation", tally)
        let told = try await bob.receive()
        check(
            told.contains { if case .ownDevice(_, .signedIn) = $0 { true } else { false } }, "bob's phone is told a device signed in",
            tally)
        try await bob.approveDevice(code: code ?? "")
        print("   bob types the code on his phone: conclave device approve \(code ?? "?")")
        try await laptop.sync()
        let joined = try await laptop.conversations()
        print("   bob's laptop joined: \(joined.map(\.title).joined(separator: ", "))")
        check(Set(joined.map(\.id)) == [direct.id, room.id], "the laptop joined both of bob's conversations", tally)
        let aliceView = try await alice.receive()
        let roomDevices = try await alice.conversations().first { $0.id == room.id }
        check(
            aliceView.contains { if case .membersChanged = $0 { true } else { false } }, "alice saw bob's new device join as a new leaf",
            tally)
        _ = roomDevices
        try await alice.send("Welcome to the laptop, Bob.", to: room.id)
        check(
            messages(try await laptop.receive()).map(\.text) == ["Welcome to the laptop, Bob."], "bob's laptop reads new room messages",
            tally)
        check(messages(try await bob.receive()).map(\.text) == ["Welcome to the laptop, Bob."], "bob's phone still reads them too", tally)
        _ = try await carol.receive()

        print("== safety numbers: alice and bob compare theirs, in person")
        guard let aliceAddress = UserAddress("alice@demo.example") else { return 1 }
        let aliceSees = try await alice.safetyNumber(with: bobAddress)
        let bobSees = try await laptop.safetyNumber(with: aliceAddress)
        print("   alice sees: \(aliceSees)")
        print("   bob's laptop sees: \(bobSees)")
        check(aliceSees == bobSees, "both see the same 60 digits", tally)
        try await alice.verify(bobAddress, safetyNumber: bobSees)
        check(try await alice.isVerified(bobAddress), "alice marked bob verified", tally)

        print("== policy: the administrator walls off contractors")
        guard let contractors = SecurityGroupName("contractors"), let dave = UserName("dave"), let carolName = UserName("carol") else {
            return 1
        }
        _ = try await admin.addGroup(
            contractors,
            SecurityGroupChange(mayMessage: .only([]), messageLifetimeMax: 86_400, messageLifetimeDefault: 3600, burnOnReadMax: 0))
        _ = try await admin.addUser(dave, password: password, group: contractors.value)
        print("   admin: group contractors (may message only each other; messages expire within 1d), with dave")
        do {
            _ = try await alice.directConversation(with: UserAddress(name: dave, domain: bobAddress.domain))
            check(false, "alice may not start a conversation with dave", tally)
        } catch let error as ClientError {
            print("   alice → dave: \(error)")
            check(error.description.contains("may-message"), "alice may not start a conversation with dave", tally)
        }
        _ = try await admin.setGroup(of: carolName, to: contractors)
        print("   admin: carol moves to contractors; the server proposes removing her from #launch")
        _ = try await alice.receive()
        let launch = try await alice.conversations().first { $0.id == room.id }
        print("   #launch members now: \(launch?.members.map(\.description).joined(separator: ", ") ?? "?")")
        check(launch?.members.contains(carolAddress) == false, "alice's client committed carol's removal by itself", tally)
        check(
            (try await carol.receive()).contains { if case .removed(room.id, _) = $0 { true } else { false } },
            "carol's device saw it was removed and dropped the room's keys", tally)
        let (audit, fingerprint) = try await admin.verifyAudit()
        print("   audit log: \(audit.entries) entries, head \(audit.head.prefix(16))…, signed by \(fingerprint.prefix(23))…")
        // 6 administrator actions, 3 identity keys published by first devices, 1 device approval.
        check(audit.isIntact && audit.entries == 10, "the audit log holds every admin action and approval, chained and signed", tally)
        _ = try await bob.receive()
        _ = try await laptop.receive()

        print("== federation: demo.example and globex.example pin each other's keys")
        let peerAdmin = AdminClient(server: peerURL, token: peerAdminToken)
        let (ours, theirs) = (try await admin.network(), try await peerAdmin.network())
        _ = try await admin.addPeer(theirs.domain, url: peerURL, keyFingerprint: theirs.keyFingerprint)
        _ = try await peerAdmin.addPeer(ours.domain, url: url, keyFingerprint: ours.keyFingerprint)
        print("   demo.example pinned globex.example (\(theirs.keyFingerprint.prefix(23))…), and the other way round")
        guard let erinName = UserName("erin") else { return 1 }
        _ = try await peerAdmin.addUser(erinName, password: password, group: nil)
        let erin = try await ConclaveClient.open(profile: root + "/profiles/erin-phone")
        try await erin.login(server: peerURL, user: "erin@globex.example", password: password, deviceName: "phone")
        print("   erin signed in on globex.example")
        let erinAddress = UserAddress(name: erinName, domain: theirs.domain)
        let across = try await alice.directConversation(with: erinAddress)
        try await alice.send("Hello Erin, from demo.example.", to: across.id)
        print("   alice@demo.example → erin@globex.example: Hello Erin, from demo.example.")
        let erinGot = try await receive(erin, count: 1)
        for message in erinGot { print("   erin received from \(message.from): \(message.text)") }
        check(erinGot.map(\.text) == ["Hello Erin, from demo.example."], "erin, on another network, decrypted alice's message", tally)
        try await erin.send("Hi Alice, from globex.", to: across.id)
        check(
            try await receive(alice, count: 1).map(\.text) == ["Hi Alice, from globex."], "alice read erin's answer, relayed by globex",
            tally)

        print("== the servers store ciphertext only")
        var stored = Data()
        for database in [root + "/server/conclave.sqlite", root + "/globex/conclave.sqlite"] {
            for suffix in ["", "-wal"] { stored.append(FileManager.default.contents(atPath: database + suffix) ?? Data()) }
        }
        for directory in [root + "/server/blobs", root + "/globex/blobs"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                stored.append(FileManager.default.contents(atPath: directory + "/" + name) ?? Data())
            }
        }
        let plaintexts = [
            "Hi Bob, lunch at noon?", "Launch is on Thursday.", "Bring coffee.", "Welcome to the laptop, Bob.",
            "Hello Erin, from demo.example.", "Hi Alice, from globex.", "Launch plan: doors open", "launch-plan.txt",
        ]
        check(
            !plaintexts.contains { stored.range(of: Data($0.utf8)) != nil },
            "no message text, file content or file name in either network's database or file store", tally)

        for client in [alice, bob, carol, laptop, erin] { await client.close() }
        return tally.failures
    }
}
