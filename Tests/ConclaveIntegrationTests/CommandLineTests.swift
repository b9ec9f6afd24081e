@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// The CLI, as people and scripts use it, against a real server process.
@Suite(.serialized)
struct CommandLineTests {
    @Test("server init, admin, login, send, room, receive --json")
    func cli() async throws {
        let root = TestDirectories.reserve("conclave-cli-")
        let data = root + "/server"
        let token = try await ConclaveServerProcess.initialise(directory: data, network: "acme.example")
        #expect(!token.isEmpty)
        let attributes = try FileManager.default.attributesOfItem(atPath: data + "/admin.token")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // A second init refuses the directory.
        let again = try await ConclaveServerProcess.runCLI(["server", "init", "--data", data, "--network", "acme.example"])
        #expect(again.status != 0)
        #expect(again.error.contains("already initialised"))

        let server = try await ConclaveServerProcess.start(directory: data)
        defer { server.stop() }
        let passwordFile = root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data("s3cret-passw0rd\n".utf8))
        let admin = ["admin", "--server", server.url, "--token-file", data + "/admin.token"]
        for name in ["alice", "bob", "carol"] {
            let added = try await ConclaveServerProcess.runCLI(admin + ["user", "add", name, "--password-file", passwordFile])
            #expect(added.status == 0, "\(added.error)")
        }
        let listed = try await ConclaveServerProcess.runCLI(admin + ["user", "list", "--json"])
        let users = listed.output.split(separator: "\n").compactMap {
            try? ConclaveJSON.decoder().decode(UserInfo.self, from: Data($0.utf8))
        }
        #expect(users.map(\.name.value) == ["alice", "bob", "carol"])
        let shown = try await ConclaveServerProcess.runCLI(admin + ["network", "show", "--json"])
        #expect(shown.output.contains("\"key_fingerprint\":\"sha256:"))

