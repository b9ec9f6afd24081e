import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLS

/// What the server is told at start.
public struct ServerConfiguration: Sendable {
    public var network: NetworkDomain
    public var host: String
    public var port: Int
    /// The URL clients use, for `network show`; defaults to http://host:port.
    public var publicURL: String?
    public var adminTokenHash: [UInt8]
    public var sessionLifetime: TimeInterval
    public var passwordHasher: PasswordHasher
    /// How often expired and delivered ciphertext is deleted.
    public var sweepInterval: Duration

    public init(
        network: NetworkDomain, host: String = "127.0.0.1", port: Int = 8080, publicURL: String? = nil, adminTokenHash: [UInt8],
        sessionLifetime: TimeInterval = 30 * 24 * 3600, passwordHasher: PasswordHasher = PasswordHasher(),
        sweepInterval: Duration = .seconds(60)
    ) {
        self.network = network
        self.host = host
        self.port = port
        self.publicURL = publicURL
        self.adminTokenHash = adminTokenHash
        self.sessionLifetime = sessionLifetime
        self.passwordHasher = passwordHasher
        self.sweepInterval = sweepInterval
    }
}

/// The server's shared parts, built once by ``buildApplication(configuration:store:networkKey:logger:)``.
public final class ServerState: Sendable {
    public let configuration: ServerConfiguration
    public let store: ConclaveStore
    public let networkKey: NetworkSigningKey
    let serverSigner: SignaturePrivateKey
    let hub = InboxHub()
    let groups = GroupCache()
    let signInLimiter = SignInRateLimiter()
    let logger: Logger
    /// The server's clock; tests inject their own.
    let clock: @Sendable () -> Date

    public init(
        configuration: ServerConfiguration, store: ConclaveStore, networkKey: NetworkSigningKey, logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.configuration = configuration
        self.store = store
        self.networkKey = networkKey
        self.serverSigner = try networkKey.mlsSigner()
        self.logger = logger
        self.clock = clock
    }

    var domain: NetworkDomain { configuration.network }
    var publicKey: NetworkPublicKey { networkKey.publicKey }
    var baseURL: String { configuration.publicURL ?? "http://\(configuration.host):\(configuration.port)" }

    /// The session behind a request's bearer token.
    func session(_ request: Request) async throws -> Session {
        guard let token = request.bearerToken else { throw APIError.unauthenticated }
        guard let found = try await store.session(tokenHash: Tokens.hash(token), now: clock()) else { throw APIError.unauthenticated }
        return Session(device: found.device, user: found.user, address: UserAddress(name: found.user.name, domain: domain))
    }

    /// Checks the admin token.
    func requireAdmin(_ request: Request) throws {
        guard let token = request.bearerToken, constantTimeEquals(Tokens.hash(token), configuration.adminTokenHash) else {
            throw APIError(.unauthorized, "unauthenticated", "a valid administrator token is required")
        }
    }

    /// A local user named by `alice` or `alice@<this network>`.
    func localUser(_ text: String) throws -> UserName {
        if let address = UserAddress(text) {
            guard address.domain == domain else {
                throw APIError(.notFound, "unknown_network", "this network is \(domain); other networks are not reachable yet")
            }
            return address.name
        }
        guard let name = UserName(text) else { throw APIError.badRequest("not a user name or address") }
        return name
    }
}

/// An authenticated device session.
struct Session: Sendable {
    let device: DeviceRecord
    let user: UserRecord
    let address: UserAddress
}

extension Request {
    var bearerToken: String? {
        guard let value = headers[.authorization], value.hasPrefix("Bearer ") else { return nil }
        let token = String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        return token.isEmpty || token.utf8.count > 256 ? nil : token
    }
}

extension Date {
    /// Seconds since 1970, as MLS lifetimes count.
    var unixSeconds: UInt64 { UInt64(max(0, timeIntervalSince1970)) }
}
