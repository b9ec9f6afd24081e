import ConclaveProtocol
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// SCIM 2.0 provisioning (RFC 7643, RFC 7644) under `/scim/v2`, for an
/// identity provider's directory. Every request to an endpoint needs a SCIM
/// token (``SCIMService/authenticate(token:)``), checked before anything
/// else; a method an endpoint does not have (405, its `Allow` naming those it
/// has) and a path that names no endpoint (404) are answered without one,
/// since they tell nothing of the directory. Every answer, errors included,
/// is `application/scim+json`. Users and Groups are returned with the
/// attributes the request's `attributes` or `excludedAttributes` pick
/// (``SCIMSelection``).
extension ConclaveAPI {
    /// The methods a SCIM path answers: those an endpoint does not have are a 405.
    private static let scimMethods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]

    func addSCIMRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        addSCIMUserRoutes(group)
        addSCIMGroupRoutes(group)
        addSCIMDiscoveryRoutes(group)
        addSCIMSearchRoute(group, "/.search")
        addSCIMFallbackRoutes(group)
    }

    private func addSCIMUserRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.get("/Users") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let listing = try await scim.users(filter: request.uri.queryParameters.get("filter"), page: try scimPage(request))
                return .ok(SCIMDocuments.list(listing) { SCIMDocuments.user($0, base: base, selection: selection) })
            }
        }
        group.get("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                return .ok(SCIMDocuments.user(try await scim.user(id: try context.pathParameter("id")), base: base, selection: selection))
            }
        }
        group.post("/Users") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let user = try await scim.createUser(try SCIMUserChange(resource: try await scimBody(request, context)))
                let location = SCIMDocuments.userLocation(user.name, base: base)
                return .created(SCIMDocuments.user(user, base: base, selection: selection), location: location)
            }
        }
        group.put("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let change = try SCIMUserChange(resource: try await scimBody(request, context))
                let user = try await scim.updateUser(id: try context.pathParameter("id"), change)
                return .ok(SCIMDocuments.user(user, base: base, selection: selection))
            }
        }
        group.patch("/Users/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let change = try SCIMUserChange(operations: try SCIMPatchOperation.operations(of: try await scimBody(request, context)))
                let user = try await scim.updateUser(id: try context.pathParameter("id"), change)
                return .ok(SCIMDocuments.user(user, base: base, selection: selection))
            }
        }
        group.delete("/Users/:id") { request, context in
            try await scimRespond(request, context) { _ in
                try await scim.deleteUser(id: try context.pathParameter("id"))
                return .noContent
            }
        }
        addSCIMMethodsNotAllowed(group, "/Users", allowed: [.get, .post])
        addSCIMMethodsNotAllowed(group, "/Users/:id", allowed: [.get, .put, .patch, .delete])
        // A path of its own, tried before `:id`: `.search` is never a user id.
        addSCIMSearchRoute(group, "/Users/.search")
    }

    private func addSCIMGroupRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.get("/Groups") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let listing = try await scim.groups(filter: request.uri.queryParameters.get("filter"), page: try scimPage(request))
                return .ok(SCIMDocuments.list(listing) { SCIMDocuments.group($0, base: base, selection: selection) })
            }
        }
        group.get("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                return .ok(SCIMDocuments.group(try await scim.group(id: try context.pathParameter("id")), base: base, selection: selection))
            }
        }
        group.post("/Groups") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let created = try await scim.createGroup(try SCIMGroupChange(resource: try await scimBody(request, context)))
                let location = SCIMDocuments.groupLocation(created.name.value, base: base)
                return .created(SCIMDocuments.group(created, base: base, selection: selection), location: location)
            }
        }
        group.put("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let change = try SCIMGroupChange(resource: try await scimBody(request, context))
                let updated = try await scim.updateGroup(id: try context.pathParameter("id"), change)
                return .ok(SCIMDocuments.group(updated, base: base, selection: selection))
            }
        }
        group.patch("/Groups/:id") { request, context in
            try await scimRespond(request, context) { base in
                let selection = try scimSelection(request)
                let change = try SCIMGroupChange(operations: try SCIMPatchOperation.operations(of: try await scimBody(request, context)))
                let updated = try await scim.updateGroup(id: try context.pathParameter("id"), change)
                return .ok(SCIMDocuments.group(updated, base: base, selection: selection))
            }
        }
        group.delete("/Groups/:id") { request, context in
            try await scimRespond(request, context) { _ in
                try await scim.deleteGroup(id: try context.pathParameter("id"))
                return .noContent
            }
        }
        addSCIMMethodsNotAllowed(group, "/Groups", allowed: [.get, .post])
        addSCIMMethodsNotAllowed(group, "/Groups/:id", allowed: [.get, .put, .patch, .delete])
        // A path of its own, tried before `:id`: `.search` is never a group id.
        addSCIMSearchRoute(group, "/Groups/.search")
    }

    /// The discovery documents (RFC 7644 §4), behind the SCIM token too;
    /// read-only: any other method is a 405.
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
        for path: RouterPath in ["/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/:id", "/Schemas", "/Schemas/:id"] {
            addSCIMMethodsNotAllowed(group, path, allowed: [.get])
        }
    }

    /// `POST <path>` (`/.search`, `/Users/.search`, `/Groups/.search`):
    /// searching with POST (RFC 7644 §3.4.3) is not supported, a 501 after
    /// the token check (RFC 7644 §3.12); any other method is a 405.
    private func addSCIMSearchRoute(_ group: RouterGroup<ConclaveRequestContext>, _ path: RouterPath) {
        group.post(path) { request, context in
            try await scimRespond(request, context) { _ in throw SCIMError.searchNotSupported }
        }
        addSCIMMethodsNotAllowed(group, path, allowed: [.post])
    }

    /// Answers each method of ``scimMethods`` that `path` does not have
    /// with a 405 whose `Allow` names those it has, without a token.
    private func addSCIMMethodsNotAllowed(
        _ group: RouterGroup<ConclaveRequestContext>, _ path: RouterPath, allowed: [HTTPRequest.Method]
    ) {
        let reply = SCIMReply.methodNotAllowed(allowed)
        for method in Self.scimMethods where !allowed.contains(method) {
            group.on(path, method: method) { _, _ in try reply.response() }
        }
    }

    /// Any other path under `/scim/v2`, and `/scim/v2` itself, names no
    /// endpoint: a SCIM 404 for every method, without a token. The router
    /// tries a `**` route only after every other route of its level has
    /// failed to match the whole path, so it shadows none of them; a longer
    /// path under an endpoint (`/Users/bob/x`) falls back to it too.
    private func addSCIMFallbackRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        let reply = SCIMReply.error(.noEndpoint)
        for path: RouterPath in ["", "**"] {
            for method in Self.scimMethods {
                group.on(path, method: method) { _, _ in try reply.response() }
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

    /// The `attributes` and `excludedAttributes` query parameters; read
    /// before a change is made, so that a wrong one changes nothing.
    private func scimSelection(_ request: Request) throws -> SCIMSelection {
        let query = request.uri.queryParameters
        return try SCIMSelection(attributes: query.get("attributes"), excludedAttributes: query.get("excludedAttributes"))
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

/// A SCIM answer: its status, its body (none for 204), for a created
/// resource its `Location`, and for a 405 the methods allowed.
struct SCIMReply: Sendable {
    var status: HTTPResponse.Status
    var body: SCIMJSON?
    var location: String?
    /// The `Allow` header, as `GET, POST`.
    var allow: String?

    static func ok(_ body: SCIMJSON) -> SCIMReply { SCIMReply(status: .ok, body: body) }
    static func created(_ body: SCIMJSON, location: String) -> SCIMReply { SCIMReply(status: .created, body: body, location: location) }
    static let noContent = SCIMReply(status: .noContent)
    static func error(_ error: SCIMError) -> SCIMReply { SCIMReply(status: HTTPResponse.Status(code: error.status), body: error.body) }

    /// A 405 for a method an endpoint does not have; `allowed` are those it has.
    static func methodNotAllowed(_ allowed: [HTTPRequest.Method]) -> SCIMReply {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        var reply = SCIMReply.error(SCIMError.methodNotAllowed(allow))
        reply.allow = allow
        return reply
    }

    /// The response: `application/scim+json; charset=utf-8` with a body;
    /// a 401 names the Bearer scheme, a 405 the methods allowed.
    func response() throws -> Response {
        var headers = HTTPFields()
        if let location { headers[.location] = location }
        if let allow { headers[.allow] = allow }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        guard let body else { return Response(status: status, headers: headers) }
        headers[.contentType] = "application/scim+json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try body.encoded())))
    }
}
