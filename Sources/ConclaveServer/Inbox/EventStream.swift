import ConclaveProtocol
import ConclaveStorage
import Foundation
import NIOCore
import NIOWebSocket
import Synchronization

/// One device's `/v1/events` WebSocket, apart from the WebSocket protocol
/// (``EventStreamHandler``): its pusher, its place in the hub, and its
/// acknowledgements. It holds no task: pushing runs in the pusher's
/// short-lived task, and acknowledgements are written from a task that
/// lives only while there is one to write.
final class EventStream: Sendable {
    let pusher: InboxPusher
    private let hub: InboxHub
    private let store: ConclaveStore
    private let metrics: ServerMetrics
    private let limit: Int
    private let acks = Mutex<AckState>(AckState())

    private struct AckState {
        /// The highest acknowledgement not written yet.
        var pending: Int64?
        var writing = false
        var opened = false
    }

    init(pusher: InboxPusher, hub: InboxHub, store: ConclaveStore, metrics: ServerMetrics, limit: Int) {
        self.pusher = pusher
        self.hub = hub
        self.store = store
        self.metrics = metrics
        self.limit = limit
    }

    /// Joins the hub (and starts pushing from the cursor); false when the
    /// device already holds its limit of WebSockets (D24).
    func open() -> Bool {
        guard hub.subscribe(pusher, limit: limit) else { return false }
        acks.withLock { $0.opened = true }
        metrics.webSocketOpened()
        return true
    }

    /// The connection ended: nothing more is pushed.
    func close() {
        let wasOpen = acks.withLock { state in
            defer { state.opened = false }
            return state.opened
        }
        pusher.stop()
        guard wasOpen else { return }
        hub.unsubscribe(pusher)
        metrics.webSocketClosed()
    }

    /// `{"ack": seq}`: the device processed everything up to `seq`. Written
    /// in order of arrival; acknowledgements that arrive while one is
    /// written are folded into the highest.
    func acknowledge(_ seq: Int64) {
        let start = acks.withLock { state in
            state.pending = max(state.pending ?? seq, seq)
            guard !state.writing else { return false }
            state.writing = true
            return true
        }
        guard start else { return }
        Task { await writeAcknowledgements() }
    }

    private func writeAcknowledgements() async {
        while let seq = acks.withLock({ state -> Int64? in
            guard let seq = state.pending else {
                state.writing = false
                return nil
            }
            state.pending = nil
            return seq
        }) {
            // A failed write is not retried: the events stay in the inbox and the device acknowledges them again.
            if let removed = try? await store.acknowledge(device: pusher.device, upTo: seq) { metrics.delivered(removed) }
        }
    }
}

