import ConclaveBenchmarkSupport
@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Synchronization
import Testing

@testable import ConclaveServer

/// The WebSocket protocol of `/v1/events` as the server's own channel
/// handler speaks it (RFC 6455), frame by frame from a raw socket.
@Suite
struct EventStreamTests {
    typealias Wire = WebSocketWire

    /// A network whose WebSockets are pinged once an hour: a raw socket
    /// answers no ping, and a test that runs long beside the rest of the
    /// suite must not be closed for it (pings have a test of their own).
    static func run(
        _ configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestNetwork) async throws -> Void
    ) async throws {
        try await TestNetwork.run(
            .sqlite,
            configure: {
                $0.limits.webSocketPingSeconds = 3_600
                configure(&$0)
            }, body)
    }

    /// alice's device, and a raw WebSocket of its session.
    static func openStream(_ network: TestNetwork) async throws -> (alice: ConclaveClient, socket: RawSocket) {
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let token = try #require(await alice.sessionTokenForTesting)
        let (socket, answer) = try await RawSocket.eventStream(network.url, token: token)
        #expect(answer.hasPrefix("HTTP/1.1 101"))
        return (alice, socket)
    }

    /// The server's frames until it sends one with this opcode (or closes).
    static func frames(until opcode: UInt8, from socket: RawSocket) async throws -> [(opcode: UInt8, fin: Bool, payload: [UInt8])] {
        let bytes = try await withDeadline(.seconds(30), "a frame \(opcode)") {
            await socket.receive(bytesUntil: { Wire.holds(opcode, in: $0) })
        }
        return Wire.frames(bytes)
    }

    static func closeCode(_ frames: [(opcode: UInt8, fin: Bool, payload: [UInt8])]) -> UInt16? {
        guard let close = frames.first(where: { $0.opcode == Wire.close }), close.payload.count >= 2 else { return nil }
        return UInt16(close.payload[0]) << 8 | UInt16(close.payload[1])
    }

    @Test("A ping is answered with a pong of the same data")
    func pingPong() async throws {
        try await Self.run { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.ping, Array("are you there".utf8)))
            let pong = try await Self.frames(until: Wire.pong, from: socket).first { $0.opcode == Wire.pong }
            #expect(pong?.payload == Array("are you there".utf8))
        }
    }

    @Test("The server pings: a client that answers stays open, one that does not is closed with 1001 at the next ping")
    func pingTimeout() async throws {
        // A pong must arrive before the next ping: it is sent from the thread that reads the socket, at once.
        let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.limits.webSocketPingSeconds = 2 }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            let (alice, socket) = try await Self.openStream(network)
            // The first two pings are answered, each with its own data: the connection stays open. The third goes
            // unanswered: a fourth is not sent, the connection is closed instead.
            let answered = Mutex(0)
            let bytes = try await withDeadline(.seconds(60), "the close") {
                await socket.receive(bytesUntil: { data in
                    let frames = Wire.frames(data)
                    let pings = frames.filter { $0.opcode == Wire.ping }
                    answered.withLock { count in
                        while count < min(pings.count, 2) {
                            try? socket.send(bytes: Wire.frame(Wire.pong, pings[count].payload))
                            count += 1
                        }
                    }
                    return frames.contains { $0.opcode == Wire.close }
                })
            }
            let frames = Wire.frames(bytes)
            let pings = frames.filter { $0.opcode == Wire.ping }.map(\.payload)
            #expect(pings.count == 3 && Set(pings).count == 3 && pings.allSatisfy { $0.count == 16 })
            #expect(Self.closeCode(frames) == 1001 && frames.last?.opcode == Wire.close)
            #expect(String(decoding: frames.last?.payload.dropFirst(2) ?? [], as: UTF8.self) == "ping timeout")
            #expect(try await withDeadline(.seconds(30), "the end of the connection") { await socket.readUntilClosed() }.isEmpty)
            // The device itself is not cut off: a new connection opens.
            let token = try #require(await alice.sessionTokenForTesting)
            #expect(try await RawSocket.eventStream(network.url, token: token).answer.hasPrefix("HTTP/1.1 101"))
        }
    }

    @Test("A frame that is not masked is a protocol error: close 1002, and the connection ends")
    func unmaskedFrame() async throws {
        try await Self.run { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"ack": 1}"#.utf8), masked: false))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: socket)) == 1002)
            // The client does not answer the close frame: the server ends the connection all the same.
            #expect(try await withDeadline(.seconds(30), "the close") { await socket.readUntilClosed() }.isEmpty)
        }
    }

    @Test(
        "A message beyond a send of the largest application message, whole or in fragments, is closed with 1009; a stray continuation with 1002"
    )
    func oversizeAndStrayFragments() async throws {
        try await Self.run(
            { $0.limits.maxMessageBytes = 1024 },
            { network in
                let limit = EventStreamHandler.Settings.maxMessage(forMessageBytes: 1024)
                let (_, whole) = try await Self.openStream(network)
                try whole.send(bytes: Wire.frame(Wire.text, Array(repeating: 0x20, count: limit + 1)))
                #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: whole)) == 1009)

                let token = try #require(await network.device("bob").sessionTokenForTesting)
                let (fragments, _) = try await RawSocket.eventStream(network.url, token: token)
                try fragments.send(bytes: Wire.frame(Wire.text, Array(repeating: 0x20, count: limit / 2 + 1), fin: false))
                try fragments.send(bytes: Wire.frame(Wire.continuation, Array(repeating: 0x20, count: limit / 2 + 1)))
                #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: fragments)) == 1009)

                let (stray, _) = try await RawSocket.eventStream(network.url, token: token)
                try stray.send(bytes: Wire.frame(Wire.continuation, Array("}".utf8)))
                #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: stray)) == 1002)
            })
    }

    @Test("A client's close frame is answered with its code, and the server ends the connection")
    func clientClose() async throws {
        try await Self.run { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.close, Wire.closePayload(1000, "bye")))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: socket)) == 1000)
            #expect(try await withDeadline(.seconds(30), "the close") { await socket.readUntilClosed() }.isEmpty)
        }
    }

    @Test("An acknowledgement sent in two fragments, with a ping between them, is taken: the event leaves the inbox")
    func fragmentedAcknowledgement() async throws {
        try await Self.run { network in
            let (alice, socket) = try await Self.openStream(network)
            let bob = try await network.device("bob")
            _ = try await bob.directConversation(with: network.address("alice"))
            // What the server pushes: the events of the new conversation, each with its sequence number.
            let pushed = try await withDeadline(.seconds(30), "an event") {
                await socket.receive(bytesUntil: { Wire.holds(Wire.text, in: $0) })
            }
            let events = Wire.frames(pushed).filter { $0.opcode == Wire.text }
            let seq = try #require(
                events.compactMap { try? JSONDecoder().decode(Sequenced.self, from: Data($0.payload)).seq }.max())
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"ack":"#.utf8), fin: false))
            try socket.send(bytes: Wire.frame(Wire.ping, []))
            try socket.send(bytes: Wire.frame(Wire.continuation, Array(" \(seq)}".utf8)))
            let token = try #require(await alice.sessionTokenForTesting)
            let http = RawHTTP(baseURL: network.url)
            try await withDeadline(.seconds(30), "the acknowledgement") {
                while true {
                    let page = try await http.send(.GET, "/v1/inbox?after=0", token: token).decode(InboxPage.self)
                    if !page.events.contains(where: { $0.seq <= seq }) { return }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
    }

    @Test("An upgrade asked on a connection's second request is sent to a new connection: 307 to a path of this server only")
    func lateUpgrade() async throws {
        try await Self.run { network in
            let socket = try RawSocket(url: network.url)
            try socket.send(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "GET //evil.example/v1/events?after=3 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let answers = try await withDeadline(.seconds(30), "the answers") { await socket.readUntilClosed() }.lowercased()
            #expect(answers.hasPrefix("http/1.1 200") && answers.contains("http/1.1 307"))
            let location = try #require(answers.split(separator: "\r\n").first { $0.hasPrefix("location: ") }).dropFirst("location: ".count)
            #expect(location.hasPrefix("/") && !location.hasPrefix("//"), "\(location)")
        }
    }

    @Test("A message sent on the WebSocket is answered once stored, reaches its recipient, and is refused as over HTTP")
    func sendOnTheStream() async throws {
        try await Self.run { network in
            let (alice, socket) = try await Self.openStream(network)
            let bob = try await network.device("bob")
            let conversation = try await alice.directConversation(with: network.address("bob")).id
            let messages = try await alice.encryptForBenchmark("over the stream", count: 2, to: conversation)
            func send(_ ref: String, _ message: SendMessage, to id: ConversationID = conversation) throws {
                let frame = EventStreamSend(ref: ref, conversation: id, send: message)
                try socket.send(bytes: Wire.frame(Wire.text, Array(try ConclaveJSON.encoder().encode(frame))))
            }

            try send("first", messages[0])
            let first = try await Self.answer("first", from: socket)
            #expect(first.created == true && first.accepted?.messageId == messages[0].messageId && first.error == nil)
            // D17: the same message id again is answered as stored, not stored twice.
            try send("again", messages[0])
            let again = try await Self.answer("again", from: socket)
            #expect(again.created == false && again.accepted?.sentAt == first.accepted?.sentAt)
            let received = try await bob.receive().compactMap { event -> String? in
                guard case .message(let message) = event else { return nil }
                return message.text
            }
            #expect(received == ["over the stream"])

            // Refused with the code and message the HTTP route gives, and nothing stored.
            try send("elsewhere", messages[1], to: .random())
            #expect(try await Self.answer("elsewhere", from: socket).error?.code == .notFound)
            var garbled = messages[1]
            garbled.message = Base64Bytes([0, 1, 2])
            try send("garbled", garbled)
            #expect(try await Self.answer("garbled", from: socket).error?.code == .invalidMLSMessage)
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"ref":"shape","conversation":"zz","send":{}}"#.utf8)))
            #expect(try await Self.answer("shape", from: socket).error?.code == .badRequest)
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"ref":"no-body","conversation":"\#(conversation)"}"#.utf8)))
            #expect(try await Self.answer("no-body", from: socket).error?.code == .badRequest)
            #expect(try await bob.receive().isEmpty)

            // D8: a message of an epoch the conversation has left is refused, the first time after the commit dropped
            // what memory held of it, and again from memory.
            _ = try await alice.setSettings(ConversationSettings(messageLifetime: 600), in: conversation)
            for ref in ["stale", "stale-again"] {
                try send(ref, messages[1])
                #expect(try await Self.answer(ref, from: socket).error?.code == .wrongEpoch)
            }
            #expect(!(try await bob.receive()).contains { if case .message = $0 { true } else { false } })

            // A session that ended between two sends: the next is refused (and the connection closed).
            _ = try await network.admin.suspend(try #require(UserName("alice")))
            try send("after-suspension", messages[1])
            let bytes = try await withDeadline(.seconds(30), "the refusal or the close") {
                await socket.receive(bytesUntil: { Wire.holds(Wire.close, in: $0) })
            }
            let answers = Wire.frames(bytes).filter { $0.opcode == Wire.text }.compactMap {
                try? ConclaveJSON.decoder().decode(EventStreamAnswer.self, from: Data($0.payload))
            }
            #expect(answers.allSatisfy { $0.error?.code == .unauthenticated })
            // bob hears of alice's removal (the server's proposal), and of no message.
            #expect(!(try await bob.receive()).contains { if case .message = $0 { true } else { false } })
        }
    }

    @Test("A device's sends waiting for their answer, over all its WebSockets, are capped; those beyond are refused at once")
    func sendsPerDeviceAreCapped() async throws {
        // Fewer sends per connection than a connection may have waiting (64): every frame is read while the writer is held.
        let (connections, perConnection) = (5, 60)
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            $0.limits = .unthrottled
            $0.limits.webSocketsPerDevice = connections
        }
        try await Self.run(configure) { network in
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            _ = try await network.device("bob")
            let token = try #require(await alice.sessionTokenForTesting)
            let conversation = try await alice.directConversation(with: network.address("bob")).id
            let messages = try await alice.encryptForBenchmark("held", count: connections * perConnection, to: conversation)

            // The writer is held: every send that is admitted waits for it.
            let (entered, enteredSignal) = AsyncStream<Void>.makeStream()
            let (release, releaseSignal) = AsyncStream<Void>.makeStream()
            defer { releaseSignal.finish() }  // also when the test fails: the server must close its store
            let holder = Task {
                try await network.store.database.transaction { _ in
                    enteredSignal.yield()
                    for await _ in release { break }
                }
            }
            for await _ in entered { break }

            let expectedRefusals = connections * perConnection - EventStreamSessions.sendsPerDevice
            let refusals = RefusalCount(connections: connections, enough: expectedRefusals)
            var readers: [Task<[EventStreamAnswer], any Error>] = []
            for index in 0..<connections {
                let (socket, answer) = try await RawSocket.eventStream(network.url, token: token)
                #expect(answer.hasPrefix("HTTP/1.1 101"))
                var frames: [UInt8] = []
                for (offset, message) in messages[(index * perConnection)..<((index + 1) * perConnection)].enumerated() {
                    let send = EventStreamSend(ref: "\(index)-\(offset)", conversation: conversation, send: message)
                    frames += Wire.frame(Wire.text, Array(try ConclaveJSON.encoder().encode(send)))
                }
                try socket.send(bytes: frames)
                readers.append(
                    Task {
                        let bytes = await socket.receive(bytesUntil: { bytes in
                            let answers = Self.answers(in: bytes)
                            refusals.set(index, answers.filter { $0.error != nil }.count)
                            return answers.count >= perConnection
                        })
                        return Self.answers(in: bytes)
                    })
            }
            try await withDeadline(.seconds(60), "the refusals") { await refusals.reached() }
            #expect(refusals.total == expectedRefusals)  // and nothing was answered as stored: the writer is held

            releaseSignal.finish()
            try await holder.value
            var answers: [EventStreamAnswer] = []
            for reader in readers { answers += try await withDeadline(.seconds(60), "every answer") { try await reader.value } }
            #expect(answers.count == connections * perConnection)
            #expect(answers.filter { $0.created == true }.count == EventStreamSessions.sendsPerDevice)
            let refused = answers.filter { $0.error != nil }
            #expect(refused.count == expectedRefusals)
            #expect(refused.allSatisfy { $0.error?.code == .rateLimited })
        }
    }

    /// The send answers among the frames read so far (a frame cut off at the end is left out).
    static func answers(in bytes: [UInt8]) -> [EventStreamAnswer] {
        Wire.frames(bytes).filter { $0.opcode == Wire.text }.compactMap {
            try? ConclaveJSON.decoder().decode(EventStreamAnswer.self, from: Data($0.payload))
        }.filter { $0.ref != nil }
    }

    /// Refusals seen on each connection, and a wait until they add up to `enough`.
    final class RefusalCount: Sendable {
        private let state: Mutex<(counts: [Int], waiter: CheckedContinuation<Void, Never>?)>
        private let enough: Int

        init(connections: Int, enough: Int) {
            state = Mutex((Array(repeating: 0, count: connections), nil))
            self.enough = enough
        }

        var total: Int { state.withLock { $0.counts.reduce(0, +) } }

        func set(_ connection: Int, _ count: Int) {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.counts[connection] = count
                guard state.counts.reduce(0, +) >= enough else { return nil }
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }

        /// Returns once the refusals add up to `enough`, or the task is cancelled.
        func reached() async {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let done = state.withLock { state -> Bool in
                        guard state.counts.reduce(0, +) < enough, !Task.isCancelled else { return true }
                        state.waiter = continuation
                        return false
                    }
                    if done { continuation.resume() }
                }
            } onCancel: {
                state.withLock { state in
                    defer { state.waiter = nil }
                    return state.waiter
                }?.resume()
            }
        }
    }

    @Test("A send without a usable ref is refused without one; a frame that is neither a send nor an acknowledgement is ignored")
    func sendWithoutRef() async throws {
        try await Self.run { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"hello":"there"}"#.utf8)))
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"conversation":"00","send":{}}"#.utf8)))
            let bytes = try await withDeadline(.seconds(30), "the refusal") {
                await socket.receive(bytesUntil: { Wire.holds(Wire.text, in: $0) })
            }
            let frames = Wire.frames(bytes).filter { $0.opcode == Wire.text }
            #expect(frames.count == 1)
            let answer = try ConclaveJSON.decoder().decode(EventStreamAnswer.self, from: Data(try #require(frames.first).payload))
            #expect(answer.ref == nil && answer.error?.code == .badRequest)
        }
    }

    /// The answer with this ref, among the frames the server sends.
    static func answer(_ ref: String, from socket: RawSocket) async throws -> EventStreamAnswer {
        let marker = #""ref":"\#(ref)""#
        let isAnswer: @Sendable ((opcode: UInt8, fin: Bool, payload: [UInt8])) -> Bool = {
            $0.opcode == Wire.text && String(decoding: $0.payload, as: UTF8.self).contains(marker)
        }
        let bytes = try await withDeadline(.seconds(30), "the answer to \(ref)") {
            await socket.receive(bytesUntil: { Wire.frames($0).contains(where: isAnswer) })
        }
        let frame = try #require(Wire.frames(bytes).first(where: isAnswer))
        return try ConclaveJSON.decoder().decode(EventStreamAnswer.self, from: Data(frame.payload))
    }

    struct Sequenced: Decodable {
        let seq: Int64
    }
}
