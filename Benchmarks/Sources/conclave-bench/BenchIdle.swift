import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Idle WebSockets spread over several server processes on one PostgreSQL
/// database (`--idle-processes`), for a machine whose open-file limit per
/// process is below the number of connections wanted: each server process
/// gets its share, opened by a `conclave-bench hold-idle` child process of
/// its own (the load generator's sockets count against a limit too).
extension BenchRunner {
    /// Opens `count` WebSockets to `url`, the devices' tokens taken in
    /// turn, at most 200 handshakes at a time; the task ends once `gate`
    /// opens and every connection has closed.
    static func openIdle(count: Int, tokens: [String], url: String, counters: BenchCounters, gate: BenchGate) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                for launched in 0..<count {
                    while launched - counters.opened.load(ordering: .relaxed) - counters.failed.load(ordering: .relaxed) >= 200 {
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                    let token = tokens[launched % tokens.count]
                    group.addTask { await BenchLoad.hold(server: url, token: token, gate: gate, counters: counters) }
                }
            }
        }
    }

    /// `count` idle WebSockets over `servers` (their shares as even as can
    /// be; `tokens[i]` are the tokens for `servers[i]`), each share held by
    /// a `hold-idle` child process; the servers' memory is measured before
    /// and two seconds after the last connection opened.
    static func idle(count: Int, tokens: [[String]], servers: [BenchServer], root: String) async throws -> BenchIdleResult {
        try await Task.sleep(for: .seconds(1))
        let residentBefore = servers.map(\.residentBytes)
        let filesBefore = servers.map(\.openFiles)
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        say("   idle: opening \(count) WebSockets over \(servers.count) server processes, from \(servers.count) client processes")
        let started = benchNow()
        var children: [IdleHolder] = []
        defer { for child in children { child.stop() } }
        for (index, server) in servers.enumerated() {
            let share = count / servers.count + (index < count % servers.count ? 1 : 0)
            let file = root + "/tokens-\(index)"
            guard FileManager.default.createFile(atPath: file, contents: Data(tokens[index].joined(separator: "\n").utf8)) else {
                throw BenchError("cannot write \(file)")
            }
            children.append(try IdleHolder(executable: executable, url: server.url, tokens: file, count: share))
        }
        var opened = 0
        var failed = 0
        for child in children {
            let (childOpened, childFailed) = try await child.opened()
            opened += childOpened
            failed += childFailed
        }
        let openSeconds = Double(benchNow() - started) / 1e9
        try await Task.sleep(for: .seconds(2))
        let residentAfter = servers.map(\.residentBytes)
        let filesAfter = servers.map(\.openFiles)
        var held = 0
        for child in children { held += try await child.release() }
        say("   idle: \(held) held until measured (\(opened) opened); closed")
        return BenchIdleResult(
            requested: count, held: held, failed: failed, openSeconds: openSeconds, residentBefore: sum(residentBefore),
            residentAfter: sum(residentAfter), filesBefore: sum(filesBefore), filesAfter: sum(filesAfter), processes: servers.count)
    }

    /// The sum, if every value is known.
    static func sum(_ values: [Int?]) -> Int? {
        values.reduce(Optional(0)) { total, value in total.flatMap { total in value.map { total + $0 } } }
    }
}

/// A `conclave-bench hold-idle` child process: it says `opened N failed M`
/// once its connections are open (or failed), holds them until its
/// standard input closes, then says `held N` (those still open then) and
/// closes them.
final class IdleHolder: @unchecked Sendable {  // touched by the bench's main task only
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init(executable: String, url: String, tokens: String, count: Int) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["hold-idle", "--url", url, "--tokens", tokens, "--count", String(count)]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// Waits for the `opened N failed M` line.
    func opened() async throws -> (Int, Int) {
        let words = try await line(starting: "opened")
        guard words.count == 4, let opened = Int(words[1]), let failed = Int(words[3]) else {
            throw BenchError("hold-idle said \(words.joined(separator: " "))")
        }
        return (opened, failed)
    }

    /// Closes the child's standard input and returns how many connections
    /// it held until then.
    func release() async throws -> Int {
        try input.fileHandleForWriting.close()
        let words = try await line(starting: "held")
        guard words.count == 2, let held = Int(words[1]) else { throw BenchError("hold-idle said \(words.joined(separator: " "))") }
        process.waitUntilExit()
        return held
    }

    /// Kills the child by its process id if it still runs.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The next line of the child's output that starts with `word`, split
    /// into words (read on a thread of its own: the read blocks).
    private func line(starting word: String) async throws -> [String] {
        let handle = output.fileHandleForReading
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                var text = ""
                while true {
                    let byte = handle.readData(ofLength: 1)
                    guard let character = byte.first else {
                        continuation.resume(throwing: BenchError("hold-idle ended before saying \(word)"))
                        return
                    }
                    if character != UInt8(ascii: "\n") {
                        text.append(Character(UnicodeScalar(character)))
                        continue
                    }
                    let words = text.split(separator: " ").map(String.init)
                    if words.first == word {
                        continuation.resume(returning: words)
                        return
                    }
                    text = ""
                }
            }
        }
    }
}

/// `conclave-bench hold-idle`: one share of the idle connections, for
/// ``BenchRunner/idle(count:tokens:servers:root:)``. Not for direct use.
struct HoldIdleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold-idle", abstract: "Hold idle WebSockets for the idle measurement (started by conclave-bench).",
        shouldDisplay: false)

    @Option(help: "The server's http://host:port URL.") var url: String
    @Option(help: "A file of session tokens, one per line, used in turn.") var tokens: String
    @Option(help: "How many WebSockets to open.") var count: Int

    func run() async throws {
        _ = OpenFileLimit.raise(to: count + 1024)
        let tokens = String(decoding: FileManager.default.contents(atPath: self.tokens) ?? Data(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        guard !tokens.isEmpty, count > 0 else { throw ValidationError("no tokens, or no connections to open") }
        let counters = BenchCounters()
        let gate = BenchGate()
        let holders = BenchRunner.openIdle(count: count, tokens: tokens, url: url, counters: counters, gate: gate)
        _ = await BenchRunner.waitUntil(seconds: 600) {
            counters.opened.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed) >= count
        }
        say("opened \(counters.opened.load(ordering: .relaxed)) failed \(counters.failed.load(ordering: .relaxed))")
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                _ = FileHandle.standardInput.readDataToEndOfFile()
                continuation.resume()
            }
        }
        say("held \(counters.opened.load(ordering: .relaxed) - counters.dropped.load(ordering: .relaxed))")
        gate.open()
        await holders.value
    }
}
