import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Monotonic time in nanoseconds, for the load generator's timestamps.
func benchNow() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A one-shot signal that many tasks wait for; waiting tasks that are
/// cancelled stop waiting.
final class BenchGate: Sendable {
    private struct State {
        var open = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    func wait() async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.open || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [:] }
            return state.waiters
        }
        for continuation in waiters.values { continuation.resume() }
    }
}

/// Counters shared by the load generator's tasks.
final class BenchCounters: Sendable {
    /// Frames that carried one of the scenario's messages.
    let delivered = Atomic<Int>(0)
    /// Other frames (events from before the scenario).
    let unmatched = Atomic<Int>(0)
    /// WebSockets that completed the upgrade.
    let opened = Atomic<Int>(0)
    /// WebSockets that failed to connect.
    let failed = Atomic<Int>(0)
    /// WebSockets that were open and ended before the gate opened.
    let dropped = Atomic<Int>(0)
}

/// The next message to send, shared by the senders.
final class BenchCursor: Sendable {
    private let value: Atomic<Int>
    init(_ start: Int) { value = Atomic(start) }
    func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

/// A flag set once, from any task.
final class BenchFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// One prepared message: the sender's token, its conversation and the
/// JSON body of `POST /v1/conversations/{id}/messages`, encoded before the
/// clock starts.
struct BenchMessage: Sendable {
    let conversation: String
    let authorization: String
    let body: ByteBuffer

    var path: String { "/v1/conversations/\(conversation)/messages" }

    /// The same message as a send on the sender's `/v1/events` WebSocket
    /// (EventStreamSend), with its position as the ref.
    func streamFrame(ref: Int) -> String {
        #"{"conversation":"\#(conversation)","ref":"\#(ref)","send":"# + String(buffer: body) + "}"
    }
}

/// How the senders post: one HTTP request per message, or sends on a
/// WebSocket per sender device.
enum BenchTransport: String, CaseIterable, Sendable {
    case http
    case websocket
}

/// Send and response times per message. Each slot is written by the one
/// sender task that owns the message and read after every sender ended.
final class BenchTimes: @unchecked Sendable {
    private let started: UnsafeMutableBufferPointer<UInt64>
    private let answered: UnsafeMutableBufferPointer<UInt64>

    init(count: Int) {
        started = .allocate(capacity: max(1, count))
        started.initialize(repeating: 0)
        answered = .allocate(capacity: max(1, count))
        answered.initialize(repeating: 0)
    }

    deinit {
        started.deallocate()
        answered.deallocate()
    }

    func start(_ index: Int, _ time: UInt64) { started[index] = time }
    func answer(_ index: Int, _ time: UInt64) { answered[index] = time }
    func started(_ index: Int) -> UInt64 { started[index] }
    func answered(_ index: Int) -> UInt64 { answered[index] }
}

/// What one recipient's WebSocket saw: which message arrived when. It
/// acknowledges in batches. Written by the connection's reader task only,
/// read after the connection ended.
final class BenchReader: @unchecked Sendable {
    let index: [String: Int32]
    let counters: BenchCounters
    private(set) var receipts: [(message: Int32, at: UInt64)] = []
    private var lastSeq: Int64 = 0
    private var unacknowledged = 0
    static let ackEvery = 64

    init(index: [String: Int32], counters: BenchCounters) {
        self.index = index
        self.counters = counters
        receipts.reserveCapacity(1024)
    }

    /// Records a frame's text; returns the acknowledgement to send, when one is due.
    func take(_ text: UnsafeBufferPointer<UInt8>) -> String? {
        let at = benchNow()
        let (seq, messageID) = BenchFrame.scan(text)
        if let seq { lastSeq = max(lastSeq, seq) }
        if let messageID, let message = index[messageID] {
            receipts.append((message, at))
            counters.delivered.add(1, ordering: .relaxed)
        } else {
            counters.unmatched.add(1, ordering: .relaxed)
        }
        unacknowledged += 1
        guard unacknowledged >= Self.ackEvery else { return nil }
        unacknowledged = 0
        return #"{"ack":\#(lastSeq)}"#
    }
}

/// Reads the two fields the benchmark needs from an inbox event frame
/// without decoding the JSON: the server writes compact JSON with sorted
/// keys, and the only string values are ids, base64, and timestamps.
enum BenchFrame {
    static let messageIDKey = Array(#""message_id":""#.utf8)
    static let seqKey = Array(#""seq":"#.utf8)

    static let refKey = Array(#""ref":""#.utf8)

    /// The ref of a send's answer (the bench's refs are positions), nil for another frame.
    static func ref(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let start = find(refKey, in: bytes) else { return nil }
        var value = 0
        var position = start
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
            value = value &* 10 &+ Int(bytes[position] &- UInt8(ascii: "0"))
            position += 1
        }
        return position > start ? value : nil
    }

    static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> (seq: Int64?, messageID: String?) {
        var messageID: String?
        if let start = find(messageIDKey, in: bytes) {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
            if end < bytes.count { messageID = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) }
        }
        var seq: Int64?
        if let start = find(seqKey, in: bytes) {
            var value: Int64 = 0
            var position = start
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                value = value &* 10 &+ Int64(bytes[position] &- UInt8(ascii: "0"))
                position += 1
            }
            if position > start { seq = value }
        }
        return (seq, messageID)
    }

