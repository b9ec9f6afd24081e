import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The load generator's cheapest WebSocket: `/v1/events` on a blocking
/// socket of its own thread. A sender's frames are masked before the clock
/// starts and as many written in one `write` as the window allows; a
/// recipient reads all the frames a `read` brings. A client library takes
/// a task switch per frame and writes and flushes each with a system call
/// of its own, which on a shared 2-core machine costs the server CPU it
/// would otherwise measure.
final class BenchSocket: @unchecked Sendable {  // read and written by its thread only; `shutDown` touches the descriptor alone
    private let descriptor: Int32
    /// Bytes read and not yet taken as whole frames.
    private var pending: [UInt8] = []
    private var start = 0
    /// What one `read` fills, kept from read to read.
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    /// Connects to `host:port` (IPv4) and completes the upgrade with
    /// `token` (the `Authorization` header's value).
    init(host: String, port: Int, token: String) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BenchError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(descriptor)
            throw BenchError("not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw BenchError("connect() to \(host):\(port) failed")
        }
        var noDelay: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        let request =
            "GET /v1/events HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: \(token)\r\n\r\n"
        try write(Array(request.utf8))
        let end = Array("\r\n\r\n".utf8)
        while true {
            guard let head = pending.firstRange(of: end) else {
                guard try fill() else { throw BenchError("the server closed the connection during the upgrade") }
                continue
            }
            let answer = String(decoding: pending[..<head.lowerBound], as: UTF8.self)
            guard answer.hasPrefix("HTTP/1.1 101") else { throw BenchError("the upgrade was refused: \(answer.prefix(40))") }
            pending.removeSubrange(..<head.upperBound)
            return
        }
    }

    deinit { close(descriptor) }

    /// Ends the connection from another thread: a blocked read returns.
    func shutDown() { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }

    /// A client's text frame (masked, with a zero key: RFC 6455 asks the
    /// key of a browser to be unpredictable, and the server cannot tell).
    static func textFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        var bytes: [UInt8] = [0x81]
        switch payload.count {
        case 0..<126: bytes.append(0x80 | UInt8(payload.count))
        case 126..<65536: bytes += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: bytes += [0x80 | 127] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> (8 * UInt64($0))) }
        }
        return bytes + [0, 0, 0, 0] + payload
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress.map { $0 + offset }, bytes.count - offset) }
            guard sent > 0 else { throw BenchError("write() failed") }
            offset += sent
        }
    }

    /// Reads what the socket has (blocking until something); false at its end.
    private func fill() throws -> Bool {
        if start > 0, start >= pending.count / 2 {
            pending.removeSubrange(..<start)
            start = 0
        }
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        pending += buffer[0..<count]
        return true
    }

    /// The server's next frames, at least one (blocking), as opcode and
    /// payload; pings are answered here. Nil once the connection ends.
    func frames() throws -> [(opcode: UInt8, payload: ArraySlice<UInt8>)]? {
        while true {
            var frames: [(opcode: UInt8, payload: ArraySlice<UInt8>)] = []
            while pending.count - start >= 2 {
                var length = Int(pending[start + 1] & 0x7F)
                var body = start + 2
                if length == 126 {
                    guard body + 2 <= pending.count else { break }
                    length = Int(pending[body]) << 8 | Int(pending[body + 1])
                    body += 2
                } else if length == 127 {
                    guard body + 8 <= pending.count else { break }
                    length = pending[body..<(body + 8)].reduce(0) { $0 << 8 | Int($1) }
                    body += 8
                }
                guard body + length <= pending.count else { break }
                let opcode = pending[start] & 0x0F
                frames.append((opcode, pending[body..<(body + length)]))
                if opcode == 0x9 {  // ping: the pong carries its data
                    var pong: [UInt8] = [0x8A, 0x80 | UInt8(min(length, 125)), 0, 0, 0, 0]
                    pong += pending[body..<(body + min(length, 125))]
                    try write(pong)
                }
                start = body + length
            }
            if !frames.isEmpty { return frames }
            guard try fill() else { return nil }
        }
    }
}

extension BenchLoad {
    /// One sender's WebSocket on a ``BenchSocket`` and a thread of its own:
    /// it writes every frame the window allows in one system call, then
    /// reads answers until some of the window is free again.
    static func socketSender(
        frames: [[UInt8]], indices: [Int], host: String, port: Int, authorization: String, window: Int, times: BenchTimes
    ) async -> SendOutcome {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var outcome = SendOutcome()
                do {
                    let socket = try BenchSocket(host: host, port: port, token: authorization)
                    var next = 0
                    var answered = 0
                    var batch: [UInt8] = []
                    while answered < frames.count {
                        let room = min(frames.count - next, window - (next - answered))
                        if room > 0 {
                            batch.removeAll(keepingCapacity: true)
                            let now = benchNow()
                            for position in next..<(next + room) {
                                batch += frames[position]
                                times.start(indices[position], now)
                            }
                            try socket.write(batch)
                            next += room
                        }
                        guard let received = try socket.frames() else { throw BenchError("the server closed the sender's WebSocket") }
                        let now = benchNow()
                        for frame in received where frame.opcode == 0x1 {
                            let ref = frame.payload.withUnsafeBufferPointer { BenchFrame.ref($0) }
                            guard let ref else { continue }  // an inbox event of the sender's own
                            times.answer(ref, now)
                            answered += 1
                            if frame.payload.withUnsafeBufferPointer({ BenchFrame.find(BenchFrame.createdKey, in: $0) }) != nil {
                                outcome.accepted += 1
                            } else {
                                outcome.fail(String(decoding: frame.payload.prefix(200), as: UTF8.self))
                            }
                        }
                    }
                } catch {
                    outcome.fail("\(error)")
                }
                continuation.resume(returning: outcome)
            }
        }
    }

    /// A recipient's WebSocket on a ``BenchSocket`` and a thread of its
    /// own until `gate` opens: every frame is counted by `reader` and
    /// acknowledged in batches.
    static func receive(
        host: String, port: Int, token: String, gate: BenchGate, counters: BenchCounters, reader: BenchReader
    ) async {
        let socket: BenchSocket
        do {
            socket = try BenchSocket(host: host, port: port, token: "Bearer \(token)")
        } catch {
            counters.failed.add(1, ordering: .relaxed)
            return
        }
        counters.opened.add(1, ordering: .relaxed)
        let ended = Task {
            await gate.wait()
            socket.shutDown()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                while let frames = try? socket.frames() {
                    for frame in frames where frame.opcode == 0x1 {
                        guard let ack = frame.payload.withUnsafeBufferPointer({ reader.take($0) }) else { continue }
                        try? socket.write(BenchSocket.textFrame(ack))
                    }
                }
                continuation.resume()
            }
        }
        if !gate.isOpen { counters.dropped.add(1, ordering: .relaxed) }
        ended.cancel()
    }
}
