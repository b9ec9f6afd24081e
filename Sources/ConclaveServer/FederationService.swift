import AsyncHTTPClient
import ConclaveProtocol
import ConclaveStorage
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// Federation (DESIGN.md §7): the peers this network trusts, pinned by
/// key fingerprint; server-to-server requests signed by the sending
/// network's key and checked against that pin, with stale and replayed
/// requests refused (rules F1–F4 in docs/federation.md); and the first
/// operation across networks, claiming a remote user's key packages under
/// both networks' policies.
extension ServerState {
    func addFederationRoutes(_ router: ConclaveRouter) {
        let admin = router.group("/v1/admin/federation")
        admin.get("") { request, _ in
            try self.requireAdmin(request)
            return JSONResponse(
                FederationState(mode: try await self.store.federationMode(), peers: try await self.store.peers().map(\.peer)))
        }
        admin.post("/peers") { request, context in
            try self.requireAdmin(request)
            let body = try await request.decodeJSON(AddFederationPeer.self, context: context)
            let peer = try await self.pin(body)
            return JSONResponse(peer, status: .created)
        }
        admin.delete("/peers/:domain") { request, context in
            try self.requireAdmin(request)
            guard let domain = NetworkDomain(try context.parameters.require("domain")) else { throw APIError.badRequest("not a domain") }
            let before = try await self.store.peer(domain)?.peer
            guard
                try await self.store.removePeer(
                    domain, audit: self.audit("federation.remove", "network:\(domain)", before: before, after: nil))
            else { throw APIError.notFound("federation peer") }
            // Its users leave the conversations hosted here (server Remove proposals).
            let hosted = try await self.store.conversationsWithRemoteDevices(of: domain)
            for (id, devices) in hosted { try await self.proposeRemoval(of: Set(devices), ofNetwork: domain, in: [id]) }
            self.logger.info("admin: federation peer removed", metadata: ["peer": "\(domain)", "conversations": "\(hosted.count)"])
            return JSONResponse(["removed": domain.value])
        }
        admin.put("/mode") { request, context in
            try self.requireAdmin(request)
            let change = try await request.decodeJSON(FederationModeChange.self, context: context)
            let before = try await self.store.federationMode()
            try await self.store.setFederationMode(
                change.mode, audit: self.audit("federation.mode", "network:\(self.domain)", before: before, after: change.mode))
            return JSONResponse(FederationState(mode: change.mode, peers: try await self.store.peers().map(\.peer)))
        }

        router.group("/v1").get("/networks/:domain") { request, context in
            _ = try await self.session(request)
            guard let domain = NetworkDomain(try context.parameters.require("domain")) else { throw APIError.badRequest("not a domain") }
            if domain == self.domain {
                return JSONResponse(
                    PeerNetwork(domain: domain, signingKey: Base64Bytes(self.publicKey.rawKey), keyFingerprint: self.publicKey.fingerprint))
            }
            guard let peer = try await self.store.peer(domain) else {
                throw APIError(.notFound, "unknown_network", "\(domain) is not a federation peer")
            }
            let key = try await self.key(of: peer)
            return JSONResponse(PeerNetwork(domain: domain, signingKey: Base64Bytes(key), keyFingerprint: peer.peer.keyFingerprint))
        }

        router.group("/v1/federation").post("/key-packages/claim") { request, context in
            let (origin, body) = try await self.authenticatePeer(request, context: context)
            let claim = try Self.decode(FederatedKeyPackageClaim.self, body)
            guard claim.requester.domain == origin.peer.domain else {
                throw APIError(.forbidden, "forbidden", "a network may only act for its own users")
            }
            guard let user = try await self.store.user(named: claim.user), !user.suspended,
                let policy = try await self.store.policies(of: [claim.user])[claim.user]
            else { throw APIError.notFound("user") }
            guard policy.federation.contains(origin.peer.domain) else {  // F5: the receiving side's own policy
                throw APIError(
                    .forbidden, "policy_federation",
                    "security group \(policy.name) of \(self.domain) may not reach \(origin.peer.domain) (federation policy)")
            }
            let claimed = try await self.store.claimKeyPackages(user: claim.user)
            return JSONResponse(
                ClaimedKeyPackages(
                    user: UserAddress(name: claim.user, domain: self.domain),
                    keyPackages: claimed.map { ClaimedKeyPackages.Entry(deviceId: $0.device, keyPackage: Base64Bytes($0.data)) }))
        }
    }

