import ConclaveProtocol
import ConclaveStorage
import Foundation
import Hummingbird

/// The admin API, authenticated by the administrator token: accounts and
/// their devices (DESIGN.md §4). Removing an account or its devices cuts
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
            let group = body.group ?? "default"
            guard group == "default" else {
                throw APIError(.badRequest, "unknown_group", "security groups other than default are not available yet")
            }
            let record = UserRecord(
                name: body.name, passwordHash: try self.configuration.passwordHasher.hash(body.password), securityGroup: group,
                suspended: false,
                createdAt: self.clock())
            do { try await self.store.createUser(record) } catch StoreError.conflict {
                throw APIError(.conflict, "user_exists", "a user with this name exists")
            }
            self.logger.info("admin: user created")
            return JSONResponse(self.userInfo(record, devices: 0), status: .created)
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
            let devices = try await self.store.devices(of: name).map(\.id)
            let conversations = try await self.store.conversations(withDevices: devices)
            guard let deleted = try await self.store.deleteUser(name) else { throw APIError.notFound("user") }
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
            guard try await self.store.user(named: name) != nil else { throw APIError.notFound("user") }
            let devices = try await self.store.devices(of: name).map(\.id)
            let conversations = try await self.store.conversations(withDevices: devices)
            let deleted = try await self.store.deleteDevices(of: name)
            await self.hub.disconnect(deleted)
            try await self.proposeRemoval(of: Set(devices), in: conversations)
            self.logger.info("admin: devices reset", metadata: ["count": "\(deleted.count)"])
            return JSONResponse(["removed": deleted.count])
        }
    }

    func setSuspended(_ name: UserName, _ suspended: Bool) async throws -> UserInfo {
        guard try await store.setSuspended(name, suspended), let user = try await store.user(named: name) else {
            throw APIError.notFound("user")
        }
        let devices = try await store.devices(of: name)
        if suspended {
            let ids = devices.map(\.id)
            await hub.disconnect(ids)
            try await proposeRemoval(of: Set(ids), in: try await store.conversations(withDevices: ids))
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
