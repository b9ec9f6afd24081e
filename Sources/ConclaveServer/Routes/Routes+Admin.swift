import ConclaveProtocol
import Foundation
import Hummingbird

/// The admin API, behind an administrator token (the bootstrap token, or a
/// named API token with a role): accounts, security groups, the audit log,
/// federation peers, sign-in settings and administrators. Each route names
/// the permission it needs (R1).
extension ConclaveAPI {
    func addAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        addUserRoutes(admin)
        addSecurityGroupRoutes(admin)
        addFederationAdminRoutes(admin.group("/federation"))
        addTransparencyAdminRoutes(admin.group("/transparency"))
        addSignInAdminRoutes(admin)
        addAdministratorRoutes(admin)
        if let clockOffset {
            // Only when a debug build runs with CONCLAVE_TEST_CLOCK=1 (ClockOffset); not part of the API.
            admin.post("/test-clock") { request, context -> JSONResponse<[String: Double]> in
                _ = try await authorize(request, .own)
                let body = try await request.decodeJSON([String: Double].self, context: context)
                guard let delta = body["advance_seconds"], delta >= 0, delta <= 10 * 365 * 86_400 else {
                    throw APIError.badRequest("advance_seconds must be 0 to ten years")
                }
                return JSONResponse(["offset_seconds": try clockOffset.advance(by: delta)])
            }
        }
    }

    private func addUserRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/network") { request, _ in
            _ = try await authorize(request, .readDirectory)
            return JSONResponse(try await self.admin.network())
        }
        admin.get("/users") { request, _ in
            _ = try await authorize(request, .readDirectory)
            return JSONResponse(try await self.admin.users())
        }
        admin.post("/users") { request, context in
            let principal = try await authorize(request, .manage)
            return JSONResponse(
                try await self.admin.createUser(try await request.decodeJSON(CreateUser.self, context: context), actor: principal.actor),
                status: .created)
        }
        admin.patch("/users/:name") { request, context in
            let principal = try await authorize(request, .readDirectory)
            let change = try await request.decodeJSON(UserChange.self, context: context)
            // A new password is helpdesk work; a move to another group or an SSO unlink is an administrator's.
            if change.password != nil { try principal.require(.support) }
            if change.group != nil || change.ssoUnlink != nil { try principal.require(.manage) }
            return JSONResponse(try await self.admin.updateUser(try context.userName, change, actor: principal.actor))
        }
        admin.post("/users/:name/suspend") { request, context in
            let principal = try await authorize(request, .support)
            return JSONResponse(try await self.admin.setSuspended(try context.userName, true, actor: principal.actor))
        }
        admin.post("/users/:name/unsuspend") { request, context in
            let principal = try await authorize(request, .support)
            return JSONResponse(try await self.admin.setSuspended(try context.userName, false, actor: principal.actor))
        }
        admin.delete("/users/:name") { request, context in
            let principal = try await authorize(request, .manage)
            let name = try context.userName
            try await self.admin.deleteUser(name, actor: principal.actor)
            return JSONResponse(["deleted": name.value])
        }
        admin.get("/users/:name/devices") { request, context in
            _ = try await authorize(request, .readDirectory)
            return JSONResponse(try await authentication.deviceList(of: try context.userName))
        }
        admin.post("/users/:name/reset-devices") { request, context in
            let principal = try await authorize(request, .support)
            return JSONResponse(["removed": try await self.admin.resetDevices(try context.userName, actor: principal.actor)])
        }
    }

    private func addSecurityGroupRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/groups") { request, _ in
            _ = try await authorize(request, .readDirectory)
            return JSONResponse(try await policy.securityGroups())
        }
        admin.post("/groups") { request, context in
            let principal = try await authorize(request, .manage)
            return JSONResponse(
                try await policy.createGroup(
                    try await request.decodeJSON(CreateSecurityGroup.self, context: context), actor: principal.actor),
                status: .created)
        }
        admin.patch("/groups/:group") { request, context in
            let principal = try await authorize(request, .manage)
            let change = try await request.decodeJSON(SecurityGroupChange.self, context: context)
            let (updated, members) = try await policy.updateGroup(
                try context.parameter("group", as: "a security group name", SecurityGroupName.init), change, actor: principal.actor)
            _ = try await enforcement.enforce(on: Set(members))
            return JSONResponse(SecurityGroupInfo(policy: updated, members: members.count))
        }
        admin.delete("/groups/:group") { request, context in
            let principal = try await authorize(request, .manage)
            let name = try context.parameter("group", as: "a security group name", SecurityGroupName.init)
            try await policy.deleteGroup(name, actor: principal.actor)
            return JSONResponse(["deleted": name.value])
        }
        admin.get("/audit") { request, _ in
            _ = try await authorize(request, .readAudit)
            var since: Date?
            if let text = request.uri.queryParameters["since"] {
                guard let date = ConclaveJSON.parseTimestamp(String(text)) else {
                    throw APIError.badRequest("since must be an RFC 3339 time, e.g. 2026-11-27T08:00:00Z")
                }
                since = date
            }
            return JSONResponse(try await policy.auditLog(since: since))
        }
    }

    private func addFederationAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("") { request, _ in
            _ = try await authorize(request, .readFederation)
            return JSONResponse(try await directory.state())
        }
        admin.post("/peers") { request, context in
            let principal = try await authorize(request, .own)
            return JSONResponse(
                try await directory.pin(try await request.decodeJSON(AddFederationPeer.self, context: context), actor: principal.actor),
                status: .created)
        }
        admin.delete("/peers/:domain") { request, context in
            let principal = try await authorize(request, .own)
            let domain = try context.parameter("domain", as: "a domain", NetworkDomain.init)
            try await gateway.removePeer(domain, actor: principal.actor)
            return JSONResponse(["removed": domain.value])
        }
        admin.put("/mode") { request, context in
            let principal = try await authorize(request, .own)
            return JSONResponse(
                try await directory.setMode(
                    try await request.decodeJSON(FederationModeChange.self, context: context), actor: principal.actor))
        }
    }

    /// Single sign-on settings and the directory's SCIM tokens.
    private func addSignInAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/sso") { request, _ in
            _ = try await authorize(request, .own)
            return JSONResponse(try await singleSignOn.shown())
        }
        admin.put("/sso") { request, context in
            let principal = try await authorize(request, .own)
            return JSONResponse(
                try await singleSignOn.set(try await request.decodeJSON(SetSSO.self, context: context), actor: principal.actor))
        }
        admin.delete("/sso") { request, _ -> JSONResponse<[String: Bool]> in
            let principal = try await authorize(request, .own)
            try await singleSignOn.remove(actor: principal.actor)
            return JSONResponse(["removed": true])
        }
        admin.get("/scim/tokens") { request, _ in
            _ = try await authorize(request, .own)
            return JSONResponse(try await self.admin.scimTokens())
        }
        admin.post("/scim/tokens") { request, _ in
            let principal = try await authorize(request, .own)
            return JSONResponse(try await self.admin.createSCIMToken(actor: principal.actor), status: .created)
        }
        admin.delete("/scim/tokens/:id") { request, context -> JSONResponse<[String: String]> in
            let principal = try await authorize(request, .own)
            let id = try context.pathParameter("id")
            try await self.admin.revokeSCIMToken(id, actor: principal.actor)
            return JSONResponse(["revoked": id])
        }
    }

    /// Named administrators and API tokens (owner only), and who is asking.
    private func addAdministratorRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/whoami") { request, _ in
            let principal = try await authorize(request, .readDirectory)
            return JSONResponse(AdminIdentity(actor: principal.actor, role: principal.role))
        }
        admin.get("/administrators") { request, _ in
            _ = try await authorize(request, .own)
            return JSONResponse(try await administrators.administrators())
        }
        admin.post("/administrators") { request, context in
            let principal = try await authorize(request, .own)
            let body = try await request.decodeJSON(CreateAdministrator.self, context: context)
            return JSONResponse(try await administrators.create(body, by: principal), status: .created)
        }
        admin.patch("/administrators/:admin") { request, context in
            let principal = try await authorize(request, .own)
            let change = try await request.decodeJSON(AdministratorChange.self, context: context)
            return JSONResponse(try await administrators.update(try context.adminName, change, by: principal))
        }
        admin.delete("/administrators/:admin") { request, context -> JSONResponse<[String: String]> in
            let principal = try await authorize(request, .own)
            let name = try context.adminName
            try await administrators.remove(name, by: principal)
            return JSONResponse(["removed": name.value])
        }
        admin.get("/tokens") { request, _ in
            _ = try await authorize(request, .own)
            return JSONResponse(try await administrators.tokens())
        }
        admin.post("/tokens") { request, context in
            let principal = try await authorize(request, .own)
            let body = try await request.decodeJSON(CreateAdminToken.self, context: context)
            return JSONResponse(try await administrators.createToken(body, by: principal), status: .created)
        }
        admin.delete("/tokens/:admin") { request, context -> JSONResponse<[String: String]> in
            let principal = try await authorize(request, .own)
            let name = try context.adminName
            try await administrators.revokeToken(name, by: principal)
            return JSONResponse(["revoked": name.value])
        }
    }
}