/// The WebSocket protocol of `/v1/events` (RFC 6455) as a NIO channel
/// handler, after the upgrade: an idle connection holds no Swift task,
/// only NIO's channel, this handler and its ``EventStream`` (issue 14).
///
/// It answers pings, sends its own every `pingInterval` and closes a
/// connection whose last ping went unanswered, assembles the client's
/// text messages (at most `maxMessage` bytes) into acknowledgements, and
/// runs the close handshake: a close frame from either side is answered
/// and the connection closed; a client that does not answer the server's
/// close frame loses the connection after `closeTimeout`. A frame that is
/// not masked, carries reserved bits or has an unknown opcode is a
/// protocol error (1002). The pusher's frames come down the pipeline
/// through this handler, and stop once a close frame was sent.
final class EventStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    struct Settings: Sendable {
        var pingInterval = TimeAmount.seconds(30)
        var closeTimeout = TimeAmount.seconds(5)
        var maxMessage = 4096
    }

    /// The outbound user event that ends the stream with a close frame
    /// (policy violation) and this reason.
    struct End: Sendable {
        let reason: String
    }

    private enum Phase {
        case open
        /// The server's close frame is sent; waiting for the client's.
        case closing
        case closed
    }

    private let stream: EventStream
    private let settings: Settings
    /// The server began to shut down before this handler was added.
    private let quiesced: Bool
    private var phase = Phase.open
    private var unansweredPing: ByteBuffer?
    private var pingTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    /// A text or binary message arriving in several frames.
    private var message: (text: Bool, bytes: ByteBuffer)?
    /// A read was asked for while the connection could take no more writes.
    private var readHeld = false
    /// The latest ping's data, while the connection could take no more writes.
    private var pendingPong: ByteBuffer?

    init(stream: EventStream, settings: Settings = Settings(), quiesced: Bool = false) {
        self.stream = stream
        self.settings = settings
        self.quiesced = quiesced
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard !quiesced else {
            close(context, code: .goingAway, reason: Self.shuttingDown)
            return
        }
        guard stream.open() else {
            close(context, code: .policyViolation, reason: "too many connections of this device")
            return
        }
        schedulePing(context)
    }

    static let shuttingDown = "the server is shutting down"

    func handlerRemoved(context: ChannelHandlerContext) { finish() }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A frame the decoder refused is answered by NIO's protocol error handler, which sends its close frame and
        // closes the connection: closing here at once could lose that frame.
        guard !(error is NIOWebSocketError) else { return }
        finish()
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server is shutting down: the client is told, and reconnects to another process or later.
        if event is ChannelShouldQuiesceEvent {
            close(context, code: .goingAway, reason: Self.shuttingDown)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let end = event as? End else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        close(context, code: .policyViolation, reason: end.reason)
        promise?.succeed()
    }

    /// While the connection cannot take more (a client that does not read),
    /// its frames are not read either: its pings would otherwise queue
    /// pongs without bound.
    func read(context: ChannelHandlerContext) {
        guard context.channel.isWritable else {
            readHeld = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .open = phase, let data = pendingPong {
            pendingPong = nil
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: data)), promise: nil)
        }
        if context.channel.isWritable, readHeld {
            readHeld = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .open = phase else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // RFC 6455 §5.1: a client masks every frame; reserved bits mean an extension, and none was negotiated.
        guard frame.maskKey != nil, frame.reservedBits.isEmpty else {
            close(context, code: .protocolError, reason: nil)
            return
        }
        switch frame.opcode {
        case .connectionClose:
            receivedClose(context, frame.unmaskedData)
        case .ping:
            guard case .open = phase else { return }
            // While the connection can take no more, only the latest ping is answered, once it can (RFC 6455 §5.5.3).
            guard context.channel.isWritable else {
                pendingPong = frame.unmaskedData
                return
            }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            if frame.unmaskedData == unansweredPing { unansweredPing = nil }
        case .text, .binary, .continuation:
            guard case .open = phase else { return }
            receivedData(context, frame)
        default:
            close(context, code: .protocolError, reason: nil)
        }
    }

    private func receivedData(_ context: ChannelHandlerContext, _ frame: WebSocketFrame) {
        var current: (text: Bool, bytes: ByteBuffer)
        switch (frame.opcode, message) {
        case (.continuation, .some(let started)): current = started
        case (.text, .none), (.binary, .none): current = (frame.opcode == .text, context.channel.allocator.buffer(capacity: 0))
        default:
            close(context, code: .protocolError, reason: nil)  // a continuation of nothing, or a new message inside one
            return
        }
        var data = frame.unmaskedData
        guard current.bytes.readableBytes + data.readableBytes <= settings.maxMessage else {
            close(context, code: .messageTooLarge, reason: nil)
            return
        }
        current.bytes.writeBuffer(&data)
        guard frame.fin else {
            message = current
            return
        }
        message = nil
        // Anything but an acknowledgement is ignored (docs: other frames are ignored).
        guard current.text, let ack = try? ConclaveJSON.decoder().decode(WebSocketAck.self, from: Data(current.bytes.readableBytesView))
        else { return }
        stream.acknowledge(ack.ack)
    }

    private func receivedClose(_ context: ChannelHandlerContext, _ data: ByteBuffer) {
        switch phase {
        case .open:
            phase = .closing
            pingTimer?.cancel()
            // The answer is written, then the connection closed; a client that does not read it loses it all the same.
            closeTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: settings.closeTimeout) {
                context.close(promise: nil)
            }
            var data = data
            let size = data.readableBytes
            let code = data.readWebSocketErrorCode()
            let reasonIsText = data.readableBytes == 0 || String(validating: data.readableBytesView, as: UTF8.self) != nil
            // Answered with the client's own code when it is one a peer may send (RFC 6455 §7.4), else 1002.
            let answer: WebSocketErrorCode
            switch code {
            case .none where size == 0: answer = .normalClosure
            case .some(.unknown(let value)) where value < 3000 || value > 4999: answer = .protocolError
            case .some where reasonIsText: answer = .normalClosure
            default: answer = .protocolError
            }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(Self.closeFrame(answer, reason: nil, context)))
                .whenComplete { _ in channel.close(promise: nil) }
        case .closing:
            context.close(promise: nil)  // the client answered the server's close frame
        case .closed:
            break
        }
    }

    /// Sends a close frame (once) and closes the connection if the client
    /// does not answer within the close timeout.
    private func close(_ context: ChannelHandlerContext, code: WebSocketErrorCode, reason: String?) {
        guard case .open = phase else { return }
        phase = .closing
        pingTimer?.cancel()
        context.writeAndFlush(wrapOutboundOut(Self.closeFrame(code, reason: reason, context)), promise: nil)
        closeTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: settings.closeTimeout) {
            context.close(promise: nil)
        }
    }

    private static func closeFrame(_ code: WebSocketErrorCode, reason: String?, _ context: ChannelHandlerContext) -> WebSocketFrame {
        var buffer = context.channel.allocator.buffer(capacity: 2 + (reason?.utf8.count ?? 0))
        buffer.write(webSocketErrorCode: code)
        if let reason { buffer.writeString(reason) }
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)
    }

    /// Every `pingInterval` a ping with random data; a client that has not
    /// answered the previous one by then is gone (1001).
    private func schedulePing(_ context: ChannelHandlerContext) {
        pingTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: settings.pingInterval) {
            guard case .open = self.phase else { return }
            guard self.unansweredPing == nil else {
                self.close(context, code: .goingAway, reason: "ping timeout")
                context.close(promise: nil)
                return
            }
            var payload = context.channel.allocator.buffer(capacity: 16)
            for _ in 0..<2 { payload.writeInteger(UInt64.random(in: .min ... .max)) }
            self.unansweredPing = payload
            context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: payload)), promise: nil)
            self.schedulePing(context)
        }
    }

    private func finish() {
        phase = .closed
        pingTimer?.cancel()
        pingTimer = nil
        closeTimer?.cancel()
        closeTimer = nil
        stream.close()
    }
}

