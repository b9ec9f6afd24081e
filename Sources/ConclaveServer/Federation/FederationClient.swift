import AsyncHTTPClient
import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A peer's answer to a signed request.
struct PeerAnswer: Sendable {
    let status: Int
    let body: Data
    /// The peer's `Retry-After` (seconds), passed on with its refusal.
    var retryAfter: Int? = nil

    /// The peer's refusal, if it sent one of our error bodies.
    var refusal: APIErrorBody.Detail? { try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: body).error }

    /// The peer's JSON answer. Its refusals come back as ours, naming it;
    /// one that concerns this server rather than the client (a 401 about the
    /// request's signature, a 5xx) becomes `peer_refused`.
    func decode<T: Decodable>(_ type: T.Type, from peer: NetworkDomain) throws -> T {
        guard (200..<300).contains(status) else {
            guard let refusal else { throw APIError(.peerInvalid, "\(peer) answered HTTP \(status)") }
            let code: ErrorCode = [401, 500, 502].contains(refusal.code.status) ? .peerRefused : refusal.code
            throw APIError(
                code, "\(peer) refused: \(refusal.message)", currentEpoch: refusal.currentEpoch, conversation: refusal.conversation,
                retryAfter: code == .rateLimited ? retryAfter ?? 1 : nil)
        }
        do { return try ConclaveJSON.decoder().decode(T.self, from: body) } catch {
            throw APIError(.peerInvalid, "\(peer) answered with unexpected JSON")
        }
    }
}

/// Signed requests to peer networks (HTTP through async-http-client), and
/// their public `/.well-known/conclave`.
struct FederationClient: Sendable {
    let identity: NetworkIdentity
    let clock: ServerClock
    let logger: Logger

    /// Sends `bytes` to a peer, signed with the network key (F1–F4 on the
    /// other side).
    func send(
        _ method: HTTPMethod, to peer: FederationPeer, path: String, raw bytes: [UInt8], contentType: String = "application/json"
    ) async throws -> PeerAnswer {
        let signature = FederationRequestSignature(
            method: method.rawValue, path: path, body: bytes, timestamp: clock.now.millis, nonce: FederationRequestSignature.newNonce(),
            origin: identity.domain, originURL: identity.baseURL, destination: peer.domain)
        var request = HTTPClientRequest(url: peer.url + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in try signature.headers(signedBy: identity.key) { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: bytes))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
            let data = try await response.body.collect(upTo: 16 << 20)
            return PeerAnswer(
                status: Int(response.status.code), body: Data(data.readableBytesView),
                retryAfter: response.headers.first(name: "Retry-After").flatMap { Int($0) })
        } catch {
            logger.warning("federation: a peer does not answer", metadata: ["peer": "\(peer.domain)"])
            throw APIError(.peerUnavailable, "\(peer.domain) does not answer")
        }
    }

    func send(_ method: HTTPMethod, to peer: FederationPeer, path: String, body: some Encodable) async throws -> PeerAnswer {
        try await send(method, to: peer, path: path, raw: Array(try ConclaveJSON.encoder().encode(body)))
    }

    /// A server's `/.well-known/conclave`. Throws `peer_unavailable` when
    /// it does not answer, `peer_invalid` when it answers something else.
    static func wellKnown(_ url: String) async throws -> WellKnown {
        var request = HTTPClientRequest(url: trimmed(url) + "/.well-known/conclave")
        request.method = .GET
        let data: ByteBuffer
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            data = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw APIError(.peerUnavailable, "\(trimmed(url)) does not answer")
        }
        do { return try ConclaveJSON.decoder().decode(WellKnown.self, from: Data(data.readableBytesView)) } catch {
            throw APIError(.peerInvalid, "\(trimmed(url)) does not publish a Conclave network")
        }
    }

    static func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
}
