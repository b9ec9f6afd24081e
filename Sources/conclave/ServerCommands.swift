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
        subcommands: [ServerInit.self, ServerRun.self, ServerBackupCommand.self, ServerRestoreCommand.self]
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
        abstract: "Serve the network until SIGTERM or SIGINT, then shut down gracefully.",
        discussion: """
            Each setting comes from its flag, else its environment variable (CONCLAVE_LISTEN, CONCLAVE_PUBLIC_URL, \
            CONCLAVE_POSTGRES, CONCLAVE_LOG_LEVEL, CONCLAVE_LOG_FORMAT, CONCLAVE_TLS_CERTIFICATE, CONCLAVE_TLS_KEY, \
            CONCLAVE_METRICS_LISTEN), else DIR/conclave.json (listen, public_url, …), else its default. SIGHUP re-reads the TLS \
            certificate and key. With the embedded SQLite database, one process at a time serves a data directory \
            (DIR/conclave.lock). See docs/operations.md.
            """
    )

    @Option(name: .long, help: "The data directory (from `conclave server init`).") var data: String
    @Option(name: .long, help: "Listen here (HOST:PORT; default: conclave.json's, else 127.0.0.1:8080).") var listen: String?
    @Option(name: .long, help: "The URL clients and peer networks reach this server at, e.g. https://chat.acme.example.")
    var publicUrl: String?
    @Option(name: .long, help: "A PostgreSQL URL (postgres://user@host:port/db) instead of the embedded SQLite file.") var postgres: String?
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?
    @Option(name: .long, help: "Log format: text or json (one JSON object per line; default text).") var logFormat: String?
    @Option(name: .long, help: "Serve HTTPS with this PEM certificate chain (with --tls-key).") var tlsCertificate: String?
    @Option(name: .long, help: "The PEM private key of --tls-certificate.") var tlsKey: String?
    @Option(name: .long, help: "Serve /metrics on this HOST:PORT without authentication (default: on the main listener, admin token).")
    var metricsListen: String?
    @Option(
        name: .long,
        help: "Keep shared files' sealed bytes here (default DIR/blobs; with several processes on PostgreSQL, a directory they all share).")
    var blobDir: String?
    @Option(
        name: .long,
        help: "Serve the web console (/admin/) on this HOST:PORT only, e.g. an internal address; off: no console (default: main listener).")
    var consoleListen: String?

    func run() async throws {
        let directory = DataDirectory(path: data)
        let file: DataDirectory.Settings
        do { file = try directory.settings() } catch let error as DataDirectory.Failure { throw ValidationError(error.description) }
        let values = [listen, publicUrl, postgres, logLevel, logFormat, tlsCertificate, tlsKey, metricsListen, blobDir, consoleListen]
        let given: [(RunSettings.Key, String?)] = zip(RunSettings.Key.all, values).map { ($0, $1) }
        let settings: RunSettings
        do {
            settings = try RunSettings.resolve(
                flags: Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key.name, $0) } }),
                environment: ProcessInfo.processInfo.environment, file: file)
        } catch { throw ValidationError(error.description) }
        let (host, port) = settings.listen
        let (level, format) = (settings.logLevel, settings.logFormat)
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        let logger = Logger(label: "conclave.server")
        // Two processes on one SQLite file would each believe they own it: the second is refused.
        let lock: DataDirectory.Lock?
        if settings.postgres == nil {
            do { lock = try directory.lock() } catch let error as DataDirectory.Failure { throw ValidationError(error.description) }
        } else {
            lock = nil
        }
        let postgres = settings.postgres
        let storage = try await ServerStorage.open(directory: directory, postgres: postgres, logger: logger)
        guard let adminHash = Hex.decode(file.adminTokenSha256) else { throw ValidationError("conclave.json: bad admin_token_sha256") }
        var configuration = ServerConfiguration(
            network: file.network, host: host, port: port, publicURL: settings.publicURL, adminTokenHash: adminHash,
            blobDirectory: settings.blobDirectory ?? directory.blobDirectory,
            sessionLifetime: TimeInterval(file.sessionLifetimeSeconds), limits: file.limits ?? ServerLimits(),
            insecureFederationHosts: Set(file.federationInsecureHosts ?? []), trustedProxies: Set(file.trustedProxies ?? []))
        configuration.tls = settings.tls
        configuration.ownsProcess = true
        configuration.metricsListen = settings.metricsListen
        configuration.console = settings.console
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
        do {
            let app = try buildApplication(
                configuration: configuration, storage: storage, networkKey: try directory.networkKey(domain: file.network), logger: logger,
                clock: clock,
                onServerRunning: { bound in
                    logger.notice(
                        "\(ServerLogMarker.listening)",
                        metadata: [
                            "network": "\(file.network)", "listen": "\(bound)", "public_url": "\(settings.publicURL ?? bound)",
                            "storage": "\(storage.store.database.dialect)", "tls": "\(settings.tls != nil)",
                            "version": "\(ConclaveVersion.current)",
                        ])
                })
            try await app.runService()
        } catch let error as TLSFilesError {
            try? await storage.store.close()
            throw ValidationError(error.description)
        } catch {
            try? await storage.store.close()
            logger.error("conclave server stopped on an error", metadata: ["error.type": "\(type(of: error))"])
            throw error
        }
        try await storage.store.close()
        logger.notice("conclave server stopped")
        withExtendedLifetime(lock) {}
    }
}

