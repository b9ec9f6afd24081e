@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// The WebSocket protocol of `/v1/events` as the server's own channel
/// handler speaks it (RFC 6455), frame by frame from a raw socket.
@Suite
struct EventStreamTests {
    typealias Wire = WebSocketWire

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
        try await TestNetwork.run(.sqlite) { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.ping, Array("are you there".utf8)))
            let pong = try await Self.frames(until: Wire.pong, from: socket).first { $0.opcode == Wire.pong }
            #expect(pong?.payload == Array("are you there".utf8))
        }
    }

    @Test("A frame that is not masked is a protocol error: close 1002, and the connection ends")
    func unmaskedFrame() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.text, Array(#"{"ack": 1}"#.utf8), masked: false))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: socket)) == 1002)
            // The client does not answer the close frame: the server ends the connection all the same.
            #expect(try await withDeadline(.seconds(30), "the close") { await socket.readUntilClosed() }.isEmpty)
        }
    }

    @Test("A message over 4096 bytes, whole or in fragments, is closed with 1009; a continuation of nothing with 1002")
    func oversizeAndStrayFragments() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let (_, whole) = try await Self.openStream(network)
            try whole.send(bytes: Wire.frame(Wire.text, Array(repeating: 0x20, count: 4097)))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: whole)) == 1009)

            let token = try #require(await network.device("bob").sessionTokenForTesting)
            let (fragments, _) = try await RawSocket.eventStream(network.url, token: token)
            try fragments.send(bytes: Wire.frame(Wire.text, Array(repeating: 0x20, count: 3000), fin: false))
            try fragments.send(bytes: Wire.frame(Wire.continuation, Array(repeating: 0x20, count: 3000)))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: fragments)) == 1009)

            let (stray, _) = try await RawSocket.eventStream(network.url, token: token)
            try stray.send(bytes: Wire.frame(Wire.continuation, Array("}".utf8)))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: stray)) == 1002)
        }
    }

    @Test("A client's close frame is answered with its code, and the server ends the connection")
    func clientClose() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let (_, socket) = try await Self.openStream(network)
            try socket.send(bytes: Wire.frame(Wire.close, Wire.closePayload(1000, "bye")))
            #expect(Self.closeCode(try await Self.frames(until: Wire.close, from: socket)) == 1000)
            #expect(try await withDeadline(.seconds(30), "the close") { await socket.readUntilClosed() }.isEmpty)
        }
    }

    @Test("An acknowledgement sent in two fragments, with a ping between them, is taken: the event leaves the inbox")
    func fragmentedAcknowledgement() async throws {
        try await TestNetwork.run(.sqlite) { network in
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
        try await TestNetwork.run(.sqlite) { network in
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

    struct Sequenced: Decodable {
        let seq: Int64
    }
}
