import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plain TCP connection to a loopback server, for tests that misbehave
/// below HTTP: half-sent requests, connections held open.
public final class RawSocket: @unchecked Sendable {  // the descriptor is used by one test at a time, then closed once
    private let descriptor: Int32

    /// Connects to 127.0.0.1 (or ::1) on the port of `url`.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), let port = components.port else { throw TestSupportError("no port in \(url)") }
        let ipv6 = components.host?.contains(":") == true
        #if canImport(Glibc)
            descriptor = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            descriptor = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw TestSupportError("socket() failed") }
        let connected: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            address.sin6_addr = in6addr_loopback
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestSupportError("cannot connect to \(url)")
        }
    }

    deinit { close(descriptor) }

    /// A `/v1/events` WebSocket of a device's session, upgraded by hand: a
    /// client that reads but never writes again (it will not answer the
    /// server's close frame). The socket and the server's answer to the
    /// upgrade (its head).
    public static func eventStream(_ url: String, token: String) async throws -> (socket: RawSocket, answer: String) {
        let socket = try RawSocket(url: url)
        try socket.send(
            "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let answer = try await withDeadline(.seconds(30), "the upgrade") { await socket.receive(until: "\r\n\r\n") }
        return (socket, answer)
    }

    public func send(_ text: String) throws { try send(bytes: Array(text.utf8)) }

    /// Reads until the server closes the connection (or `limit` bytes), on a
    /// thread of its own; what was read.
    public func readUntilClosed(limit: Int = 1 << 20) async -> String { await receive(until: nil, limit: limit) }

    /// Reads until what was read contains `text`, or the server closes the connection.
    public func receive(until text: String?, limit: Int = 1 << 20) async -> String {
        let bytes = await receive(
            bytesUntil: { data in text.map { String(decoding: data, as: UTF8.self).contains($0) } ?? false }, limit: limit)
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension RawSocket {
    /// Sends bytes as they are.
    public func send(bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard sent == bytes.count else { throw TestSupportError("write failed") }
    }

    /// Reads, on a thread of its own, until `enough` holds for what was read
    /// (or the server closes the connection, or `limit` bytes); the bytes.
    public func receive(bytesUntil enough: @escaping @Sendable ([UInt8]) -> Bool, limit: Int = 1 << 20) async -> [UInt8] {
        let descriptor = descriptor
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var data: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while data.count < limit, !enough(data) {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                    if count <= 0 { break }
                    data += buffer[0..<count]
                }
                continuation.resume(returning: data)
            }
        }
    }
}

/// WebSocket frames (RFC 6455 §5.2) by hand, for tests that speak the
/// protocol below a client library: a client's frames, masked or not, and
/// the server's frames read back.
public enum WebSocketWire {
    public static let continuation: UInt8 = 0x0
    public static let text: UInt8 = 0x1
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xA

    /// A frame as a client sends it: masked (with a fixed key) unless told otherwise.
    public static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let mask: UInt8 = masked ? 0x80 : 0
        switch payload.count {
        case 0..<126: bytes.append(mask | UInt8(payload.count))
        case 126..<65536: bytes += [mask | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: bytes += [mask | 127] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> (8 * UInt64($0))) }
        }
        guard masked else { return bytes + payload }
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        return bytes + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    /// A close frame's payload: the code, then the reason.
    public static func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
    }

    /// The whole frames at the start of `bytes` (the server's, unmasked).
    public static func frames(_ bytes: [UInt8]) -> [(opcode: UInt8, fin: Bool, payload: [UInt8])] {
        var frames: [(opcode: UInt8, fin: Bool, payload: [UInt8])] = []
        var index = 0
        while index + 2 <= bytes.count {
            var length = Int(bytes[index + 1] & 0x7F)
            var start = index + 2
            if length == 126 {
                guard start + 2 <= bytes.count else { break }
                length = Int(bytes[start]) << 8 | Int(bytes[start + 1])
                start += 2
            } else if length == 127 {
                guard start + 8 <= bytes.count else { break }
                length = bytes[start..<(start + 8)].reduce(0) { $0 << 8 | Int($1) }
                start += 8
            }
            guard start + length <= bytes.count else { break }
            frames.append((bytes[index] & 0x0F, bytes[index] & 0x80 != 0, Array(bytes[start..<(start + length)])))
            index = start + length
        }
        return frames
    }

    /// Whether `bytes` hold a whole frame with this opcode.
    public static func holds(_ opcode: UInt8, in bytes: [UInt8]) -> Bool { frames(bytes).contains { $0.opcode == opcode } }
}