struct ServerBackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up a data directory into one file encrypted with a passphrase, while the server runs.",
        discussion: """
            Saves conclave.json, network.key and admin.token and, with the embedded database, a consistent copy of \
            conclave.sqlite taken through SQLite's online backup API (the server may keep running). With PostgreSQL, back up \
            the database with pg_dump or continuous archiving as well (docs/operations.md#backups): this file then holds the \
            directory's files only, which the database cannot replace (without network.key the network loses its identity).
            """
    )

    @Option(name: .long, help: "The data directory to back up.") var data: String
    @Option(name: .long, help: "The backup file to create (refuses to overwrite).") var to: String
    @Option(name: .long, help: "A file holding the passphrase (12+ characters) that encrypts the backup.") var passphraseFile: String

    func run() async throws {
        let passphrase = try readSecretFile(passphraseFile, what: "passphrase")
        let summary: ServerBackup.Summary
        // A database named by the environment is PostgreSQL's too (as `server run` reads it).
        let postgres = ProcessInfo.processInfo.environment["CONCLAVE_POSTGRES"].map { !$0.isEmpty } ?? false
        do {
            summary = try ServerBackup.create(of: DataDirectory(path: data), to: to, passphrase: passphrase, postgres: postgres)
        } catch let error
            as ServerBackup.Failure
        {
            throw ValidationError(error.description)
        }
        print(
            "backed up \(summary.files.joined(separator: ", ")) and \(summary.sharedFiles) shared file(s) (\(summary.bytes) bytes) to \(to)"
        )
        if !summary.includesDatabase {
            print("the database is on PostgreSQL: back it up with pg_dump or continuous archiving (docs/operations.md#backups)")
        }
    }
}

struct ServerRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup from `conclave server backup` into a new data directory.",
        discussion: "Refuses a directory that exists and is not empty. Then `conclave server run --data DIR` serves it."
    )

    @Option(name: .long, help: "The backup file.") var from: String
    @Option(name: .long, help: "The new data directory.") var data: String
    @Option(name: .long, help: "A file holding the backup's passphrase.") var passphraseFile: String

    func run() async throws {
        let passphrase = try readSecretFile(passphraseFile, what: "passphrase")
        let summary: ServerBackup.Summary
        do { summary = try ServerBackup.restore(from: from, into: DataDirectory(path: data), passphrase: passphrase) } catch let error
            as ServerBackup.Failure
        {
            throw ValidationError(error.description)
        } catch let error as DataDirectory.Failure {
            throw ValidationError(error.description)
        }
        print(
            "restored \(summary.files.joined(separator: ", ")) and \(summary.sharedFiles) shared file(s) (\(summary.bytes) bytes) into \(data)"
        )
        if !summary.includesDatabase { print("the database is on PostgreSQL: restore it from its own backup before `server run`") }
    }
}
