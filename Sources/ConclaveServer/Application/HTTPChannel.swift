import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// Accepts the WebSocket upgrades of `/v1/events`: the device's session
/// token and its `after` (as the request gives them), and the connection;
/// the stream to serve, or nil to refuse the upgrade.
struct EventStreamUpgrade: Sendable {
    static let path = "/v1/events"
    /// The largest WebSocket frame a client may send: a send of the largest application message.
    let maxFrameSize: Int
    let accept: @Sendable (_ token: String?, _ after: String?, _ channel: any Channel) async -> EventStream?
}

/// A connection of the server: HTTP/1.1 answered by the router, with one
/// upgrade, `/v1/events` to a WebSocket served by an ``EventStreamHandler``
/// from the event loop. Once upgraded the connection keeps no Swift task:
/// ``handle(value:logger:)`` returns and the channel lives on in NIO (issue
/// 14, an idle connection's memory). A refused upgrade (another path, a bad
/// session or `after`) is a bare 400 and the connection closes; a
/// malformed handshake (no `Sec-WebSocket-Key`, another version) is closed
/// by NIO without an answer.
struct ConclaveHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refusedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// The channel's own handlers serve it from now on.
        case eventStream
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let configuration: HTTP1Channel.Configuration
    /// Nil where no stream is served (the console's own listener): every upgrade is refused.
    let events: EventStreamUpgrade?

    init(responder: @escaping HTTPChannelHandler.Responder, configuration: HTTP1Channel.Configuration, events: EventStreamUpgrade?) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.configuration = configuration
        self.events = events
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let attempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let accepted = NIOLoopBoundBox<EventStream?>(nil, eventLoop: channel.eventLoop)
            // The server's shutdown notice comes once; one that comes while an upgrade is being decided is kept for the stream.
            let quiesced = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(QuiesceWatch(quiesced: quiesced))
            let events = events
            let upgrader = NIOTypedWebSocketServerUpgrader<Negotiated>(
                maxFrameSize: events?.maxFrameSize ?? 1 << 14,
                shouldUpgrade: { channel, head in
                    attempted.value = true
                    let uri = URI(head.uri)
                    guard let events, uri.path == EventStreamUpgrade.path else { return channel.eventLoop.makeSucceededFuture(nil) }
                    let token = bearerToken(authorization: head.headers.first(name: "Authorization"))
                    let after = uri.queryParameters.get("after")
                    let promise = channel.eventLoop.makePromise(of: EventStream?.self)
                    // A short-lived task: the session lookup's memory is not kept for the connection's life.
                    promise.completeWithTask { await events.accept(token, after, channel) }
                    return promise.futureResult.map { stream in
                        guard let stream else { return nil }
                        accepted.value = stream
                        return HTTPHeaders()
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let stream = accepted.value else { throw NIOWebSocketUpgradeError.unsupportedWebSocketTarget }
                        accepted.value = nil
                        try channel.pipeline.syncOperations.addHandler(EventStreamHandler(stream: stream, quiesced: quiesced.value))
                        return .eventStream
                    }
                })
            let upgrades = NIOTypedHTTPServerUpgradeConfiguration<Negotiated>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(configuration.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: configuration.idleTimeout.map { Duration($0) }, logger: logger))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return attempted.value ? .refusedUpgrade(http) : .http(http)
                    }
                })
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration<Negotiated>(upgradeConfiguration: upgrades)
            pipeline.enablePipelining = false  // HTTP is pipelined by NIOAsyncChannel
            pipeline.enableErrorHandling = false  // answered by MalformedRequestAnswer (GatedChildChannel)
            pipeline.enableResponseHeaderValidation = false  // Swift HTTP Types validate them
            pipeline.decoderConfiguration.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
            pipeline.decoderConfiguration.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
            pipeline.decoderConfiguration.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http(let http): await handleHTTP(asyncChannel: http, logger: logger)
            case .refusedUpgrade(let http): await Self.refuse(http)
            case .eventStream: return
            }
        } catch {
            logger.trace("connection ended before its first request was read", metadata: ["error.type": "\(type(of: error))"])
            value.channel.close(promise: nil)
        }
    }

    /// A bare 400: the WebSocket upgrade has no room for a JSON error body.
    private static func refuse(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>) async {
        try? await http.executeThenClose { _, outbound in
            let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
            try await outbound.write(contentsOf: [.head(head), .end(nil)])
        }
    }

    /// NIO looks for an upgrade in a connection's first request only; a
    /// later request asking for one is sent to the same URI on a new
    /// connection (307, `Connection: close`), where the upgrade can happen.
    private static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct Redirected: Error {}
        return { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                try await responder(request, writer, channel)
                return
            }
            // A path of the server's own: `//host/…` (or `/\host/…`, which browsers read alike) would send the client
            // to another host.
            let path = "/" + request.uri.path.drop { $0 == "/" || $0 == "\\" }.replacingOccurrences(of: "\\", with: "%5C")
            let location = request.uri.query.map { "\(path)?\($0)" } ?? path
            try await writer.writeResponse(
                HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location]))
            throw Redirected()
        }
    }
}

/// Notes the server's shutdown notice (``ChannelShouldQuiesceEvent``) on
/// its way down the pipeline: NIO sends it once per connection, and a
/// WebSocket whose handler is added after it must still be told.
private final class QuiesceWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let quiesced: NIOLoopBoundBox<Bool>

    init(quiesced: NIOLoopBoundBox<Bool>) { self.quiesced = quiesced }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { quiesced.value = true }
        context.fireUserInboundEventTriggered(event)
    }
}
