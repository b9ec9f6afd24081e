import ConclaveProtocol
import ConclaveStorage
import Foundation
import NIOCore
import NIOWebSocket
import Synchronization

/// One device's `/v1/events` WebSocket, apart from the WebSocket protocol
/// (``EventStreamHandler``): its pusher, its place in the hub, its
/// acknowledgements and the messages it sends. It holds no task: pushing
/// runs in the pusher's short-lived task, acknowledgements are written
/// from a task that lives only while there is one to write, and a send is
/// checked on the event loop and answered once its batch has committed
/// (in a task of its own only when something must be read first).
final class EventStream: Sendable {
    /// Sends a message of this device as `POST /v1/conversations/{id}/messages`
    /// would (its session checked again first), and tells the answer,
    /// without its `ref`, to the closure it is given.
    typealias Sender = @Sendable (ConversationID, SendMessage, _ answered: @escaping @Sendable (EventStreamAnswer) -> Void) -> Void

    let pusher: InboxPusher
    let settings: EventStreamHandler.Settings
    private let hub: InboxHub
    private let store: ConclaveStore
    private let metrics: ServerMetrics
    private let limit: Int
    private let sender: Sender
    private let acks = Mutex<AckState>(AckState())

    private struct AckState {
        /// The highest acknowledgement not written yet.
        var pending: Int64?
        var writing = false
        var opened = false
    }

    init(
        pusher: InboxPusher, settings: EventStreamHandler.Settings, hub: InboxHub, store: ConclaveStore, metrics: ServerMetrics,
        limit: Int, sender: @escaping Sender
    ) {
        self.pusher = pusher
        self.settings = settings
        self.hub = hub
        self.store = store
        self.metrics = metrics
        self.limit = limit
        self.sender = sender
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

    /// Sends a message; `answered` gets the answer, with the send's `ref`.
    func send(_ request: EventStreamSend, answered: @escaping @Sendable (EventStreamAnswer) -> Void) {
        sender(request.conversation, request.send) { answer in
            var answer = answer
            answer.ref = request.ref
            answered(answer)
        }
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
/// text messages (at most `maxMessage` bytes) into acknowledgements and
/// sends (``EventStreamSend``, at most `sendsInFlight` unanswered before
/// it stops reading the connection), and runs the close handshake: a close frame from either side is answered
/// and the connection closed; a client that does not answer the server's
/// close frame loses the connection after `closeTimeout`. A frame that is
/// not masked, carries reserved bits or has an unknown opcode is a
/// protocol error (1002). The pusher's frames come down the pipeline
/// through this handler, and stop once a close frame was sent.
///
/// The pusher's frames and the answers to sends are ``TextFrames``, headers
/// included: they go to the socket past NIO's `WebSocketFrameEncoder`, in
/// the same order as the frames this handler writes through it.
final class EventStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = TextFrames
    typealias OutboundOut = WebSocketFrame

    struct Settings: Sendable {
        var pingInterval = TimeAmount.seconds(30)
        var closeTimeout = TimeAmount.seconds(5)
        /// The largest message a client may send: a send of the largest
        /// application message (``maxMessage(forMessageBytes:)``).
        var maxMessage: Int
        /// Sends taken and not answered yet, beyond which the connection is
        /// not read until one is answered.
        var sendsInFlight = 64

        init(maxMessageBytes: Int) { maxMessage = Self.maxMessage(forMessageBytes: maxMessageBytes) }

        /// A send's JSON around an application message of `bytes` bytes,
        /// base64: the message's 4/3, a tenth more for an encoder that
        /// escapes `/` as `\/`, and 16 KiB for the rest (files included).
        static func maxMessage(forMessageBytes bytes: Int) -> Int { (bytes + 2) / 3 * 4 / 10 * 11 + 16_384 }
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
    /// A read was asked for while the connection could take no more writes,
    /// or while `sendsInFlight` sends waited for their answer.
    private var readHeld = false
    /// Sends taken and not answered yet.
    private var sendsInFlight = 0
    /// Their answers, once their batches have committed, until the event loop writes them.
    private let answers = AnswerQueue()
    /// Answers are written and flushed once per turn of the event loop.
    private var flushScheduled = false
    /// The latest ping's data, while the connection could take no more writes.
    private var pendingPong: ByteBuffer?
    /// The context of NIO's frame encoder: what is written through it goes
    /// straight to the socket.
    private var socket: ChannelHandlerContext?

    init(stream: EventStream, quiesced: Bool = false) {
        self.stream = stream
        self.settings = stream.settings
        self.quiesced = quiesced
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard !quiesced else {
            close(context, code: .goingAway, reason: Self.shuttingDown)
            return
        }
        guard let socket = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) else {
            close(context, code: .unexpectedServerError, reason: nil)
            return
        }
        self.socket = socket
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
    /// pongs without bound. Nor are they while `sendsInFlight` sends wait
    /// for their answer.
    func read(context: ChannelHandlerContext) {
        guard mayRead(context) else {
            readHeld = true
            return
        }
        context.read()
    }

    private func mayRead(_ context: ChannelHandlerContext) -> Bool {
        context.channel.isWritable && sendsInFlight < settings.sendsInFlight
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readHeld, mayRead(context) else { return }
        readHeld = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .open = phase, let data = pendingPong {
            pendingPong = nil
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: data)), promise: nil)
        }
        resumeReading(context)
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .open = phase, let socket else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        socket.write(NIOAny(unwrapOutboundIn(data).bytes), promise: promise)
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
        guard let key = frame.maskKey else { return }  // (every frame without one was refused in channelRead)
        guard current.bytes.readableBytes + frame.data.readableBytes <= settings.maxMessage else {
            close(context, code: .messageTooLarge, reason: nil)
            return
        }
        current.bytes.writeUnmasked(frame.data, key: key)
        guard frame.fin else {
            message = current
            return
        }
        message = nil
        guard current.text else { return }  // binary messages are ignored (docs/server.md)
        if let request = EventStreamRequest.quick(current.bytes) {
            handle(request, context)
            return
        }
        // Anything else is decoded off the event loop, and counts as a send waiting meanwhile.
        sendsInFlight += 1
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let (eventLoop, bytes) = (context.eventLoop, current.bytes)
        Task {
            let request = EventStreamRequest.decode(bytes)
            eventLoop.execute {
                let (handler, context) = handler.value
                handler.sendsInFlight -= 1
                if let request { handler.handle(request, context) }
                handler.resumeReading(context)
            }
        }
    }

