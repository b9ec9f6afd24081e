@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import MLS
import Testing

@testable import ConclaveServer

/// The bounds on what one party may cost the server (docs/admin-guide.md,
/// rules A1, A6–A9, K3, K4, D19–D24 in docs/server.md): each attack is
/// refused, and honest use under the limit still works.
@Suite(.serialized)
struct LimitsTests {
    @Test("11.3, 11.11: message size, send rate and inbox pages are bounded; honest use goes on", arguments: Backend.allCases)
    func messagesAndInboxPages(_ backend: Backend) async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.limits.maxMessageBytes = 64 * 1024
            configuration.limits.messagesPerSecond = 1
            configuration.limits.messageBurst = 12
            configuration.limits.inboxPageBytes = 128 * 1024
        }
        try await TestNetwork.run(backend, testClock: true, configure: configure) { network in
            let clock = try #require(network.clock)
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let direct = try await alice.directConversation(with: network.address("bob"))
            // D19: a message over the network's limit is refused, nothing stored.
            await expectRefused(.tooLarge) { try await alice.send(String(repeating: "x", count: 70_000), to: direct.id) }
            // Ten large messages within the limit: they arrive in pages of at most 128 KiB (D23), all of them, in order.
            let texts = (1...10).map { "\($0) " + String(repeating: "y", count: 40_000) }
            for text in texts { try await alice.send(text, to: direct.id) }
            let token = try #require(await bob.sessionTokenForTesting)
            let page = try await RawHTTP(baseURL: network.url).send(.GET, "/v1/inbox?limit=500", token: token).decode(InboxPage.self)
            #expect(page.events.count < 10)
            #expect(page.events.dropFirst().reduce(0) { $0 + $1.message.bytes.count } <= 128 * 1024)
            #expect(ConclaveTestSupport.texts(try await bob.receive()) == texts)
            // D20: past the burst, the device waits (429 rate_limited); after the wait it sends again.
            var refused: ClientError?
            for index in 0..<5 {
                do { try await alice.send("burst \(index)", to: direct.id) } catch let error as ClientError {
                    refused = error
                    break
                }
            }
            #expect(refused?.code == .rateLimited)
            _ = try await bob.receive()
            clock.advance(by: 5)
            try await alice.send("after the wait", to: direct.id)
            #expect(ConclaveTestSupport.texts(try await bob.receive()) == ["after the wait"])
        }
    }

    @Test("11.3: a member's undecryptable messages are skipped and reported; the inbox goes on")
    func poisonedInbox() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("mallory", "bob")
            let bob = try await network.device("bob")
            let mallory = try await RawDevice.login(network, user: "mallory")
            var group = try mallory.newGroup()
            #expect(try await mallory.create(group).status == 201)
            let id = try #require(ConversationID(bytes: group.groupID))
            let add = try group.commit(adding: try await mallory.claim(network.address("bob")), now: validationNow, random: mallory.random)
            #expect(try await mallory.send(add, on: &group, id: id).status == 201)
            _ = try await bob.receive()
            // Well-framed PrivateMessages of the group whose ciphertext is 200 KB of random bytes: the server cannot tell.
            @Sendable func post(_ message: MLSMessage, id messageID: String) async throws -> Int {
                try await mallory.http.send(
                    .POST, "/v1/conversations/\(id)/messages", token: mallory.token,
                    json: SendMessage(messageId: messageID, message: Base64Bytes(message.tlsSerialized))
                ).status
            }
            for index in 0..<4 {
                guard case .privateMessage(var poison) = try group.encrypt([1], random: mallory.random).body else {
                    throw TestFailure("not a PrivateMessage")
                }
                poison.ciphertext = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
                #expect(try await post(MLSMessage(body: .privateMessage(poison)), id: "poison-\(index)") == 201)
            }
            let honest = try group.encrypt(Array(#"{"id":"m-honest","text":"still readable"}"#.utf8), random: mallory.random)
            #expect(try await post(honest, id: "m-honest") == 201)
            let events = try await bob.receive()
            #expect(events.filter { if case .warning = $0 { true } else { false } }.count == 4)
            #expect(ConclaveTestSupport.texts(events) == ["still readable"])
            #expect(try await bob.receive().isEmpty)  // all acknowledged: nothing comes back
        }
    }

    @Test("11.5, 11.6: sign-ins hash on a bounded pool and are limited per address; others are served meanwhile")
    func signInFlood() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.passwordHasher = PasswordHasher(rounds: 1 << 14)
            configuration.limits.passwordHashThreads = 1
            configuration.limits.passwordHashQueue = 1
        }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            try await network.users("alice")
            let http = RawHTTP(baseURL: network.url)
            let answers = try await withThrowingTaskGroup(of: RawHTTP.Answer.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await http.send(
                            .POST, "/v1/login",
                            json: LoginRequest(
                                user: "nobody\(index)", password: "wrong password", deviceName: "x",
                                signatureKey: Base64Bytes([UInt8](repeating: UInt8(index), count: 32)), cipherSuite: 1))
                    }
                }
                group.addTask { try await http.send(.GET, "/healthz") }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // The health check is answered; the sign-ins are wrong passwords, or refused at once beyond the pool and its queue.
            #expect(answers.contains { $0.status == 200 })
            #expect(answers.filter { $0.status != 200 }.allSatisfy { [.rateLimited, .invalidCredentials].contains($0.error?.code) })
            // The owner still signs in once the flood is over.
            _ = try await network.device("alice")
        }
    }

    @Test("11.5, 11.6: the hashing pool runs its threads' worth, queues its queue's worth, and refuses the rest at once")
    func hashingPoolBounds() async throws {
        let pool = PasswordHashingPool(threads: 1, queue: 1)
        let release = DispatchSemaphore(value: 0)
        let (started, signal) = AsyncStream<Void>.makeStream()
        let running = Task {
            try await pool.run {
                signal.yield()
                release.wait()
                return 1
            }
        }
        var iterator = started.makeAsyncIterator()
        _ = await iterator.next()
        let queued = Task { try await pool.run { 2 } }
        while pool.load < 2 { await Task.yield() }
        let refused = await #expect(throws: APIError.self) { try await pool.run { 3 } }
        #expect(refused?.code == .rateLimited)
        release.signal()
        #expect(try await running.value == 1)
        #expect(try await queued.value == 2)
        #expect(try await pool.run { 4 } == 4)
    }

    @Test("11.8: key package claims are budgeted per requester and per target, and a device's stock is capped")
    func keyPackageClaimsAndStock() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.limits.keyPackageClaimsPerRequester = 3
            configuration.limits.keyPackageClaimsPerTarget = 4
            configuration.limits.keyPackageStock = 25
        }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            try await network.users("alice", "bob", "carol", "dave")
            _ = try await network.device("bob")
            let alice = try await RawDevice.login(network, user: "alice")
            let carol = try await RawDevice.login(network, user: "carol")
            let http = alice.http
            func claim(_ device: RawDevice) async throws -> RawHTTP.Answer {
                try await http.send(
                    .POST, "/v1/key-packages/claim", token: device.token, json: KeyPackageClaim(user: network.address("bob")))
            }
            for _ in 0..<3 { #expect(try await claim(alice).status == 200) }
            http.expectRefusal(try await claim(alice), .rateLimited)  // alice's own budget
            #expect(try await claim(carol).status == 200)
            http.expectRefusal(try await claim(carol), .rateLimited)  // bob's budget as a target: 4 claims
            // K3: the bob device tops up to 20; a device holds at most 25.
            #expect(try await alice.upload(try (0..<20).map { _ in try alice.keyPackage() }).status == 200)
            http.expectRefusal(try await alice.upload(try (0..<10).map { _ in try alice.keyPackage() }), .keyPackageStockFull)
            #expect(try await alice.upload(try (0..<5).map { _ in try alice.keyPackage() }).status == 200)
        }
    }

    @Test("11.10: a request head that never ends is cut")
    func halfSentRequests() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.limits.requestHeadTimeoutSeconds = 1 }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            let slow = try RawSocket(url: network.url)
            try slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
            let read = try await withDeadline(.seconds(30), "the server closing a half-sent request") { await slow.readUntilClosed() }
            #expect(read.isEmpty)
        }
    }

    @Test("11.10: a kept-alive connection silent for idle_timeout_seconds is closed, a later head that never ends too")
    func idleConnections() async throws {
        // The first head's timeout (an hour) does not apply after the first request: the idle timeout (5 s) does.
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            $0.limits.requestHeadTimeoutSeconds = 3_600
            $0.limits.idleTimeoutSeconds = 5
        }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            let silent = try RawSocket(url: network.url)
            try silent.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let read = try await withDeadline(.seconds(30), "the server closing a silent connection") { await silent.readUntilClosed() }
            #expect(read.hasPrefix("HTTP/1.1 200") && read.components(separatedBy: "HTTP/1.1").count == 2)

            let slow = try RawSocket(url: network.url)
            try slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n")
            let answers = try await withDeadline(.seconds(30), "the server closing a half-sent second head") {
                await slow.readUntilClosed()
            }
            #expect(answers.hasPrefix("HTTP/1.1 200") && answers.components(separatedBy: "HTTP/1.1").count == 2)
        }
    }

    @Test("11.10: past the connection limit a connection is answered 503; a device holds at most its WebSockets")
    func connectionLimits() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.limits.connections = 12
            configuration.limits.webSocketsPerDevice = 2
        }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            try await network.users("alice")
            let alice = try await network.device("alice")
            let token = try #require(await alice.sessionTokenForTesting)
            // Two WebSockets of alice's device, held open; a third is closed as soon as it opens (1008).
            try await withThrowingTaskGroup(of: Void.self) { group in
                let (connected, signal) = AsyncStream<Void>.makeStream()
                for _ in 0..<2 { group.addTask { try await Self.holdWebSocket(network.url, token: token, connected: signal) } }
                var iterator = connected.makeAsyncIterator()
                for _ in 0..<2 { _ = await iterator.next() }
                let url = network.url
                let close = try await withDeadline(.seconds(30), "the third WebSocket's close") {
                    try await Self.openWebSocket(url, token: token)
                }
                #expect(close?.closeCode == .policyViolation)
                #expect(close?.reason == "too many connections of this device")
                group.cancelAll()
            }
            // Connections held open, each answered once (so the server has surely counted it), until the limit:
            // the next one is answered 503 server_busy, and closed.
            var held: [RawSocket] = []
            var refusal: String?
            while refusal == nil, held.count <= 12 {
                let socket = try RawSocket(url: network.url)
                try socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try await withDeadline(.seconds(30), "an answer") { await socket.receive(until: "\"}") }
                if answer.hasPrefix("HTTP/1.1 200") { held.append(socket) } else { refusal = answer }
            }
            #expect(refusal?.hasPrefix("HTTP/1.1 503") == true, "\(refusal ?? "no refusal after \(held.count) connections")")
            #expect(refusal?.contains("server_busy") == true)
            #expect(held.count < 12)
        }
    }

    @Test("11.10: a cut-off device's WebSocket gets its close frame (1008), and is released even if its client never answers")
    func silentClientIsReleased() async throws {
        // No ping in the test's time: this client would not answer it.
        let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.limits.webSocketPingSeconds = 3_600 }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            try await network.users("alice")
            let alice = try await network.device("alice")
            let token = try #require(await alice.sessionTokenForTesting)
            let http = RawHTTP(baseURL: network.url)
            // The server's count of open WebSockets, read until it is `count` (or the deadline passes).
            let reach = { @Sendable (count: Double, what: String) async throws in
                try await withDeadline(.seconds(30), what) {
                    while true {
                        let answer = try await http.send(.GET, "/metrics", token: network.adminToken)
                        let samples = OperationsTests.samples(String(decoding: answer.body, as: UTF8.self))
                        if samples["conclave_websockets_open"] == count { return }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            // A client that upgrades, then reads but never writes again: it will not answer the close frame.
            let (socket, upgrade) = try await RawSocket.eventStream(network.url, token: token)
            #expect(upgrade.hasPrefix("HTTP/1.1 101"))
            try await reach(1, "the WebSocket counted")
            _ = try await network.admin.suspend(UserName("alice")!)  // a literal of the test
            let rest = try await withDeadline(.seconds(30), "the close frame") { await socket.readUntilClosed() }
            #expect(rest.contains("session ended"))
            // The server does not wait for an answer for good: the connection is released within its grace period.
            try await reach(0, "the connection's release")
        }
    }

    /// Opens a WebSocket of a device's session and waits for the server to close it.
    static func openWebSocket(_ url: String, token: String) async throws -> WebSocketCloseFrame? {
        var logger = Logger(label: "test.websocket")
        logger.logLevel = .critical
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(token)"
        return try await WebSocketClient.connect(
            url: url.replacingOccurrences(of: "http://", with: "ws://") + "/v1/events", configuration: .init(additionalHeaders: headers),
            logger: logger
        ) { inbound, _, _ in for try await _ in inbound {} }
    }

    /// Opens a WebSocket of a device's session and keeps it open until
    /// cancelled. Says so on `connected` when it opened, and also when it
    /// failed, so that a waiter never waits for good (the failure then
    /// surfaces from the task).
    static func holdWebSocket(_ url: String, token: String, connected: AsyncStream<Void>.Continuation) async throws {
        do {
            try await openAndHold(url, token: token, connected: connected)
        } catch {
            connected.yield()
            throw error
        }
    }

    private static func openAndHold(_ url: String, token: String, connected: AsyncStream<Void>.Continuation) async throws {
        var logger = Logger(label: "test.websocket")
        logger.logLevel = .critical
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(token)"
        try await WebSocketClient.connect(
            url: url.replacingOccurrences(of: "http://", with: "ws://") + "/v1/events", configuration: .init(additionalHeaders: headers),
            logger: logger
        ) { inbound, _, _ in
            connected.yield()
            for try await _ in inbound {}
        }
    }

    @Test("11.12: signing out removes the device from every conversation and from the key package directory")
    func logoutRemovesTheDevice() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(name: "team", members: [network.address("bob")])
            _ = try await bob.receive()
            let token = try #require(await bob.sessionTokenForTesting)
            #expect(try await RawHTTP(baseURL: network.url).send(.POST, "/v1/logout", token: token).status == 200)
            #expect(try await network.admin.devices(try #require(UserName("bob"))).devices.isEmpty)
            try await alice.settle(room.id, to: [network.address("alice")])
            await #expect(throws: ClientError.self) { _ = try await alice.add([network.address("bob")], to: room.id) }
        }
    }

    @Test("11.14: a 1:1 stays a conversation of its two users")
    func oneToOneStaysOneToOne() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            _ = try await network.device("carol")
            let direct = try await alice.directConversation(with: network.address("bob"))
            // The client refuses it; a modified client that commits it anyway is refused by the server (D21).
            await #expect(throws: ClientError.self) { _ = try await alice.add([network.address("carol")], to: direct.id) }
            await expectRefused(.directConversation) { _ = try await alice.addUsersForTesting([network.address("carol")], to: direct.id) }
            // Nobody leaves a 1:1 either: the server refuses, and the client hides it instead.
            let token = try #require(await alice.sessionTokenForTesting)
            RawHTTP(baseURL: network.url).expectRefusal(
                try await RawHTTP(baseURL: network.url).send(.POST, "/v1/conversations/\(direct.id)/leave", token: token),
                .directConversation)
            try await alice.send("still just us", to: direct.id)
            #expect(ConclaveTestSupport.texts(try await bob.receive()) == ["still just us"])
        }
    }

    @Test("11.15: a user learns of others only what it may: devices, groups, suspension")
    func answersOnlyWhatTheAskerMayKnow() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice", "carl", "ceo")
            let contractors = try #require(SecurityGroupName("contractors"))
            _ = try await network.admin.addGroup(contractors, SecurityGroupChange(mayMessage: .only([contractors])))
            _ = try await network.admin.setGroup(of: try #require(UserName("carl")), to: contractors)
            let carl = try await RawDevice.login(network, user: "carl")
            let alice = try await RawDevice.login(network, user: "alice")
            // A9: carl may not message the ceo, so carl cannot list the ceo's devices; alice can.
            carl.http.expectRefusal(try await carl.http.send(.GET, "/v1/users/ceo/devices", token: carl.token), .notFound)
            #expect(try await alice.http.send(.GET, "/v1/users/ceo/devices", token: alice.token).status == 200)
            // P1's refusal names no security group.
            let refused = try await carl.http.send(
                .POST, "/v1/policy", token: carl.token, json: PolicyQuery(members: [network.address("ceo")]))
            carl.http.expectRefusal(refused, .policySegmentation)
            #expect(refused.error?.message.contains("contractors") == false)
            #expect(refused.error?.message.contains("default") == false)
        }
    }

    @Test("11.5–11.7: the sign-in guard slows a guesser, not the owner from elsewhere, and forgets what is past")
    func signInGuard() async throws {
        let guardian = SignInGuard(perAddress: 10, perName: 30, window: 300)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        // One address: after three failures for a name it waits 1 s, 2 s, 4 s…; after ten failures it is refused.
        for index in 0..<3 { await guardian.failed(address: "10.0.0.1", name: "bob", now: start.addingTimeInterval(Double(index))) }
        #expect(await guardian.admit(address: "10.0.0.1", name: "bob", now: start.addingTimeInterval(2.5)) != nil)
        #expect(await guardian.admit(address: "10.0.0.1", name: "bob", now: start.addingTimeInterval(3.5)) == nil)
        for index in 0..<7 { await guardian.failed(address: "10.0.0.1", name: "name\(index)", now: start.addingTimeInterval(4)) }
        #expect(await guardian.admit(address: "10.0.0.1", name: "carol", now: start.addingTimeInterval(5)) != nil)
        // Many addresses guess bob's password: past 30 failures only addresses that have not failed for bob may try.
        for index in 0..<30 { await guardian.failed(address: "10.0.1.\(index)", name: "bob", now: start.addingTimeInterval(10)) }
        #expect(await guardian.admit(address: "10.0.1.7", name: "bob", now: start.addingTimeInterval(20)) != nil)
        // The owner, from elsewhere, is not held back by the guesses.
        #expect(await guardian.admit(address: "192.168.7.7", name: "bob", now: start.addingTimeInterval(20)) == nil)
        // Past the window, everything is forgotten, and the memory with it.
        #expect(await guardian.admit(address: "10.0.0.1", name: "carol", now: start.addingTimeInterval(400)) == nil)
        await guardian.forgetExpired(now: start.addingTimeInterval(400))
        #expect(await guardian.tracked == 2)  // the attempt just admitted, in flight (by address and by pair)
        await guardian.forgetExpired(now: start.addingTimeInterval(461))
        #expect(await guardian.tracked == 0)
    }

    @Test("11.5: attempts sent at once count before any has failed: a burst gets three tries per name and ten per address")
    func signInGuardBurst() async throws {
        let guardian = SignInGuard(perAddress: 10, perName: 30, window: 300)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        var admitted = 0
        for _ in 0..<20 {
            if await guardian.admit(address: "10.0.0.1", name: "root", now: now) == nil { admitted += 1 }
        }
        #expect(admitted == 3)
        for index in 0..<20 {
            if await guardian.admit(address: "10.0.0.1", name: "name\(index)", now: now) == nil { admitted += 1 }
        }
        #expect(admitted == 10)
        // A finished attempt frees its place; an unfinished one frees it after a minute.
        await guardian.succeeded(address: "10.0.0.1", name: "root")
        #expect(await guardian.admit(address: "10.0.0.1", name: "root", now: now) == nil)
        #expect(await guardian.admit(address: "10.0.0.2", name: "other", now: now) == nil)
        #expect(await guardian.admit(address: "10.0.0.1", name: "late", now: now.addingTimeInterval(61)) == nil)
    }

    @Test("11.5: behind a trusted reverse proxy, sign-ins are counted by the address it forwards, and only then")
    func clientAddressBehindAProxy() {
        let proxies: Set<String> = ["10.1.0.1", "10.1.0.2"]
        func address(_ peer: String, _ forwarded: [String]) -> String {
            ConclaveRequestContext.clientAddress(peer: peer, forwardedFor: forwarded, trustedProxies: proxies)
        }
        #expect(address("203.0.113.9", ["198.51.100.1"]) == "203.0.113.9")  // not a proxy: its header is ignored
        #expect(address("10.1.0.1", ["198.51.100.1"]) == "198.51.100.1")
        // Two proxies; what the client wrote itself, further left, is not believed.
        #expect(address("10.1.0.1", ["6.6.6.6, 198.51.100.1", "10.1.0.2"]) == "198.51.100.1")
        #expect(address("10.1.0.1", []) == "10.1.0.1")
    }

    @Test("conclave.json: the limits given change, the others keep their defaults; a value out of range names its key")
    func limitsFromTheConfigurationFile() throws {
        let directory = DataDirectory(path: NSTemporaryDirectory() + "conclave-limits-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try directory.initialise(network: try #require(NetworkDomain("acme.example")), listen: "127.0.0.1:0")
        let written = try String(contentsOfFile: directory.configurationFile, encoding: .utf8)
        func configure(_ extra: String) throws {
            let text = written.trimmingCharacters(in: .whitespacesAndNewlines).dropLast() + ", " + extra + "}"
            try text.write(toFile: directory.configurationFile, atomically: true, encoding: .utf8)
        }
        let limitsGiven = #""limits": {"max_message_bytes": 131072, "messages_per_second": 5, "web_socket_ping_seconds": 45}"#
        try configure(limitsGiven + #", "trusted_proxies": ["10.0.0.2"]"#)
        let settings = try directory.settings()
        let limits = try #require(settings.limits)
        #expect(limits.maxMessageBytes == 131_072)
        #expect(limits.messagesPerSecond == 5)
        #expect(limits.webSocketPingSeconds == 45)
        #expect(limits.connections == ServerLimits().connections)
        #expect(settings.trustedProxies == ["10.0.0.2"])
        try configure(#""limits": {"max_message_bytes": 10}"#)
        let error = try #require(throws: DataDirectory.Failure.self) { try directory.settings() }
        #expect(error.description.contains("limits.max_message_bytes"))
        try configure(#""limits": {"web_socket_ping_seconds": 0.5}"#)
        #expect(throws: DataDirectory.Failure.self) { try directory.settings() }
    }
}