    // MARK: Peers

    /// Pins a peer named by an administrator. When the peer answers, its
    /// `/.well-known/conclave` must name the same domain and key; when it
    /// does not, the key is learned (and checked) on first contact.
    func pin(_ request: AddFederationPeer) async throws -> FederationPeer {
        guard request.domain != domain else { throw APIError.badRequest("a network does not federate with itself") }
        guard FederationPeer.isFingerprint(request.keyFingerprint) else {
            throw APIError.badRequest("the key fingerprint is sha256: and 64 hex digits, as `admin network show` prints it")
        }
        guard FederationPeer.isServerURL(request.url) else { throw APIError.badRequest("the URL is http(s)://host[:port] with no path") }
        var key: [UInt8]?
        if let published = try? await FederationClient.wellKnown(request.url) {
            guard published.domain == request.domain else {
                throw APIError(.badRequest, "peer_mismatch", "the server at that URL is \(published.domain), not \(request.domain)")
            }
            guard NetworkPublicKey(domain: published.domain, rawKey: published.signingKey.bytes).fingerprint == request.keyFingerprint
            else {
                throw APIError(.badRequest, "peer_mismatch", "the server at that URL publishes another key than the fingerprint given")
            }
            key = published.signingKey.bytes
        }
        let peer = FederationPeer(
            domain: request.domain, url: Self.trimmed(request.url), keyFingerprint: request.keyFingerprint, pinnedBy: "admin",
            addedAt: Date(millis: clock().millis))
        do {
            try await store.addPeer(
                StoredPeer(peer: peer, signingKey: key), audit: audit("federation.add", "network:\(peer.domain)", before: nil, after: peer))
        } catch StoreError.conflict {
            throw APIError(.conflict, "peer_exists", "\(request.domain) is pinned already; remove it first to pin another key")
        }
        logger.info("admin: federation peer pinned", metadata: ["peer": "\(peer.domain)", "key_known": "\(key != nil)"])
        return peer
    }

    /// A peer's network key: as learned, or fetched now and checked against the pin.
    func key(of peer: StoredPeer) async throws -> [UInt8] {
        if let key = peer.signingKey { return key }
        guard let published = try? await FederationClient.wellKnown(peer.peer.url) else {
            throw APIError(.badGateway, "peer_unavailable", "\(peer.peer.domain) does not answer")
        }
        let key = NetworkPublicKey(domain: peer.peer.domain, rawKey: published.signingKey.bytes)
        guard published.domain == peer.peer.domain, key.fingerprint == peer.peer.keyFingerprint else {
            logger.warning("a peer publishes a key that does not match its pin", metadata: ["peer": "\(peer.peer.domain)"])
            throw APIError(.badGateway, "peer_mismatch", "\(peer.peer.domain) publishes a key that does not match the pinned fingerprint")
        }
        try await store.setPeerKey(peer.peer.domain, key.rawKey)
        return key.rawKey
    }

