@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// The admin API: accounts and devices, with immediate effect.
@Suite(.serialized)
struct AdminTests {
    @Test("Create, list, suspend, unsuspend, delete users; list and reset devices", arguments: Backend.allCases)
    func accounts(_ backend: Backend) async throws {
        guard let network = try await TestNetwork.start(backend) else { return }
        defer { network.stop() }
        let admin = network.admin
        try await network.users("alice", "bob", "carol")
        #expect(try await admin.users().map(\.name.value) == ["alice", "bob", "carol"])
        await #expect(throws: ClientError.self) {
            _ = try await admin.addUser(try #require(UserName("alice")), password: "another password", group: nil)
        }
        let info = try await admin.network()
        #expect(info.domain.value == "acme.example")
        #expect(info.keyFingerprint.hasPrefix("sha256:"))
        #expect(info.storage == backend.rawValue)

        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let carol = try await network.device("carol")
        let room = try await alice.createRoom(name: "staff", members: [network.address("bob"), network.address("carol")])
        _ = try await bob.receive()
        _ = try await carol.receive()
        #expect(try await admin.devices(try #require(UserName("bob"))).devices.count == 1)

        // Suspension: the session dies at once and sign-in is refused.
        let bobName = try #require(UserName("bob"))
        #expect(try await admin.suspend(bobName).suspended)
        await #expect(throws: ClientError.self) { _ = try await bob.receive() }
        let http = RawHTTP(baseURL: network.url)
        let relogin = LoginRequest(
            user: "bob", password: network.password, deviceName: "again", signatureKey: Base64Bytes([UInt8](repeating: 7, count: 32)),
            cipherSuite: 1)
        http.expectRefusal(try await http.send(.POST, "/v1/login", json: relogin), 403, code: "account_suspended")
        // The server proposed removing bob's device; alice's client commits it, and the room goes on without bob.
        _ = try await alice.receive()
        try await alice.send("bob is suspended", to: room.id)
        #expect(texts(try await carol.receive()) == ["bob is suspended"])
        #expect(
            Set(try await alice.conversations().first { $0.id == room.id }?.members ?? []) == [
                network.address("alice"), network.address("carol"),
            ])
        #expect(try await admin.unsuspend(bobName).suspended == false)

        // Reset devices: carol's device is removed from the room and cannot read on.
        let carolName = try #require(UserName("carol"))
        #expect(try await admin.resetDevices(carolName) == 1)
        #expect(try await admin.devices(carolName).devices.isEmpty)
        await #expect(throws: ClientError.self) { _ = try await carol.receive() }
        _ = try await alice.receive()
        try await alice.send("carol's devices are gone", to: room.id)
        #expect(Set(try await alice.conversations().first { $0.id == room.id }?.members ?? []) == [network.address("alice")])

        // Deletion.
        try await admin.delete(carolName)
        #expect(try await admin.users().map(\.name.value) == ["alice", "bob"])
        await #expect(throws: ClientError.self) { try await admin.delete(carolName) }
    }
}

/// The CLI, as people and scripts use it, against a real server process.
@Suite(.serialized)
struct CommandLineTests {
    @Test("server init, admin, login, send, room, receive --json")
    func cli() async throws {
        let root = NSTemporaryDirectory() + "conclave-cli-\(UUID().uuidString.prefix(8))"
        let data = root + "/server"
        let token = try ConclaveServerProcess.initialise(directory: data, network: "acme.example")
        #expect(!token.isEmpty)
        let attributes = try FileManager.default.attributesOfItem(atPath: data + "/admin.token")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // A second init refuses the directory.
        let again = try ConclaveServerProcess.runCLI(["server", "init", "--data", data, "--network", "acme.example"])
        #expect(again.status != 0)
        #expect(again.error.contains("already initialised"))

        let server = try await ConclaveServerProcess.start(directory: data)
        defer { server.stop() }
        let passwordFile = root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data("s3cret-passw0rd\n".utf8))
        let admin = ["admin", "--server", server.url, "--token-file", data + "/admin.token"]
        for name in ["alice", "bob", "carol"] {
            let added = try ConclaveServerProcess.runCLI(admin + ["user", "add", name, "--password-file", passwordFile])
            #expect(added.status == 0, "\(added.error)")
        }
        let listed = try ConclaveServerProcess.runCLI(admin + ["user", "list", "--json"])
        let users = listed.output.split(separator: "\n").compactMap {
            try? ConclaveJSON.decoder().decode(UserInfo.self, from: Data($0.utf8))
        }
        #expect(users.map(\.name.value) == ["alice", "bob", "carol"])
        let shown = try ConclaveServerProcess.runCLI(admin + ["network", "show", "--json"])
        #expect(shown.output.contains("\"key_fingerprint\":\"sha256:"))

