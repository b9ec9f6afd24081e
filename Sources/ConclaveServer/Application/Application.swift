import ConclaveProtocol
import ConclaveStorage
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The composition root: wires the services over one store and the
/// network's key, and serves them on one HTTP server (client, admin,
/// discovery and federation APIs and the WebSocket inbox), with the sweeper
/// and the federation relay as services of the same service group.
/// The schema is migrated before the server accepts connections; the
/// background services wait for that. `onServerRunning` is told the
/// address the server listens at (`http(s)://IP:PORT`), once it listens.
public func buildApplication(
    configuration: ServerConfiguration, storage: ServerStorage, networkKey: NetworkSigningKey, logger: Logger,
    clock: ServerClock = .system, onServerRunning: (@Sendable (_ url: String) async -> Void)? = nil
) throws -> some ApplicationProtocol {
    let store = storage.store
    let identity = try NetworkIdentity(
        key: networkKey, baseURL: configuration.publicURL ?? "http://\(configuration.host):\(configuration.port)")
    let metrics = ServerMetrics()
    store.observer.observeTransactions(with: metrics)
    let api = try composeServices(
        configuration: configuration, store: store, identity: identity, clock: clock, metrics: metrics, ready: storage.ready, logger: logger
    )
    let tls = try configuration.tls.map { try TLSCertificates(files: $0, logger: logger) }
    let router = api.router()
    let console = try Console(api: api, limits: configuration.limits, clock: clock, tls: tls != nil)
    if configuration.console == .mainListener { console.addRoutes(to: router) }
    var app = Application(
        router: router,
        server: gatedServer(router: router, events: api.eventStreamUpgrade, limits: configuration.limits, tls: tls),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "conclave"),
        onServerRunning: { channel in
            guard let address = channel.localAddress, let port = address.port, let ip = address.ipAddress else { return }
            let bound = "\(tls == nil ? "http" : "https")://\(ip.contains(":") ? "[\(ip)]" : ip):\(port)"
            if configuration.publicURL == nil { identity.listening(at: bound) }
            await onServerRunning?(bound)
        },
        logger: logger)
    if let service = storage.service { app.addServices(service) }
    let ready = storage.ready
    app.beforeServerStarts {
        try await store.migrate()
        try await store.reconcileTransparency(at: clock.now)
        await ready.open()
    }
    let sweeper = Sweeper(
        store: store, files: api.files.files, clock: clock, interval: configuration.sweepInterval, limits: configuration.limits,
        ready: ready, logger: logger)
    configuration.sweepHandle?.connect { try await sweeper.round(now: $0) }
    app.addServices(
        api.authentication.hashing,
        sweeper,
        TransparencyWitnessing(
            transparency: api.transparency, interval: configuration.witnessInterval, ready: ready, logger: logger),
        FederationRelay(
            store: store, client: api.gateway.client, clock: clock, idleInterval: configuration.relayIdleInterval, ready: ready,
            metrics: metrics, logger: logger))
    if store.database.isShared { app.addServices(ClusterFollower(store: store, hub: api.delivery.hub, ready: ready, logger: logger)) }
    if configuration.ownsProcess {
        app.addServices(TLSReloader(certificates: tls, logger: logger), ShutdownAnnouncer(logger: logger))
    }
    if case .listener(let host, let port) = configuration.console {
        let consoleRouter = api.baseRouter()
        console.addRoutes(to: consoleRouter)
        app.addServices(
            Application(
                router: consoleRouter, server: gatedServer(router: consoleRouter, events: nil, limits: configuration.limits, tls: tls),
                configuration: .init(address: .hostname(host, port: port), serverName: "conclave-console"), logger: logger))
    }
    if let (host, port) = configuration.metricsListen {
        let metricsRouter = Router(context: ConclaveRequestContext.self)
        metricsRouter.get("/metrics") { _, _ in try await api.metricsResponse() }
        app.addServices(
            Application(
                router: metricsRouter, configuration: .init(address: .hostname(host, port: port), serverName: "conclave-metrics"),
                logger: logger))
    }
    // Last, so that it is the first to stop after the HTTP server: the other services (storage among them) wait for it.
    app.addServices(EventStreamDrain(hub: api.delivery.hub))
    return app
}

