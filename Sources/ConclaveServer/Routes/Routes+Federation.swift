import ConclaveProtocol
import HTTPTypes
import Hummingbird
import NIOCore

/// The server-to-server API: every request signed by the sending network
/// (F1–F4), then key package claims, relayed conversation requests and
/// deliveries.
extension ConclaveAPI {
    func addFederationRoutes(_ federation: RouterGroup<ConclaveRequestContext>) {
        federation.post("/key-packages/claim") { request, context in
            let (origin, body) = try await authenticatePeer(request, context: context)
            let claim = try JSONBody.decode(FederatedKeyPackageClaim.self, body)
            return JSONResponse(try await gateway.serveKeyPackageClaim(claim, origin: origin))
        }
        federation.post("/identity") { request, context in
            let (origin, body) = try await authenticatePeer(request, context: context)
            return JSONResponse(try await gateway.serveIdentity(try JSONBody.decode(FederatedKeyPackageClaim.self, body), origin: origin))
        }
        federation.post("/conversations/:id/:operation") { request, context in
            let (origin, body) = try await authenticatePeer(request, context: context)
            let operation = try context.parameter("operation", as: "an operation", HostOperation.init(rawValue:))
            let reply =
                operation == .fileContent
                ? try await gateway.hostFileContent(
                    try context.conversationID,
                    query: Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }) { a, _ in a },
                    body: body, origin: origin)
                : try await gateway.hostOperation(operation, of: try context.conversationID, body: body, origin: origin)
            var headers = HTTPFields()
            headers[.contentType] = reply.contentType
            return Response(
                status: HTTPResponse.Status(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
        }
        federation.post("/deliver") { request, context in
            let (origin, body) = try await authenticatePeer(request, context: context)
            let delivery = try JSONBody.decode(FederatedDelivery.self, body)
            return JSONResponse(["accepted": try await gateway.acceptDelivery(delivery, from: origin)])
        }
        addTransparencyFederationRoutes(federation)
    }

    /// F1–F4 on a request's signed parts; the requesting network and the body.
    func authenticatePeer(_ request: Request, context: ConclaveRequestContext) async throws -> (NetworkDomain, [UInt8]) {
        let body = Array(try await request.body.collect(upTo: context.maxUploadSize).readableBytesView)
        let signed = SignedPeerRequest(method: request.method.rawValue, path: request.uri.description, headers: request.headers, body: body)
        return (try await directory.authenticate(signed).peer.domain, body)
    }
}
