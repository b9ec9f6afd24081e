import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOSSL
import Synchronization

/// The number of open connections, shared by every connection's gate.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false when it is over the limit.
    func open() -> Bool { count.wrappingAdd(1, ordering: .relaxed).newValue <= limit }
    func close() { count.wrappingSubtract(1, ordering: .relaxed) }
    var current: Int { count.load(ordering: .relaxed) }
}

/// The first handler of every connection (rule D24 in docs/server.md), in
/// front of HTTP parsing and the WebSocket upgrade: past the server's
/// connection limit the connection is answered 503 `server_busy` and
/// closed at once; and the first request head must be complete (its blank
/// line received) within `headTimeout`, or the connection is closed. Later
/// requests on the connection are bounded by Hummingbird's idle timeout.
final class ConnectionGate: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let connections: ConnectionCount
    private let headTimeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var headComplete = false
    /// The last three bytes seen, so that a blank line split between reads is found.
    private var tail: [UInt8] = []

    init(connections: ConnectionCount, headTimeout: TimeAmount) {
        self.connections = connections
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let connections = connections
        guard connections.open() else {
            context.channel.closeFuture.whenComplete { _ in connections.close() }
            refuse(context)
            return
        }
        context.channel.closeFuture.whenComplete { _ in connections.close() }
        deadline = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: headTimeout) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !headComplete {
            let bytes = tail + Array(unwrapInboundIn(data).readableBytesView)
            if bytes.count >= 4, (0...(bytes.count - 4)).contains(where: { bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }) {
                headComplete = true
                deadline?.cancel()
                deadline = nil
                tail = []
            } else {
                tail = Array(bytes.suffix(3))
            }
        }
        context.fireChannelRead(data)
    }

    /// A 503 with the JSON error body, then the connection closes.
    private func refuse(_ context: ChannelHandlerContext) {
        let body =
            (try? ConclaveJSON.encoder().encode(APIError(.serverBusy, "the server holds too many connections; try again later").body))
            ?? Data()
        let head =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            + "Retry-After: 5\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Answers a request that is not HTTP (a control character in a header, a
/// space in a header name, a garbage request line) with 400 and closes the
/// connection. It sits right after the HTTP decoder: while a WebSocket
/// upgrade may still happen, the parser's error otherwise reached no one
/// and the connection stayed open. Everything else passes through.
final class MalformedRequestAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var answered = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !answered else { return }
        answered = true
        let body = (try? ConclaveJSON.encoder().encode(APIError.badRequest("not a valid HTTP/1.1 request").body)) ?? Data()
        let headers = HTTPHeaders([
            ("Content-Type", "application/json; charset=utf-8"), ("Content-Length", String(body.count)), ("Connection", "close"),
        ])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Bounds a request's body: it must arrive within `bodyTimeout` of its
/// head (D24). Removed from the pipeline when a WebSocket upgrades.
final class BodyDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let bodyTimeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(bodyTimeout: TimeAmount) { self.bodyTimeout = bodyTimeout }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            deadline = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: bodyTimeout) { context.close(promise: nil) }
        case .body: break
        case .end:
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }
}

/// A server child channel with a ``ConnectionGate`` in front of its own
/// handlers.
struct GatedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    let connections: ConnectionCount
    let headTimeout: TimeAmount
    /// TLS in front of HTTP, with the context current when the connection is accepted.
    let tls: TLSCertificates?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        do {
            // The gate reads the plaintext: it finds the end of the first request head in what TLS decrypted.
            if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context)) }
            try channel.pipeline.syncOperations.addHandler(ConnectionGate(connections: connections, headTimeout: headTimeout))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(MalformedRequestAnswer(), position: .after(decoder))
            return value
        }
    }

    func handle(value: Base.Value, logger: Logger) async { await base.handle(value: value, logger: logger) }
}