    static let createdKey = Array(#""created":true"#.utf8)

    /// The position just after the first occurrence of `key`: `memchr`
    /// finds each candidate for its first byte (a `"`, which the event's
    /// base64, before the fields read here, does not hold), `memcmp` checks it.
    static func find(_ key: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = bytes.baseAddress, let first = key.first, key.count <= bytes.count else { return nil }
        return key.withUnsafeBytes { needle -> Int? in
            guard let needle = needle.baseAddress else { return nil }
            var position = 0
            while position + key.count <= bytes.count {
                guard let found = memchr(base + position, Int32(first), bytes.count - key.count + 1 - position) else { return nil }
                position = UnsafeRawPointer(found) - UnsafeRawPointer(base)
                if memcmp(base + position, needle, key.count) == 0 { return position + key.count }
                position += 1
            }
            return nil
        }
    }
}

/// The load generator's two halves: devices holding `/v1/events`
/// WebSockets, and senders posting prepared messages.
enum BenchLoad {
    /// Holds one idle `/v1/events` WebSocket with a device's token until
    /// `gate` opens (or the server ends it), draining its frames (so that
    /// the server's pings are answered). A task, not a thread: thousands
    /// are held at once.
    static func hold(server: String, token: String, gate: BenchGate, counters: BenchCounters) async {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(token)"
        var logger = Logger(label: "conclave.bench.events")
        logger.logLevel = .critical
        let url = server.replacingOccurrences(of: "http://", with: "ws://") + "/v1/events"
        let entered = BenchFlag()
        do {
            try await WebSocketClient.connect(
                url: url, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers), logger: logger
            ) { inbound, _, _ in
                entered.set()
                counters.opened.add(1, ordering: .relaxed)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await _ in inbound.messages(maxSize: 1 << 22) {}
                    }
                    group.addTask { await gate.wait() }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        } catch {
            if !entered.isSet { counters.failed.add(1, ordering: .relaxed) }
        }
        if entered.isSet, !gate.isOpen { counters.dropped.add(1, ordering: .relaxed) }
    }

    /// The host and port of the server's `http://host:port` URL.
    static func hostAndPort(_ server: String) throws -> (String, Int) {
        let parts = server.replacingOccurrences(of: "http://", with: "").split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw BenchError("not an http://host:port URL: \(server)") }
        return (String(parts[0]), port)
    }

    /// What the senders saw.
    struct SendOutcome: Sendable {
        var accepted = 0
        var failed = 0
        /// The first few failures, as text.
        var samples: [String] = []

        mutating func fail(_ text: String) {
            failed += 1
            if samples.count < 3 { samples.append(text) }
        }

        /// The outcomes of a group's tasks, together.
        static func sum(of group: inout TaskGroup<SendOutcome>) async -> SendOutcome {
            var total = SendOutcome()
            for await outcome in group {
                total.accepted += outcome.accepted
                total.failed += outcome.failed
                total.samples = Array((total.samples + outcome.samples).prefix(3))
            }
            return total
        }
    }

    /// Posts `messages[range]` over `transport` with `concurrency` messages
    /// in flight, recording when each was sent and when its answer arrived.
    static func send(
        _ messages: [BenchMessage], range: Range<Int>, server: String, over transport: BenchTransport, http: HTTPClient,
        concurrency: Int, times: BenchTimes
    ) async -> SendOutcome {
        switch transport {
        case .http: await post(messages, range: range, server: server, http: http, concurrency: concurrency, times: times)
        case .websocket: await stream(messages, range: range, server: server, concurrency: concurrency, times: times)
        }
    }

    /// One HTTP request per message, `concurrency` in flight, one
    /// keep-alive connection each.
    static func post(
        _ messages: [BenchMessage], range: Range<Int>, server: String, http: HTTPClient, concurrency: Int, times: BenchTimes
    ) async -> SendOutcome {
        let cursor = BenchCursor(range.lowerBound)
        return await withTaskGroup(of: SendOutcome.self) { group in
            for _ in 0..<max(1, concurrency) {
                group.addTask {
                    var outcome = SendOutcome()
                    while true {
                        let index = cursor.next()
                        guard index < range.upperBound else { break }
                        let message = messages[index]
                        var request = HTTPClientRequest(url: server + message.path)
                        request.method = .POST
                        request.headers.add(name: "Authorization", value: message.authorization)
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(message.body)
                        times.start(index, benchNow())
                        do {
                            let response = try await http.execute(request, timeout: .seconds(60))
                            let body = try await response.body.collect(upTo: 1 << 20)
                            times.answer(index, benchNow())
                            if response.status == .created {
                                outcome.accepted += 1
                            } else {
                                outcome.fail("HTTP \(response.status.code): \(String(buffer: body).prefix(200))")
                            }
                        } catch {
                            times.answer(index, benchNow())
                            outcome.fail("\(type(of: error)): \(error)")
                        }
                    }
                    return outcome
                }
            }
            return await SendOutcome.sum(of: &group)
        }
    }

    /// Sends on one `/v1/events` WebSocket per sender device
    /// (``BenchSocket``), each with an equal share of `concurrency` sends
    /// unanswered at a time; a device's messages go in their order.
    static func stream(_ messages: [BenchMessage], range: Range<Int>, server: String, concurrency: Int, times: BenchTimes) async
        -> SendOutcome
    {
        var bySender: [String: [Int]] = [:]
        for index in range { bySender[messages[index].authorization, default: []].append(index) }
        let window = max(1, (concurrency + bySender.count - 1) / max(1, bySender.count))
        let host: String
        let port: Int
        do {
            (host, port) = try hostAndPort(server)
        } catch {
            var outcome = SendOutcome()
            outcome.fail("\(error)")
            return outcome
        }
        return await withTaskGroup(of: SendOutcome.self) { group in
            for (authorization, indices) in bySender {
                let frames = indices.map { BenchSocket.textFrame(messages[$0].streamFrame(ref: $0)) }
                group.addTask {
                    await socketSender(
                        frames: frames, indices: indices, host: host, port: port, authorization: authorization, window: window, times: times
                    )
                }
            }
            return await SendOutcome.sum(of: &group)
        }
    }
}
