import ConclaveServer
import ConclaveSupport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Sends a signal to a process (the C `kill`, which the class's own
/// ``ConclaveServerProcess/kill()`` hides).
private func send(_ signal: Int32, to process: Int32) { _ = kill(process, signal) }

/// A real `conclave server run` process on 127.0.0.1, for the end-to-end
/// tests. It is started from the `conclave` binary built beside the tests
/// (or `$CONCLAVE_BINARY`) and stopped by its own process id. Starting
/// waits for the server's "listening" log line; stopping waits for the
/// process to exit (no polling).
public final class ConclaveServerProcess: @unchecked Sendable {  // the Process is only touched from the test that owns it
    public let url: String
    public let port: Int
    public let dataDirectory: String
    public let logFile: String
    private let process: Process
    private let exited = DispatchSemaphore(value: 0)
    private let output: LogWatcher

    /// The `conclave` executable: `$CONCLAVE_BINARY`, or the one in the
    /// build directory that holds the test bundle.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["CONCLAVE_BINARY"], !path.isEmpty { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("conclave").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath + "/.build/debug/conclave"
    }

    /// Runs `conclave ARGS…`, returning its exit status and output (the
    /// wait is off the cooperative pool: see ``offThePool(_:)``).
    @discardableResult
    public static func runCLI(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) async throws -> (
        status: Int32, output: String, error: String
    ) {
        try await offThePool { try runBlocking(arguments, environment: environment, input: input) }
    }

    private static func runBlocking(_ arguments: [String], environment: [String: String], input: String?) throws -> (
        status: Int32, output: String, error: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// Initialises a data directory for `network`.
    public static func initialise(directory: String, network: String) async throws -> String {
        let result = try await runCLI(["server", "init", "--data", directory, "--network", network])
        guard result.status == 0 else { throw ConclaveServerProcessError("server init failed: \(result.error)") }
        guard let token = FileManager.default.contents(atPath: directory + "/admin.token") else {
            throw ConclaveServerProcessError("no admin.token")
        }
        return String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts the server on an initialised directory and waits until it
    /// logs that it listens (or exits). A port picked here may be taken by
    /// another test's connection before the server binds it: then another
    /// is picked. A server that exits first is reported with its last lines.
    public static func start(
        directory: String, postgres: String? = nil, port: Int? = nil, extraArguments: [String] = [], environment: [String: String] = [:]
    ) async throws -> ConclaveServerProcess {
        var attempt = 0
        while true {
            attempt += 1
            guard let chosen = port ?? LoopbackPort.free() else { throw ConclaveServerProcessError("no free port on 127.0.0.1") }
            let server = try launch(
                directory: directory, postgres: postgres, port: chosen, extraArguments: extraArguments, environment: environment)
            do {
                try await server.output.waitForMarker()
                return server
            } catch {
                // Its last words: off the cooperative pool, as every blocking wait here.
                let log = try await offThePool {
                    server.process.waitUntilExit()
                    server.output.waitUntilDrained()
                    return server.log
                }
                if port == nil, attempt < 3, log.contains("Address already in use") { continue }
                let tail = log.split(separator: "\n").suffix(12).joined(separator: "\n")
                throw ConclaveServerProcessError("\(error) (exit status \(server.exitStatus)); its last lines:\n\(tail)")
            }
        }
    }

    private static func launch(
        directory: String, postgres: String?, port: Int, extraArguments: [String], environment: [String: String]
    ) throws -> ConclaveServerProcess {
        let logFile = directory + "/server-\(port)-\(UUID().uuidString.prefix(6)).log"
        guard FileManager.default.createFile(atPath: logFile, contents: nil), let log = FileHandle(forWritingAtPath: logFile) else {
            throw ConclaveServerProcessError("cannot write \(logFile)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            ["server", "run", "--data", directory, "--listen", "127.0.0.1:\(port)", "--log-level", "debug"]
            + (postgres.map { ["--postgres", $0] } ?? []) + extraArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let scheme = extraArguments.contains("--tls-certificate") ? "https" : "http"
        let server = ConclaveServerProcess(
            process: process, url: "\(scheme)://127.0.0.1:\(port)", port: port, directory: directory, logFile: logFile, log: log, pipe: pipe
        )
        try process.run()
        return server
    }

    private init(process: Process, url: String, port: Int, directory: String, logFile: String, log: FileHandle, pipe: Pipe) {
        self.process = process
        self.port = port
        self.url = url
        self.dataDirectory = directory
        self.logFile = logFile
        self.output = LogWatcher(copyingTo: log, from: pipe, marker: ServerLogMarker.listening)
        let exited = exited
        let output = output
        process.terminationHandler = { _ in
            output.processExited()
            exited.signal()
        }
    }

    /// The server's log so far.
    public var log: String { String(decoding: FileManager.default.contents(atPath: logFile) ?? Data(), as: UTF8.self) }

    /// Stops the server with SIGTERM (graceful) and waits for it; after ten
    /// seconds it is killed, and ``stoppedGracefully`` says so.
    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if exited.wait(timeout: .now() + 10) == .timedOut {
            gracefulFailure = true
            kill()
        } else {
            exited.signal()  // later waits return at once
        }
    }

    /// False when the last ``stop()`` had to kill the server.
    public var stoppedGracefully: Bool { !gracefulFailure }
    private var gracefulFailure = false

    /// Waits until the server has logged `text` (now or later); throws if it exits first.
    public func waitForLog(containing text: String, timeout: Duration = .seconds(30)) async throws {
        let output = output
        try await withDeadline(timeout, "the server to log \"\(text)\"") { try await output.wait(for: text) }
    }

    /// Sends SIGHUP (re-read the TLS certificate and key).
    public func hangUp() { send(SIGHUP, to: process.processIdentifier) }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    public func kill() {
        guard process.isRunning else { return }
        send(SIGKILL, to: process.processIdentifier)
        process.waitUntilExit()
    }

    public var isRunning: Bool { process.isRunning }
    public var exitStatus: Int32 { process.terminationStatus }

    deinit { if process.isRunning { send(SIGKILL, to: process.processIdentifier) } }
}

public struct ConclaveServerProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