    static func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }

    // MARK: Authenticating server-to-server requests

    /// Checks a request from another network (F1–F4) and returns its peer
    /// and body. In open mode an unlisted network is pinned by the key it
    /// signs with.
    func authenticatePeer(_ request: Request, context: ConclaveRequestContext) async throws -> (StoredPeer, [UInt8]) {
        let body = Array(try await request.body.collect(upTo: context.maxUploadSize).readableBytesView)
        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { request.headers[$0] } }
        typealias Signature = FederationRequestSignature
        guard let origin = header(Signature.originHeader).flatMap(NetworkDomain.init),
            let destination = header(Signature.destinationHeader).flatMap(NetworkDomain.init),
            let originURL = header(Signature.originURLHeader), FederationPeer.isServerURL(originURL),
            let timestamp = header(Signature.timestampHeader).flatMap({ Int64($0) }),
            let nonce = header(Signature.nonceHeader), nonce.utf8.count == 32, Hex.decode(nonce) != nil,
            let keyBytes = header(Signature.keyHeader).flatMap({ Data(base64Encoded: $0) }), keyBytes.count == 32,
            let signature = header(Signature.signatureHeader).flatMap({ Data(base64Encoded: $0) })
        else { throw APIError(.unauthorized, "invalid_request_signature", "a federation request needs every Conclave-* header") }
        let mode = try await store.federationMode()
        guard mode != .off else { throw APIError(.forbidden, "federation_off", "\(domain) does not federate") }
        guard origin != domain else {  // F3: nobody speaks for this network but its own key
            throw APIError(.unauthorized, "invalid_request_signature", "a request cannot come from \(domain) itself")
        }
        guard destination == domain else {  // F1
            throw APIError(.unauthorized, "invalid_request_signature", "the request is addressed to \(destination), not \(domain)")
        }
        let now = clock()
        guard abs(now.timeIntervalSince1970 - Double(timestamp) / 1000) <= Signature.maximumSkew else {  // F2
            throw APIError(.unauthorized, "stale_request", "the request's timestamp is more than five minutes from this server's clock")
        }
        let key = NetworkPublicKey(domain: origin, rawKey: Array(keyBytes))
        let pinned = try await store.peer(origin)
        let removed = pinned == nil ? try await store.isRemovedPeer(origin) : false
        if pinned == nil, mode == .listed || removed {  // F3
            throw APIError(.forbidden, "unknown_network", "\(origin) is not a federation peer of \(domain)")
        }
        if let pinned, pinned.peer.keyFingerprint != key.fingerprint {  // F3
            throw APIError(.unauthorized, "invalid_request_signature", "the request is not signed with the key pinned for \(origin)")
        }
        let signed = Signature(
            method: request.method.rawValue, path: request.uri.description, body: body, timestamp: timestamp, nonce: nonce, origin: origin,
            originURL: originURL, destination: destination)
        guard key.isValidSignature(Array(signature), for: signed.signedBytes) else {  // F3
            throw APIError(.unauthorized, "invalid_request_signature", "the request's signature does not verify")
        }
        guard
            try await store.useNonce(
                origin: origin, nonce: nonce, expiresAt: now.addingTimeInterval(2 * Signature.maximumSkew))
        else { throw APIError(.unauthorized, "replayed_request", "this request was received before") }  // F4
        if let pinned {
            if pinned.signingKey == nil { try await store.setPeerKey(origin, key.rawKey) }
            return (StoredPeer(peer: pinned.peer, signingKey: key.rawKey), body)
        }
        // Open mode: trust on first use, pinning the key this network signed with, once the URL it
        // gave publishes that domain and key (so deliveries go where that network really answers).
        guard let published = try? await FederationClient.wellKnown(originURL), published.domain == origin,
            published.signingKey.bytes == key.rawKey
        else {
            throw APIError(.forbidden, "peer_mismatch", "the origin URL does not publish \(origin) with the key the request is signed with")
        }
        let peer = FederationPeer(
            domain: origin, url: Self.trimmed(originURL), keyFingerprint: key.fingerprint, pinnedBy: "first-use",
            addedAt: Date(millis: now.millis))
        do {
            try await store.addPeer(
                StoredPeer(peer: peer, signingKey: key.rawKey),
                audit: audit("federation.pin", "network:\(origin)", before: nil, after: peer, actor: "federation"))
            logger.info("federation: pinned a network on first use", metadata: ["peer": "\(origin)"])
        } catch StoreError.conflict {
            // Pinned meanwhile by another request: it must be the same key.
            guard try await store.peer(origin)?.peer.keyFingerprint == key.fingerprint else {
                throw APIError(.unauthorized, "invalid_request_signature", "the request is not signed with the key pinned for \(origin)")
            }
        }
        return (StoredPeer(peer: peer, signingKey: key.rawKey), body)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do { return try ConclaveJSON.decoder().decode(T.self, from: Data(body)) } catch {
            throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
        }
    }

    // MARK: Claiming a remote user's key packages

    /// Claims key packages of a user of another network through its server,
    /// after this network's own policy allows it (F5 on this side).
    func claimRemoteKeyPackages(_ user: UserAddress, session: Session) async throws -> ClaimedKeyPackages {
        guard try await store.federationMode() != .off else { throw APIError(.forbidden, "federation_off", "\(domain) does not federate") }
        guard let policy = try await store.policies(of: [session.user.name])[session.user.name] else { throw APIError.unauthenticated }
        guard policy.federation.contains(user.domain) else {
            throw APIError(
                .forbidden, "policy_federation", "security group \(policy.name) may not reach \(user.domain) (federation policy)")
        }
        guard let peer = try await store.peer(user.domain) else {
            throw APIError(.notFound, "unknown_network", "\(domain) does not federate with \(user.domain)")
        }
        let answer = try await FederationClient(state: self).send(
            .POST, to: peer, path: "/v1/federation/key-packages/claim",
            body: FederatedKeyPackageClaim(user: user.name, requester: session.address))
        let claimed = try answer.decode(ClaimedKeyPackages.self, from: peer)
        guard claimed.user == user else { throw APIError(.badGateway, "peer_invalid", "\(user.domain) answered for another user") }
        return claimed
    }
}

