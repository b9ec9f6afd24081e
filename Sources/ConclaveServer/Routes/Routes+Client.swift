import ConclaveProtocol
import Hummingbird
import MLS

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
        v1.post("/sso/start") { request, context in
            let body = try await request.decodeJSON(SSOStart.self, context: context)
            let address = context.clientAddress(of: request, trustedProxies: trustedProxies)
            return JSONResponse(try await singleSignOn.start(body, from: address), status: .created)
        }
        v1.post("/sso/finish") { request, context in
            let body = try await request.decodeJSON(SSOFinish.self, context: context)
            let address = context.clientAddress(of: request, trustedProxies: trustedProxies)
            return JSONResponse(try await singleSignOn.finish(body, from: address), status: .created)
        }
        v1.post("/logout") { request, _ -> JSONResponse<[String: Bool]> in
            try await deprovisioning.signOut(try await session(request))
            return JSONResponse(["signed_out": true])
        }
        v1.get("/users/:name/devices") { request, context in
            let session = try await session(request)
            let name = try identity.localUser(try context.pathParameter("name"))
            return JSONResponse(try await authentication.deviceList(of: name, for: session, policy: policy))
        }
        addDeviceRoutes(v1)
        v1.post("/key-packages") { request, context in
            let session = try await session(request)
            guard !session.device.pending else { throw APIError.devicePending }
            return JSONResponse(
                try await keyPackages.upload(try await request.decodeJSON(KeyPackageUpload.self, context: context), session: session))
        }
        v1.get("/key-packages/count") { request, _ in
            let session = try await session(request)
            var suite = CipherSuite.x25519Aes128Sha256Ed25519
            if let text = request.uri.queryParameters.get("cipher_suite") {
                guard let value = UInt16(text), CipherSuite.implemented.contains(CipherSuite(rawValue: value)) else {
                    throw APIError.badRequest("cipher_suite is the number of a cipher suite this server runs (such as 1, or 77 for 0x004D)")
                }
                suite = CipherSuite(rawValue: value)
            }
            return JSONResponse(try await keyPackages.count(session: session, suite: suite))
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

    /// Identity keys and device approval (A11–A14).
    func addDeviceRoutes(_ v1: RouterGroup<ConclaveRequestContext>) {
        v1.put("/identity") { request, context -> JSONResponse<[String: Bool]> in
            let session = try await session(request)
            try await approvals.publish(try await request.decodeJSON(IdentityPublication.self, context: context), session: session)
            return JSONResponse(["published": true], status: .created)
        }
        v1.get("/users/:name/identity") { request, context in
            let session = try await session(request)
            let text = try context.pathParameter("name")
            let user = try UserAddress(text) ?? identity.address(identity.localUser(text))
            return JSONResponse(try await approvals.identityKey(of: user, session: session))
        }
        v1.get("/devices") { request, _ in
            JSONResponse(try await approvals.ownDevices(session: try await session(request)))
        }
        v1.get("/devices/self/approval") { request, _ in
            JSONResponse(try await approvals.ownApproval(session: try await session(request)))
        }
        v1.post("/devices/:id/approve") { request, context -> JSONResponse<[String: Bool]> in
            let session = try await session(request)
            let device = try context.parameter("id", as: "a device id", DeviceID.init)
            try await approvals.approve(device, try await request.decodeJSON(ApproveDevice.self, context: context), session: session)
            return JSONResponse(["approved": true])
        }
        v1.delete("/devices/:id") { request, context -> JSONResponse<[String: Bool]> in
            let session = try await session(request)
            try await approvals.remove(try context.parameter("id", as: "a device id", DeviceID.init), session: session)
            return JSONResponse(["removed": true])
        }
    }

    func addConversationRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.post("") { request, context in
            let session = try await session(request)
            guard !session.device.pending else { throw APIError.devicePending }
            let body = try await request.decodeJSON(CreateConversation.self, context: context)
            return JSONResponse(try await delivery.createConversation(body, session: session), status: .created)
        }
        group.get("") { request, _ in
            let session = try await session(request)
            guard !session.device.pending else { return JSONResponse(ConversationList(conversations: [])) }  // A14
            return JSONResponse(try await delivery.listConversations(session: session))
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
        group.post("/:id/successor") { request, context in
            let session = try await session(request)
            let body = try await request.decodeJSON(StartSuccessor.self, context: context)
            return JSONResponse(
                try await conversations.startSuccessor(try context.conversationID, body, session: session), status: .created)
        }
        group.post("/:id/messages") { request, context in
            let session = try await session(request)
            let body = try await request.decodeJSON(SendMessage.self, context: context)
            let (accepted, created) = try await conversations.send(try context.conversationID, body, session: session)
            if created { metrics.messageAccepted() }
            return JSONResponse(accepted, status: created ? .created : .ok)
        }
        group.post("/:id/leave") { request, context in
            try await conversations.leave(try context.conversationID, session: try await session(request))
            return JSONResponse(["left": true], status: .accepted)
        }
    }
}
