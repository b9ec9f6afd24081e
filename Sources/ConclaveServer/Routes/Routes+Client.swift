import ConclaveProtocol
import Hummingbird

/// The client API: sign-in, devices, key packages, policy, conversations.
extension ConclaveAPI {
    func addClientRoutes(_ v1: RouterGroup<ConclaveRequestContext>) {
        v1.post("/login") { request, context in
            let body = try await request.decodeJSON(LoginRequest.self, context: context)
            let address = context.clientAddress(of: request, trustedProxies: trustedProxies)
            return JSONResponse(try await authentication.login(body, from: address), status: .created)
        }
        v1.post("/sessions") { request, context in
            let body = try await request.decodeJSON(DeviceSignIn.self, context: context)
            let address = context.clientAddress(of: request, trustedProxies: trustedProxies)
            return JSONResponse(try await authentication.signInDevice(body, from: address), status: .created)
        }
        v1.post("/logout") { request, _ -> JSONResponse<[String: Bool]> in
            try await deprovisioning.signOut(try await session(request))
            return JSONResponse(["signed_out": true])
        }
        v1.get("/users/:name/devices") { request, context in
            let session = try await session(request)
            let name = try identity.localUser(try context.parameters.require("name"))
            return JSONResponse(try await authentication.deviceList(of: name, for: session, policy: policy))
        }
        v1.post("/key-packages") { request, context in
            let session = try await session(request)
            return JSONResponse(
                try await keyPackages.upload(try await request.decodeJSON(KeyPackageUpload.self, context: context), session: session))
        }
        v1.get("/key-packages/count") { request, _ in
            JSONResponse(try await keyPackages.count(session: try await session(request)))
        }
        v1.post("/key-packages/claim") { request, context in
            let session = try await session(request)
            return JSONResponse(
                try await keyPackages.claim(try await request.decodeJSON(KeyPackageClaim.self, context: context), session: session))
        }
        v1.post("/policy") { request, context in
            let session = try await session(request)
            return JSONResponse(
                try await policy.conversationBounds(try await request.decodeJSON(PolicyQuery.self, context: context), session: session))
        }
        v1.get("/networks/:domain") { request, context in
            _ = try await session(request)
            return JSONResponse(try await directory.network(try context.parameter("domain", as: "a domain", NetworkDomain.init)))
        }
    }

    func addConversationRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.post("") { request, context in
            let session = try await session(request)
            let body = try await request.decodeJSON(CreateConversation.self, context: context)
            return JSONResponse(try await delivery.createConversation(body, session: session), status: .created)
        }
        group.get("") { request, _ in
            JSONResponse(try await delivery.listConversations(session: try await session(request)))
        }
        group.get("/:id") { request, context in
            JSONResponse(try await conversations.info(try context.conversationID, session: try await session(request)))
        }
        group.get("/:id/group-info") { request, context in
            JSONResponse(try await conversations.groupInfo(try context.conversationID, session: try await session(request)))
        }
        group.post("/:id/commits") { request, context in
            let session = try await session(request)
            let body = try await request.decodeJSON(CommitRequest.self, context: context)
            return JSONResponse(try await conversations.commit(try context.conversationID, body, session: session), status: .created)
        }
        group.post("/:id/messages") { request, context in
            let session = try await session(request)
            let body = try await request.decodeJSON(SendMessage.self, context: context)
            let (accepted, created) = try await conversations.send(try context.conversationID, body, session: session)
            return JSONResponse(accepted, status: created ? .created : .ok)
        }
        group.post("/:id/leave") { request, context in
            try await conversations.leave(try context.conversationID, session: try await session(request))
            return JSONResponse(["left": true], status: .accepted)
        }
    }
}
