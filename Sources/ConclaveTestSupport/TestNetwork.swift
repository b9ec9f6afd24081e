@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveStorage
import ConclaveSupport
import Foundation
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// The two storage backends every server test runs against.
public enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public var testDescription: String { rawValue }

    /// A new PostgreSQL database's URL on the test server, or nil (and
    /// why, printed; a test failure with `CONCLAVE_REQUIRE_POSTGRES=1`).
    public static func postgresDatabase() async throws -> String? {
        guard let server = await postgresServer() else { return nil }
        return try await offThePool { try server.createDatabase() }
    }

    /// The test process's PostgreSQL server, or nil (and why, printed; a
    /// test failure with `CONCLAVE_REQUIRE_POSTGRES=1`). The first call
    /// starts it, off the cooperative pool.
    public static func postgresServer() async -> PostgresServer? {
        guard let postgres = try? await offThePool({ PostgresServer.shared }) else {
            let reason = PostgresServer.unavailableReason ?? "unknown reason"
            if ProcessInfo.processInfo.environment["CONCLAVE_REQUIRE_POSTGRES"] == "1" {
                Issue.record("PostgreSQL is required but not available: \(reason)")
            } else {
                print("PostgreSQL not available: \(reason); skipping the postgres case")
            }
            return nil
        }
        return postgres
    }
}

/// What every test network offers: its URL, administrator, users and devices.
public protocol NetworkFixture: Sendable {
    var root: String { get }
    var url: String { get }
    var adminToken: String { get }
    var domain: String { get }
    /// The time of the server and of devices made by ``device(_:_:)``,
    /// when the network runs on a test clock.
    var clock: TestClock? { get }
}

extension NetworkFixture {
    public var password: String { "correct horse battery staple" }
    public var admin: AdminClient { AdminClient(server: url, token: adminToken) }
    public var networkDomain: NetworkDomain { NetworkDomain(domain) ?? NetworkDomain("invalid.example")! }  // literals of the test

    /// Creates users with the test password, in `group` (default: default).
    public func users(_ names: String..., group: String? = nil) async throws {
        for name in names {
            guard let user = UserName(name) else { throw TestSupportError("bad name \(name)") }
            _ = try await admin.addUser(user, password: password, group: group)
        }
    }

    /// A signed-in device in its own profile directory, on the network's
    /// clock if it has one. A user's later device waits for approval:
    /// `approvedBy` (one of the user's approved devices) approves it, and
    /// it joins the user's conversations.
    public func device(_ name: String, _ deviceName: String = "phone", approvedBy approver: ConclaveClient? = nil) async throws
        -> ConclaveClient
    {
        let client = try await profile(name, deviceName)
        try await client.login(server: url, user: "\(name)@\(domain)", password: password, deviceName: deviceName)
        if let approver, let code = await client.approvalCode {
            try await approver.approveDevice(code: code)
            try await client.sync()
        }
        return client
    }

    /// A new, empty profile (no device yet), on the network's clock if it has one.
    public func profile(_ name: String, _ deviceName: String = "phone") async throws -> ConclaveClient {
        let profile = root + "/profiles/\(name)-\(deviceName)-\(UUID().uuidString.prefix(4))"
        if let clock { return try await ConclaveClient.open(profile: profile, clock: { clock.now() }) }
        return try await ConclaveClient.open(profile: profile)
    }

    public func address(_ name: String) -> UserAddress {
        UserAddress(name: UserName(name) ?? UserName("invalid")!, domain: networkDomain)  // literals of the test
    }
}

/// A network served in this process (HummingbirdTesting's `.live`
/// framework, on loopback), on SQLite or PostgreSQL, optionally on a
/// ``TestClock``. The test reaches the server's own store.
public struct TestNetwork: NetworkFixture {
    public let root: String
    public let backend: Backend
    public let url: String
    public let adminToken: String
    public let domain: String
    public let clock: TestClock?
    /// The server's store, to inspect it or to tamper with it as someone
    /// with access to the database would.
    public let store: ConclaveStore
    /// The network's signing key (the data directory's `network.key`).
    public let networkKey: NetworkSigningKey
    /// The server's log file.
    public let logFile: String
    let sweeper: SweepHandle

