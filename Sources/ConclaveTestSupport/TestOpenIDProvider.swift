import AsyncHTTPClient
import ConclaveProtocol
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An OpenID provider of the tests' own, on 127.0.0.1: discovery, a JWKS
/// of P-256 keys, an authorization endpoint that signs the configured user
/// in at once (a 302 back to the redirect URI, as a browser would follow),
/// and a token endpoint that enforces the client secret, the redirect URI
/// and PKCE (S256), and issues ES256 ID tokens. A test may have the next
/// ID token bent in any way (``tamper``) to play a hostile or broken
/// provider; the signatures are swift-crypto's.
public final class TestOpenIDProvider: Sendable {
    /// The parts of an ID token before it is signed, for ``tamper``.
    public struct TokenParts {
        public var header: [String: Any]
        public var payload: [String: Any]
        public var signing: Signing
    }

    /// How the token is signed.
    public enum Signing: Sendable {
        /// With the key its header names (default: the current key).
        case valid
        /// With the key of this kid (published or not).
        case key(String)
        /// No signature at all (`alg: none` in the header is the test's to set).
        case unsigned
        /// HMAC-SHA256 keyed with the current public key's bytes (the
        /// "HS256 with the public key" confusion).
        case hmacWithPublicKey
        /// A valid signature with one byte flipped.
        case corrupted
    }

    private struct State {
        var keys: [String: P256.Signing.PrivateKey] = [:]
        var published: [String] = []
        var current = ""
        var user: [String: String] = ["sub": "subject-alice", "preferred_username": "alice"]
        var groups: [String]?
        var codes: [String: Grant] = [:]
        var tamper: (@Sendable (inout TokenParts) -> Void)?
        var tokensIssued = 0
    }

    private struct Grant {
        var clientID: String
        var redirectURI: String
        var challenge: String
        var nonce: String?
        var user: [String: String]
        var groups: [String]?
    }

    public let clientID = "conclave-test"
    public let clientSecret = "test-client-secret"
    public let issuer: String
    private let clock: @Sendable () -> Date
    private let state = Mutex(State())

    private init(issuer: String, clock: @escaping @Sendable () -> Date) {
        self.issuer = issuer
        self.clock = clock
        _ = rotateKey()
    }

