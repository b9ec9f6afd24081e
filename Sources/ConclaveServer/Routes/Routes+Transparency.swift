import ConclaveProtocol
import Hummingbird

/// Key transparency (docs/transparency.md): the signed head at its
/// well-known path, proofs and entries for clients and auditors (public:
/// entries name no user), a peer's proofs relayed for a client, the
/// witnessing between networks, and the administrator's settings.
extension ConclaveAPI {
    func addTransparencyRoutes(_ router: ConclaveRouter) {
        router.get("/.well-known/conclave-transparency") { _, _ in JSONResponse(try await transparency.currentHead()) }
        let v1 = router.group("/v1/transparency")
        v1.get("/head") { _, _ in JSONResponse(try await transparency.currentHead()) }
        v1.get("/consistency") { request, _ in
            let from = try request.integerQuery("from", default: 0, range: 1...Int64.max)
            let to = try request.integerQuery("to", default: 0, range: 1...Int64.max)
            return JSONResponse(try await transparency.consistency(from: UInt64(from), to: UInt64(to)))
        }
        v1.get("/entries") { request, _ in
            let start = try request.integerQuery("start", default: 0, range: 0...Int64.max)
            let count = try request.integerQuery(
                "count", default: Int64(TransparencyService.pageLimit), range: 1...Int64(TransparencyService.pageLimit))
            return JSONResponse(try await transparency.entries(start: UInt64(start), count: Int(count)))
        }
        router.get("/v1/networks/:domain/transparency/consistency") { request, context in
            _ = try await session(request)
            let network = try context.parameter("domain", as: "a domain", NetworkDomain.init)
            let from = try request.integerQuery("from", default: 0, range: 1...Int64.max)
            let to = try request.integerQuery("to", default: 0, range: 1...Int64.max)
            return JSONResponse(try await transparency.remoteConsistency(of: network, from: UInt64(from), to: UInt64(to)))
        }
    }

    func addTransparencyFederationRoutes(_ federation: RouterGroup<ConclaveRequestContext>) {
        federation.post("/transparency/head") { request, context in
            let (_, body) = try await authenticatePeer(request, context: context)
            return JSONResponse(try await transparency.serveHead(try JSONBody.decode(FederatedHeadRequest.self, body)))
        }
        federation.post("/transparency/consistency") { request, context in
            let (_, body) = try await authenticatePeer(request, context: context)
            let asked = try JSONBody.decode(TransparencyConsistency.self, body)
            return JSONResponse(try await transparency.consistency(from: asked.from, to: asked.to))
        }
        federation.post("/transparency/cosignature") { request, context in
            let (origin, body) = try await authenticatePeer(request, context: context)
            try await transparency.acceptCosignature(try JSONBody.decode(CosignatureDelivery.self, body), from: origin)
            return JSONResponse(TransparencyService.Empty())
        }
        federation.post("/transparency/witness") { request, context in
            let (origin, _) = try await authenticatePeer(request, context: context)
            return JSONResponse(try await transparency.witness(origin))
        }
    }

    func addTransparencyAdminRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("") { request, _ in
            _ = try await authorize(request, .readFederation)
            return JSONResponse(try await transparency.status())
        }
        admin.put("") { request, context in
            let principal = try await authorize(request, .own)
            return JSONResponse(
                try await transparency.setQuorum(
                    try await request.decodeJSON(TransparencySettings.self, context: context), actor: principal.actor))
        }
        admin.post("/witness") { request, _ in
            _ = try await authorize(request, .readFederation)
            return JSONResponse(try await transparency.witnessAll())
        }
    }
}
