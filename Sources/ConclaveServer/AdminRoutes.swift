import ConclaveProtocol
import ConclaveStorage
import Foundation
import Hummingbird

/// The admin API, authenticated by the administrator token: accounts and
/// their devices (DESIGN.md §4); every change is written to the audit log. Removing an account or its devices cuts
/// their connections at once and has the server propose their removal from
/// every conversation.
extension ServerState {
    func addAdminRoutes(_ router: ConclaveRouter) {
        let admin = router.group("/v1/admin")
        admin.get("/network") { request, _ in
            try self.requireAdmin(request)
            return JSONResponse(
                NetworkInfo(
                    domain: self.domain, url: self.baseURL, keyFingerprint: self.publicKey.fingerprint, apiVersion: conclaveAPIVersion,
                    storage: self.store.database.dialect.rawValue, users: try await self.store.users().count))
        }
        admin.post("/users") { request, context in
            try self.requireAdmin(request)
            let body = try await request.decodeJSON(CreateUser.self, context: context)
            guard (8...1024).contains(body.password.count) else { throw APIError.badRequest("a password has 8 to 1024 characters") }
            guard let group = SecurityGroupName(body.group ?? "default") else { throw APIError.badRequest("not a security group name") }
            let record = UserRecord(
                name: body.name, passwordHash: try self.configuration.passwordHasher.hash(body.password), securityGroup: group.value,
                suspended: false, createdAt: self.clock())
            do {
                try await self.store.createUser(
                    record, audit: self.audit("user.create", "user:\(body.name)", before: nil, after: AuditedUser(record)))
            } catch StoreError.conflict {
                throw APIError(.conflict, "user_exists", "a user with this name exists")
            } catch StoreError.notFound {
                throw APIError(.badRequest, "unknown_group", "security group \(group) does not exist")
            }
            self.logger.info("admin: user created")
            return JSONResponse(self.userInfo(record, devices: 0), status: .created)
        }
        admin.patch("/users/:name") { request, context in
            try self.requireAdmin(request)
            let name = try Self.userName(context)
            let change = try await request.decodeJSON(UserChange.self, context: context)
            guard let before = try await self.store.user(named: name) else { throw APIError.notFound("user") }
            guard let group = change.group, group.value != before.securityGroup else {
                return JSONResponse(self.userInfo(before, devices: try await self.store.devices(of: name).count))
            }
            var after = before
            after.securityGroup = group.value
            do {
                try await self.store.setSecurityGroup(
                    of: name, to: group,
                    audit: self.audit("user.update", "user:\(name)", before: AuditedUser(before), after: AuditedUser(after)))
            } catch StoreError.notFound(let what) {
                throw what == "user"
                    ? APIError.notFound("user") : APIError(.badRequest, "unknown_group", "security group \(group) does not exist")
            }
            let enforced = try await self.enforcePolicy(on: [name])
            self.logger.info(
                "admin: user moved to another security group",
                metadata: ["removals": "\(enforced.removed)", "retuned": "\(enforced.retuned)"])
            return JSONResponse(self.userInfo(after, devices: try await self.store.devices(of: name).count))
        }
        admin.get("/users") { request, _ in
            try self.requireAdmin(request)
            return JSONResponse(UserList(users: try await self.store.users().map { self.userInfo($0.user, devices: $0.devices) }))
        }
        admin.post("/users/:name/suspend") { request, context in
            try self.requireAdmin(request)
            return JSONResponse(try await self.setSuspended(try Self.userName(context), true))
        }
        admin.post("/users/:name/unsuspend") { request, context in
            try self.requireAdmin(request)
            return JSONResponse(try await self.setSuspended(try Self.userName(context), false))
        }
        admin.delete("/users/:name") { request, context in
            try self.requireAdmin(request)
            let name = try Self.userName(context)
            guard let before = try await self.store.user(named: name) else { throw APIError.notFound("user") }
            let devices = try await self.store.devices(of: name).map(\.id)
            let conversations = try await self.store.conversations(withDevices: devices)
            let audit = self.audit("user.delete", "user:\(name)", before: AuditedUser(before, devices: devices.count), after: nil)
            try await self.requestRemoteRemoval(of: devices, user: name)
            guard let deleted = try await self.store.deleteUser(name, audit: audit) else { throw APIError.notFound("user") }
            await self.hub.disconnect(deleted)
            try await self.proposeRemoval(of: Set(devices), in: conversations)
            self.logger.info("admin: user deleted")
            return JSONResponse(["deleted": name.value])
        }
        admin.get("/users/:name/devices") { request, context in
            try self.requireAdmin(request)
            return JSONResponse(try await self.deviceList(of: try Self.userName(context)))
        }
        admin.post("/users/:name/reset-devices") { request, context in
            try self.requireAdmin(request)
            let name = try Self.userName(context)
            guard let user = try await self.store.user(named: name) else { throw APIError.notFound("user") }
            let devices = try await self.store.devices(of: name).map(\.id)
            let conversations = try await self.store.conversations(withDevices: devices)
            let deleted = try await self.store.deleteDevices(
                of: name,
                audit: self.audit(
                    "user.reset_devices", "user:\(name)", before: AuditedUser(user, devices: devices.count),
                    after: AuditedUser(user, devices: 0)))
            await self.hub.disconnect(deleted)
            try await self.proposeRemoval(of: Set(devices), in: conversations)
            try await self.requestRemoteRemoval(of: devices, user: name)
            self.logger.info("admin: devices reset", metadata: ["count": "\(deleted.count)"])
            return JSONResponse(["removed": deleted.count])
        }
    }

    func setSuspended(_ name: UserName, _ suspended: Bool) async throws -> UserInfo {
        guard let before = try await store.user(named: name) else { throw APIError.notFound("user") }
        var after = before
        after.suspended = suspended
        let audit = audit(
            suspended ? "user.suspend" : "user.unsuspend", "user:\(name)", before: AuditedUser(before), after: AuditedUser(after))
        guard try await store.setSuspended(name, suspended, audit: audit), let user = try await store.user(named: name) else {
            throw APIError.notFound("user")
        }
        let devices = try await store.devices(of: name)
        if suspended {
            let ids = devices.map(\.id)
            await hub.disconnect(ids)
            try await proposeRemoval(of: Set(ids), in: try await store.conversations(withDevices: ids))
            try await requestRemoteRemoval(of: ids, user: name)
        }
        logger.info("admin: user \(suspended ? "suspended" : "unsuspended")")
        return userInfo(user, devices: devices.count)
    }

    func userInfo(_ user: UserRecord, devices: Int) -> UserInfo {
        UserInfo(
            name: user.name, address: UserAddress(name: user.name, domain: domain), group: user.securityGroup, suspended: user.suspended,
            devices: devices, createdAt: user.createdAt)
    }

    static func userName(_ context: ConclaveRequestContext) throws -> UserName {
        guard let name = UserName(try context.parameters.require("name")) else { throw APIError.badRequest("not a user name") }
        return name
    }
}
