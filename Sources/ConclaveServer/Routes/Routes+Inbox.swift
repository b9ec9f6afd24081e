import ConclaveProtocol
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The inbox: read and acknowledge over HTTP, or pushed on a WebSocket.
extension ConclaveAPI {
    func addInboxRoutes(_ router: ConclaveRouter) {
        router.get("/v1/inbox") { request, _ in
            let session = try await session(request)
            let after = try request.integerQuery("after", default: 0, range: 0...Int64.max)
            let limit = try request.integerQuery("limit", default: 100, range: 1...500)
            return JSONResponse(try await inbox.page(of: session, after: after, limit: Int(limit)))
        }
        router.post("/v1/inbox/ack") { request, context in
            let session = try await session(request)
            return JSONResponse(
                try await inbox.acknowledge(try await request.decodeJSON(InboxAck.self, context: context), session: session))
        }
        // The WebSocket upgrade itself is taken before routing (ConclaveHTTPChannel, eventStreamUpgrade); a request
        // here is not one, and is told so with a JSON error: 401 without a valid session, else 400.
        router.get(RouterPath(EventStreamUpgrade.path)) { request, _ -> Response in
            _ = try await session(request)
            throw APIError.badRequest("this path takes a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)")
        }
    }

    /// Accepts a `/v1/events` upgrade with a valid session and `after` (an
    /// integer ≥ 0, 0 when absent); anything else is refused.
    var eventStreamUpgrade: EventStreamUpgrade {
        // One for every connection: a connection's closures hold a reference to it and the token, not the services.
        let streams = EventStreamSessions(
            authentication: authentication, conversations: conversations, inbox: inbox, metrics: metrics, logger: accessLogger)
        return EventStreamUpgrade(maxFrameSize: inbox.streamSettings.maxMessage) { [metrics, accessLogger] token, afterText, channel in
            let start = ContinuousClock.now
            let stream = await streams.open(token: token, after: afterText, channel: channel)
            AccessLogMiddleware<ConclaveRequestContext>.record(
                method: "GET", route: EventStreamUpgrade.path, status: stream == nil ? 400 : 101, since: start, metrics: metrics,
                logger: accessLogger)
            return stream
        }
    }
}

/// What a `/v1/events` WebSocket reaches of the server: its session, the
/// inbox, and the messages route for its sends.
final class EventStreamSessions: Sendable {
    private let authentication: AuthenticationService
    private let conversations: ConversationRequests
    private let inbox: InboxService
    private let metrics: ServerMetrics
    private let logger: Logger
    /// Sends of each device waiting for their answer, over all its
    /// connections: a device that closes connections with sends unanswered
    /// and opens new ones gets no more at once than its limit.
    private let waiting = Mutex<[DeviceID: Int]>([:])
    /// A device's sends waiting at most; more are refused at once.
    static let sendsPerDevice = 256

    init(
        authentication: AuthenticationService, conversations: ConversationRequests, inbox: InboxService, metrics: ServerMetrics,
        logger: Logger
    ) {
        self.authentication = authentication
        self.conversations = conversations
        self.inbox = inbox
        self.metrics = metrics
        self.logger = logger
    }

    /// The stream of a valid session from `after`, or nil.
    func open(token: String?, after afterText: String?, channel: any Channel) async -> EventStream? {
        guard let token, let session = try? await authentication.session(token: token) else { return nil }
        let after: Int64
        if let afterText {
            guard let value = Int64(afterText), value >= 0 else { return nil }
            after = value
        } else {
            after = 0
        }
        let tokenHash = Tokens.hash(token)
        return inbox.eventStream(
            session: session, after: after, stillValid: { [self] in (try? await authentication.session(token: token)) != nil },
            send: { [self] conversation, message, answered in
                send(message, to: conversation, token: token, tokenHash: tokenHash, answered: answered)
            }, channel: channel)
    }

    /// A send on the WebSocket: `POST /v1/conversations/{id}/messages`
    /// without HTTP, the session checked again as each request would be.
    /// From memory, on the connection's event loop and without a task of
    /// its own, when memory holds what the send needs (the usual case);
    /// else in a task that reads it first.
    private func send(
        _ message: SendMessage, to conversation: ConversationID, token: String, tokenHash: [UInt8],
        answered: @escaping @Sendable (EventStreamAnswer) -> Void
    ) {
        if let session = authentication.sessionFromMemory(tokenHash: tokenHash) {
            send(message, to: conversation, session: session, answered: answered)
            return
        }
        Task {
            do {
                send(message, to: conversation, session: try await authentication.session(token: token), answered: answered)
            } catch {
                answered(refusal(error))
            }
        }
    }

    private func send(
        _ message: SendMessage, to conversation: ConversationID, session: Session,
        answered: @escaping @Sendable (EventStreamAnswer) -> Void
    ) {
        let device = session.device.id
        let admitted = waiting.withLock { waiting in
            guard waiting[device, default: 0] < Self.sendsPerDevice else { return false }
            waiting[device, default: 0] += 1
            return true
        }
        guard admitted else {
            answered(refusal(APIError(.rateLimited, "too many sends of this device wait for their answer")))
            return
        }
        let done = { @Sendable [self] (result: Result<(MessageAccepted, created: Bool), any Error>) in
            waiting.withLock { waiting in
                let left = waiting[device, default: 1] - 1
                waiting[device] = left > 0 ? left : nil
            }
            switch result {
            case .success(let (accepted, created)):
                if created { metrics.messageAccepted() }
                answered(EventStreamAnswer(ref: nil, accepted: accepted, created: created))
            case .failure(let error):
                answered(refusal(error))
            }
        }
        if conversations.sendFromMemory(conversation, message, session: session, answered: done) { return }
        Task {
            do { done(.success(try await conversations.send(conversation, message, session: session))) } catch { done(.failure(error)) }
        }
    }

    /// A refused send's answer.
    private func refusal(_ error: any Error) -> EventStreamAnswer {
        let refused: APIError
        if let error = error as? APIError {
            refused = error
        } else {
            logger.error("a WebSocket send failed", metadata: ["error.type": "\(type(of: error))"])
            refused = APIError(.internal, "internal error")
        }
        return EventStreamAnswer(
            ref: nil, error: refused.body.error, retryAfter: refused.retryAfter ?? (refused.code == .rateLimited ? 1 : nil))
    }
}
