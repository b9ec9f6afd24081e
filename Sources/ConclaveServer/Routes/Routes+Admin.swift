import ConclaveProtocol
import Foundation
import Hummingbird

/// The admin API, behind the administrator token: accounts, security
/// groups, the audit log and federation peers.
extension ConclaveAPI {
    func addAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        addUserRoutes(admin)
        addSecurityGroupRoutes(admin)
        addFederationAdminRoutes(admin.group("/federation"))
        addSignInAdminRoutes(admin)
        if let clockOffset {
            // Only when a debug build runs with CONCLAVE_TEST_CLOCK=1 (ClockOffset); not part of the API.
            admin.post("/test-clock") { request, context -> JSONResponse<[String: Double]> in
                try requireAdmin(request)
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
            try requireAdmin(request)
            return JSONResponse(try await self.admin.network())
        }
        admin.get("/users") { request, _ in
            try requireAdmin(request)
            return JSONResponse(try await self.admin.users())
        }
        admin.post("/users") { request, context in
            try requireAdmin(request)
            return JSONResponse(
                try await self.admin.createUser(try await request.decodeJSON(CreateUser.self, context: context)), status: .created)
        }
        admin.patch("/users/:name") { request, context in
            try requireAdmin(request)
            let change = try await request.decodeJSON(UserChange.self, context: context)
            return JSONResponse(try await self.admin.updateUser(try context.userName, change))
        }
        admin.post("/users/:name/suspend") { request, context in
            try requireAdmin(request)
            return JSONResponse(try await self.admin.setSuspended(try context.userName, true))
        }
        admin.post("/users/:name/unsuspend") { request, context in
            try requireAdmin(request)
            return JSONResponse(try await self.admin.setSuspended(try context.userName, false))
        }
        admin.delete("/users/:name") { request, context in
            try requireAdmin(request)
            let name = try context.userName
            try await self.admin.deleteUser(name)
            return JSONResponse(["deleted": name.value])
        }
        admin.get("/users/:name/devices") { request, context in
            try requireAdmin(request)
            return JSONResponse(try await authentication.deviceList(of: try context.userName))
        }
        admin.post("/users/:name/reset-devices") { request, context in
            try requireAdmin(request)
            return JSONResponse(["removed": try await self.admin.resetDevices(try context.userName)])
        }
    }

    private func addSecurityGroupRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/groups") { request, _ in
            try requireAdmin(request)
            return JSONResponse(try await policy.securityGroups())
        }
        admin.post("/groups") { request, context in
            try requireAdmin(request)
            return JSONResponse(
                try await policy.createGroup(try await request.decodeJSON(CreateSecurityGroup.self, context: context)), status: .created)
        }
        admin.patch("/groups/:group") { request, context in
            try requireAdmin(request)
            let change = try await request.decodeJSON(SecurityGroupChange.self, context: context)
            let (updated, members) = try await policy.updateGroup(
                try context.parameter("group", as: "a security group name", SecurityGroupName.init), change)
            _ = try await enforcement.enforce(on: Set(members))
            return JSONResponse(SecurityGroupInfo(policy: updated, members: members.count))
        }
        admin.delete("/groups/:group") { request, context in
            try requireAdmin(request)
            let name = try context.parameter("group", as: "a security group name", SecurityGroupName.init)
            try await policy.deleteGroup(name)
            return JSONResponse(["deleted": name.value])
        }
        admin.get("/audit") { request, _ in
            try requireAdmin(request)
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
            try requireAdmin(request)
            return JSONResponse(try await directory.state())
        }
        admin.post("/peers") { request, context in
            try requireAdmin(request)
            return JSONResponse(
                try await directory.pin(try await request.decodeJSON(AddFederationPeer.self, context: context)), status: .created)
        }
        admin.delete("/peers/:domain") { request, context in
            try requireAdmin(request)
            let domain = try context.parameter("domain", as: "a domain", NetworkDomain.init)
            try await gateway.removePeer(domain)
            return JSONResponse(["removed": domain.value])
        }
        admin.put("/mode") { request, context in
            try requireAdmin(request)
            return JSONResponse(try await directory.setMode(try await request.decodeJSON(FederationModeChange.self, context: context)))
        }
    }

    /// Single sign-on settings and the directory's SCIM tokens.
    private func addSignInAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/sso") { request, _ in
            try requireAdmin(request)
            return JSONResponse(try await singleSignOn.shown())
        }
        admin.put("/sso") { request, context in
            try requireAdmin(request)
            return JSONResponse(try await singleSignOn.set(try await request.decodeJSON(SetSSO.self, context: context)))
        }
        admin.delete("/sso") { request, _ -> JSONResponse<[String: Bool]> in
            try requireAdmin(request)
            try await singleSignOn.remove()
            return JSONResponse(["removed": true])
        }
        admin.get("/scim/tokens") { request, _ in
            try requireAdmin(request)
            return JSONResponse(try await self.admin.scimTokens())
        }
        admin.post("/scim/tokens") { request, _ in
            try requireAdmin(request)
            return JSONResponse(try await self.admin.createSCIMToken(), status: .created)
        }
        admin.delete("/scim/tokens/:id") { request, context -> JSONResponse<[String: String]> in
            try requireAdmin(request)
            let id = try context.pathParameter("id")
            try await self.admin.revokeSCIMToken(id)
            return JSONResponse(["revoked": id])
        }
    }
}
