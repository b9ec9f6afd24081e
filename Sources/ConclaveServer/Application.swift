import ConclaveProtocol
import ConclaveStorage
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle

/// The composition root: one HTTP server (client, admin, discovery and
/// federation APIs and the WebSocket inbox), the sweeper and the federation
/// relay, as services of one service group.
public func buildApplication(state: ServerState) -> some ApplicationProtocol {
    let router = state.buildRouter()
    var app = Application(
        router: router,
        server: .http1WebSocketUpgrade(webSocketRouter: router),
        configuration: .init(address: .hostname(state.configuration.host, port: state.configuration.port), serverName: "conclave"),
        logger: state.logger)
    app.addServices(Sweeper(state: state), FederationRelay(state: state))
    return app
}

/// Deletes expired ciphertext and payloads every device has acknowledged.
struct Sweeper: Service {
    let state: ServerState

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: state.configuration.sweepInterval) }
            } catch {
                return
            }
            do {
                let removed = try await state.store.sweep(now: state.clock())
                if removed > 0 { state.logger.debug("sweeper deleted payloads", metadata: ["count": "\(removed)"]) }
            } catch {
                state.logger.warning("sweep failed", metadata: ["error.type": "\(type(of: error))"])
            }
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}

/// The OpenAPI document of the API, as kept in the repository
/// (`Sources/ConclaveServer/Resources/openapi.json`).
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
            return Array(#"{"error":"openapi document missing"}"#.utf8)
        }
        return Array(data)
    }()
}

/// Opens a data directory's storage: PostgreSQL when a URL is given (or
/// configured), else the embedded SQLite file.
public func openStore(directory: DataDirectory, postgres: String?, logger: Logger) async throws -> ConclaveStore {
    let settings = try directory.settings()
    let database: any SQLDatabase
    if let url = postgres ?? settings.postgres {
        database = try await PostgresDatabase.connect(url: url, logger: logger)
    } else {
        database = try await SQLiteDatabase.open(path: directory.sqliteFile, logger: logger)
    }
    let store = ConclaveStore(database: database)
    try await store.migrate()
    return store
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
/// `body` runs (the demo and in-process tests): `body` gets the server's URL
/// and the administrator token.
public func withLocalNetwork<T: Sendable>(
    directory path: String, network: NetworkDomain, port: Int, passwordHasher: PasswordHasher = PasswordHasher(), logger: Logger,
    _ body: @escaping @Sendable (_ url: String, _ adminToken: String) async throws -> T
) async throws -> T {
    let directory = DataDirectory(path: path)
    let token = try directory.initialise(network: network, listen: "127.0.0.1:\(port)")
    let store = try await openStore(directory: directory, postgres: nil, logger: logger)
    let configuration = ServerConfiguration(
        network: network, host: "127.0.0.1", port: port, adminTokenHash: Tokens.hash(token), passwordHasher: passwordHasher)
    let state = try ServerState(
        configuration: configuration, store: store, networkKey: try directory.networkKey(domain: network), logger: logger)
    let services = ServiceGroup(
        configuration: .init(services: [.init(service: buildApplication(state: state))], gracefulShutdownSignals: [], logger: logger))
    let url = "http://127.0.0.1:\(port)"
    do {
        let result = try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            defer { group.cancelAll() }
            let value = try await body(url, token)
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
