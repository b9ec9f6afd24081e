import AsyncHTTPClient
import ConclaveBenchmarkSupport
import ConclaveClient
import ConclaveProtocol
import Foundation
import NIOCore

/// One scenario, ready to run: the recipients' tokens and the messages,
/// encrypted and encoded, warm-up messages first.
struct BenchScenario: Sendable {
    let name: String
    let devices: Int
    /// Tokens of the devices that hold a WebSocket and count deliveries.
    let recipients: [String]
    let messages: [BenchMessage]
    /// Message id → position in ``messages``.
    let index: [String: Int32]
    /// How many of ``messages`` (the first) only warm up connections and caches.
    let warm: Int
    /// Deliveries per message: the conversation's devices but the sender.
    let fanOut: Int
}

/// A network under benchmark: users provisioned with the admin API,
/// devices signed in with the SDK (profiles under `root`).
struct BenchNetwork {
    let url: String
    let root: String
    /// A per-run prefix of user names, so that runs can share a database.
    let tag: String
    let admin: AdminClient

    static let password = "bench password, not a secret"

    init(server: BenchServer, root: String) {
        url = server.url
        self.root = root
        admin = AdminClient(server: server.url, token: server.adminToken)
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        tag = String((0..<6).map { _ in letters.randomElement() ?? "x" })
    }

    func address(_ name: String) -> UserAddress? { UserAddress("\(tag)-\(name)@bench.example") }

    /// Creates a user per name and signs each in on one device, a few at a
    /// time (every sign-in costs the server an scrypt). In the order of `names`.
    func devices(_ names: [String]) async throws -> [ConclaveClient] {
        try await inBatches(names, of: 4) { name in
            guard let user = UserName("\(tag)-\(name)") else { throw BenchError("not a user name: \(name)") }
            _ = try await admin.addUser(user, password: Self.password, group: nil)
            let client = try await ConclaveClient.open(profile: root + "/profiles/\(user)")
            try await client.login(server: url, user: "\(user)@bench.example", password: Self.password, deviceName: "bench")
            return client
        }
    }
}

/// Runs `body` over `items`, `width` at a time, keeping the order.
func inBatches<Item: Sendable, Result: Sendable>(
    _ items: [Item], of width: Int, _ body: @escaping @Sendable (Item) async throws -> Result
) async throws -> [Result] {
    var results: [Result] = []
    results.reserveCapacity(items.count)
    var start = 0
    while start < items.count {
        let batch = Array(items[start..<min(items.count, start + width)])
        let done = try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            for (offset, item) in batch.enumerated() { group.addTask { (offset, try await body(item)) } }
            var done: [(Int, Result)] = []
            for try await result in group { done.append(result) }
            return done.sorted { $0.0 < $1.0 }.map(\.1)
        }
        results += done
        start += width
    }
    return results
}

/// Building the scenarios' conversations and their messages.
enum BenchSetup {
    /// The plaintext of every message: 100 bytes.
    static let text = String(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 3).prefix(100))

    /// `pairs` 1:1 conversations; in each, one device sends and the other
    /// holds a WebSocket.
    /// `prefix` keeps a second 1:1 scenario's users apart from the first's.
    static func direct(_ network: BenchNetwork, pairs: Int, messages: Int, warm: Int, prefix: String = "") async throws -> BenchScenario {
        let names = (0..<pairs).map { "\(prefix)s\($0)" } + (0..<pairs).map { "\(prefix)r\($0)" }
        let devices = try await network.devices(names)
        let senders = Array(devices[0..<pairs])
        let receivers = Array(devices[pairs...])
        let conversations = try await inBatches(Array(0..<pairs), of: 4) { pair -> ConversationID in
            guard let peer = await receivers[pair].user else { throw BenchError("a receiver is not signed in") }
            let conversation = try await senders[pair].directConversation(with: peer)
            try await receivers[pair].sync()
            return conversation.id
        }
        let scenario = try await plan(
            name: "1:1", devices: 2 * pairs, senders: senders, conversations: conversations, recipients: receivers, messages: messages,
            warm: warm, fanOut: 1)
        for device in devices { await device.close() }
        return scenario
    }

    /// One room of `size` users; the first `senders` members send, every
    /// member holds a WebSocket.
    static func room(_ network: BenchNetwork, size: Int, senders: Int, messages: Int, warm: Int) async throws -> BenchScenario {
        let members = try await network.devices((0..<size).map { "m\($0)" })
        var others: [UserAddress] = []
        for member in members.dropFirst() {
            guard let user = await member.user else { throw BenchError("a member is not signed in") }
            others.append(user)
        }
        let room = try await members[0].createRoom(name: "bench", members: others)
        _ = try await inBatches(Array(members.dropFirst()), of: 8) { member in try await member.sync() }
        let scenario = try await plan(
            name: "room-\(size)", devices: size, senders: Array(members[0..<senders]),
            conversations: Array(repeating: room.id, count: senders),
            recipients: members, messages: messages, warm: warm, fanOut: size - 1)
        for member in members { await member.close() }
        return scenario
    }

    /// Encrypts each sender's share of the messages (warm-up and timed) and
    /// lays them out round-robin over the senders, warm-up first.
    static func plan(
        name: String, devices: Int, senders: [ConclaveClient], conversations: [ConversationID], recipients: [ConclaveClient], messages: Int,
        warm: Int, fanOut: Int
    ) async throws -> BenchScenario {
        let count = senders.count
        @Sendable func share(_ total: Int, _ sender: Int) -> Int { total / count + (sender < total % count ? 1 : 0) }
        let encrypted = try await inBatches(Array(0..<count), of: 4) { sender -> (authorization: String, messages: [SendMessage]) in
            guard let token = await senders[sender].sessionTokenForBenchmark else { throw BenchError("a sender is not signed in") }
            let bodies = try await senders[sender].encryptForBenchmark(
                text, count: share(warm, sender) + share(messages, sender), to: conversations[sender])
            return ("Bearer \(token)", bodies)
        }
        let encoder = ConclaveJSON.encoder()
        var planned: [BenchMessage] = []
        var index: [String: Int32] = [:]
        planned.reserveCapacity(warm + messages)
        index.reserveCapacity(warm + messages)
        for (total, offset) in [(warm, 0), (messages, 1)] {
            let rounds = (0..<count).map { share(total, $0) }.max() ?? 0
            for round in 0..<rounds {
                for sender in 0..<count where round < share(total, sender) {
                    let position = offset == 0 ? round : share(warm, sender) + round
                    let body = encrypted[sender].messages[position]
                    index[body.messageId] = Int32(planned.count)
                    planned.append(
                        BenchMessage(
                            conversation: "\(conversations[sender])", authorization: encrypted[sender].authorization,
                            body: ByteBuffer(bytes: try encoder.encode(body))))
                }
            }
        }
        var tokens: [String] = []
        for recipient in recipients {
            guard let token = await recipient.sessionTokenForBenchmark else { throw BenchError("a recipient is not signed in") }
            tokens.append(token)
        }
        return BenchScenario(name: name, devices: devices, recipients: tokens, messages: planned, index: index, warm: warm, fanOut: fanOut)
    }
}
