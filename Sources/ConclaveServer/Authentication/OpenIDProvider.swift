import AsyncHTTPClient
import ConclaveProtocol
import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1

/// The parts of a provider's discovery document the server uses
/// (OpenID Connect Discovery 1.0 §3).
struct ProviderMetadata: Decodable, Sendable {
    var issuer: String
    var authorizationEndpoint: String
    var tokenEndpoint: String
    var jwksUri: String
}

/// What an ID token says, once every check of ``OpenIDProvider/verify(idToken:issuer:clientID:nonce:now:)`` passed.
struct VerifiedIDToken: Sendable {
    var subject: String
    /// Every claim of the payload, for the user-name and group claims.
    var claims: [String: ClaimValue]
}

/// A claim's value, as far as sign-in reads claims: a string, a list of
/// strings, a Boolean, or something else.
enum ClaimValue: Sendable, Equatable {
    case string(String)
    case strings([String])
    case bool(Bool)
    case other

    init(_ value: Any) {
        switch value {
        case let text as String: self = .string(text)
        case let flag as Bool: self = .bool(flag)
        case let list as [Any]:
            let texts = list.compactMap { $0 as? String }
            self = texts.count == list.count ? .strings(texts) : .other
        default: self = .other
        }
    }

    var strings: [String] {
        switch self {
        case .string(let text): [text]
        case .strings(let texts): texts
        default: []
        }
    }
}

