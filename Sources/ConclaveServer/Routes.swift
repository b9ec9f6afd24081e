import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// The request context: Hummingbird's core storage, WebSocket upgrade
/// support, and the body limit from the configuration.
public struct ConclaveRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

typealias ConclaveRouter = Router<ConclaveRequestContext>

extension ServerState {
    /// Every route of the client, admin and discovery APIs.
    func buildRouter() -> ConclaveRouter {
        let router = ConclaveRouter(context: ConclaveRequestContext.self)
        router.add(middleware: JSONErrorMiddleware<ConclaveRequestContext>())
        addDiscoveryRoutes(router)
        addClientRoutes(router)
        addInboxRoutes(router)
        addAdminRoutes(router)
        addPolicyRoutes(router)
        addFederationRoutes(router)
        addFederatedConversationRoutes(router)
        return router
    }

    func addDiscoveryRoutes(_ router: ConclaveRouter) {
        router.get("/.well-known/conclave") { _, _ in
            JSONResponse(
                WellKnown(
                    domain: self.domain, apiVersion: conclaveAPIVersion, signingKey: Base64Bytes(self.publicKey.rawKey),
                    keyFingerprint: self.publicKey.fingerprint, cipherSuite: 1, federationEndpoint: self.baseURL + "/v1/federation"))
        }
        router.get("/openapi.json") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
        router.get("/healthz") { _, _ in JSONResponse(["status": "ok"]) }
    }

    func addClientRoutes(_ router: ConclaveRouter) {
        let v1 = router.group("/v1")
        v1.post("/login") { request, context in
            JSONResponse(try await self.login(try await request.decodeJSON(LoginRequest.self, context: context)), status: .created)
        }
        v1.post("/logout") { request, _ -> JSONResponse<[String: Bool]> in
            _ = try await self.session(request)
            if let token = request.bearerToken { try await self.store.deleteSession(tokenHash: Tokens.hash(token)) }
            return JSONResponse(["signed_out": true])
        }
        v1.get("/users/:user/devices") { request, context in
            _ = try await self.session(request)
            return JSONResponse(try await self.deviceList(of: try self.localUser(try context.parameters.require("user"))))
        }
        v1.post("/key-packages") { request, context in
            let session = try await self.session(request)
            return JSONResponse(
                try await self.uploadKeyPackages(try await request.decodeJSON(KeyPackageUpload.self, context: context), session: session))
        }
        v1.get("/key-packages/count") { request, _ in
            let session = try await self.session(request)
            let count = try await self.store.keyPackageCount(device: session.device.id)
            return JSONResponse(KeyPackageCount(available: count.available, lastResort: count.lastResort))
        }
        v1.post("/key-packages/claim") { request, context in
            let session = try await self.session(request)
            let claim = try await request.decodeJSON(KeyPackageClaim.self, context: context)
            return JSONResponse(try await self.claimKeyPackages(claim, session: session))
        }
        v1.post("/conversations") { request, context in
            let session = try await self.session(request)
            let body = try await request.decodeJSON(CreateConversation.self, context: context)
            return JSONResponse(try await self.createConversation(body, session: session), status: .created)
        }
        v1.get("/conversations") { request, _ in
            JSONResponse(try await self.listConversations(session: try await self.session(request)))
        }
        v1.get("/conversations/:id") { request, context in
            let session = try await self.session(request)
            let id = try Self.conversationID(context)
            if let host = try await self.remoteHost(id, session: session) {
                return JSONResponse(
                    try await self.relay("info", of: id, to: host, Empty?.none, session: session, as: ConversationInfo.self).0)
            }
            return JSONResponse(try await self.conversationInfo(id, actor: session.actor))
        }
        v1.get("/conversations/:id/group-info") { request, context in
            let session = try await self.session(request)
            let id = try Self.conversationID(context)
            if let host = try await self.remoteHost(id, session: session) {
                return JSONResponse(
                    try await self.relay("group-info", of: id, to: host, Empty?.none, session: session, as: GroupInfoResponse.self).0)
            }
            return JSONResponse(try await self.groupInfo(id, actor: session.actor))
        }
        v1.post("/conversations/:id/commits") { request, context in
            let session = try await self.session(request)
            let body = try await request.decodeJSON(CommitRequest.self, context: context)
            let id = try Self.conversationID(context)
            if let host = try await self.remoteHost(id, session: session) {
                return JSONResponse(
                    try await self.relay("commits", of: id, to: host, body, session: session, as: CommitAccepted.self).0, status: .created)
            }
            return JSONResponse(try await self.acceptCommit(id, body, actor: session.actor), status: .created)
        }
        v1.post("/conversations/:id/messages") { request, context in
            let session = try await self.session(request)
            let body = try await request.decodeJSON(SendMessage.self, context: context)
            let id = try Self.conversationID(context)
            if let host = try await self.remoteHost(id, session: session) {
                let (accepted, status) = try await self.relay(
                    "messages", of: id, to: host, body, session: session, as: MessageAccepted.self)
                return JSONResponse(accepted, status: status == 201 ? .created : .ok)
            }
            let (accepted, created) = try await self.acceptMessage(id, body, actor: session.actor)
            return JSONResponse(accepted, status: created ? .created : .ok)
        }
        v1.post("/conversations/:id/leave") { request, context in
            let session = try await self.session(request)
            let id = try Self.conversationID(context)
            if let host = try await self.remoteHost(id, session: session) {
                _ = try await self.relay("leave", of: id, to: host, Empty?.none, session: session, as: [String: Bool].self)
                return JSONResponse(["left": true], status: .accepted)
            }
            _ = try await self.memberConversation(id, actor: session.actor)
            let devices = try await self.store.devices(of: session.user.name).map(\.id)
            try await self.proposeRemoval(of: Set(devices), in: [id])
            return JSONResponse(["left": true], status: .accepted)
        }
    }

    static func conversationID(_ context: ConclaveRequestContext) throws -> ConversationID {
        guard let id = ConversationID(try context.parameters.require("id")) else { throw APIError.badRequest("not a conversation id") }
        return id
    }
}
