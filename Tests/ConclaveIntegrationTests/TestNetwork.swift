import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Logging
import Testing

/// The two storage backends every server test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A network served by a real `conclave server run` process on loopback,
/// with its administrator client and a temporary directory for profiles.
struct TestNetwork: Sendable {
    let root: String
    let backend: Backend
    let postgresURL: String?
    let adminToken: String
    let domain: String
    let password = "correct horse battery staple"
    var server: ConclaveServerProcess
    /// The time of the server and of devices made by ``device(_:_:)``,
    /// when the network was started with one.
    let clock: TestClock?

    var url: String { server.url }
    var admin: AdminClient { AdminClient(server: server.url, token: adminToken) }
    var dataDirectory: String { root + "/server" }

    /// Starts a network, or returns nil (and says why) when the backend
    /// cannot run here. With `CONCLAVE_REQUIRE_POSTGRES=1`, a missing
    /// PostgreSQL is a failure instead.
    static func start(_ backend: Backend, domain: String = "acme.example", testingClock: Bool = false) async throws -> TestNetwork? {
        let root = NSTemporaryDirectory() + "conclave-it-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var postgresURL: String?
        if backend == .postgres {
            guard let postgres = PostgresServer.shared else {
                let reason = PostgresServer.unavailableReason ?? "unknown reason"
                if ProcessInfo.processInfo.environment["CONCLAVE_REQUIRE_POSTGRES"] == "1" {
                    Issue.record("PostgreSQL is required but not available: \(reason)")
                } else {
                    print("PostgreSQL not available: \(reason); skipping the postgres case")
                }
                return nil
            }
            postgresURL = try postgres.createDatabase()
        }
        let token = try ConclaveServerProcess.initialise(directory: root + "/server", network: domain)
        let clock = testingClock ? try TestClock(directory: root) : nil
        let server = try await ConclaveServerProcess.start(directory: root + "/server", postgres: postgresURL, clock: clock)
        return TestNetwork(
            root: root, backend: backend, postgresURL: postgresURL, adminToken: token, domain: domain, server: server, clock: clock)
    }

    /// Creates users with the test password, in `group` (default: default).
    func users(_ names: String..., group: String? = nil) async throws {
        for name in names {
            guard let user = UserName(name) else { throw ConclaveServerProcessError("bad name \(name)") }
            _ = try await admin.addUser(user, password: password, group: group)
        }
    }

    /// A signed-in device in its own profile directory, on the network's
    /// clock if it has one.
    func device(_ name: String, _ deviceName: String = "phone") async throws -> ConclaveClient {
        let profile = root + "/profiles/\(name)-\(deviceName)-\(UUID().uuidString.prefix(4))"
        let client =
            if let clock {
                try await ConclaveClient.open(profile: profile, clock: { clock.now() })
            } else {
                try await ConclaveClient.open(profile: profile)
            }
        try await client.login(server: url, user: "\(name)@\(domain)", password: password, deviceName: deviceName)
        return client
    }

    func address(_ name: String) -> UserAddress {
        UserAddress(name: UserName(name) ?? UserName("invalid")!, domain: NetworkDomain(domain)!)  // literals of the test
    }

    /// The server's database, opened beside it (to inspect it, or to
    /// tamper with it as someone with access to the database would).
    func openDatabase() async throws -> any SQLDatabase {
        var logger = Logger(label: "test.database")
        logger.logLevel = .warning
        if let postgresURL { return try await PostgresDatabase.connect(url: postgresURL, maximumConnections: 2, logger: logger) }
        return try await SQLiteDatabase.open(path: dataDirectory + "/conclave.sqlite", readers: 1, logger: logger)
    }

    /// Restarts the server process on the same data and port.
    mutating func restart(kill: Bool = false) async throws {
        if kill { server.kill() } else { server.stop() }
        server = try await ConclaveServerProcess.start(directory: dataDirectory, postgres: postgresURL, port: server.port, clock: clock)
    }

    func stop() { server.stop() }
}

/// The texts of the messages among some events.
func texts(_ events: [ClientEvent]) -> [String] {
    events.compactMap { if case .message(let message) = $0 { message.text } else { nil } }
}

func messages(_ events: [ClientEvent]) -> [ReceivedMessage] {
    events.compactMap { if case .message(let message) = $0 { message } else { nil } }
}