/// One OpenID provider as the server talks to it: its discovery document
/// and signing keys (fetched, cached, and fetched again once when a token
/// names an unknown key, at most once a minute), the token endpoint, and
/// the checks of an ID token (OpenID Connect Core §3.1.3.7). Signatures,
/// JWKs and JWS parsing are jwt-kit's; this type decides what to accept.
actor OpenIDProvider {
    /// How long an ID token's times may be off this server's clock.
    static let skew: TimeInterval = 60
    /// How old an ID token may be (its `iat`): it was issued for this sign-in.
    static let maximumAge: TimeInterval = 600
    static let algorithms: Set<String> = ["RS256", "ES256"]
    private static let metadataLifetime: TimeInterval = 3600
    private static let refetchInterval: TimeInterval = 60
    private static let responseLimit = 1 << 20
    /// Each call to the provider (name lookup, connection, answer) ends
    /// after this: an administrator setting an unreachable issuer, or a
    /// sign-in while the provider is down, gets `502 provider_unavailable`
    /// rather than a wait.
    static let defaultTimeout: TimeAmount = .seconds(5)
    private let timeout: TimeAmount

    init(timeout: TimeAmount = defaultTimeout) { self.timeout = timeout }
    /// A client of its own that follows no redirect: the https (or
    /// loopback) rule on the provider's URLs holds for every request made.
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
    /// How long fetched signing keys are used before they are fetched again
    /// (a key the provider withdrew stops verifying within this).
    private static let keysLifetime: TimeInterval = 3600

    private var metadata: (issuer: String, value: ProviderMetadata, fetched: Date)?
    private var keys: (uri: String, collection: JWTKeyCollection, algorithms: [String: String], fetched: Date)?

    /// The discovery document of `issuer`, whose `issuer` must be exactly it (Discovery §4.3).
    func metadata(issuer: String, now: Date) async throws -> ProviderMetadata {
        if let metadata, metadata.issuer == issuer, now.timeIntervalSince(metadata.fetched) < Self.metadataLifetime {
            return metadata.value
        }
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let body = try await Self.fetch(HTTPClientRequest(url: base + "/.well-known/openid-configuration"), timeout: timeout)
        guard let document = try? ConclaveJSON.decoder().decode(ProviderMetadata.self, from: Data(body)) else {
            throw APIError(.providerUnavailable, "the provider's discovery document is not OpenID Connect discovery JSON")
        }
        guard document.issuer == issuer else {
            throw APIError(.providerUnavailable, "the provider's discovery document names another issuer than the one configured")
        }
        for endpoint in [document.authorizationEndpoint, document.tokenEndpoint, document.jwksUri] {
            guard Self.isAllowedURL(endpoint) else {
                throw APIError(.providerUnavailable, "the provider's endpoints must be https (or http on a loopback address)")
            }
        }
        metadata = (issuer, document, now)
        return document
    }

    /// Exchanges an authorization code for the provider's ID token, as a
    /// confidential client (`client_secret_basic`) with the PKCE verifier.
    func exchange(
        code: String, verifier: String, redirectURI: String, metadata: ProviderMetadata, clientID: String, clientSecret: String
    ) async throws -> String {
        var request = HTTPClientRequest(url: metadata.tokenEndpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let credentials = PercentEncoding.unreserved(clientID) + ":" + PercentEncoding.unreserved(clientSecret)
        request.headers.add(name: "Authorization", value: "Basic " + Data(credentials.utf8).base64EncodedString())
        let form = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier),
            ("client_id", clientID),
        ]
        request.body = .bytes(ByteBuffer(string: form.map { "\($0)=\(PercentEncoding.unreserved($1))" }.joined(separator: "&")))
        let (status, body) = try await Self.send(request, timeout: timeout)
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        guard status == .ok else {
            if status == .badRequest || status == .unauthorized, let error = object?["error"] as? String,
                error.utf8.count <= 64, error.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "_") })
            {
                throw APIError(.ssoFailed, "the provider refused the code (\(error)): start the sign-in again")
            }
            throw APIError(.providerUnavailable, "the provider's token endpoint answered \(status.code)")
        }
        guard let token = object?["id_token"] as? String else {
            throw APIError(.providerUnavailable, "the provider's token response holds no id_token (is `openid` among the scopes?)")
        }
        return token
    }

    /// Checks an ID token: a signature by one of the provider's keys with
    /// RS256 or ES256 (nothing else: `none` and HMAC never verify), `iss`,
    /// `aud` (this client only), `azp` when present, `exp` and `iat` within
    /// ``skew`` and ``maximumAge``, and the sign-in's `nonce`.
    func verify(idToken: String, issuer: String, clientID: String, nonce: String, now: Date, metadata: ProviderMetadata) async throws
        -> VerifiedIDToken
    {
        let parts = idToken.split(separator: ".", omittingEmptySubsequences: false)
        guard idToken.utf8.count <= 16_384, parts.count == 3,
            let header = Self.jsonObject(base64URL: parts[0]), let payload = Self.jsonObject(base64URL: parts[1])
        else { throw Self.failure("the ID token is not a signed JWT") }
        guard let algorithm = header["alg"] as? String, Self.algorithms.contains(algorithm) else {
            throw Self.failure("the ID token is not signed with RS256 or ES256")
        }
        let collection = try await keyCollection(for: header["kid"] as? String, algorithm: algorithm, metadata: metadata, now: now)
        do {
            _ = try await collection.verify(idToken, as: SignedClaims.self)
        } catch {
            throw Self.failure("the ID token's signature does not verify")
        }
        let claims = payload.mapValues(ClaimValue.init)
        guard claims["iss"] == .string(issuer) else { throw Self.failure("the ID token is from another issuer") }
        let audiences = claims["aud"]?.strings ?? []
        guard !audiences.isEmpty, audiences.allSatisfy({ $0 == clientID }) else {
            throw Self.failure("the ID token is not for this client alone (aud)")
        }
        if let party = claims["azp"], party != .string(clientID) { throw Self.failure("the ID token was issued to another party (azp)") }
        guard let expires = Self.number(payload["exp"]), let issued = Self.number(payload["iat"]) else {
            throw Self.failure("the ID token has no exp or iat")
        }
        let time = now.timeIntervalSince1970
        guard expires > time - Self.skew else { throw Self.failure("the ID token has expired") }
        guard issued <= time + Self.skew, issued >= time - Self.maximumAge - Self.skew else {
            throw Self.failure("the ID token was not issued for this sign-in (iat)")
        }
        guard claims["nonce"] == .string(nonce) else { throw Self.failure("the ID token's nonce is not this sign-in's") }
        guard case .string(let subject)? = claims["sub"], !subject.isEmpty, subject.utf8.count <= 255 else {
            throw Self.failure("the ID token names no subject")
        }
        return VerifiedIDToken(subject: subject, claims: claims)
    }

    /// The keys to check a token signed by `kid` with `algorithm`: the
    /// cached set, or a fresh one when it lacks the key (at most once a
    /// minute). A token without `kid` is accepted only while the provider
    /// has a single key.
    private func keyCollection(for kid: String?, algorithm: String, metadata: ProviderMetadata, now: Date) async throws
        -> JWTKeyCollection
    {
        let age = keys.map { now.timeIntervalSince($0.fetched) } ?? .infinity
        let stale = keys.map { $0.uri != metadata.jwksUri || age >= Self.refetchInterval } ?? true
        if keys?.uri != metadata.jwksUri || age >= Self.keysLifetime || (stale && !Self.holds(keys?.algorithms, kid: kid)) {
            keys = try await Self.loadKeys(uri: metadata.jwksUri, now: now, timeout: timeout)
        }
        guard let keys else { throw Self.failure("the provider publishes no usable signing key") }
        if let kid {
            guard let expected = keys.algorithms[kid] else {
                throw Self.failure("the ID token is signed with a key the provider does not publish")
            }
            guard expected == algorithm else { throw Self.failure("the ID token's algorithm does not match its key") }
        } else {
            guard keys.algorithms.count == 1, keys.algorithms.values.first == algorithm else {
                throw Self.failure("the ID token names no key (kid) and the provider has several")
            }
        }
        return keys.collection
    }

    private static func holds(_ algorithms: [String: String]?, kid: String?) -> Bool {
        guard let algorithms else { return false }
        return kid.map { algorithms[$0] != nil } ?? true
    }

    /// The provider's JWKS as a key collection of its own: RSA keys (2,048
    /// bits or more) as RS256 and P-256 keys as ES256, each pinned to that
    /// algorithm; encryption keys and every other type are left out.
    private static func loadKeys(uri: String, now: Date, timeout: TimeAmount) async throws -> (
        uri: String, collection: JWTKeyCollection, algorithms: [String: String], fetched: Date
    ) {
        let body = try await fetch(HTTPClientRequest(url: uri), timeout: timeout)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any], let list = object["keys"] as? [Any]
        else { throw APIError(.providerUnavailable, "the provider's JWKS is not a JSON key set") }
        let collection = JWTKeyCollection()
        var algorithms: [String: String] = [:]
        for case let key as [String: Any] in list.prefix(64) {
            guard let kid = key["kid"] as? String, (key["use"] as? String ?? "sig") == "sig" else { continue }
            let declared = key["alg"] as? String
            let jwk: JWK
            let algorithm: String
            switch key["kty"] as? String {
            case "RSA":
                guard declared == nil || declared == "RS256", let n = key["n"] as? String, let e = key["e"] as? String else { continue }
                jwk = .rsa(.rs256, identifier: JWKIdentifier(string: kid), modulus: n, exponent: e)
                algorithm = "RS256"
            case "EC":
                guard declared == nil || declared == "ES256", key["crv"] as? String == "P-256", let x = key["x"] as? String,
                    let y = key["y"] as? String
                else { continue }
                jwk = .ecdsa(.es256, identifier: JWKIdentifier(string: kid), x: x, y: y, curve: .p256)
                algorithm = "ES256"
            default: continue
            }
            do {
                try await collection.add(jwk: jwk)
                algorithms[kid] = algorithm
            } catch {
                continue  // a malformed or too small key is not used
            }
        }
        return (uri, collection, algorithms, now)
    }

    // MARK: HTTP

    private static func fetch(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> [UInt8] {
        var request = request
        request.headers.add(name: "Accept", value: "application/json")
        let (status, body) = try await send(request, timeout: timeout)
        guard status == .ok else { throw APIError(.providerUnavailable, "the provider answered \(status.code)") }
        return body
    }

    private static func send(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> (HTTPResponseStatus, [UInt8]) {
        do {
            let response = try await client.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: responseLimit)
            return (response.status, Array(body.readableBytesView))
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(
                .providerUnavailable,
                "the identity provider did not answer within \(timeout.nanoseconds / 1_000_000_000) s (or answered over 1 MiB)")
        }
    }

    // MARK: Helpers

    /// Whether the server may call (or send a browser to) this URL: https,
    /// or http on a loopback address (a provider on the same machine, as in
    /// tests); no user info.
    static func isAllowedURL(_ text: String) -> Bool {
        guard text.utf8.count <= 2048, let url = URLComponents(string: text), let host = url.host, !host.isEmpty, url.user == nil,
            url.password == nil
        else { return false }
        switch url.scheme {
        case "https": return true
        case "http": return ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
        default: return false
        }
    }

    /// `application/x-www-form-urlencoded` (and query) encoding: everything
    /// but RFC 3986 unreserved characters is percent-encoded.

    private static func number(_ value: Any?) -> Double? {
        if let value = value as? Int { return Double(value) }
        return value as? Double
    }

    private static func jsonObject(base64URL text: Substring) -> [String: Any]? {
        guard let data = Base64URL.decode(text) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    private static func failure(_ reason: String) -> APIError { APIError(.ssoFailed, reason + ": start the sign-in again") }
}

/// The payload type jwt-kit decodes after the signature verifies; the
/// claims are checked by ``OpenIDProvider`` against the raw payload.
private struct SignedClaims: JWTPayload {
    func verify(using _: some JWTAlgorithm) async throws {}
}