/// Holds a graceful shutdown until the WebSockets, told by the HTTP
/// server that it shuts down (1001), have closed, at most 10 s: they keep
/// no task the server would wait for, and their last acknowledgements and
/// pushes still use the store.
struct EventStreamDrain: Service {
    let hub: InboxHub

    func run() async throws {
        guard (try? await gracefulShutdown()) != nil else { return }
        let deadline = ContinuousClock.now + .seconds(10)
        while !hub.isEmpty, ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
        }
    }
}

/// The server's storage: the store, and for PostgreSQL the pool's service,
/// which the application runs in its service group.
public struct ServerStorage: Sendable {
    public let store: ConclaveStore
    let service: (any Service)?
    /// Opens once the schema is migrated.
    let ready = Gate()

    public init(store: ConclaveStore, service: (any Service)?) {
        self.store = store
        self.service = service
    }

    /// A data directory's storage: PostgreSQL when a URL is given (or
    /// configured; probed now), else the embedded SQLite file.
    public static func open(directory: DataDirectory, postgres: String?, logger: Logger) async throws -> ServerStorage {
        let settings = try directory.settings()
        let outboxLimit = (settings.limits ?? ServerLimits()).outboxPerPeer
        if let url = postgres ?? settings.postgres {
            let database = try PostgresDatabase(url: url, logger: logger)
            try await database.probe()
            return ServerStorage(store: ConclaveStore(database: database, outboxLimit: outboxLimit), service: database.service)
        }
        let database = try await SQLiteDatabase.open(path: directory.sqliteFile, logger: logger)
        return ServerStorage(store: ConclaveStore(database: database, outboxLimit: outboxLimit), service: nil)
    }

    /// Runs `body` with the storage's service running (for work outside the
    /// server's service group: `server init`, one-off commands).
    public func withRunning<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        guard let service else { return try await body() }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}

/// A one-way gate: waiters resume once it opens.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    var opened: Bool { isOpen }
}

/// HTTP/1.1 with the `/v1/events` WebSocket upgrade (where `events` is
/// given), behind the connection gate: the connection limit and the time
/// to send a first request head; later heads and the silence between
/// requests are bounded by the idle timeout, bodies by ``BodyDeadline``
/// (D24). A WebSocket has its own pings instead.
func gatedServer(router: ConclaveRouter, events: EventStreamUpgrade?, limits: ServerLimits, tls: TLSCertificates?) -> HTTPServerBuilder {
    let connections = ConnectionCount(limit: limits.connections)
    let headTimeout = TimeAmount(seconds: limits.requestHeadTimeoutSeconds)
    let configuration = HTTP1Channel.Configuration(
        additionalChannelHandlers: [BodyDeadline(bodyTimeout: .seconds(60))], idleTimeout: TimeAmount(seconds: limits.idleTimeoutSeconds))
    return HTTPServerBuilder { responder in
        GatedChildChannel(
            base: ConclaveHTTPChannel(responder: responder, configuration: configuration, events: events),
            connections: connections, headTimeout: headTimeout, tls: tls)
    }
}

