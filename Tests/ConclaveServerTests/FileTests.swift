@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Encrypted file sharing (rules S1–S7 in docs/server.md): files sealed on
/// the sender's device, uploaded in pieces, shared by an MLS message,
/// fetched with ranges, checked by the receiver, gated by security-group
/// policy and deleted with their message. Every case runs against the
/// server in process, on SQLite and on PostgreSQL.
@Suite(.serialized)
struct FileTests {
    static let marker = "CONCLAVE-FILE-PLAINTEXT-MARKER"
    static let nofiles = SecurityGroupName("nofiles")!  // literals of the test
    static let small = SecurityGroupName("small")!

    /// `size` bytes of text full of the marker, written to `name` under `directory`.
    static func file(_ size: Int, named name: String, in directory: String) throws -> (path: String, bytes: [UInt8]) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let line = Array("\(marker) line of the secret plan\n".utf8)
        let bytes = Array((0..<size).map { line[$0 % line.count] })
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    static func contents(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

    /// The file shared by the first message among `events` that shares one.
    static func sharedFile(_ events: [ClientEvent]) throws -> (SharedFile, ReceivedMessage) {
        let message = try #require(messages(events).first { $0.file != nil })
        return (try #require(message.file), message)
    }

    @Test(
        "0 B, 1 B and 64 KiB ± 1 between two devices and in a room, checked; no plaintext or name on the server",
        arguments: Backend.allCases)
    func roundTrips(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carol = try await network.device("carol")
            let outgoing = network.root + "/outgoing"
            let direct = try await alice.directConversation(with: network.address("bob"))
            for size in [0, 1, 65_535, 65_536, 65_537] {
                let (path, bytes) = try Self.file(size, named: "secret-plan-\(size).txt", in: outgoing)
                let sent = try await alice.sendFile(at: path, to: direct.id)
                #expect(sent.file.size == UInt64(size))
                #expect(sent.file.mediaType == "text/plain")
                #expect(sent.cannotReceive.isEmpty)
                let (file, message) = try Self.sharedFile(try await bob.receive())
                #expect(message.from == network.address("alice"))
                #expect(file.name == "secret-plan-\(size).txt")
                let saved = try await bob.saveFile(file, in: direct.id, to: network.root + "/bob")
                #expect(saved == network.root + "/bob/secret-plan-\(size).txt")
                #expect(Self.contents(saved) == bytes)
            }

            let room = try await alice.createRoom(name: "files", members: [network.address("bob"), network.address("carol")])
            _ = try await bob.receive()
            _ = try await carol.receive()
            let (path, bytes) = try Self.file(65_537, named: "secret-plan-room.txt", in: outgoing)
            let sent = try await alice.sendFile(at: path, caption: "the plan", to: room.id)
            #expect(sent.message.recipients.count == 2)
            for (name, client) in [("bob", bob), ("carol", carol)] {
                let (file, message) = try Self.sharedFile(try await client.receive())
                #expect(message.text == "the plan")
                #expect(message.room == "files")
                let saved = try await client.saveFile(file, in: room.id, to: network.root + "/" + name)
                #expect(Self.contents(saved) == bytes)
            }
            // Saving again never replaces the first copy.
            let file = sent.file
            let again = try await bob.saveFile(file, in: room.id, to: network.root + "/bob")
            #expect(again == network.root + "/bob/secret-plan-room (1).txt")
            #expect(Self.contents(again) == bytes)

            // The server's data directory (database, blobs) and its log hold neither the content nor a name.
            var stored = Data()
            let files = FileManager.default.enumerator(atPath: network.dataDirectory)?.allObjects.compactMap { $0 as? String } ?? []
            for relative in files { stored.append(FileManager.default.contents(atPath: network.dataDirectory + "/" + relative) ?? Data()) }
            stored.append(FileManager.default.contents(atPath: network.logFile) ?? Data())
            #expect(try FileManager.default.contentsOfDirectory(atPath: network.blobDirectory).count == 6)
            #expect(stored.range(of: Data(Self.marker.utf8)) == nil)
            #expect(stored.range(of: Data("secret-plan".utf8)) == nil)
            #expect(stored.range(of: Data("text/plain".utf8)) == nil)
        }
    }

    @Test("A corrupted or truncated file is refused by the recipient, and nothing is saved", arguments: [Backend.sqlite])
    func tampered(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await alice.directConversation(with: network.address("bob"))
            let (path, _) = try Self.file(200_000, named: "plan.txt", in: network.root + "/outgoing")
            let sent = try await alice.sendFile(at: path, to: direct.id)
            let (file, _) = try Self.sharedFile(try await bob.receive())
            let stored = network.blobDirectory + "/" + sent.file.id.value
            let original = Self.contents(stored)
            let target = network.root + "/bob"

            // Someone with the server's disk flips one byte.
            var flipped = original
            flipped[100_000] ^= 1
            try Data(flipped).write(to: URL(fileURLWithPath: stored))
            await expectFileRefused { _ = try await bob.saveFile(file, in: direct.id, to: target) }
            // A hostile server cuts the file after its first chunk, in its database and on its disk.
            let cut = EncryptedFile.header.count + 65_536 + 16
            try Data(original.prefix(cut)).write(to: URL(fileURLWithPath: stored))
            try await network.store.database.transaction { connection in
                try await connection.execute(
                    "UPDATE files SET size = ?, received = ? WHERE id = ?",
                    [.integer(Int64(cut)), .integer(Int64(cut)), .text(sent.file.id.value)])
            }
            await expectFileRefused { _ = try await bob.saveFile(file, in: direct.id, to: target) }
            // The same cut, with the message's size changed to match (a hostile sender): the stream lacks its final chunk.
            var short = file
            short.size = 65_536
            await expectFileRefused { _ = try await bob.saveFile(short, in: direct.id, to: target) }
            try await network.store.database.transaction { connection in
                try await connection.execute(
                    "UPDATE files SET size = ?, received = ? WHERE id = ?",
                    [.integer(Int64(original.count)), .integer(Int64(original.count)), .text(sent.file.id.value)])
            }
            // A message that states another hash (a lying sender) is refused after decryption.
            var lying = file
            lying.sha256 = Base64Bytes([UInt8](repeating: 7, count: 32))
            try Data(original).write(to: URL(fileURLWithPath: stored))
            await expectFileRefused { _ = try await bob.saveFile(lying, in: direct.id, to: target) }
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []).isEmpty)
            // The intact file still opens.
            #expect(Self.contents(try await bob.saveFile(file, in: direct.id, to: target)).count == 200_000)
        }
    }

    func expectFileRefused(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("not refused", sourceLocation: sourceLocation)
        } catch let error as ClientError {
            guard case .file = error else {
                Issue.record("expected a file refusal, got \(error)", sourceLocation: sourceLocation)
                return
            }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(
        "A modified client: non-members, another device's upload, offsets, sizes, files off, max-file-size, sharing",
        arguments: Backend.allCases)
    func modifiedClient(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            _ = try await network.admin.addGroup(Self.nofiles, SecurityGroupChange(files: false))
            _ = try await network.admin.addGroup(Self.small, SecurityGroupChange(maxFileSize: 1_000))
            try await network.users("alice", "bob", "mallory")
            try await network.users("dave", group: "nofiles")
            try await network.users("erin", group: "small")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let mallory = try await network.device("mallory")
            let dave = try await network.device("dave")
            let erin = try await network.device("erin")
            let room = try await alice.createRoom(
                name: "raw files", members: ["bob", "dave", "erin"].map { network.address($0) })
            let http = RawHTTP(baseURL: network.url)
            var tokens: [String: String] = [:]
            for (name, client) in [("alice", alice), ("bob", bob), ("mallory", mallory), ("dave", dave), ("erin", erin)] {
                tokens[name] = await client.sessionTokenForTesting
            }
            let files = "/v1/conversations/\(room.id)/files"
            let size = EncryptedFile.sealedSize(of: 5_000)

            // S2 and the members told who cannot receive it.
            let created = try await http.send(.POST, files, token: tokens["alice"], json: CreateUpload(size: size))
            #expect(created.status == 201)
            let upload = try created.decode(FileStatus.self)
            #expect(Set(upload.cannotReceive ?? []) == [network.address("dave"), network.address("erin")])
            #expect(upload.received == 0 && !upload.complete && !upload.shared)
            http.expectRefusal(try await http.send(.POST, files, token: tokens["dave"], json: CreateUpload(size: size)), .policyFiles)
            http.expectRefusal(try await http.send(.POST, files, token: tokens["erin"], json: CreateUpload(size: size)), .policyFileSize)
            #expect(
                try await http.send(.POST, files, token: tokens["erin"], json: CreateUpload(size: EncryptedFile.sealedSize(of: 1_000)))
                    .status == 201)
            for bad in [0, 35, EncryptedFile.sealedSize(of: SecurityGroupPolicy.largestFileSize) + 1] {
                http.expectRefusal(try await http.send(.POST, files, token: tokens["alice"], json: CreateUpload(size: bad)), .badRequest)
            }

            // S1: mallory, in no such conversation, learns nothing of it.
            let base = "\(files)/\(upload.id)"
            http.expectRefusal(try await http.send(.POST, files, token: tokens["mallory"], json: CreateUpload(size: size)), .notFound)
            http.expectRefusal(try await http.send(.GET, base, token: tokens["mallory"]), .notFound)
            http.expectRefusal(try await http.send(.GET, base + "/content", token: tokens["mallory"]), .notFound)
            http.expectRefusal(try await http.send(.PUT, base + "/content?offset=0", token: tokens["mallory"], raw: [1]), .notFound)
            http.expectRefusal(try await http.send(.POST, base + "/fetched", token: tokens["mallory"]), .notFound)
            http.expectRefusal(try await http.send(.GET, base), .unauthenticated)

            // S3: the uploader only, at the offset the server holds, never past the size, nothing counted on a refusal.
            let bytes = (0..<Int(size)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            http.expectRefusal(try await http.send(.PUT, base + "/content?offset=0", token: tokens["bob"], raw: bytes), .forbidden)
            http.expectRefusal(try await http.send(.PUT, base + "/content?offset=5", token: tokens["alice"], raw: bytes), .wrongOffset)
            http.expectRefusal(try await http.send(.PUT, base + "/content", token: tokens["alice"], raw: bytes), .badRequest)
            http.expectRefusal(
                try await http.send(.PUT, base + "/content?offset=0", token: tokens["alice"], raw: bytes + [0]), .tooLarge)
            #expect(try await http.send(.GET, base, token: tokens["bob"]).decode(FileStatus.self).received == 0)
            let half = try await http.send(.PUT, base + "/content?offset=0", token: tokens["alice"], raw: Array(bytes.prefix(1_000)))
            #expect(try half.decode(FileStatus.self).received == 1_000)
            http.expectRefusal(try await http.send(.GET, base + "/content", token: tokens["bob"]), .fileIncomplete)
            let rest = try await http.send(.PUT, base + "/content?offset=1000", token: tokens["alice"], raw: Array(bytes.dropFirst(1_000)))
            #expect(try rest.decode(FileStatus.self).complete)
            http.expectRefusal(try await http.send(.PUT, base + "/content?offset=\(size)", token: tokens["alice"], raw: [1]), .conflict)

            // S4: whole, ranges, and the downloader's own policy.
            let whole = try await http.send(.GET, base + "/content", token: tokens["bob"])
            #expect(whole.status == 200)
            #expect(Array(whole.body) == bytes)
            #expect(whole.headers.first(name: "Accept-Ranges") == "bytes")
            let part = try await http.send(.GET, base + "/content", token: tokens["bob"], headers: [("Range", "bytes=10-19")])
            #expect(part.status == 206)
            #expect(Array(part.body) == Array(bytes[10..<20]))
            #expect(part.headers.first(name: "Content-Range") == "bytes 10-19/\(size)")
            let tail = try await http.send(.GET, base + "/content", token: tokens["bob"], headers: [("Range", "bytes=-5")])
            #expect(Array(tail.body) == Array(bytes.suffix(5)))
            http.expectRefusal(
                try await http.send(.GET, base + "/content", token: tokens["bob"], headers: [("Range", "bytes=\(size)-")]),
                .rangeNotSatisfiable)
            http.expectRefusal(try await http.send(.GET, base + "/content", token: tokens["dave"]), .policyFiles)
            http.expectRefusal(try await http.send(.GET, base + "/content", token: tokens["erin"]), .policyFileSize)

            // S5: a message shares complete uploads of its sender's device, in its conversation, once.
            let raw = try await RawDevice.login(network, user: "alice", approvedBy: alice)
            var group = try raw.newGroup()
            let own = try #require(ConversationID(bytes: group.groupID))
            #expect(try await raw.create(group).status == 201)
            let ownFiles = "/v1/conversations/\(own)/files"
            let complete = try await raw.http.send(.POST, ownFiles, token: raw.token, json: CreateUpload(size: 36)).decode(FileStatus.self)
            #expect(
                try await raw.http.send(
                    .PUT, "\(ownFiles)/\(complete.id)/content?offset=0", token: raw.token, raw: Array(repeating: 0, count: 36)
                )
                .status == 200)
            let incomplete = try await raw.http.send(.POST, ownFiles, token: raw.token, json: CreateUpload(size: 36)).decode(
                FileStatus.self)
            func share(_ files: [FileID], id messageID: String = UUID().uuidString) async throws -> RawHTTP.Answer {
                let message = try group.encrypt(Array("a file".utf8), random: raw.random)
                return try await raw.http.send(
                    .POST, "/v1/conversations/\(own)/messages", token: raw.token,
                    json: SendMessage(messageId: messageID, message: Base64Bytes(message.tlsSerialized), files: files))
            }
            raw.http.expectRefusal(try await share([incomplete.id]), .fileIncomplete)
            raw.http.expectRefusal(try await share([FileID.random()]), .notFound)
            raw.http.expectRefusal(try await share([upload.id]), .notFound)  // another conversation's
            raw.http.expectRefusal(try await share([complete.id, complete.id]), .badRequest)
            let messageID = UUID().uuidString
            #expect(try await share([complete.id], id: messageID).status == 201)
            #expect(try await share([complete.id], id: messageID).status == 200)  // a retry (D17)
            raw.http.expectRefusal(try await share([complete.id]), .fileIncomplete)  // shared already
            let shared = try await raw.http.send(.GET, "\(ownFiles)/\(complete.id)", token: raw.token).decode(FileStatus.self)
            #expect(shared.shared)
            #expect(shared.expiresAt == nil)  // no lifetime: it stays with the conversation
        }
    }

    @Test("Lifetime, burn-on-read and an unshared upload's deadline delete files", arguments: Backend.allCases)
    func deletion(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, testClock: true) { network in
            let clock = try #require(network.clock)
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let laptop = try await network.device("bob", "laptop", approvedBy: bob)
            let http = RawHTTP(baseURL: network.url)
            let token = try #require(await alice.sessionTokenForTesting)
            let (path, _) = try Self.file(70_000, named: "plan.txt", in: network.root + "/outgoing")
            func stored(_ id: FileID) -> Bool { FileManager.default.fileExists(atPath: network.blobDirectory + "/" + id.value) }

            // Lifetime: the file goes with its message.
            let hourly = try await alice.createRoom(
                name: "hourly", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 3600))
            let sent = try await alice.sendFile(at: path, to: hourly.id)
            let status = try await http.send(.GET, "/v1/conversations/\(hourly.id)/files/\(sent.file.id)", token: token)
                .decode(FileStatus.self)
            #expect(status.shared)
            #expect(status.expiresAt == sent.message.expiresAt)
            try await network.sweep()
            #expect(stored(sent.file.id))
            clock.advance(by: 3601)
            try await network.sweep()
            #expect(!stored(sent.file.id))
            http.expectRefusal(try await http.send(.GET, "/v1/conversations/\(hourly.id)/files/\(sent.file.id)", token: token), .notFound)

            // Burn-on-read: gone once every recipient device (bob's two) has it.
            let burning = try await alice.createRoom(
                name: "burning", members: [network.address("bob")], settings: ConversationSettings(messageLifetime: 0, burnOnRead: 30))
            let burned = try await alice.sendFile(at: path, to: burning.id)
            let (onPhone, _) = try Self.sharedFile(try await bob.receive(until: { !messages($0).isEmpty }))
            _ = try await bob.saveFile(onPhone, in: burning.id, to: network.root + "/phone")
            #expect(stored(burned.file.id))
            try await network.sweep()
            #expect(stored(burned.file.id))
            let (onLaptop, _) = try Self.sharedFile(try await laptop.receive(until: { !messages($0).isEmpty }))
            _ = try await laptop.saveFile(onLaptop, in: burning.id, to: network.root + "/laptop")
            #expect(!stored(burned.file.id))

            // An upload no message shares goes after the deadline.
            let files = "/v1/conversations/\(burning.id)/files"
            let abandoned = try await http.send(.POST, files, token: token, json: CreateUpload(size: 1_000)).decode(FileStatus.self)
            #expect(try await http.send(.PUT, "\(files)/\(abandoned.id)/content?offset=0", token: token, raw: [1, 2, 3]).status == 200)
            #expect(stored(abandoned.id))
            clock.advance(by: ServerLimits().uploadTimeoutSeconds - 10)
            try await network.sweep()
            #expect(stored(abandoned.id))
            clock.advance(by: 11)
            try await network.sweep()
            #expect(!stored(abandoned.id))
        }
    }

    @Test(
        "Across two networks: files live on the conversation's host; each network applies its own file policy", arguments: [Backend.sqlite])
    func federated(_ backend: Backend) async throws {
        try await FederatedConversationTests.federate([("acme.example", backend), ("globex.example", .postgres)]) { networks in
            let (acme, globex) = (networks[0], networks[1])
            _ = try await globex.admin.addGroup(Self.nofiles, SecurityGroupChange(files: false))
            try await acme.users("alice")
            try await globex.users("bob")
            try await globex.users("carol", group: "nofiles")
            let alice = try await acme.device("alice")
            let bob = try await globex.device("bob")
            let carol = try await globex.device("carol")
            // A room hosted by acme, with members of globex.
            let room = try await alice.createRoom(name: "across", members: [globex.address("bob"), globex.address("carol")])
            _ = try await bob.receive(until: { $0.contains(where: ClientEvent.joined(where: room.id)) })
            _ = try await carol.receive(until: { $0.contains(where: ClientEvent.joined(where: room.id)) })
            let outgoing = acme.root + "/outgoing"

            // acme's alice shares; globex fetches it from acme for bob in 4 MiB pieces, and refuses carol itself.
            for size in [0, 1, 65_535, 65_536, 65_537, 5 << 20] {
                let (path, bytes) = try Self.file(size, named: "from-acme-\(size).txt", in: outgoing)
                let sent = try await alice.sendFile(at: path, to: room.id)
                #expect(FileManager.default.fileExists(atPath: acme.blobDirectory + "/" + sent.file.id.value))
                let (file, _) = try Self.sharedFile(try await bob.receive(until: { !messages($0).isEmpty }))
                let saved = try await bob.saveFile(file, in: room.id, to: globex.root + "/bob")
                #expect(Self.contents(saved) == bytes)
                let (refused, _) = try Self.sharedFile(try await carol.receive(until: { !messages($0).isEmpty }))
                await expectRefused(.policyFiles) { _ = try await carol.saveFile(refused, in: room.id, to: globex.root + "/carol") }
            }
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: globex.blobDirectory)) ?? []).isEmpty)

            // globex's bob shares: his network relays the upload to acme in pieces; the file lives on acme.
            let (path, bytes) = try Self.file(3 << 20, named: "from-globex.txt", in: globex.root + "/outgoing")
            let sent = try await bob.sendFile(at: path, caption: "from globex", to: room.id)
            #expect(FileManager.default.fileExists(atPath: acme.blobDirectory + "/" + sent.file.id.value))
            let (file, message) = try Self.sharedFile(try await alice.receive(until: { !messages($0).isEmpty }))
            #expect(message.from == globex.address("bob"))
            #expect(Self.contents(try await alice.saveFile(file, in: room.id, to: acme.root + "/alice")) == bytes)
            // carol's own network refuses her upload before anything reaches acme.
            await expectRefused(.policyFiles) { _ = try await carol.sendFile(at: path, to: room.id) }
        }
    }
}
