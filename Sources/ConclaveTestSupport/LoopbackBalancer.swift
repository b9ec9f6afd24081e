import NIOCore
import NIOPosix
import Synchronization

/// A TCP load balancer on 127.0.0.1 in front of several server processes,
/// standing in for the reverse proxy or TCP balancer of a deployment with
/// several processes: each new connection goes to the next backend, in
/// turn, that accepts it, and the bytes are copied both ways; a backend
/// that is down is skipped, so clients reconnect to the survivors.
public final class LoopbackBalancer: Sendable {
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    private let channel: any Channel

    /// Starts listening on a free port.
    public static func start(backends: [Int]) async throws -> LoopbackBalancer {
        let turn = Atomic<Int>(0)
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                let first = turn.add(1, ordering: .relaxed).oldValue
                let order = (0..<backends.count).map { backends[(first + $0) % backends.count] }
                return connect(inbound, to: order[...])
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw TestSupportError("the balancer has no port") }
        return LoopbackBalancer(channel: channel, port: port)
    }

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    /// Connects to the first backend of `order` that accepts, and glues the
    /// two connections together; with none left, closes the client's.
    private static func connect(_ inbound: any Channel, to order: ArraySlice<Int>) -> EventLoopFuture<Void> {
        guard let port = order.first else { return inbound.close() }
        return ClientBootstrap(group: inbound.eventLoop)
            .connect(host: "127.0.0.1", port: port)
            .flatMap { outbound in
                inbound.pipeline.addHandler(Glue(partner: outbound)).flatMap { outbound.pipeline.addHandler(Glue(partner: inbound)) }
            }
            .flatMapError { _ in connect(inbound, to: order.dropFirst()) }
    }

    /// Stops listening; connections already glued end with their server.
    public func stop() { channel.close(promise: nil) }
}

/// Copies what one connection reads to its partner, and closes the partner
/// when it closes. Both ends of a pair live on one event loop.
private final class Glue: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let partner: any Channel

    init(partner: any Channel) { self.partner = partner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.write(unwrapInboundIn(data), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { partner.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