/// Builds every service once, each with the dependencies it names.
func composeServices(
    configuration: ServerConfiguration, store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, metrics: ServerMetrics,
    ready: Gate, logger: Logger
) throws -> ConclaveAPI {
    let limits = configuration.limits
    var accessLogger = logger
    accessLogger[metadataKey: "log"] = "access"
    let hub = InboxHub()
    let audit = AuditRecorder(identity: identity, clock: clock, metrics: metrics, logger: logger)
    let claims = ClaimBudget(limits: limits)
    let authentication = try AuthenticationService(
        store: store, identity: identity, clock: clock, configuration: configuration, logger: logger)
    let policy = PolicyService(store: store, identity: identity, audit: audit)
    let directory = FederationDirectory(
        store: store, identity: identity, clock: clock, audit: audit, limits: limits,
        insecureHosts: configuration.insecureFederationHosts, logger: logger)
    let files = FileService(
        store: store, identity: identity, clock: clock, policy: policy, blobs: try BlobDirectory(path: configuration.blobDirectory),
        limits: limits, logger: logger)
    let delivery = DeliveryService(
        store: store, identity: identity, clock: clock, hub: hub, policy: policy, directory: directory, files: files, limits: limits,
        logger: logger)
    let transparency = TransparencyService(
        store: store, identity: identity, clock: clock, directory: directory, audit: audit, logger: logger)
    let gateway = FederationGateway(
        store: store, identity: identity, clock: clock, hub: hub, policy: policy, directory: directory, delivery: delivery,
        files: files, claims: claims, transparency: transparency, logger: logger)
    let enforcement = PolicyEnforcement(store: store, delivery: delivery, gateway: gateway)
    let deprovisioning = Deprovisioning(store: store, hub: hub, delivery: delivery, gateway: gateway, logger: logger)
    let approvals = DeviceApprovals(
        store: store, identity: identity, clock: clock, audit: audit, hub: hub, policy: policy, gateway: gateway,
        deprovisioning: deprovisioning, transparency: transparency, logger: logger)
    let admin = AdminService(
        store: store, identity: identity, audit: audit, authentication: authentication, enforcement: enforcement,
        deprovisioning: deprovisioning, gateway: gateway, logger: logger)
    return ConclaveAPI(
        identity: identity, authentication: authentication,
        singleSignOn: SingleSignOn(
            store: store, identity: identity, audit: audit, authentication: authentication, admin: admin,
            providerTimeout: configuration.identityProviderTimeout, logger: logger),
        approvals: approvals,
        keyPackages: KeyPackageDirectory(
            store: store, identity: identity, clock: clock, policy: policy, gateway: gateway, claims: claims, stock: limits.keyPackageStock),
        conversations: ConversationRequests(delivery: delivery, gateway: gateway),
        files: FileRequests(files: files, gateway: gateway), delivery: delivery,
        inbox: InboxService(store: store, hub: hub, clock: clock, limits: limits, metrics: metrics), policy: policy,
        enforcement: enforcement,
        deprovisioning: deprovisioning,
        admin: admin,
        administrators: AdministratorService(
            store: store, identity: identity, audit: audit, authentication: authentication, limits: limits, logger: logger),
        scim: SCIMService(store: store, admin: admin, policy: policy), directory: directory, gateway: gateway,
        transparency: transparency,
        trustedProxies: configuration.trustedProxies, clockOffset: configuration.clockOffset,
        store: store, metrics: metrics, ready: ready, metricsOnOwnListener: configuration.metricsListen != nil,
        accessLogger: accessLogger)
}

/// Deletes expired ciphertext, payloads every device has acknowledged,
/// files past their time (S6), and federation requests past the outbox's
/// maximum age.
struct Sweeper: Service {
    let store: ConclaveStore
    let files: FileService
    let clock: ServerClock
    let interval: Duration
    let limits: ServerLimits
    let ready: Gate
    let logger: Logger

    func run() async throws {
        await ready.wait()
        do { try await files.removeOrphans() } catch {
            logger.warning("could not look for files left without a row", metadata: ["error.type": "\(type(of: error))"])
        }
        while !Task.isCancelledOrShuttingDown {
            guard await Task.pause(for: interval) else { return }
            do { try await round(now: clock.now) } catch {
                logger.warning("sweep failed", metadata: ["error.type": "\(type(of: error))"])
            }
        }
    }