    public var dataDirectory: String { root + "/server" }
    /// Where the server keeps shared files' sealed bytes.
    public var blobDirectory: String { dataDirectory + "/blobs" }

    /// Runs the sweeper's round now, at the server's time (the test clock's, when there is one).
    public func sweep() async throws { try await sweeper.sweep(now: clock?.now() ?? Date()) }

    /// Runs `body` with a network, or returns nil (and says why) when the
    /// backend cannot run here.
    @discardableResult
    public static func run<T: Sendable>(
        _ backend: Backend, domain: String = "acme.example", testClock: Bool = false,
        configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestNetwork) async throws -> T
    ) async throws -> T? {
        let root = try TestDirectories.make("conclave-test-")
        var postgresURL: String?
        if backend == .postgres {
            guard let url = try await Backend.postgresDatabase() else { return nil }
            postgresURL = url
        }
        guard let network = NetworkDomain(domain) else { throw TestSupportError("bad domain \(domain)") }
        let directory = DataDirectory(path: root + "/server")
        let token = try directory.initialise(network: network, listen: "127.0.0.1:0", postgres: postgresURL)
        let logFile = root + "/server.log"
        let logger = FileLogHandler.logger(label: "conclave.test-server", file: logFile)
        let storage = try await ServerStorage.open(directory: directory, postgres: postgresURL, logger: logger)
        let clock = testClock ? TestClock() : nil
        guard let adminHash = Hex.decode(try directory.settings().adminTokenSha256) else { throw TestSupportError("bad admin hash") }
        var configuration = ServerConfiguration(
            network: network, host: "127.0.0.1", port: 0, adminTokenHash: adminHash, blobDirectory: directory.blobDirectory,
            passwordHasher: PasswordHasher(rounds: 1 << 12),
            insecureFederationHosts: ["127.0.0.1", "localhost"])
        configuration.limits.firstUseAnswerSeconds = 0.2
        // The test provider runs in this process, beside everything else the full run starts (a browser included).
        configuration.identityProviderTimeout = 30
        let sweeper = SweepHandle()
        configuration.sweepHandle = sweeper
        configure(&configuration)
        let key = try directory.networkKey(domain: network)
        let url = Mutex("")
        let app = try buildApplication(
            configuration: configuration, storage: storage, networkKey: key, logger: logger,
            clock: clock.map { clock in ServerClock { clock.now() } } ?? .system, onServerRunning: { bound in url.withLock { $0 = bound } })
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            // HummingbirdTesting's live framework binds a port of the system's choice on loopback; the server tells its URL.
            let value = try await app.test(.live) { _ in
                let fixture = TestNetwork(
                    root: root, backend: backend, url: url.withLock { $0 }, adminToken: token, domain: domain, clock: clock,
                    store: storage.store, networkKey: key, logFile: logFile, sweeper: sweeper)
                return try await body(fixture)
            }
            try await storage.store.close()
            return value
        } catch {
            try? await storage.store.close()
            throw error
        }
    }

    /// The server's log so far.
    public var log: String { String(decoding: FileManager.default.contents(atPath: logFile) ?? Data(), as: UTF8.self) }
}

/// A network served by a real `conclave server run` process on loopback,
/// for the end-to-end tests (SIGKILL, restarts, the CLI).
public struct ProcessNetwork: NetworkFixture {
    public let root: String
    public let backend: Backend
    public let postgresURL: String?
    public let adminToken: String
    public let domain: String
    public var server: ConclaveServerProcess
    /// With `testClock`, the server runs on the system clock plus an offset
    /// that ``advanceClock(by:)`` moves (a debug build's
    /// `CONCLAVE_TEST_CLOCK=1`), and this is the devices' matching clock.
    public let clock: TestClock?

    public var url: String { server.url }
    public var dataDirectory: String { root + "/server" }