    /// Runs `body` with a provider listening on 127.0.0.1, on `clock`.
    public static func run<T: Sendable>(
        clock: @escaping @Sendable () -> Date = { Date() }, _ body: @Sendable (TestOpenIDProvider) async throws -> T
    ) async throws -> T {
        let router = Router()
        let holder = Mutex<TestOpenIDProvider?>(nil)
        let port = Mutex(0)
        let (started, startedContinuation) = AsyncStream.makeStream(of: Int.self)
        router.get("/.well-known/openid-configuration") { _, _ -> Response in
            guard let provider = holder.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return json([
                "issuer": provider.issuer, "authorization_endpoint": provider.issuer + "/authorize",
                "token_endpoint": provider.issuer + "/token", "jwks_uri": provider.issuer + "/jwks",
                "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["ES256"],
                "code_challenge_methods_supported": ["S256"],
            ])
        }
        router.get("/jwks") { _, _ -> Response in
            guard let provider = holder.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return json(["keys": provider.jwks()])
        }
        router.get("/authorize") { request, _ -> Response in
            guard let provider = holder.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return provider.authorize(request.uri.queryParameters)
        }
        router.post("/token") { request, _ -> Response in
            guard let provider = holder.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let body = try await request.body.collect(upTo: 65_536)
            return provider.token(form: String(buffer: body), authorization: request.headers[.authorization])
        }
        var logger = Logger(label: "test-openid-provider")
        logger.logLevel = .critical  // its shutdown at the end of a test is not news
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                port.withLock { $0 = bound }
                startedContinuation.yield(bound)
            }, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.runService()
                return nil
            }
            var bound = 0
            for await value in started {
                bound = value
                break
            }
            let provider = TestOpenIDProvider(issuer: "http://127.0.0.1:\(bound)", clock: clock)
            holder.withLock { $0 = provider }
            defer { group.cancelAll() }
            return try await body(provider)
        }
    }

    // MARK: What the test controls

    /// The user the next sign-in signs in as: the claims of its ID token.
    public func signIn(as claims: [String: String], groups: [String]? = nil) {
        state.withLock {
            $0.user = claims
            $0.groups = groups
        }
    }

    /// Bends the next ID token (once).
    public func tamper(_ change: @escaping @Sendable (inout TokenParts) -> Void) { state.withLock { $0.tamper = change } }

    /// A new current signing key, published beside the old ones (or,
    /// unpublished, a key the provider signs with but does not show).
    @discardableResult
    public func rotateKey(publish: Bool = true, makeCurrent: Bool = true) -> String {
        let kid = "k\(UUID().uuidString.prefix(8))"
        state.withLock {
            $0.keys[kid] = P256.Signing.PrivateKey()
            if publish { $0.published.append(kid) }
            if makeCurrent { $0.current = kid }
        }
        return kid
    }

    public var tokensIssued: Int { state.withLock { $0.tokensIssued } }

    /// What a browser does with the authorization URL: the provider signs
    /// the user in and redirects; the redirect is followed to the device's
    /// loopback listener. Returns the redirect's URL.
    @discardableResult
    public static func browse(_ authorizationURL: String) async throws -> String {
        let location = try await redirectLocation(authorizationURL)
        _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: location), timeout: .seconds(30))
        return location
    }

    /// The provider's redirect for an authorization URL, not followed:
    /// its `code` and `state` query parameters.
    public static func authorize(_ authorizationURL: String) async throws -> [String: String] {
        let location = try await redirectLocation(authorizationURL)
        var query: [String: String] = [:]
        for item in URLComponents(string: location)?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        return query
    }

    private static func redirectLocation(_ authorizationURL: String) async throws -> String {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let response = try await client.execute(HTTPClientRequest(url: authorizationURL), timeout: .seconds(30))
            try await client.shutdown()
            guard response.status == .found, let location = response.headers.first(name: "Location") else {
                throw TestSupportError("the provider answered \(response.status) instead of a redirect")
            }
            return location
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    // MARK: Endpoints

    private func jwks() -> [[String: String]] {
        state.withLock { state in
            state.published.compactMap { kid in
                guard let key = state.keys[kid] else { return nil }
                let point = Array(key.publicKey.x963Representation)
                return [
                    "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": Base64URL.encode(point[1..<33]), "y": Base64URL.encode(point[33..<65]),
                ]
            }
        }
    }

    private func authorize(_ query: Parameters) -> Response {
        guard query.get("response_type") == "code", let client = query.get("client_id"), let redirect = query.get("redirect_uri"),
            let challenge = query.get("code_challenge"), query.get("code_challenge_method") == "S256", let stateValue = query.get("state")
        else { return Response(status: .badRequest) }
        let code = UUID().uuidString
        state.withLock {
            $0.codes[code] = Grant(
                clientID: client, redirectURI: redirect, challenge: challenge, nonce: query.get("nonce"), user: $0.user, groups: $0.groups)
        }
        var headers = HTTPFields()
        let separator = redirect.contains("?") ? "&" : "?"
        headers[.location] =
            redirect + separator + "code=\(code)&state=" + (stateValue.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        return Response(status: .found, headers: headers)
    }

    private func token(form: String, authorization: String?) -> Response {
        var fields: [String: String] = [:]
        for pair in form.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        let expected = "Basic " + Data("\(clientID):\(clientSecret)".utf8).base64EncodedString()
        guard authorization == expected else { return json(["error": "invalid_client"], status: .unauthorized) }
        guard fields["grant_type"] == "authorization_code", let code = fields["code"],
            let grant = state.withLock({ $0.codes.removeValue(forKey: code) }), grant.clientID == clientID,
            fields["redirect_uri"] == grant.redirectURI
        else { return json(["error": "invalid_grant"], status: .badRequest) }
        guard let verifier = fields["code_verifier"], PKCE.challenge(of: verifier) == grant.challenge else {
            return json(["error": "invalid_grant"], status: .badRequest)
        }
        return json(["access_token": UUID().uuidString, "token_type": "Bearer", "expires_in": 300, "id_token": idToken(for: grant)])
    }

    private func idToken(for grant: Grant) -> String {
        let now = Int(clock().timeIntervalSince1970)
        return state.withLock { state in
            var payload: [String: Any] = ["iss": issuer, "aud": clientID, "iat": now, "exp": now + 300]
            if let nonce = grant.nonce { payload["nonce"] = nonce }
            for (name, value) in grant.user { payload[name] = value }
            if let groups = grant.groups { payload["groups"] = groups }
            var parts = TokenParts(header: ["alg": "ES256", "typ": "JWT", "kid": state.current], payload: payload, signing: .valid)
            state.tamper?(&parts)
            state.tamper = nil
            state.tokensIssued += 1
            let header = (try? JSONSerialization.data(withJSONObject: parts.header, options: [.sortedKeys])) ?? Data()
            let body = (try? JSONSerialization.data(withJSONObject: parts.payload, options: [.sortedKeys])) ?? Data()
            let input = Base64URL.encode(header) + "." + Base64URL.encode(body)
            let current = state.keys[state.current]
            let signature: [UInt8]
            switch parts.signing {
            case .valid: signature = Self.sign(input, with: state.keys[parts.header["kid"] as? String ?? ""] ?? current)
            case .key(let kid): signature = Self.sign(input, with: state.keys[kid])
            case .unsigned: signature = []
            case .hmacWithPublicKey:
                let secret = SymmetricKey(data: current?.publicKey.x963Representation ?? Data())
                signature = Array(HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: secret))
            case .corrupted:
                var bytes = Self.sign(input, with: current)
                if !bytes.isEmpty { bytes[0] ^= 0x01 }
                signature = bytes
            }
            return input + "." + Base64URL.encode(signature)
        }
    }

    private static func sign(_ input: String, with key: P256.Signing.PrivateKey?) -> [UInt8] {
        guard let key, let signature = try? key.signature(for: Array(input.utf8)) else { return [] }
        return Array(signature.rawRepresentation)
    }
}

private func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
