import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The server's services, as the routes reach them. Each route decodes,
/// calls one service method and encodes (the `Routes+…` files).
struct ConclaveAPI: Sendable {
    let identity: NetworkIdentity
    let authentication: AuthenticationService
    let approvals: DeviceApprovals
    let keyPackages: KeyPackageDirectory
    let conversations: ConversationRequests
    let delivery: DeliveryService
    let inbox: InboxService
    let policy: PolicyService
    let enforcement: PolicyEnforcement
    let deprovisioning: Deprovisioning
    let admin: AdminService
    let directory: FederationDirectory
    let gateway: FederationGateway
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    let trustedProxies: Set<String>
    /// The tests' adjustable clock (debug builds only; see ``ClockOffset``).
    let clockOffset: ClockOffset?

    /// Every route of the client, admin, discovery and federation APIs.
    func router() -> ConclaveRouter {
        let router = ConclaveRouter(context: ConclaveRequestContext.self)
        router.add(middleware: JSONErrorMiddleware<ConclaveRequestContext>())
        addDiscoveryRoutes(router)
        addClientRoutes(router.group("/v1"))
        addConversationRoutes(router.group("/v1/conversations"))
        addInboxRoutes(router)
        addAdminRoutes(router.group("/v1/admin"))
        addFederationRoutes(router.group("/v1/federation"))
        return router
    }

    /// The session behind a request's bearer token (401 otherwise).
    func session(_ request: Request) async throws -> Session { try await authentication.session(token: request.bearerToken) }

    /// Checks the administrator token (401 otherwise).
    func requireAdmin(_ request: Request) throws { try authentication.requireAdmin(token: request.bearerToken) }

    func addDiscoveryRoutes(_ router: ConclaveRouter) {
        router.get("/.well-known/conclave") { _, _ in
            JSONResponse(
                WellKnown(
                    domain: identity.domain, apiVersion: conclaveAPIVersion, signingKey: Base64Bytes(identity.publicKey.rawKey),
                    keyFingerprint: identity.publicKey.fingerprint, cipherSuite: 1, federationEndpoint: identity.baseURL + "/v1/federation")
            )
        }
        router.get("/openapi.json") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
        router.get("/healthz") { _, _ in JSONResponse(["status": "ok"]) }
    }
}

/// The OpenAPI document of the API, as kept in the repository
/// (`Sources/ConclaveServer/Resources/openapi.json`).
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
            return Array(#"{"error":"openapi document missing"}"#.utf8)
        }
        return Array(data)
    }()
}