    /// Starts a network, or returns nil (and says why) when the backend
    /// cannot run here.
    public static func start(
        _ backend: Backend, domain: String = "acme.example", testClock: Bool = false, limits: ServerLimits? = nil
    ) async throws -> ProcessNetwork? {
        let root = try TestDirectories.make("conclave-e2e-")
        var postgresURL: String?
        if backend == .postgres {
            guard let url = try await Backend.postgresDatabase() else { return nil }
            postgresURL = url
        }
        let token = try await ConclaveServerProcess.initialise(directory: root + "/server", network: domain)
        if let limits { try DataDirectory(path: root + "/server").update { $0.limits = limits } }
        let clock = testClock ? TestClock(ticking: true) : nil
        let server = try await ConclaveServerProcess.start(
            directory: root + "/server", postgres: postgresURL, environment: Self.environment(testClock: clock != nil))
        return ProcessNetwork(
            root: root, backend: backend, postgresURL: postgresURL, adminToken: token, domain: domain, server: server, clock: clock)
    }

    private static func environment(testClock: Bool) -> [String: String] { testClock ? ["CONCLAVE_TEST_CLOCK": "1"] : [:] }

    /// Moves the server's and the devices' time forward (a network started
    /// with `testClock`).
    public func advanceClock(by seconds: TimeInterval) async throws {
        guard let clock else { throw TestSupportError("this network was started without a test clock") }
        try await admin.advanceTestClockForTesting(by: seconds)
        clock.advance(by: seconds)
    }

    /// Runs `body` with the server's database opened beside the server
    /// (to inspect it, or to tamper with it as someone with its access would).
    public func withDatabase<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        var logger = Logger(label: "test.database")
        logger.logLevel = .warning
        if let postgresURL {
            let database = try PostgresDatabase(url: postgresURL, maximumConnections: 2, logger: logger)
            return try await database.withRunning { try await body(database) }
        }
        let database = try await SQLiteDatabase.open(path: dataDirectory + "/conclave.sqlite", readers: 1, logger: logger)
        do {
            let value = try await body(database)
            try await database.close()
            return value
        } catch {
            try? await database.close()
            throw error
        }
    }

    /// Restarts the server process on the same data and port.
    public mutating func restart(kill: Bool = false) async throws {
        if kill { server.kill() } else { server.stop() }
        server = try await ConclaveServerProcess.start(
            directory: dataDirectory, postgres: postgresURL, port: server.port, environment: Self.environment(testClock: clock != nil))
    }

    public func stop() { server.stop() }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The texts of the messages among some events.
public func texts(_ events: [ClientEvent]) -> [String] {
    events.compactMap { if case .message(let message) = $0 { message.text } else { nil } }
}

public func messages(_ events: [ClientEvent]) -> [ReceivedMessage] {
    events.compactMap { if case .message(let message) = $0 { message } else { nil } }
}

/// Two `conclave server run` processes on one PostgreSQL database and one
/// data directory, behind a ``LoopbackBalancer``: the deployment for an
/// organisation that outgrows one process. Clients use the balancer's URL.
public struct ClusterNetwork: NetworkFixture {
    public let root: String
    public let postgresURL: String
    public let adminToken: String
    public let domain: String
    public let servers: [ConclaveServerProcess]
    public let balancer: LoopbackBalancer
    public var clock: TestClock? { nil }
    public var url: String { balancer.url }

    /// Starts the network, or returns nil (and says why) when PostgreSQL
    /// cannot run here.
    public static func start(processes: Int = 2, domain: String = "acme.example") async throws -> ClusterNetwork? {
        guard let postgresURL = try await Backend.postgresDatabase() else { return nil }
        let root = try TestDirectories.make("conclave-cluster-")
        let token = try await ConclaveServerProcess.initialise(directory: root + "/server", network: domain)
        // Started together, so that their migrations run at once (they take turns, ConclaveStore.migrate).
        let servers = try await withThrowingTaskGroup(of: ConclaveServerProcess.self) { group in
            for _ in 0..<processes {
                group.addTask { try await ConclaveServerProcess.start(directory: root + "/server", postgres: postgresURL) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let balancer = try await LoopbackBalancer.start(backends: servers.map(\.port))
        return ClusterNetwork(
            root: root, postgresURL: postgresURL, adminToken: token, domain: domain, servers: servers, balancer: balancer)
    }

    public func stop() {
        balancer.stop()
        for server in servers where server.isRunning { server.stop() }
    }
}
