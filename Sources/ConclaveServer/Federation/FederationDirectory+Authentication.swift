import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird

/// A server-to-server request as it arrived: its signed parts.
struct SignedPeerRequest: Sendable {
    let method: String
    let path: String
    let headers: HTTPFields
    let body: [UInt8]

    func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
}

/// The headers of a server-to-server request, parsed.
private struct SignatureHeaders {
    let origin: NetworkDomain
    let destination: NetworkDomain
    let originURL: String
    let timestamp: Int64
    let nonce: String
    let key: [UInt8]
    let signature: [UInt8]

    init(_ request: SignedPeerRequest) throws(APIError) {
        typealias Signature = FederationRequestSignature
        guard let origin = request.header(Signature.originHeader).flatMap(NetworkDomain.init),
            let destination = request.header(Signature.destinationHeader).flatMap(NetworkDomain.init),
            let originURL = request.header(Signature.originURLHeader), FederationPeer.isServerURL(originURL),
            let timestamp = request.header(Signature.timestampHeader).flatMap({ Int64($0) }),
            let nonce = request.header(Signature.nonceHeader), nonce.utf8.count == 32, Hex.decode(nonce) != nil,
            let key = request.header(Signature.keyHeader).flatMap({ Data(base64Encoded: $0) }), key.count == 32,
            let signature = request.header(Signature.signatureHeader).flatMap({ Data(base64Encoded: $0) })
        else { throw APIError(.invalidRequestSignature, "a federation request needs every Conclave-* header") }
        self.origin = origin
        self.destination = destination
        self.originURL = originURL
        self.timestamp = timestamp
        self.nonce = nonce
        self.key = Array(key)
        self.signature = Array(signature)
    }
}

extension FederationDirectory {
    /// F1–F4: checks a request from another network and returns its peer.
    /// In open mode an unlisted network is pinned by the key it signs with,
    /// once the URL it gives publishes that domain and key.
    func authenticate(_ request: SignedPeerRequest) async throws -> StoredPeer {
        let signed = try SignatureHeaders(request)
        let mode = try await store.federationMode()
        guard mode != .off else { throw APIError(.federationOff, "\(domain) does not federate") }
        guard signed.origin != domain else {  // F3: nobody speaks for this network but its own key
            throw APIError(.invalidRequestSignature, "a request cannot come from \(domain) itself")
        }
        guard signed.destination == domain else {  // F1
            throw APIError(.invalidRequestSignature, "the request is addressed to \(signed.destination), not \(domain)")
        }
        let now = clock.now
        guard abs(now.timeIntervalSince1970 - Double(signed.timestamp) / 1000) <= FederationRequestSignature.maximumSkew else {  // F2
            throw APIError(.staleRequest, "the request's timestamp is more than five minutes from this server's clock")
        }
        let key = NetworkPublicKey(domain: signed.origin, rawKey: signed.key)
        let pinned = try await store.peer(signed.origin)
        let removed = pinned == nil ? try await store.isRemovedPeer(signed.origin) : false
        if pinned == nil, mode == .listed || removed {  // F3
            throw APIError(.networkNotPinned, "\(signed.origin) is not a federation peer of \(domain)")
        }
        if let pinned, pinned.peer.keyFingerprint != key.fingerprint {  // F3
            throw APIError(.invalidRequestSignature, "the request is not signed with the key pinned for \(signed.origin)")
        }
        let signature = FederationRequestSignature(
            method: request.method, path: request.path, body: request.body, timestamp: signed.timestamp, nonce: signed.nonce,
            origin: signed.origin, originURL: signed.originURL, destination: signed.destination)
        guard key.isValidSignature(signed.signature, for: signature.signedBytes) else {  // F3
            throw APIError(.invalidRequestSignature, "the request's signature does not verify")
        }
        guard
            try await store.useNonce(
                origin: signed.origin, nonce: signed.nonce, expiresAt: now.addingTimeInterval(2 * FederationRequestSignature.maximumSkew))
        else { throw APIError(.replayedRequest, "this request was received before") }  // F4
        if let pinned {
            if pinned.signingKey == nil { try await store.setPeerKey(signed.origin, key.rawKey) }
            return StoredPeer(peer: pinned.peer, signingKey: key.rawKey)
        }
        return try await pinOnFirstUse(signed.origin, key: key, url: signed.originURL)
    }