    /// An acknowledgement, a send, or both; anything else was ignored
    /// (docs/server.md).
    private func handle(_ request: EventStreamRequest, _ context: ChannelHandlerContext) {
        guard case .open = phase else { return }
        if let ack = request.ack { stream.acknowledge(ack) }
        switch request.send {
        case .none: break
        case .refused(let refusal)?: answer(context, refusal.frame)
        case .valid(let send)?: take(send, context)
        }
    }

    /// Runs a send; its answer comes back to the event loop. Sends beyond
    /// four times `sendsInFlight` (frames read before reading stopped) are
    /// refused at once.
    private func take(_ send: EventStreamSend, _ context: ChannelHandlerContext) {
        guard sendsInFlight < 4 * settings.sendsInFlight else {
            let refusal = APIError(.rateLimited, "too many sends wait for their answer on this connection")
            answer(context, EventStreamAnswer(ref: send.ref, error: refusal.body.error, retryAfter: 1).frame)
            return
        }
        sendsInFlight += 1
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let (eventLoop, answers) = (context.eventLoop, answers)
        // A batch answers many sends at once: those of this connection wait in the queue and go in one write.
        stream.send(send) { answer in
            guard answers.add(answer) else { return }
            eventLoop.execute {
                let (handler, context) = handler.value
                let frames = answers.take()
                handler.sendsInFlight -= frames.count
                if case .open = handler.phase, let socket = handler.socket {
                    socket.write(NIOAny(frames.bytes), promise: nil)
                    context.flush()
                }
                handler.resumeReading(context)
            }
        }
    }

    /// Writes a refusal while the stream is open; those written in one
    /// turn of the event loop are flushed together.
    private func answer(_ context: ChannelHandlerContext, _ frame: TextFrames) {
        guard case .open = phase, let socket else { return }
        socket.write(NIOAny(frame.bytes), promise: nil)
        guard !flushScheduled else { return }
        flushScheduled = true
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = handler.value
            handler.flushScheduled = false
            context.flush()
        }
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
            // Reads held for sends waiting for their answer hold the client's pong too: it is not counted as missing.
            if self.unansweredPing != nil, self.readHeld, context.channel.isWritable {
                self.schedulePing(context)
                return
            }
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

/// The answers to a connection's sends, added by the batches that stored
/// them (off the event loop) and taken by the event loop: the answers a
/// batch gives one connection are one buffer and one write, not one hop to
/// the event loop and one write each.
final class AnswerQueue: Sendable {
    private struct State {
        var frames = TextFrames()
        /// The event loop was asked to take the answers and has not yet.
        var asked = false
    }

    private let state = Mutex(State())

    /// Adds an answer; true when the event loop must be asked to take the
    /// answers (the first since it last took them).
    func add(_ answer: EventStreamAnswer) -> Bool {
        state.withLock { state in
            answer.append(to: &state.frames)
            defer { state.asked = true }
            return !state.asked
        }
    }

    /// The answers added since the last time, in order.
    func take() -> TextFrames {
        state.withLock { state in
            defer { state = State() }
            return state.frames
        }
    }
}

/// A pusher's WebSocket: frames go down the channel's pipeline (through
/// ``EventStreamHandler``), the end is the handler's close handshake.
struct EventStreamTarget: PushTarget {
    let channel: any Channel

    /// The frames are written to the channel in one hop to its event loop
    /// and flushed: one buffer, one socket write. While the channel is
    /// writable the pusher goes on at once; when it is not (the client reads
    /// slower than it is sent to), it waits until these frames are out.
    func send(_ frames: TextFrames) async throws {
        guard !frames.isEmpty else { return }
        let channel = channel
        guard channel.isWritable else {
            try await channel.writeAndFlush(frames)
            return
        }
        channel.writeAndFlush(frames, promise: nil)
    }

    func end(reason: String) async throws {
        channel.triggerUserOutboundEvent(EventStreamHandler.End(reason: reason), promise: nil)
    }

    func abort() { channel.close(promise: nil) }

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) {
        channel.eventLoop.scheduleTask(in: TimeAmount(delay)) { body() }
    }
}

extension ByteBuffer {
    /// Appends a client frame's payload without its masking key (RFC 6455
    /// §5.3), eight bytes at a time (NIO's `unmaskedData` goes byte by byte).
    mutating func writeUnmasked(_ payload: ByteBuffer, key: WebSocketMaskingKey) {
        let offset = writerIndex - readerIndex
        let count = payload.readableBytes
        var payload = payload
        writeBuffer(&payload)
        var mask: UInt64 = 0
        withUnsafeMutableBytes(of: &mask) { mask in
            for index in 0..<8 { mask[index] = key[index % 4] }
        }
        withUnsafeMutableReadableBytes { all in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: all[offset..<(offset + count)])
            var index = 0
            while index + 8 <= count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ mask
                bytes.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count {
                bytes[index] ^= key[index % 4]
                index += 1
            }
        }
    }
}
