import ConclaveProtocol
import Hummingbird
import HummingbirdWebSocket

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
        // The upgrade's checks and the session lookups run in short-lived tasks: the connection's task lives as long as
        // the WebSocket and keeps the memory of the deepest call it ever made (docs/benchmarks.md, "Idle connections").
        router.ws("/v1/events") { request, _ in
            // A request that is not an upgrade is answered with a JSON error (401 without a valid session, else 400);
            // a refused upgrade is a bare 400 (the WebSocket upgrade has no room for our error body): a bad token or query.
            let token = request.bearerToken
            _ = try await Task { try await authentication.session(token: token) }.value
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                throw APIError.badRequest("this path takes a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)")
            }
            _ = try request.integerQuery("after", default: 0, range: 0...Int64.max)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let token = context.request.bearerToken
            let authentication = authentication
            guard let session = try? await Task(operation: { try await authentication.session(token: token) }).value else { return }
            let after = try context.request.integerQuery("after", default: 0, range: 0...Int64.max)
            try await inbox.stream(
                session: session, after: after, stillValid: { (try? await authentication.session(token: token)) != nil }, inbound: inbound,
                outbound: outbound, channel: context.requestContext.channel)
        }
    }
}