    /// Open mode, F9: trust on first use, pinning the key an unlisted
    /// network signed with, once the URL it gave publishes that domain and
    /// key (so deliveries go where that network really answers). Only an
    /// `https` URL on the network's own domain counts (or a host the
    /// operator allows, for tests on loopback); each network's URL is
    /// fetched at most once per interval; and every answer takes the same
    /// time, so that it tells a stranger nothing about the hosts and ports
    /// this server can reach.
    private func pinOnFirstUse(_ origin: NetworkDomain, key: NetworkPublicKey, url: String) async throws -> StoredPeer {
        guard Self.mayFetch(url, for: origin, insecureHosts: insecureHosts) else {
            throw APIError(.peerUnverified, "in open mode a network's URL is https on its own domain")
        }
        let answerAt = ContinuousClock.now.advanced(by: .seconds(limits.firstUseAnswerSeconds))
        var published: WellKnown?
        if await firstUseChecks.mayCheck(origin, now: clock.now, interval: limits.firstUseCheckIntervalSeconds) {
            published = await Self.fetch(url, within: .seconds(limits.firstUseAnswerSeconds))
        }
        try? await Task.sleep(until: answerAt)
        guard let published, published.domain == origin, published.signingKey.bytes == key.rawKey else {
            throw APIError(.peerUnverified, "the origin URL did not publish \(origin) with the key the request is signed with")
        }
        let peer = FederationPeer(
            domain: origin, url: FederationClient.trimmed(url), keyFingerprint: key.fingerprint, pinnedBy: "first-use",
            addedAt: Date(millis: clock.now.millis))
        let draft = audit.draft("federation.pin", "network:\(origin)", before: nil, after: peer, actor: "federation")
        do {
            try await store.addPeer(StoredPeer(peer: peer, signingKey: key.rawKey), audit: draft)
            audit.appended(draft)
        } catch StoreError.conflict {
            // Pinned meanwhile by another request: it must be the same key.
            guard try await store.peer(origin)?.peer.keyFingerprint == key.fingerprint else {
                throw APIError(.invalidRequestSignature, "the request is not signed with the key pinned for \(origin)")
            }
        }
        return StoredPeer(peer: peer, signingKey: key.rawKey)
    }

    /// Whether open mode may fetch `url` for `origin`: https on the
    /// network's domain or a subdomain of it, or an allowed host.
    static func mayFetch(_ url: String, for origin: NetworkDomain, insecureHosts: Set<String>) -> Bool {
        guard let components = URLComponents(string: url), let host = components.host?.lowercased() else { return false }
        if insecureHosts.contains(host) { return true }
        return components.scheme == "https" && (host == origin.value || host.hasSuffix("." + origin.value))
    }

    /// The URL's `/.well-known/conclave`, or nil if it does not answer with
    /// one within `timeout`.
    static func fetch(_ url: String, within timeout: Duration) async -> WellKnown? {
        await withTaskGroup(of: WellKnown?.self) { group in
            group.addTask { try? await FederationClient.wellKnown(url) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }
}

/// When each unlisted network was last checked (open mode), so that a
/// stranger cannot make this server fetch a URL more than once per interval.
actor FirstUseChecks {
    private var last: [NetworkDomain: Date] = [:]

    func mayCheck(_ origin: NetworkDomain, now: Date, interval: TimeInterval) -> Bool {
        if let previous = last[origin], now.timeIntervalSince(previous) < interval { return false }
        last = last.filter { now.timeIntervalSince($0.value) < interval }
        last[origin] = now
        return true
    }
}
