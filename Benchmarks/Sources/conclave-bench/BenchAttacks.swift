import ArgumentParser
import AsyncHTTPClient
import ConclaveBenchmarkSupport
import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import Foundation
import NIOCore
import Synchronization

/// `conclave-bench attacks`: the two resource attacks of the security
/// review, replayed against a real server process, with the figures that
/// show whether the server holds: `/healthz` latency while sign-ins flood
/// the server, and the server's memory while a device reads a huge inbox.
struct AttackBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attacks",
        abstract: "Replay the sign-in flood and the inbox-read attack against a real server; print latency and memory.",
        discussion: """
            Sign-in flood: FLOOD-CLIENTS connections post sign-ins with random user names and wrong passwords for \
            FLOOD-SECONDS, while a probe asks GET /healthz every 100 ms; the table gives the probe's latency before and \
            during the flood, and how the sign-ins were answered. It runs twice: from one address with the default \
            limits, and with the per-address limit lifted (an attacker with many addresses). Inbox read: a device's \
            inbox is filled with INBOX-MB of 250 KB messages, then READERS concurrent GET /v1/inbox?limit=500 read it; \
            the table gives the server's resident memory (VmRSS, sampled every 20 ms) before and at its peak. \
            --server-binary runs another build's server (e.g. one built from an older commit) for a before/after \
            comparison in the same session. A benchmark, not a test: it fails only when its machinery does.
            """)

    @Option(name: .long, help: "Seconds each sign-in flood lasts.") var floodSeconds = 15
    @Option(name: .long, help: "Connections posting sign-ins at once.") var floodClients = 6
    @Option(name: .long, help: "Megabytes of messages in the inbox that is read.") var inboxMb = 56
    @Option(name: .long, help: "Concurrent reads of that inbox.") var readers = 8
    @Option(name: .long, help: "The conclave binary whose server is measured (default: .build/release/conclave).") var serverBinary: String?
    @Option(name: .long, help: "Keep the benchmark's files in this new directory instead of a temporary one that is deleted.")
    var directory: String?

    func validate() throws {
        guard (1...600).contains(floodSeconds) else { throw ValidationError("--flood-seconds must be 1 to 600") }
        guard (1...256).contains(floodClients) else { throw ValidationError("--flood-clients must be 1 to 256") }
        guard (1...2048).contains(inboxMb) else { throw ValidationError("--inbox-mb must be 1 to 2048") }
        guard (1...64).contains(readers) else { throw ValidationError("--readers must be 1 to 64") }
    }

    func run() async throws {
        let root = directory ?? NSTemporaryDirectory() + "conclave-attacks-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let http = HTTPClient(configuration: configuration)
        say("== conclave bench attacks: server \(serverBinary ?? BenchServer.executable), files in \(root)")
        var rows: [(String, String)] = []
        do {
            var lifted = ServerLimits.unthrottled
            lifted.signInFailuresPerAddress = 1_000_000
            for (name, limits) in [("one address", ServerLimits.unthrottled), ("many addresses", lifted)] {
                rows += try await flood(name, limits: limits, root: root + "/flood-\(rows.count)", http: http)
            }
            rows += try await inboxRead(root: root + "/inbox", http: http)
        } catch {
            try? await http.shutdown()
            say("== failed: \(error); files kept in \(root)")
            throw ExitCode.failure
        }
        try await http.shutdown()
        say("")
        say("| measure | value |\n|---|---:|")
        for (measure, value) in rows { say("| \(measure) | \(value) |") }
        if directory == nil { try? FileManager.default.removeItem(atPath: root) }
    }

    // MARK: Sign-in flood

    private func flood(_ name: String, limits: ServerLimits, root: String, http: HTTPClient) async throws -> [(String, String)] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let server = try await BenchServer.start(
            directory: root + "/server", postgres: nil, http: http, limits: limits, executable: serverBinary)
        defer { server.stop() }
        say("== sign-in flood (\(name)): server pid \(server.pid); \(floodClients) clients for \(floodSeconds) s")
        let quiet = try await probe(server.url, http: http, until: .now + .seconds(3))
        let answers = StatusCounts()
        let deadline = ContinuousClock.now + .seconds(floodSeconds)
        let url = server.url
        let during = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for _ in 0..<floodClients {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let status = await Self.signIn(url, http: http)
                        answers.count(status)
                    }
                    return []
                }
            }
            group.addTask { try await self.probe(url, http: http, until: deadline) }
            var latencies: [Duration] = []
            for try await result in group { latencies += result }
            return latencies
        }
        let counts = answers.counts.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key == 0 ? "error" : "\($0.key)")" }
        return [
            ("sign-in flood, \(name): /healthz p50 / max before", "\(Self.milliseconds(quiet, 0.5)) / \(Self.milliseconds(quiet, 1))"),
            (
                "sign-in flood, \(name): /healthz p50 / p90 / max during",
                [0.5, 0.9, 1].map { Self.milliseconds(during, $0) }.joined(separator: " / ")
            ),
            ("sign-in flood, \(name): sign-ins answered", counts.joined(separator: ", ")),
        ]
    }

    /// One sign-in with a random user name and a wrong password; its status (0: no answer).
    private static func signIn(_ url: String, http: HTTPClient) async -> UInt {
        let body = LoginRequest(
            user: "flood-\(UUID().uuidString.prefix(12).lowercased())", password: "not the password", deviceName: "flood",
            signatureKey: Base64Bytes((0..<32).map { _ in UInt8.random(in: 0...255) }), cipherSuite: 1)
        var request = HTTPClientRequest(url: url + "/v1/login")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        guard let bytes = try? ConclaveJSON.encoder().encode(body) else { return 0 }
        request.body = .bytes(ByteBuffer(bytes: bytes))
        guard let response = try? await http.execute(request, timeout: .seconds(60)) else { return 0 }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status.code
    }

    /// GET /healthz every 100 ms until `deadline`; each answer's latency
    /// (a request without an answer within 30 s counts as 30 s).
    private func probe(_ url: String, http: HTTPClient, until deadline: ContinuousClock.Instant) async throws -> [Duration] {
        var latencies: [Duration] = []
        while ContinuousClock.now < deadline {
            let start = ContinuousClock.now
            var request = HTTPClientRequest(url: url + "/healthz")
            request.method = .GET
            if let response = try? await http.execute(request, timeout: .seconds(30)) {
                _ = try? await response.body.collect(upTo: 1 << 16)
            }
            latencies.append(ContinuousClock.now - start)
            try await Task.sleep(until: start + .milliseconds(100))
        }
        return latencies
    }

    private static func milliseconds(_ values: [Duration], _ quantile: Double) -> String {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return "–" }
        let value = sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * quantile).rounded()))]
        let (seconds, attoseconds) = value.components
        return String(format: "%.1f ms", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
    }

    // MARK: Inbox read

    private func inboxRead(root: String, http: HTTPClient) async throws -> [(String, String)] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let server = try await BenchServer.start(directory: root + "/server", postgres: nil, http: http, executable: serverBinary)
        defer { server.stop() }
        let network = BenchNetwork(server: server, root: root)
        let devices = try await network.devices(["alice", "bob"])
        guard devices.count == 2, let bobAddress = network.address("bob"), let token = await devices[1].sessionTokenForBenchmark,
            let aliceToken = await devices[0].sessionTokenForBenchmark
        else { throw BenchError("the devices did not sign in") }
        let count = max(1, inboxMb * 1_000_000 / 250_000)
        say("== inbox read: server pid \(server.pid); filling bob's inbox with \(count) messages of 250 KB")
        let conversation = try await devices[0].directConversation(with: bobAddress)
        let messages = try await devices[0].encryptForBenchmark(
            String(repeating: "x", count: 250_000), count: count, to: conversation.id)
        let encoder = ConclaveJSON.encoder()
        for message in messages {
            var request = HTTPClientRequest(url: server.url + "/v1/conversations/\(conversation.id)/messages")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(aliceToken)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try encoder.encode(message)))
            let response = try await http.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .created else { throw BenchError("a fill message was refused: \(String(buffer: body).prefix(200))") }
        }
        for device in devices { await device.close() }
        try await Task.sleep(for: .seconds(1))
        let before = server.residentBytes ?? 0
        let peak = PeakMemory(before)
        let sampler = Task {
            while !Task.isCancelled {
                if let resident = server.residentBytes { peak.record(resident) }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        say("   \(readers) concurrent reads of the inbox")
        let start = ContinuousClock.now
        let url = server.url
        let returned = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<readers {
                group.addTask {
                    var request = HTTPClientRequest(url: url + "/v1/inbox?limit=500")
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    let response = try await http.execute(request, timeout: .seconds(300))
                    return try await response.body.collect(upTo: 4 << 30).readableBytes
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = ContinuousClock.now - start
        sampler.cancel()
        await sampler.value
        if let resident = server.residentBytes { peak.record(resident) }
        let mebibytes = { (bytes: Int) in String(format: "%.0f MiB", Double(bytes) / 1_048_576) }
        return [
            ("inbox read: messages in the inbox", "\(count) × 250 KB"),
            ("inbox read: server RSS before / peak during \(readers) reads", "\(mebibytes(before)) / \(mebibytes(peak.value))"),
            ("inbox read: bytes returned per read", mebibytes(returned / readers)),
            ("inbox read: time for the \(readers) reads", Self.milliseconds([elapsed], 1)),
        ]
    }
}

/// How the flood's sign-ins were answered, by status (0: no answer).
final class StatusCounts: Sendable {
    private let table = Mutex<[UInt: Int]>([:])

    func count(_ status: UInt) { table.withLock { $0[status, default: 0] += 1 } }
    var counts: [UInt: Int] { table.withLock { $0 } }
}

/// The largest resident size sampled.
final class PeakMemory: Sendable {
    private let peak: Atomic<Int>

    init(_ initial: Int) { peak = Atomic(initial) }

    var value: Int { peak.load(ordering: .relaxed) }

    func record(_ candidate: Int) {
        var current = peak.load(ordering: .relaxed)
        while candidate > current {
            let (exchanged, original) = peak.compareExchange(expected: current, desired: candidate, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}
