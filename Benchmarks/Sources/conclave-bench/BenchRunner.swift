import AsyncHTTPClient
import Foundation

/// Runs prepared scenarios against a server and measures them.
enum BenchRunner {
    /// How long deliveries may stall before the benchmark gives up waiting.
    static let stallLimit: UInt64 = 30_000_000_000

    /// Opens the recipients' WebSockets, posts the warm-up messages and waits
    /// for their delivery, then posts the timed messages and waits for every
    /// delivery (or for 30 s without progress).
    /// With `receiver`, the WebSockets are held on that server process
    /// (another process on the same PostgreSQL database) while the
    /// messages are posted to `server`.
    static func run(
        _ scenario: BenchScenario, server: BenchServer, receiver: BenchServer? = nil, over transport: BenchTransport, http: HTTPClient,
        concurrency: Int
    ) async throws -> BenchRow {
        let counters = BenchCounters()
        let gate = BenchGate()
        let readers = scenario.recipients.map { _ in BenchReader(index: scenario.index, counters: counters) }
        let url = server.url
        let (host, port) = try BenchLoad.hostAndPort((receiver ?? server).url)
        let holders = Task {
            await withTaskGroup(of: Void.self) { group in
                for (token, reader) in zip(scenario.recipients, readers) {
                    group.addTask {
                        await BenchLoad.receive(host: host, port: port, token: token, gate: gate, counters: counters, reader: reader)
                    }
                }
            }
        }
        let sockets = scenario.recipients.count
        let connected = await waitUntil(seconds: 30) {
            counters.opened.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed) >= sockets
        }
        let failedSockets = counters.failed.load(ordering: .relaxed)
        guard connected, failedSockets == 0 else {
            gate.open()
            await holders.value
            throw BenchError(
                "\(scenario.name): \(sockets - counters.opened.load(ordering: .relaxed)) of \(sockets) WebSockets did not connect")
        }
        try await Task.sleep(for: .milliseconds(200))

        let times = BenchTimes(count: scenario.messages.count)
        say("   \(scenario.name): \(sockets) WebSockets open; warming up with \(scenario.warm) messages")
        let warm = await BenchLoad.send(
            scenario.messages, range: 0..<scenario.warm, server: url, over: transport, http: http, concurrency: concurrency, times: times)
        _ = await waitForDeliveries(counters, expected: warm.accepted * scenario.fanOut)
        let timedCount = scenario.messages.count - scenario.warm
        say("   \(scenario.name): posting \(timedCount) messages (\(timedCount * scenario.fanOut) deliveries)")
        let serverCPUBefore = server.cpuSeconds
        let benchCPUBefore = ProcessCPU.seconds(pid: "self")
        let timed = await BenchLoad.send(
            scenario.messages, range: scenario.warm..<scenario.messages.count, server: url, over: transport, http: http,
            concurrency: concurrency,
            times: times)
        let expected = (warm.accepted + timed.accepted) * scenario.fanOut
        let complete = await waitForDeliveries(counters, expected: expected)
        let serverCPU = difference(server.cpuSeconds, serverCPUBefore)
        let benchCPU = difference(ProcessCPU.seconds(pid: "self"), benchCPUBefore)
        let resident = server.residentBytes
        gate.open()
        await holders.value

