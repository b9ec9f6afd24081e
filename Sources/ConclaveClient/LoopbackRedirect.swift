import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Receives an identity provider's redirect on a loopback address
/// (RFC 8252 §7.3): an HTTP listener on 127.0.0.1 and a free port, for
/// one `GET /callback?…` whose query it hands over. Other requests get a
/// 404; the browser is told it may close the window.
final class LoopbackRedirect: Sendable {
    let port: Int
    private let channel: any Channel
    private let queries: AsyncStream<[String: String]>

    var redirectURI: String { "http://127.0.0.1:\(port)/callback" }

    private init(port: Int, channel: any Channel, queries: AsyncStream<[String: String]>) {
        self.port = port
        self.channel = channel
        self.queries = queries
    }

    static func open() async throws -> LoopbackRedirect {
        let (queries, continuation) = AsyncStream.makeStream(of: [String: String].self, bufferingPolicy: .bufferingOldest(16))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(CallbackHandler(continuation: continuation))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw ClientError.singleSignOn("cannot listen on a loopback port for the provider's redirect")
        }
        return LoopbackRedirect(port: port, channel: channel, queries: queries)
    }

    /// The query parameters of the first callback that carries `state`
    /// (others, from any local program, are ignored), or an error after
    /// `timeout`.
    func callback(state: String, timeout: Duration) async throws -> [String: String] {
        let queries = queries
        return try await withThrowingTaskGroup(of: [String: String]?.self) { group in
            group.addTask {
                for await query in queries where query["state"] == state { return query }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let query = first else {
                throw ClientError.singleSignOn("the provider did not send the browser back within \(timeout) (was the sign-in finished?)")
            }
            return query
        }
    }

    func close() async { try? await channel.close() }
}

/// Answers the browser and hands `/callback`'s query to the waiting sign-in.
private final class CallbackHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let continuation: AsyncStream<[String: String]>.Continuation

    init(continuation: AsyncStream<[String: String]>.Continuation) { self.continuation = continuation }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let components = URLComponents(string: head.uri)
        let found = head.method == .GET && components?.path == "/callback"
        if found {
            var query: [String: String] = [:]
            for item in components?.queryItems ?? [] where query[item.name] == nil { query[item.name] = item.value ?? "" }
            continuation.yield(query)
        }
        let text =
            found
            ? "<!doctype html><title>Conclave</title><p>Sign-in received: you can close this window and return to Conclave.</p>"
            : "<!doctype html><title>Conclave</title><p>Not found.</p>"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
        let status: HTTPResponseStatus = found ? .ok : .notFound
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