/// Signed requests to peer networks (HTTP through async-http-client).
struct FederationClient {
    let state: ServerState

    struct Answer {
        let status: Int
        let body: Data

        /// The peer's JSON answer; its refusals come back as ours, naming it.
        func decode<T: Decodable>(_ type: T.Type, from peer: StoredPeer) throws -> T {
            guard (200..<300).contains(status) else {
                if let error = try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: body).error {
                    // A peer's 401 concerns this server's signature, not the client's session: it becomes a 502.
                    let relayed = HTTPResponse.Status(code: [400, 403, 404, 409, 413].contains(status) ? status : 502)
                    throw APIError(
                        relayed, error.code, "\(peer.peer.domain) refused: \(error.message)", currentEpoch: error.currentEpoch,
                        conversation: error.conversation)
                }
                throw APIError(.badGateway, "peer_invalid", "\(peer.peer.domain) answered HTTP \(status)")
            }
            do { return try ConclaveJSON.decoder().decode(T.self, from: body) } catch {
                throw APIError(.badGateway, "peer_invalid", "\(peer.peer.domain) answered with unexpected JSON")
            }
        }
    }

    func send(_ method: HTTPMethod, to peer: StoredPeer, path: String, body: some Encodable) async throws -> Answer {
        try await send(method, to: peer, path: path, raw: Array(try ConclaveJSON.encoder().encode(body)))
    }

    func send(_ method: HTTPMethod, to peer: StoredPeer, path: String, raw bytes: [UInt8]) async throws -> Answer {
        let signature = FederationRequestSignature(
            method: method.rawValue, path: path, body: bytes, timestamp: state.clock().millis, nonce: FederationRequestSignature.newNonce(),
            origin: state.domain, originURL: state.baseURL, destination: peer.peer.domain)
        var request = HTTPClientRequest(url: peer.peer.url + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in try signature.headers(signedBy: state.networkKey) { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: bytes))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
            let data = try await response.body.collect(upTo: 16 << 20)
            return Answer(status: Int(response.status.code), body: Data(data.readableBytesView))
        } catch {
            state.logger.warning("federation: a peer does not answer", metadata: ["peer": "\(peer.peer.domain)"])
            throw APIError(.badGateway, "peer_unavailable", "\(peer.peer.domain) does not answer")
        }
    }

    /// A server's `/.well-known/conclave`.
    static func wellKnown(_ url: String) async throws -> WellKnown {
        var request = HTTPClientRequest(url: ServerState.trimmed(url) + "/.well-known/conclave")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let data = try await response.body.collect(upTo: 1 << 20)
        return try ConclaveJSON.decoder().decode(WellKnown.self, from: Data(data.readableBytesView))
    }
}
