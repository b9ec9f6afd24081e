import ArgumentParser
import ConclaveProtocol
import ConclaveServer
import ConclaveStorage
import Foundation
import Logging

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Create and run a network's server.",
        subcommands: [ServerInit.self, ServerRun.self]
    )
}

struct ServerInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a data directory: configuration, the network's signing key, the database and an administrator token.",
        discussion: "Refuses a directory that is already initialised. The administrator token is written to DIR/admin.token (mode 0600)."
    )

    @Option(name: .long, help: "The data directory to create.") var data: String
    @Option(name: .long, help: "The network's domain, e.g. acme.example.") var network: String
    @Option(name: .long, help: "Where the server listens (HOST:PORT).") var listen: String = "127.0.0.1:8080"
    @Option(name: .long, help: "Use this PostgreSQL database instead of the embedded SQLite file.") var postgres: String?

    func run() async throws {
        guard let domain = NetworkDomain(network) else { throw ValidationError("--network must be a DNS name such as acme.example") }
        guard parseListen(listen) != nil else { throw ValidationError("--listen must be HOST:PORT") }
        let directory = DataDirectory(path: data)
        do {
            try directory.initialise(network: domain, listen: listen, postgres: postgres)
        } catch let error as DataDirectory.Failure {
            throw ValidationError(error.description)
        }
        let storage = try await ServerStorage.open(directory: directory, postgres: nil, logger: Logger(label: "conclave.init"))
        try await storage.withRunning { try await storage.store.migrate() }
        try await storage.store.close()
        let key = try directory.networkKey(domain: domain)
        print("initialised network \(domain) in \(data)")
        print("network key fingerprint: \(key.publicKey.fingerprint)")
        print("administrator token: \(directory.adminTokenFile)")
    }
}

struct ServerRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve the network until SIGTERM or SIGINT, then shut down gracefully."
    )

    @Option(name: .long, help: "The data directory (from `conclave server init`).") var data: String
    @Option(name: .long, help: "Listen here instead of the configured HOST:PORT.") var listen: String?
    @Option(name: .long, help: "A PostgreSQL URL (postgres://user@host:port/db) instead of the embedded SQLite file.") var postgres: String?
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"

    func run() async throws {
        let directory = DataDirectory(path: data)
        let settings: DataDirectory.Settings
        do { settings = try directory.settings() } catch let error as DataDirectory.Failure { throw ValidationError(error.description) }
        guard let (host, port) = parseListen(listen ?? settings.listen) else { throw ValidationError("--listen must be HOST:PORT") }
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "conclave.server")
        let storage = try await ServerStorage.open(directory: directory, postgres: postgres, logger: logger)
        guard let adminHash = Hex.decode(settings.adminTokenSha256) else { throw ValidationError("conclave.json: bad admin_token_sha256") }
        var configuration = ServerConfiguration(
            network: settings.network, host: host, port: port, adminTokenHash: adminHash,
            sessionLifetime: TimeInterval(settings.sessionLifetimeSeconds), limits: settings.limits ?? ServerLimits(),
            insecureFederationHosts: Set(settings.federationInsecureHosts ?? []), trustedProxies: Set(settings.trustedProxies ?? []))
        var clock = ServerClock.system
        #if DEBUG
            // Tests move the server's time (message expiry) through the admin API; release builds cannot.
            if ProcessInfo.processInfo.environment["CONCLAVE_TEST_CLOCK"] == "1" {
                let offset = try ClockOffset(file: directory.path + "/test-clock")
                configuration.clockOffset = offset
                clock = offset.clock
                logger.warning("the server's clock can be moved by the test-clock route (debug build, CONCLAVE_TEST_CLOCK=1)")
            }
        #endif
        let app = try buildApplication(
            configuration: configuration, storage: storage, networkKey: try directory.networkKey(domain: settings.network), logger: logger,
            clock: clock,
            onServerRunning: { _ in
                logger.notice(
                    "\(ServerLogMarker.listening)",
                    metadata: [
                        "network": "\(settings.network)", "listen": "\(host):\(port)", "storage": "\(storage.store.database.dialect)",
                    ])
            })
        do {
            try await app.runService()
        } catch {
            try? await storage.store.close()
            throw error
        }
        try await storage.store.close()
    }
}
