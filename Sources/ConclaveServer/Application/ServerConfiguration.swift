import ConclaveProtocol
import Foundation
import MLS
import Synchronization

/// What the server is told at start.
public struct ServerConfiguration: Sendable {
    public var network: NetworkDomain
    public var host: String
    /// The port to listen on; 0 lets the system choose (in-process tests).
    public var port: Int
    /// The URL clients and peers use; defaults to http://host:port.
    public var publicURL: String?
    public var adminTokenHash: [UInt8]
    /// Where shared files' sealed bytes are kept (S6; `DIR/blobs` by
    /// default; a directory every server process shares on PostgreSQL).
    public var blobDirectory: String
    public var sessionLifetime: TimeInterval
    public var passwordHasher: PasswordHasher
    /// How often expired and delivered ciphertext is deleted.
    public var sweepInterval: Duration
    /// How long the federation relay waits when its outbox is empty.
    public var relayIdleInterval: Duration
    /// What one party may cost the server (docs/admin-guide.md).
    public var limits: ServerLimits
    /// Hosts an unlisted network may name in `open` federation mode with a
    /// plain `http` URL, or off its own domain (tests on loopback); empty in
    /// production, where only `https` URLs on the network's own domain count.
    public var insecureFederationHosts: Set<String>
    /// Addresses of reverse proxies in front of the server: for a
    /// connection from one of them, the client's address (which sign-in
    /// limits count) is read from `X-Forwarded-For`.
    public var trustedProxies: Set<String>
    /// Serve HTTPS (and WSS) with these PEM files, re-read on SIGHUP; nil: plain HTTP.
    public var tls: TLSFiles?
    /// Whether the server is the process (`server run`): it then takes
    /// SIGHUP (re-reads the TLS files) and announces its shutdown. Not for
    /// in-process tests, whose signals belong to the test runner.
    public var ownsProcess = false
    /// Serve `/metrics` here, without the administrator token; nil: on the
    /// main listener, behind the administrator token.
    public var metricsListen: (host: String, port: Int)?
    /// How long each call to the OpenID provider may take (5 s; in-process
    /// tests on a loaded machine allow more).
    public var identityProviderTimeout: TimeInterval = 5
    /// Where the administrators' web console is served.
    public var console: ConsolePlacement = .mainListener
    /// A clock offset the tests move (debug builds only; the server's
    /// clock must then be `clockOffset.clock`).
    public var clockOffset: ClockOffset?
    /// Lets a test run the sweeper's round when it chooses.
    public var sweepHandle: SweepHandle?
    /// How often this network witnesses its peers' key-transparency logs
    /// (they also ask at once when they need a cosignature).
    public var witnessInterval: Duration = .seconds(600)

    public init(
        network: NetworkDomain, host: String = "127.0.0.1", port: Int = 8080, publicURL: String? = nil, adminTokenHash: [UInt8],
        blobDirectory: String,
        sessionLifetime: TimeInterval = 30 * 24 * 3600, passwordHasher: PasswordHasher = PasswordHasher(),
        sweepInterval: Duration = .seconds(60), relayIdleInterval: Duration = .milliseconds(100), limits: ServerLimits = ServerLimits(),
        insecureFederationHosts: Set<String> = [], trustedProxies: Set<String> = []
    ) {
        self.network = network
        self.host = host
        self.port = port
        self.publicURL = publicURL
        self.adminTokenHash = adminTokenHash
        self.blobDirectory = blobDirectory
        self.sessionLifetime = sessionLifetime
        self.passwordHasher = passwordHasher
        self.sweepInterval = sweepInterval
        self.relayIdleInterval = relayIdleInterval
        self.limits = limits
        self.insecureFederationHosts = insecureFederationHosts
        self.trustedProxies = trustedProxies
    }
}

/// The server's clock. Production reads the system clock; tests inject
/// their own, so that expiry and lifetimes are driven, never waited for.
public struct ServerClock: Sendable {
    private let read: @Sendable () -> Date

    public init(_ read: @escaping @Sendable () -> Date) { self.read = read }

    public static let system = ServerClock { Date() }

    public var now: Date { read() }
    /// The time for MLS lifetime checks.
    var validationTime: ValidationTime { .at(UInt64(max(0, now.timeIntervalSince1970))) }
}

/// Who this server is: the network's domain and signing key, and the URL it
/// answers at.
final class NetworkIdentity: Sendable {
    let key: NetworkSigningKey
    /// The same key as the MLS external sender of every conversation hosted here.
    let serverSigner: SignaturePrivateKey
    private let url: Mutex<String>

    /// `baseURL` is the configured public URL, or where the server will
    /// listen; ``listening(at:)`` corrects it once the server is bound
    /// when no public URL is configured (a port chosen by the system).
    init(key: NetworkSigningKey, baseURL: String) throws {
        self.key = key
        self.serverSigner = try key.mlsSigner()
        self.url = Mutex(baseURL)
    }

    /// The URL clients and peers reach this server at.
    var baseURL: String { url.withLock { $0 } }

    /// Records the address the server listens at.
    func listening(at address: String) { url.withLock { $0 = address } }

    var domain: NetworkDomain { key.domain }
    var publicKey: NetworkPublicKey { key.publicKey }

    /// A local user named by `alice` or `alice@<this network>`.
    func localUser(_ text: String) throws -> UserName {
        if let address = UserAddress(text) {
            guard address.domain == domain else { throw APIError(.notFound, "\(address.domain) is not this network (\(domain))") }
            return address.name
        }
        guard let name = UserName(text) else { throw APIError.badRequest("not a user name or address") }
        return name
    }

    func address(_ name: UserName) -> UserAddress { UserAddress(name: name, domain: domain) }
}

extension Date {
    /// Seconds since 1970, as MLS lifetimes count.
    var unixSeconds: UInt64 { UInt64(max(0, timeIntervalSince1970)) }
}