        func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(["--profile", root + "/" + profile] + arguments)
        }
        for name in ["alice", "bob", "carol"] {
            let login = try await cli(
                name, ["login", "--server", server.url, "--user", "\(name)@acme.example", "--password-file", passwordFile])
            #expect(login.status == 0, "\(login.error)")
        }
        #expect(try await cli("alice", ["send", "bob@acme.example", "hello", "from", "the", "cli"]).status == 0)
        let created = try await cli("alice", ["room", "create", "builders", "--members", "bob@acme.example"])
        #expect(created.status == 0, "\(created.error)")
        let roomID = created.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(ConversationID(roomID) != nil)
        #expect(try await cli("alice", ["send", "--room", "builders", "room", "text"]).status == 0)
        let received = try await cli("bob", ["receive", "--json"])
        #expect(received.status == 0, "\(received.error)")
        let events = received.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        // Every line is JSON with a type: bob joined the 1:1 and the room, then the messages.
        #expect(events.count == received.output.split(separator: "\n").count)
        #expect(events.compactMap { $0["type"] as? String } == ["joined", "message", "joined", "message"])
        let lines = events.filter { $0["type"] as? String == "message" }
        #expect(lines.compactMap { $0["text"] as? String } == ["hello from the cli", "room text"])
        for line in lines {
            for key in ["id", "conversation", "room", "from", "device", "text", "sent_at", "expires_at", "burn_on_read"] {
                #expect(line.keys.contains(key), "receive --json lacks \(key)")
            }
            #expect(line["from"] as? String == "alice@acme.example")
        }
        #expect(lines.last?["conversation"] as? String == roomID)
        let rooms = try await cli("bob", ["room", "list", "--json"])
        #expect(rooms.output.contains("builders"))

        // Membership from the CLI, and interactive chat fed from standard input.
        #expect(try await cli("alice", ["room", "add", "builders", "carol@acme.example"]).status == 0)
        let chat = try await ConclaveServerProcess.runCLI(
            ["--profile", root + "/carol", "chat", "builders"], input: "typed in chat\n/quit\n")
        #expect(chat.status == 0, "\(chat.error)")
        let waited = try await cli("bob", ["receive", "--wait", "1s", "--json"])
        #expect(waited.status == 0, "\(waited.error)")
        #expect(waited.output.contains("\"text\":\"typed in chat\""))
        #expect(try await cli("alice", ["room", "remove", "builders", "carol@acme.example"]).status == 0)
        #expect(try await cli("bob", ["room", "leave", "builders"]).status == 0)
        #expect(!(try await cli("bob", ["room", "list"]).output.contains("builders")))
        // Errors are clear and exit non-zero.
        let unknown = try await cli("bob", ["send", "--room", "no-such-room", "x"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("no conversation matches"))
        // SIGTERM: a graceful shutdown, exit status 0.
        server.stop()
        #expect(server.stoppedGracefully)
        #expect(server.exitStatus == 0)
    }

    @Test("admin group/user set/audit and room set, with clear refusals")
    func policyCommands() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let root = network.root
            let passwordFile = root + "/password"
            _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((network.password + "\n").utf8))
            let admin = ["admin", "--server", network.url, "--token-file", network.dataDirectory + "/admin.token"]
            func run(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
                try await ConclaveServerProcess.runCLI(arguments)
            }
            let added = try await run(
                admin + [
                    "group", "add", "contractors", "--may-message", "ops", "--ttl-max", "7d", "--ttl-default", "1d", "--bor-max", "off",
                    "--files", "off", "--max-file-size", "10M",
                ])
            #expect(added.status != 0)
            #expect(added.error.contains("may-message names security group ops"))
            #expect(try await run(admin + ["group", "add", "ops"]).status == 0)
            let created = try await run(
                admin + [
                    "group", "add", "contractors", "--may-message", "ops", "--ttl-max", "7d", "--ttl-default", "1d", "--bor-max", "off",
                    "--files", "off", "--max-file-size", "10M",
                ])
            #expect(created.status == 0, "\(created.error)")
            #expect(created.output.contains("message lifetime: min none, max 7d, default 1d"))
            #expect(created.output.contains("burn-on-read: off"))
            let invalid = try await run(admin + ["group", "add", "odd", "--ttl-min", "2d", "--ttl-max", "1d"])
            #expect(invalid.status != 0)
            #expect(invalid.error.contains("invalid_policy"))
            #expect(try await run(admin + ["group", "add", "odd", "--ttl-max", "forever"]).error.contains("--ttl-max takes a duration"))
            #expect(try await run(admin + ["group", "set", "ops", "--may-message", "ops,contractors"]).status == 0)
            let listed = try await run(admin + ["group", "list", "--json"])
            let groups = listed.output.split(separator: "\n").compactMap {
                try? ConclaveJSON.decoder().decode(SecurityGroupInfo.self, from: Data($0.utf8))
            }
            #expect(groups.map(\.policy.name.value) == ["contractors", "default", "ops"])
            let contractors = try #require(groups.first)
            #expect(contractors.policy.files == false)
            #expect(contractors.policy.maxFileSize == 10 << 20)
            #expect(contractors.policy.messageLifetimeMax == 604_800)
            for (name, group) in [("alice", "ops"), ("bob", "default"), ("carl", "contractors")] {
                let user = try await run(admin + ["user", "add", name, "--group", group, "--password-file", passwordFile])
                #expect(user.status == 0, "\(user.error)")
            }
            let unknown = try await run(admin + ["user", "add", "dan", "--group", "nope", "--password-file", passwordFile])
            #expect(unknown.error.contains("security group nope does not exist"))
            func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
                try await run(["--profile", root + "/" + profile] + arguments)
            }
            for name in ["alice", "bob", "carl"] {
                let login = try await cli(
                    name, ["login", "--server", network.url, "--user", "\(name)@acme.example", "--password-file", passwordFile])
                #expect(login.status == 0, "\(login.error)")
            }
            // Segmentation: bob (default) may not talk to carl (contractors).
            let refused = try await cli("bob", ["send", "carl@acme.example", "hello"])
            #expect(refused.status != 0)
            #expect(refused.error.contains("may-message"))
            // A room with a contractor gets the contractors' default lifetime; room set stays within policy.
            let room = try await cli("alice", ["room", "create", "delivery", "--members", "carl@acme.example"])
            #expect(room.status == 0, "\(room.error)")
            #expect(room.output.contains("messages expire after 1d"))
            let tooLong = try await cli("alice", ["room", "set", "delivery", "--ttl", "30d"])
            #expect(tooLong.status != 0)
            #expect(tooLong.error.contains("messages must expire within 7d"))
            let changed = try await cli("alice", ["room", "set", "delivery", "--ttl", "2h"])
            #expect(changed.status == 0, "\(changed.error)")
            #expect(changed.output.contains("messages expire after 2h"))
            let rooms = try await cli("carl", ["room", "list", "--json"])
            #expect(rooms.output.contains("\"message_lifetime\":7200"))
            // Cipher suites: the room is hybrid post-quantum (the default policy). Under a classical policy a new room
            // is suite 1 and may not move; once allowed, `room set --cipher-suite pq` moves it and carl follows.
            #expect(rooms.output.contains("\"post_quantum\":true"))
            let classical = try await run(admin + ["group", "set", "contractors", "--cipher-suites", "classical"])
            #expect(classical.output.contains("cipher suites: classical"), "\(classical.error)")
            let typo = try await run(admin + ["group", "set", "contractors", "--cipher-suites", "quantum"])
            #expect(typo.error.contains("--cipher-suites takes classical, pq-preferred or pq-required"))
            #expect(try await cli("alice", ["room", "create", "legacy", "--members", "carl@acme.example"]).status == 0)
            #expect(try await cli("alice", ["room", "list"]).output.contains("classical (0x0001)"))
            let forbidden = try await cli("alice", ["room", "set", "legacy", "--cipher-suite", "pq"])
            #expect(forbidden.status != 0)
            #expect(forbidden.error.contains("cipher-suite policy"), "\(forbidden.error)")
            #expect(try await run(admin + ["group", "set", "contractors", "--cipher-suites", "pq-preferred"]).status == 0)
            let moved = try await cli("alice", ["room", "set", "legacy", "--cipher-suite", "pq"])
            #expect(moved.status == 0, "\(moved.error)")
            #expect(moved.output.contains("legacy: post-quantum (0x004D)"))
            let followed = try await cli("carl", ["receive", "--json"])
            #expect(followed.output.contains("\"type\":\"cipher_suite\""), "\(followed.output)")
            #expect(followed.output.contains("\"cipher_suite\":77"))
            // Moving alice out of ops takes her out of the room with carl at once.
            #expect(try await run(admin + ["user", "set", "alice", "--group", "default"]).output.contains("is in security group default"))
            #expect(try await run(admin + ["group", "delete", "contractors"]).error.contains("account(s) are in this security group"))
            #expect(!(try await cli("carl", ["room", "list"]).output.contains("alice@acme.example")))

            // The audit log, and its verification before and after someone edits the database.
            let audit = try await run(admin + ["audit"])
            #expect(audit.output.contains("group.create\tgroup:ops"))
            #expect(audit.output.contains("user.update\tuser:alice"))
            // 9 administrator actions, and the identity keys the three users' first devices published.
            #expect(audit.output.contains("user.identity\tuser:carl"))
            #expect(try await run(admin + ["audit", "--since", "1h", "--json"]).output.split(separator: "\n").count == 12)
            let verified = try await run(admin + ["audit", "--verify"])
            #expect(verified.status == 0)
            #expect(verified.output.contains("audit log intact: 12 entries"))
            try await network.store.database.transaction { connection in
                try await connection.execute("UPDATE audit_log SET target = 'user:mallory' WHERE seq = 4")
            }
            let broken = try await run(admin + ["audit", "--verify"])
            #expect(broken.status == 1)
            #expect(broken.output.contains("audit log BROKEN at entry 4"))
        }
    }

    @Test("conclave demo, the README's main command, passes every step")
    func demo() async throws {
        let directory = TestDirectories.reserve("conclave-demo-test-")
        let result = try await ConclaveServerProcess.runCLI(["demo", "--directory", directory])
        #expect(result.status == 0, "\(result.output.suffix(2000))\n\(result.error.suffix(2000))")
        #expect(result.output.contains("== every step passed"))
        #expect(!result.output.contains("FAIL"))
    }
}
