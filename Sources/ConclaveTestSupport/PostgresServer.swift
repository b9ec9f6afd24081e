import ConclaveSupport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A throwaway PostgreSQL 15 server for tests: a fresh cluster in a
/// temporary directory, listening on 127.0.0.1 on a free port, with trust
/// authentication for the `postgres` role and `fsync=off`.
///
/// `initdb` refuses to run as root; as root (as in CI) the server's
/// programs run as the `postgres` user through `runuser`, in a directory
/// owned by that user. `postgres` runs as a child of this process (not
/// daemonised by `pg_ctl start`: Foundation's `Process` would then never see
/// `pg_ctl` exit, as the daemon inherits the descriptor it watches). It is
/// stopped with `pg_ctl stop -m fast` and its directory deleted, by
/// ``stop()``, or at the latest when the test process exits (``shared``) or
/// the object goes away.
public final class PostgresServer: Sendable {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    public let url: String
    public let port: Int
    private let directory: String
    /// The cluster's directory (tests read its files to check what is stored).
    public var dataDirectory: String { directory }
    private let runner: Runner
    /// The running `postgres` (or `runuser` running it); nil once stopped.
    private let server: Mutex<ServerProcess>

    /// Where the PostgreSQL 15 programs are looked for; `CONCLAVE_POSTGRES_BIN` overrides it.
    public static var binDirectory: String {
        ProcessInfo.processInfo.environment["CONCLAVE_POSTGRES_BIN"] ?? "/usr/lib/postgresql/15/bin"
    }

    /// Why the last ``start()`` (or ``shared``) gave no server; nil when it gave one.
    public static var unavailableReason: String? { lastFailure.withLock { $0 } }

    private static let lastFailure = Mutex<String?>(nil)

    /// One server for the whole test process, started on first use and
    /// stopped when the process exits. Nil when PostgreSQL cannot run here:
    /// ``unavailableReason`` says why.
    public static let shared: PostgresServer? = {
        do {
            guard let server = try start() else { return nil }
            atexit { PostgresServer.shared?.stop() }
            return server
        } catch {
            lastFailure.withLock { $0 = "\(error)" }
            return nil
        }
    }()

    /// Creates and starts a new cluster. Returns nil, with
    /// ``unavailableReason`` set, when the programs are not installed (or,
    /// as root, there is no `postgres` user to run them); throws when they
    /// are there but the server does not start.
    public static func start() throws -> PostgresServer? {
        let runner: Runner
        switch Runner.make(binDirectory: binDirectory) {
        case .success(let made): runner = made
        case .failure(let reason):
            lastFailure.withLock { $0 = reason.message }
            return nil
        }
        let directory = try runner.makeDirectory()
        var lastError: (any Error)?
        do {
            try runner.run(
                "initdb", ["-D", "\(directory)/data", "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
                in: directory)
            // A port picked by binding to 0 may be taken before the server binds it: try a few.
            for _ in 0..<3 {
                guard let port = LoopbackPort.free() else { throw PostgresServerError("no free port on 127.0.0.1") }
                do {
                    let server = try runner.launchServer(
                        [
                            "-D", "\(directory)/data", "-p", "\(port)", "-c", "listen_addresses=127.0.0.1", "-c",
                            "unix_socket_directories=\(directory)",
                            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
                        ], directory: directory)
                    lastFailure.withLock { $0 = nil }
                    return PostgresServer(port: port, directory: directory, runner: runner, server: server)
                } catch {
                    lastError = error
                }
            }
        } catch {
            lastError = error
        }
        try? FileManager.default.removeItem(atPath: directory)
        let failure = PostgresServerError("PostgreSQL did not start: \(lastError.map { "\($0)" } ?? "unknown reason")")
        lastFailure.withLock { $0 = failure.message }
        throw failure
    }

    private init(port: Int, directory: String, runner: Runner, server: Process) {
        self.port = port
        self.directory = directory
        self.runner = runner
        self.server = Mutex(ServerProcess(process: server))
        self.url = "postgres://postgres@127.0.0.1:\(port)/postgres"
    }

    deinit { stop() }

    /// Creates an empty database (name: letters, digits, `_`) and returns its URL.
    public func createDatabase(_ name: String) throws -> String {
        guard !name.isEmpty, name.utf8.count <= 63,
            name.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x61...0x7a).contains($0) })
        else { throw PostgresServerError("not a database name: \(name)") }
        try runner.runClient("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", name], in: directory)
        return "postgres://postgres@127.0.0.1:\(port)/\(name)"
    }

    /// A fresh database with a random name.
    public func createDatabase() throws -> String {
        var generator = SystemRandomNumberGenerator()
        return try createDatabase("test_" + String(generator.next(), radix: 36))
    }

    /// Stops the server (`pg_ctl stop -m fast`), waits for it to exit and
    /// deletes its directory. Later calls do nothing.
    public func stop() {
        guard let process = server.withLock({ $0.take() }) else { return }
        runner.stopServer(process, directory: directory)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The server's process, handed out once to be stopped.
struct ServerProcess: @unchecked Sendable {
    // Process is not Sendable; it is only touched under the Mutex, or by
    // the one caller that took it out.
    private var process: Process?

    init(process: Process) { self.process = process }

    mutating func take() -> Process? {
        defer { process = nil }
        return process
    }
}

/// A failure to start or use the test server, with the programs' output.
public struct PostgresServerError: Error, CustomStringConvertible, Sendable {
    public let message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