/// A pusher's WebSocket: frames go down the channel's pipeline (through
/// ``EventStreamHandler``), the end is the handler's close handshake.
struct EventStreamTarget: PushTarget {
    let channel: any Channel

    /// The frames are written to the channel in one hop to its event loop
    /// and flushed once: a socket write for all of them. While the channel
    /// is writable the pusher goes on at once; when it is not (the client
    /// reads slower than it is sent to), it waits until these frames are out.
    func send(_ texts: [String]) async throws {
        guard !texts.isEmpty else { return }
        let channel = channel
        guard channel.isWritable else {
            try await channel.eventLoop.flatSubmit {
                let written = channel.eventLoop.makePromise(of: Void.self)
                Self.write(texts, to: channel, last: written)
                return written.futureResult
            }.get()
            return
        }
        channel.eventLoop.execute { Self.write(texts, to: channel, last: nil) }
    }

    private static func write(_ texts: [String], to channel: any Channel, last: EventLoopPromise<Void>?) {
        for (index, text) in texts.enumerated() {
            let frame = WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: text))
            channel.write(frame, promise: index == texts.count - 1 ? last : nil)
        }
        channel.flush()
    }

    func end(reason: String) async throws {
        channel.triggerUserOutboundEvent(EventStreamHandler.End(reason: reason), promise: nil)
    }

    func abort() { channel.close(promise: nil) }

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) {
        channel.eventLoop.scheduleTask(in: TimeAmount(delay)) { body() }
    }
}

/// A client's acknowledgement over the WebSocket.
struct WebSocketAck: Decodable {
    let ack: Int64
}
