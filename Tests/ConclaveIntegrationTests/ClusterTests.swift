@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import Testing

/// Several `conclave server run` processes on one PostgreSQL database
/// (docs/operations.md): any process serves any request, and they tell each
/// other what they stored (LISTEN/NOTIFY).
@Suite(.serialized)
struct ClusterTests {
    @Test("14.1: a message accepted by one process reaches WebSockets held by every process")
    func deliveryAcrossProcesses() async throws {
        guard let network = try await ClusterNetwork.start() else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let direct = try await alice.directConversation(with: network.address("bob"))
        _ = try await bob.receive()
        let token = try #require(await bob.sessionTokenForTesting)
        let after = try await Self.lastSeq(network.servers[0].url, token: token)

        // Bob holds a WebSocket on each process; alice's messages are accepted by one of them.
        let (frames, arrived) = AsyncStream<(server: Int, seq: Int64)>.makeStream()
        let (opened, open) = AsyncStream<Void>.makeStream()
        let holders = network.servers.enumerated().map { index, server in
            Task { try await Self.hold(server.url, token: token, after: after, opened: open) { arrived.yield((index, $0)) } }
        }
        defer { for holder in holders { holder.cancel() } }
        var openings = opened.makeAsyncIterator()
        for _ in network.servers { await openings.next() }

        let count = 10
        for index in 1...count { try await alice.send("across \(index)", to: direct.id) }
        let seen = try await withDeadline(.seconds(30), "every message on every process's WebSocket") {
            var seen: [Int: Set<Int64>] = [:]
            for await frame in frames {
                seen[frame.server, default: []].insert(frame.seq)
                if seen.count == network.servers.count, seen.values.allSatisfy({ $0.count >= count }) { break }
            }
            return seen
        }
        #expect(seen.values.allSatisfy { $0.count == count })
        #expect(Set(seen.values).count == 1, "both processes sent the same events")
        #expect(texts(try await bob.receive()) == (1...count).map { "across \($0)" })
    }

    @Test("14.2: SIGKILL of one process under traffic loses no acknowledged message; clients carry on with the other")
    func killOneProcess() async throws {
        guard let network = try await ClusterNetwork.start() else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let direct = try await alice.directConversation(with: network.address("bob"))
        _ = try await bob.receive()

        let acknowledged = Acknowledged()
        let victim = network.servers[0]
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var (index, failures) = (0, 0)
                while acknowledged.all.count < 60 {
                    index += 1
                    do {
                        try await alice.send("clustered \(index)", to: direct.id)
                        acknowledged.append("clustered \(index)")
                    } catch {
                        failures += 1  // in flight on the killed process: never acknowledged
                        if failures > 20 { throw error }
                    }
                }
            }
            group.addTask {
                await acknowledged.reached(20)
                victim.kill()
            }
            try await group.waitForAll()
        }
        #expect(!victim.isRunning)
        #expect(network.servers[1].isRunning)
        try await acknowledged.expectDelivered(to: bob)
        try await bob.send("and back", to: direct.id)
        #expect(texts(try await alice.receive()) == ["and back"])
    }

    /// The device's newest inbox sequence number, read over HTTP.
    static func lastSeq(_ url: String, token: String) async throws -> Int64 {
        let answer = try await RawHTTP(baseURL: url).send(.GET, "/v1/inbox?limit=500", token: token)
        return try answer.decode(InboxPage.self).events.last?.seq ?? 0
    }

    /// Holds a `/v1/events` WebSocket from `after`, handing over the `seq`
    /// of every application message it is sent.
    static func hold(
        _ url: String, token: String, after: Int64, opened: AsyncStream<Void>.Continuation, _ received: @escaping @Sendable (Int64) -> Void
    ) async throws {
        var logger = Logger(label: "test.websocket")
        logger.logLevel = .critical
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(token)"
        try await WebSocketClient.connect(
            url: url.replacingOccurrences(of: "http://", with: "ws://") + "/v1/events?after=\(after)",
            configuration: .init(additionalHeaders: headers), logger: logger
        ) { inbound, _, _ in
            opened.yield()
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message,
                    let event = try? ConclaveJSON.decoder().decode(InboxEvent.self, from: Data(text.utf8)),
                    event.kind == .application
                else { continue }
                received(event.seq)
            }
        }
    }
}