        func cli(_ profile: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
            try ConclaveServerProcess.runCLI(["--profile", root + "/" + profile] + arguments)
        }
        for name in ["alice", "bob", "carol"] {
            let login = try cli(name, ["login", "--server", server.url, "--user", "\(name)@acme.example", "--password-file", passwordFile])
            #expect(login.status == 0, "\(login.error)")
        }
        #expect(try cli("alice", ["send", "bob@acme.example", "hello", "from", "the", "cli"]).status == 0)
        let created = try cli("alice", ["room", "create", "builders", "--members", "bob@acme.example"])
        #expect(created.status == 0, "\(created.error)")
        let roomID = created.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(ConversationID(roomID) != nil)
        #expect(try cli("alice", ["send", "--room", "builders", "room", "text"]).status == 0)
        let received = try cli("bob", ["receive", "--json"])
        #expect(received.status == 0, "\(received.error)")
        let lines = received.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(lines.compactMap { $0["text"] as? String } == ["hello from the cli", "room text"])
        for line in lines {
            for key in ["id", "conversation", "room", "from", "device", "text", "sent_at", "expires_at"] {
                #expect(line.keys.contains(key), "receive --json lacks \(key)")
            }
            #expect(line["from"] as? String == "alice@acme.example")
        }
        #expect(lines.last?["conversation"] as? String == roomID)
        let rooms = try cli("bob", ["room", "list", "--json"])
        #expect(rooms.output.contains("builders"))

        // Membership from the CLI, and interactive chat fed from standard input.
        #expect(try cli("alice", ["room", "add", "builders", "carol@acme.example"]).status == 0)
        let chat = try ConclaveServerProcess.runCLI(
            ["--profile", root + "/carol", "chat", "builders"], input: "typed in chat\n/quit\n")
        #expect(chat.status == 0, "\(chat.error)")
        let waited = try cli("bob", ["receive", "--wait", "1s", "--json"])
        #expect(waited.status == 0, "\(waited.error)")
        #expect(waited.output.contains("\"text\":\"typed in chat\""))
        #expect(try cli("alice", ["room", "remove", "builders", "carol@acme.example"]).status == 0)
        #expect(try cli("bob", ["room", "leave", "builders"]).status == 0)
        #expect(!(try cli("bob", ["room", "list"]).output.contains("builders")))
        // Errors are clear and exit non-zero.
        let unknown = try cli("bob", ["send", "--room", "no-such-room", "x"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("no conversation matches"))
        // SIGTERM: a graceful shutdown, exit status 0.
        server.stop()
        #expect(server.stoppedGracefully)
        #expect(server.exitStatus == 0)
    }

    @Test("The served OpenAPI document is the one in the repository")
    func openAPI() async throws {
        let root = NSTemporaryDirectory() + "conclave-oa-\(UUID().uuidString.prefix(8))"
        _ = try ConclaveServerProcess.initialise(directory: root, network: "acme.example")
        let server = try await ConclaveServerProcess.start(directory: root)
        defer { server.stop() }
        let served = try await RawHTTP(baseURL: server.url).send(.GET, "/openapi.json")
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/ConclaveServer/Resources/openapi.json")
        #expect(served.status == 200)
        #expect(served.body == (try Data(contentsOf: repository)))
        let document = try JSONSerialization.jsonObject(with: served.body) as? [String: Any]
        #expect((document?["paths"] as? [String: Any])?.keys.contains("/v1/conversations/{id}/commits") == true)
        let wellKnown = try await RawHTTP(baseURL: server.url).send(.GET, "/.well-known/conclave").decode(WellKnown.self)
        #expect(wellKnown.domain.value == "acme.example")
        #expect(wellKnown.keyFingerprint.hasPrefix("sha256:"))
    }
}
