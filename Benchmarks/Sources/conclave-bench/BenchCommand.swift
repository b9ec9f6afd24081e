import ArgumentParser
import AsyncHTTPClient
import ConclaveBenchmarkSupport
import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import Foundation

/// `conclave-bench`: drives a real server process over loopback and prints
/// delivered messages per second, latency, and memory per idle connection.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave-bench",
        abstract: "Benchmark a real server over loopback: delivered messages/s, latency, memory per idle connection.",
        discussion: """
            Starts `conclave server run` (a release build of the main package: --server-binary, by default \
            .build/release/conclave from the repository's root) as a child process on a temporary data directory and a free port \
            on 127.0.0.1, provisions users with the admin API and signs devices in with the SDK. Scenario "1:1": PAIRS \
            conversations, in each one device posts and the other holds a /v1/events WebSocket. Scenario "room-N": one \
            room of ROOM-SIZE members, ROOM-SENDERS of them post, every member holds a WebSocket (each message is N-1 \
            deliveries). Messages are real MLS PrivateMessages, encrypted before the clock starts; recipients count the \
            inbox frames without decrypting and acknowledge them in batches. delivered/s = deliveries / (last delivery - \
            first send); latency runs from the start of the POST to the frame's arrival. Then a fresh server gets IDLE \
            WebSockets and its memory per connection is measured (VmRSS from /proc). The load generator shares the \
            machine with the server. A benchmark, not a test: it fails only when its machinery does.
            """,
        subcommands: [AttackBenchCommand.self, FileBenchCommand.self, HoldIdleCommand.self])

    @Option(name: .long, help: "1:1 conversations, each with a sending and a receiving device.") var pairs = 20
    @Option(name: .long, help: "Messages posted in the 1:1 scenario, spread over the pairs (0 skips it).") var messages = 20_000
    @Option(name: .long, help: "Members of the room, one device each (0 skips the room scenario).") var roomSize = 50
    @Option(name: .long, help: "How many of the room's members post (at most all of them).") var roomSenders = 5
    @Option(name: .long, help: "Messages posted in the room scenario; each is delivered to every other member.") var roomMessages = 2_000
    @Option(
        name: .long,
        help: "Messages in flight: HTTP requests (one keep-alive connection each), or WebSocket sends shared out over the senders.")
    var concurrency = 64
    @Option(
        name: .long,
        help: ArgumentHelp(
            "How senders post: one HTTP request per message, or sends on a /v1/events WebSocket per sender device.",
            valueName: BenchTransport.allCases.map(\.rawValue).joined(separator: "|"))) var sendOver = BenchTransport.http
    @Option(name: .long, help: "Idle WebSocket connections for the memory measurement.") var idle = 10_000
    @Flag(name: .long, help: "Skip the idle-connection measurement.") var skipIdle = false
    @Option(
        name: .long,
        help: """
            With --postgres: spread the idle connections over this many server processes on the database, each share opened \
            by a client process of its own (for a machine whose open-file limit per process is below --idle).
            """) var idleProcesses = 1
    @Option(name: .long, help: "Run the server on this (empty or bench-only) PostgreSQL database instead of SQLite.") var postgres: String?
    @Flag(
        name: .long,
        help:
            "With --postgres: also run the 1:1 scenario across two server processes on the database (post to one, receive from the other)."
    ) var acrossProcesses = false
    @Option(name: .long, help: "The conclave binary whose server is measured.") var serverBinary = BenchServer.executable
    @Option(name: .long, help: "Keep the benchmark's files in this new directory instead of a temporary one that is deleted.")
    var directory: String?

    func validate() throws {
        guard messages >= 0, roomMessages >= 0, idle >= 0 else { throw ValidationError("counts cannot be negative") }
        guard messages == 0 || (1...1000).contains(pairs) else { throw ValidationError("--pairs must be 1 to 1000") }
        guard roomSize == 0 || (2...1000).contains(roomSize) else { throw ValidationError("--room-size must be 0 or 2 to 1000") }
        guard roomSenders >= 1 else { throw ValidationError("--room-senders must be at least 1") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 4096") }
        guard !acrossProcesses || postgres != nil else { throw ValidationError("--across-processes needs --postgres") }
        guard (1...16).contains(idleProcesses) else { throw ValidationError("--idle-processes must be 1 to 16") }
        guard idleProcesses == 1 || postgres != nil else { throw ValidationError("--idle-processes needs --postgres") }
    }

    func run() async throws {
        let root = directory ?? NSTemporaryDirectory() + "conclave-bench-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // The idle connections of one process (a server, and the client process holding its share; the servers and the
        // clients inherit this process's limit) against the open-file limit, with room for everything else.
        let perProcess = ((skipIdle ? 0 : idle) + idleProcesses - 1) / idleProcesses
        let wantedFiles = perProcess + 4096
        let fileLimit = OpenFileLimit.raise(to: wantedFiles)
        var idleCount = skipIdle ? 0 : idle
        var notes: [String] = []
        if fileLimit < wantedFiles, (fileLimit - 1024) * idleProcesses < idleCount {
            idleCount = max(0, (fileLimit - 1024) * idleProcesses)
            notes.append(
                "the open-file limit could not be raised to \(wantedFiles) (it is \(fileLimit)): idle connections capped at \(idleCount)")
        }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let http = HTTPClient(configuration: configuration)
        #if DEBUG
            let build = "debug build (numbers are not representative; use `swift build -c release`)"
        #else
            let build = "release build"
        #endif
        say("== conclave bench: \(build), \(ProcessInfo.processInfo.activeProcessorCount) cores, files in \(root)")
        say(
            "   storage: \(postgres == nil ? "SQLite (WAL, synchronous=FULL)" : "PostgreSQL"); \(concurrency) messages in flight, sent over \(sendOver.rawValue)"
        )

        var rows: [BenchRow] = []
        var idleResult: BenchIdleResult?
        do {
            if messages > 0 || roomSize > 0 {
                rows = try await runMessageScenarios(root: root + "/messages", http: http)
            }
            if idleCount > 0 {
                idleResult = try await runIdle(root: root + "/idle", count: idleCount, http: http)
            }
        } catch {
            try? await http.shutdown()
            say("== failed: \(error); files kept in \(root)")
            throw ExitCode.failure
        }
        try await http.shutdown()

        say("")
        say(BenchRow.table(rows))
        if let idleResult { say(idleResult.line) }
        for row in rows { notes += row.notes.map { "\(row.scenario): \($0)" } }
        for note in notes { say("note: \(note)") }
        if directory == nil { try? FileManager.default.removeItem(atPath: root) }
    }

    /// 1:1 and room on one server.
    private func runMessageScenarios(root: String, http: HTTPClient) async throws -> [BenchRow] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        say("== starting a server for the message scenarios")
        let server = try await BenchServer.start(directory: root + "/server", postgres: postgres, http: http, executable: serverBinary)
        say("   server pid \(server.pid) on \(server.url)")
        do {
            let network = BenchNetwork(server: server, root: root)
            var rows: [BenchRow] = []
            let warm = concurrency
            if messages > 0 {
                say("== 1:1: signing in \(2 * pairs) devices, creating \(pairs) conversations, encrypting \(messages + warm) messages")
                let scenario = try await BenchSetup.direct(network, pairs: pairs, messages: messages, warm: warm)
                rows.append(try await BenchRunner.run(scenario, server: server, over: sendOver, http: http, concurrency: concurrency))
            }
            if acrossProcesses, messages > 0 {
                say("== 1:1 across processes: a second server process on the same database; posting to one, receiving from the other")
                let second = try await BenchServer.run(
                    directory: root + "/server", postgres: postgres, http: http, adminToken: server.adminToken, executable: serverBinary)
                defer { second.stop() }
                let scenario = try await BenchSetup.direct(network, pairs: pairs, messages: messages, warm: warm, prefix: "x")
                var row = try await BenchRunner.run(
                    scenario, server: server, receiver: second, over: sendOver, http: http, concurrency: concurrency)
                row.scenario = "1:1 across 2 processes"
                rows.append(row)
            }
            if roomSize > 0 {
                say("== room: signing in \(roomSize) devices, creating the room, encrypting \(roomMessages + warm) messages")
                let scenario = try await BenchSetup.room(
                    network, size: roomSize, senders: min(roomSenders, roomSize), messages: roomMessages, warm: warm)
                rows.append(try await BenchRunner.run(scenario, server: server, over: sendOver, http: http, concurrency: concurrency))
            }
            if !server.stop() { say("   (the server did not stop within 10 s of SIGTERM and was killed)") }
            return rows
        } catch {
            say("   server log (\(server.logFile)):\n\(server.logTail)")
            server.stop()
            throw error
        }
    }

    /// Idle connections on a fresh server.
    private func runIdle(root: String, count: Int, http: HTTPClient) async throws -> BenchIdleResult {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        say("== starting a fresh server for \(count) idle connections")
        // A device holds at most `webSocketsPerDevice` WebSockets (D24): the connections are spread over devices that
        // each hold up to the highest limit the server takes.
        var limits = ServerLimits.unthrottled
        limits.webSocketsPerDevice = 1_000
        let server = try await BenchServer.start(
            directory: root + "/server", postgres: postgres, http: http, limits: limits, executable: serverBinary)
        say("   server pid \(server.pid) on \(server.url)")
        var others: [BenchServer] = []
        defer { for other in others { other.stop() } }
        do {
            for _ in 1..<idleProcesses {
                others.append(
                    try await BenchServer.run(
                        directory: root + "/server", postgres: postgres, http: http, adminToken: server.adminToken,
                        executable: serverBinary))
            }
            let network = BenchNetwork(server: server, root: root)
            // Each process's share over devices of its own, up to 1,000 connections each.
            let share: Int = (count + idleProcesses - 1) / idleProcesses
            let perDevice = [Int](repeating: (share + 999) / 1_000, count: idleProcesses)
            let names: [String] = (0..<max(1, perDevice.reduce(0, +))).map { "idle\($0)" }
            let devices = try await network.devices(names)
            var tokens: [String] = []
            for device in devices {
                guard let token = await device.sessionTokenForBenchmark else { throw BenchError("an idle device did not sign in") }
                tokens.append(token)
                await device.close()
            }
            let result: BenchIdleResult
            if others.isEmpty {
                result = try await BenchRunner.idle(count: count, tokens: tokens, server: server)
            } else {
                var shares: [[String]] = []
                var next = 0
                for devices in perDevice {
                    shares.append(Array(tokens[next..<min(tokens.count, next + devices)]))
                    next += devices
                }
                result = try await BenchRunner.idle(count: count, tokens: shares, servers: [server] + others, root: root)
            }
            for other in others { other.stop() }
            if !server.stop() { say("   (the server did not stop within 10 s of SIGTERM and was killed)") }
            return result
        } catch {
            say("   server log (\(server.logFile)):\n\(server.logTail)")
            server.stop()
            throw error
        }
    }
}

extension BenchTransport: ExpressibleByArgument {}