        var latencies: [UInt64] = []
        latencies.reserveCapacity(timed.accepted * scenario.fanOut)
        var firstSend = UInt64.max
        var lastDelivery: UInt64 = 0
        var posts: [UInt64] = []
        posts.reserveCapacity(timedCount)
        for index in scenario.warm..<scenario.messages.count where times.started(index) > 0 {
            firstSend = min(firstSend, times.started(index))
            if times.answered(index) > 0 { posts.append(times.answered(index) &- times.started(index)) }
        }
        for reader in readers {
            for receipt in reader.receipts where Int(receipt.message) >= scenario.warm {
                latencies.append(receipt.at &- times.started(Int(receipt.message)))
                lastDelivery = max(lastDelivery, receipt.at)
            }
        }
        var notes: [String] = []
        if warm.failed + timed.failed > 0 {
            notes.append("\(warm.failed + timed.failed) sends failed, e.g. \(warm.samples.first ?? timed.samples.first ?? "?")")
        }
        let delivered = counters.delivered.load(ordering: .relaxed)
        if !complete { notes.append("\(expected - delivered) deliveries missing after 30 s without progress") }
        let unmatched = counters.unmatched.load(ordering: .relaxed)
        if unmatched > 0 { notes.append("\(unmatched) frames were not this scenario's messages") }
        let dropped = counters.dropped.load(ordering: .relaxed)
        if dropped > 0 { notes.append("\(dropped) WebSockets ended early") }
        let seconds = lastDelivery > firstSend ? Double(lastDelivery - firstSend) / 1e9 : 0
        return BenchRow(
            scenario: scenario.name, devices: scenario.devices, messages: timed.accepted, deliveries: latencies.count, seconds: seconds,
            latency: BenchPercentiles(latencies), post: BenchPercentiles(posts), serverResident: resident,
            serverCPU: serverCPU.map { $0 / max(seconds, 0.001) }, benchCPU: benchCPU.map { $0 / max(seconds, 0.001) }, notes: notes)
    }

    /// Opens `count` WebSockets with one device's token, at most 200
    /// handshakes at a time, and measures the server's memory before and
    /// after (two seconds after the last one opened).
    static func idle(count: Int, tokens: [String], server: BenchServer) async throws -> BenchIdleResult {
        try await Task.sleep(for: .seconds(1))
        let residentBefore = server.residentBytes
        let filesBefore = server.openFiles
        let counters = BenchCounters()
        let gate = BenchGate()
        let url = server.url
        say("   idle: opening \(count) WebSockets")
        let started = benchNow()
        let holders = openIdle(count: count, tokens: tokens, url: url, counters: counters, gate: gate)
        _ = await waitUntil(seconds: 600) { counters.opened.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed) >= count }
        let openSeconds = Double(benchNow() - started) / 1e9
        try await Task.sleep(for: .seconds(2))
        let residentAfter = server.residentBytes
        let filesAfter = server.openFiles
        let held = counters.opened.load(ordering: .relaxed) - counters.dropped.load(ordering: .relaxed)
        say("   idle: \(held) open; closing them")
        gate.open()
        await holders.value
        return BenchIdleResult(
            requested: count, held: held, failed: counters.failed.load(ordering: .relaxed), openSeconds: openSeconds,
            residentBefore: residentBefore, residentAfter: residentAfter, filesBefore: filesBefore, filesAfter: filesAfter)
    }

    static func difference(_ after: Double?, _ before: Double?) -> Double? {
        guard let after, let before else { return nil }
        return after - before
    }

    /// Polls `condition` every few milliseconds; false after `seconds`.
    static func waitUntil(seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = benchNow() + UInt64(seconds * 1e9)
        while !condition() {
            if benchNow() > deadline { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// Waits until `expected` deliveries arrived; false when none arrived
    /// for ``stallLimit``.
    static func waitForDeliveries(_ counters: BenchCounters, expected: Int) async -> Bool {
        var seen = counters.delivered.load(ordering: .relaxed)
        var progressAt = benchNow()
        while seen < expected {
            try? await Task.sleep(for: .milliseconds(2))
            let now = counters.delivered.load(ordering: .relaxed)
            if now != seen {
                seen = now
                progressAt = benchNow()
            } else if benchNow() - progressAt > stallLimit {
                return false
            }
        }
        return true
    }
}

/// The 50th and 99th percentile of durations, in milliseconds.
struct BenchPercentiles: Sendable {
    let p50: Double
    let p99: Double

    init?(_ nanoseconds: [UInt64]) {
        guard !nanoseconds.isEmpty else { return nil }
        let sorted = nanoseconds.sorted()
        func at(_ fraction: Double) -> Double { Double(sorted[Int((Double(sorted.count - 1) * fraction).rounded())]) / 1e6 }
        p50 = at(0.50)
        p99 = at(0.99)
    }
}

/// One scenario's line of the results table.
struct BenchRow: Sendable {
    var scenario: String
    var devices: Int
    /// Timed messages the server accepted.
    var messages: Int
    /// Their deliveries that reached a recipient's WebSocket.
    var deliveries: Int
    /// From the first timed send to the last delivery.
    var seconds: Double
    /// POST start → WebSocket frame, per delivery.
    var latency: BenchPercentiles?
    /// POST start → response, per message.
    var post: BenchPercentiles?
    var serverResident: Int?
    /// CPU time per wall-clock second during the timed phase (1.0 = one core busy).
    var serverCPU: Double?
    var benchCPU: Double?
    var notes: [String]

    var rate: Double { seconds > 0 ? Double(deliveries) / seconds : 0 }

    static func table(_ rows: [BenchRow]) -> String {
        var lines = [
            "| scenario | devices | messages | deliveries | seconds | delivered/s | p50 ms | p99 ms | POST p50 ms | server RSS "
                + "| server CPU | bench CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows {
            let cells = [
                row.scenario, grouped(row.devices), grouped(row.messages), grouped(row.deliveries), String(format: "%.2f", row.seconds),
                "**\(grouped(Int(row.rate.rounded())))**", milliseconds(row.latency?.p50), milliseconds(row.latency?.p99),
                milliseconds(row.post?.p50), mebibytes(row.serverResident), cores(row.serverCPU), cores(row.benchCPU),
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}

/// The idle-connection measurement.
struct BenchIdleResult: Sendable {
    var requested: Int
    var held: Int
    var failed: Int
    var openSeconds: Double
    var residentBefore: Int?
    var residentAfter: Int?
    var filesBefore: Int?
    var filesAfter: Int?
    /// Server processes (on one PostgreSQL) the connections were spread over.
    var processes = 1

    var line: String {
        var text = "idle: \(grouped(held)) of \(grouped(requested)) WebSockets held"
        if processes > 1 { text += " over \(processes) server processes (memory and descriptors summed)" }
        text += " (up to 1,000 per device; opened in "
        text += String(format: "%.1f s", openSeconds) + ", \(grouped(failed)) failed): server RSS \(mebibytes(residentBefore)) → "
        text += mebibytes(residentAfter)
        if let before = residentBefore, let after = residentAfter, held > 0 {
            text += ", **" + String(format: "%.1f KiB", Double(after - before) / Double(held) / 1024) + " per connection**"
        }
        if let before = filesBefore, let after = filesAfter { text += "; server file descriptors +\(grouped(after - before))" }
        return text
    }
}

/// Writes a line to standard output at once (unbuffered), so that progress
/// shows through a pipe too.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// 12345 → "12,345".
func grouped(_ number: Int) -> String {
    let digits = String(abs(number))
    var result = ""
    for (offset, digit) in digits.enumerated() {
        if offset > 0, (digits.count - offset) % 3 == 0 { result.append(",") }
        result.append(digit)
    }
    return number < 0 ? "-" + result : result
}

func milliseconds(_ value: Double?) -> String { value.map { String(format: $0 < 10 ? "%.2f" : "%.1f", $0) } ?? "–" }

func cores(_ value: Double?) -> String { value.map { String(format: "%.0f %%", $0 * 100) } ?? "?" }

func mebibytes(_ bytes: Int?) -> String { bytes.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "?" }
