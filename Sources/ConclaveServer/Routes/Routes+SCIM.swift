import ConclaveProtocol
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// SCIM 2.0 provisioning (RFC 7643, RFC 7644) under `/scim/v2`, for an
/// identity provider's directory. Every request needs a SCIM token
/// (``SCIMService/authenticate(token:)``), checked before anything else;
/// every answer, errors included, is `application/scim+json`.
extension ConclaveAPI {
    func addSCIMRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        addSCIMUserRoutes(group)
        addSCIMGroupRoutes(group)
        addSCIMDiscoveryRoutes(group)
    }

    private func addSCIMUserRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.get("/Users") { request, context in
            try await scimRespond(request, context) { base in
                let listing = try await scim.users(filter: request.uri.queryParameters.get("filter"), page: try scimPage(request))
                return .ok(SCIMDocuments.list(listing) { SCIMDocuments.user($0, base: base) })
            }
        }
        group.get("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                .ok(SCIMDocuments.user(try await scim.user(id: try context.pathParameter("id")), base: base))
            }
        }
        group.post("/Users") { request, context in
            try await scimRespond(request, context) { base in
                let user = try await scim.createUser(try SCIMUserChange(resource: try await scimBody(request, context)))
                return .created(SCIMDocuments.user(user, base: base), location: SCIMDocuments.userLocation(user.name, base: base))
            }
        }
        group.put("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                let change = try SCIMUserChange(resource: try await scimBody(request, context))
                return .ok(SCIMDocuments.user(try await scim.updateUser(id: try context.pathParameter("id"), change), base: base))
            }
        }
        group.patch("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                let change = try SCIMUserChange(operations: try SCIMPatchOperation.operations(of: try await scimBody(request, context)))
                return .ok(SCIMDocuments.user(try await scim.updateUser(id: try context.pathParameter("id"), change), base: base))
            }
        }
        group.delete("/Users/:id") { request, context in
            try await scimRespond(request, context) { _ in
                try await scim.deleteUser(id: try context.pathParameter("id"))
                return .noContent
            }
        }
    }

    private func addSCIMGroupRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.get("/Groups") { request, context in
            try await scimRespond(request, context) { base in
                let listing = try await scim.groups(filter: request.uri.queryParameters.get("filter"), page: try scimPage(request))
                return .ok(SCIMDocuments.list(listing) { SCIMDocuments.group($0, base: base) })
            }
        }
        group.get("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                .ok(SCIMDocuments.group(try await scim.group(id: try context.pathParameter("id")), base: base))
            }
        }
        group.post("/Groups") { request, context in
            try await scimRespond(request, context) { base in
                let created = try await scim.createGroup(try SCIMGroupChange(resource: try await scimBody(request, context)))
                let location = SCIMDocuments.groupLocation(created.name.value, base: base)
                return .created(SCIMDocuments.group(created, base: base), location: location)
            }
        }
        group.put("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                let change = try SCIMGroupChange(resource: try await scimBody(request, context))
                return .ok(SCIMDocuments.group(try await scim.updateGroup(id: try context.pathParameter("id"), change), base: base))
            }
        }
        group.patch("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                let change = try SCIMGroupChange(operations: try SCIMPatchOperation.operations(of: try await scimBody(request, context)))
                return .ok(SCIMDocuments.group(try await scim.updateGroup(id: try context.pathParameter("id"), change), base: base))
            }
        }
        group.delete("/Groups/:id") { request, context in
            try await scimRespond(request, context) { _ in
                try await scim.deleteGroup(id: try context.pathParameter("id"))
                return .noContent
            }
        }
    }

    /// The discovery documents (RFC 7644 §4), behind the SCIM token too.
    private func addSCIMDiscoveryRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.get("/ServiceProviderConfig") { request, context in
            try await scimRespond(request, context) { base in .ok(SCIMDocuments.serviceProviderConfig(base: base)) }
        }
        group.get("/ResourceTypes") { request, context in
            try await scimRespond(request, context) { base in
                let types = SCIMDocuments.resourceTypes(base: base)
                return .ok(SCIMDocuments.list(types, total: types.count, startIndex: 1))
            }
        }
        group.get("/ResourceTypes/:id") { request, context in
            try await scimRespond(request, context) { base in
                guard let type = SCIMDocuments.resourceType(try context.pathParameter("id"), base: base) else {
                    throw SCIMError.notFound("resource type")
                }
                return .ok(type)
            }
        }
        group.get("/Schemas") { request, context in
            try await scimRespond(request, context) { base in
                let schemas = SCIMDocuments.schemas(base: base)
                return .ok(SCIMDocuments.list(schemas, total: schemas.count, startIndex: 1))
            }
        }
        group.get("/Schemas/:id") { request, context in
            try await scimRespond(request, context) { base in
                guard let schema = SCIMDocuments.schema(try context.pathParameter("id"), base: base) else {
                    throw SCIMError.notFound("schema")
                }
                return .ok(schema)
            }
        }
    }

    /// Answers a SCIM request: the token checked first, then `handle` with
    /// the SCIM root URL; any error becomes a SCIM error body.
    private func scimRespond(
        _ request: Request, _ context: ConclaveRequestContext, _ handle: (String) async throws -> SCIMReply
    ) async throws -> Response {
        do {
            try await scim.authenticate(token: request.bearerToken)
            return try await handle(identity.baseURL + "/scim/v2").response()
        } catch {
            return try SCIMReply.error(scimError(error, context: context)).response()
        }
    }

    /// A request body: a JSON object of at most the context's upload size
    /// (400 `invalidSyntax`, or 413).
    private func scimBody(_ request: Request, _ context: ConclaveRequestContext) async throws -> SCIMAttributes {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        return try SCIMAttributes(body: Array(buffer.readableBytesView))
    }

    /// The `startIndex` and `count` query parameters.
    private func scimPage(_ request: Request) throws -> SCIMPage {
        let query = request.uri.queryParameters
        return try SCIMPage(startIndex: query.get("startIndex"), count: query.get("count"))
    }

    /// The SCIM form of any error: ours as they are, the services' by their
    /// code, the framework's (a body over the limit) by their status, and
    /// anything else a 500 whose details stay out of the answer and the log.
    private func scimError(_ error: any Error, context: ConclaveRequestContext) -> SCIMError {
        switch error {
        case let error as SCIMError: return error
        case let error as APIError: return SCIMError(error)
        case let error as any HTTPResponseError where error.status.code < 500:
            return SCIMError(status: error.status.code, scimType: nil, detail: error.status.reasonPhrase)
        default:
            context.logger.error("SCIM request failed", metadata: ["error.type": "\(type(of: error))"])
            return .unexpected
        }
    }
}

/// A SCIM answer: its status, its body (none for 204), and for a created
/// resource its `Location`.
struct SCIMReply: Sendable {
    var status: HTTPResponse.Status
    var body: SCIMJSON?
    var location: String?

    static func ok(_ body: SCIMJSON) -> SCIMReply { SCIMReply(status: .ok, body: body) }
    static func created(_ body: SCIMJSON, location: String) -> SCIMReply { SCIMReply(status: .created, body: body, location: location) }
    static let noContent = SCIMReply(status: .noContent)
    static func error(_ error: SCIMError) -> SCIMReply { SCIMReply(status: HTTPResponse.Status(code: error.status), body: error.body) }

    /// The response: `application/scim+json; charset=utf-8` with a body;
    /// a 401 names the Bearer scheme.
    func response() throws -> Response {
        var headers = HTTPFields()
        if let location { headers[.location] = location }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        guard let body else { return Response(status: status, headers: headers) }
        headers[.contentType] = "application/scim+json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try body.encoded())))
    }
}