    /// One round: what is past its time goes.
    func round(now: Date) async throws {
        let removed = try await store.sweep(now: now)
        if removed > 0 { logger.debug("sweeper deleted payloads", metadata: ["count": "\(removed)"]) }
        let files = try await files.sweep(now: now)
        if files > 0 { logger.debug("sweeper deleted files", metadata: ["count": "\(files)"]) }
        // Sessions are kept 90 days past expiry, so that a device is told its session expired (not that it is unknown).
        _ = try await store.deleteSessions(expiredBefore: now.addingTimeInterval(-90 * 86_400))
        try await store.deleteSSOFlows(expiredBefore: now)
        let dropped = try await store.dropOutbox(queuedBefore: now.addingTimeInterval(-limits.outboxMaxAgeSeconds))  // F8
        if dropped > 0 {
            logger.warning("federation: dropped requests older than the outbox's maximum age", metadata: ["count": "\(dropped)"])
        }
    }
}

/// Runs the sweeper's round on demand (the tests, driving expiry with
/// their clock, instead of waiting for the next round).
public final class SweepHandle: Sendable {
    private let round = Mutex<(@Sendable (Date) async throws -> Void)?>(nil)

    public init() {}

    func connect(_ body: @escaping @Sendable (Date) async throws -> Void) { round.withLock { $0 = body } }

    /// One round at `now`, as the server's clock would give it.
    public func sweep(now: Date) async throws {
        guard let body = round.withLock({ $0 }) else { return }
        try await body(now)
    }
}

/// Follows the other server processes on a shared (PostgreSQL) database:
/// messages they store wake this process's connections of the recipients,
/// devices they cut off lose their connections here too, and their writes
/// drop this process's caches (``ConclaveStore/followCluster(_:)``).
struct ClusterFollower: Service {
    let store: ConclaveStore
    let hub: InboxHub
    let ready: Gate
    let logger: Logger

    func run() async throws {
        await ready.wait()
        let hub = hub
        do {
            try await cancelWhenGracefulShutdown {
                try await store.followCluster { signal in
                    switch signal {
                    case .inbox(let devices): hub.notify(Set(devices))
                    case .disconnect(let devices): hub.disconnect(devices)
                    case .resync: hub.notifyAll()
                    case .invalidate: break
                    }
                }
            }
        } catch is CancellationError {}
    }
}

/// The words `conclave server run` logs once it accepts connections
/// (end-to-end tests wait for them).
public enum ServerLogMarker {
    public static let listening = "conclave server listening"
}

/// Parses `HOST:PORT`.
public func parseListen(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
        return nil
    }
    let host = String(text[..<colon])
    return host.isEmpty ? nil : (host, port)
}

/// Runs a network in this process on a fresh data directory for as long as
/// `body` runs (the demo): `body` gets the server's URL and the
/// administrator token.
public func withLocalNetwork<T: Sendable>(
    directory path: String, network: NetworkDomain, port: Int, passwordHasher: PasswordHasher = PasswordHasher(), logger: Logger,
    _ body: @escaping @Sendable (_ url: String, _ adminToken: String) async throws -> T
) async throws -> T {
    let directory = DataDirectory(path: path)
    let token = try directory.initialise(network: network, listen: "127.0.0.1:\(port)")
    let storage = try await ServerStorage.open(directory: directory, postgres: nil, logger: logger)
    let store = storage.store
    let configuration = ServerConfiguration(
        network: network, host: "127.0.0.1", port: port, adminTokenHash: Tokens.hash(token), blobDirectory: directory.blobDirectory,
        passwordHasher: passwordHasher)
    let listening = Gate()
    let app = try buildApplication(
        configuration: configuration, storage: storage, networkKey: try directory.networkKey(domain: network), logger: logger,
        onServerRunning: { _ in await listening.open() })
    let services = ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [], logger: logger))
    do {
        let result = try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                do { try await services.run() } catch {
                    await listening.open()  // so that the body does not wait for a server that never listens
                    throw error
                }
                return nil
            }
            defer { group.cancelAll() }
            await listening.wait()
            let value = try await body("http://127.0.0.1:\(port)", token)
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return value
        }
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}
