import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The server's services, as the routes reach them. Each route decodes,
/// calls one service method and encodes (the `Routes+…` files).
struct ConclaveAPI: Sendable {
    let identity: NetworkIdentity
    let authentication: AuthenticationService
    let singleSignOn: SingleSignOn
    let approvals: DeviceApprovals
    let keyPackages: KeyPackageDirectory
    let conversations: ConversationRequests
    let files: FileRequests
    let delivery: DeliveryService
    let inbox: InboxService
    let policy: PolicyService
    let enforcement: PolicyEnforcement
    let deprovisioning: Deprovisioning
    let admin: AdminService
    let administrators: AdministratorService
    let scim: SCIMService
    let directory: FederationDirectory
    let gateway: FederationGateway
    let transparency: TransparencyService
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    let trustedProxies: Set<String>
    /// The tests' adjustable clock (debug builds only; see ``ClockOffset``).
    let clockOffset: ClockOffset?
    let store: ConclaveStore
    let metrics: ServerMetrics
    /// Opens once the schema is migrated.
    let ready: Gate
    /// Whether `/metrics` is served on a listener of its own (without the
    /// administrator token) rather than on this one (with it).
    let metricsOnOwnListener: Bool
    let accessLogger: Logger

    /// Every route of the client, admin, discovery and federation APIs.
    func router() -> ConclaveRouter {
        let router = baseRouter()
        addDiscoveryRoutes(router)
        addClientRoutes(router.group("/v1"))
        addConversationRoutes(router.group("/v1/conversations"))
        addFileRoutes(router.group("/v1/conversations"))
        addInboxRoutes(router)
        addAdminRoutes(router.group("/v1/admin"))
        addSCIMRoutes(router.group("/scim/v2"))
        addFederationRoutes(router.group("/v1/federation"))
        addTransparencyRoutes(router)
        return router
    }

    /// A router with the access log and JSON errors, and no routes yet.
    func baseRouter() -> ConclaveRouter {
        let router = ConclaveRouter(context: ConclaveRequestContext.self)
        router.add(middleware: AccessLogMiddleware<ConclaveRequestContext>(metrics: metrics, logger: accessLogger))
        router.add(middleware: JSONErrorMiddleware<ConclaveRequestContext>())
        return router
    }

    /// The session behind a request's bearer token (401 otherwise).
    func session(_ request: Request) async throws -> Session { try await authentication.session(token: request.bearerToken) }

    /// Who makes an admin API request (401 without a valid token), if their
    /// role has `permission` (403 otherwise).
    func authorize(_ request: Request, _ permission: AdminPermission) async throws -> AdminPrincipal {
        let principal = try await administrators.principal(bearer: request.bearerToken)
        try principal.require(permission)
        return principal
    }

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
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.served(at: identity.baseURL))))
        }
        router.get("/healthz") { _, _ in JSONResponse(["status": "ok"]) }
        // Ready once the schema is migrated, while the database answers with the newest schema.
        router.get("/readyz") { _, _ -> JSONResponse<[String: String]> in
            guard await ready.opened, await store.isCurrent() else {
                throw APIError(.notReady, "the database does not answer, or its schema is not migrated yet")
            }
            return JSONResponse(["status": "ready"])
        }
        if !metricsOnOwnListener {
            router.get("/metrics") { request, _ -> Response in
                _ = try await authorize(request, .readDirectory)
                return try await metricsResponse()
            }
        }
    }

    /// The metrics in the Prometheus text format.
    func metricsResponse() async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try await metrics.render(store: store))))
    }
}
