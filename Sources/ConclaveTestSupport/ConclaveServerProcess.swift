import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `conclave server run` process on 127.0.0.1, for integration tests.
/// It is started from the `conclave` binary built beside the tests (or
/// `$CONCLAVE_BINARY`) and stopped by its own process id.
public final class ConclaveServerProcess: @unchecked Sendable {  // the Process is only touched from the test that owns it
    public let url: String
    public let port: Int
    public let dataDirectory: String
    public let logFile: String
    private let process: Process

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

    /// Runs `conclave ARGS…`, returning its exit status and output.
    @discardableResult
    public static func runCLI(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> (
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
    public static func initialise(directory: String, network: String) throws -> String {
        let result = try runCLI(["server", "init", "--data", directory, "--network", network])
        guard result.status == 0 else { throw ConclaveServerProcessError("server init failed: \(result.error)") }
        guard let token = FileManager.default.contents(atPath: directory + "/admin.token") else {
            throw ConclaveServerProcessError("no admin.token")
        }
        return String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts the server on an initialised directory and waits until it answers.
    /// With `clock`, the server's time is the test's (``TestClock``).
    public static func start(directory: String, postgres: String? = nil, port: Int? = nil, clock: TestClock? = nil) async throws
        -> ConclaveServerProcess
    {
        let port = try port ?? PostgresServer.freePort()
        let logFile = directory + "/server-\(port)-\(UUID().uuidString.prefix(6)).log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logFile) else { throw ConclaveServerProcessError("cannot write \(logFile)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            ["server", "run", "--data", directory, "--listen", "127.0.0.1:\(port)", "--log-level", "debug"]
            + (postgres.map { ["--postgres", $0] } ?? []) + (clock.map { ["--testing-clock", $0.file] } ?? [])
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let server = ConclaveServerProcess(process: process, port: port, directory: directory, logFile: logFile)
        try await server.waitUntilReady()
        return server
    }

    private init(process: Process, port: Int, directory: String, logFile: String) {
        self.process = process
        self.port = port
        self.url = "http://127.0.0.1:\(port)"
        self.dataDirectory = directory
        self.logFile = logFile
    }

    private func waitUntilReady() async throws {
        for _ in 0..<300 {
            guard process.isRunning else { throw ConclaveServerProcessError("the server exited: \(log)") }
            if Self.isListening(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConclaveServerProcessError("the server did not start listening on \(port)")
    }

    /// The server's log so far.
    public var log: String { String(decoding: FileManager.default.contents(atPath: logFile) ?? Data(), as: UTF8.self) }

    /// Stops the server with SIGTERM (graceful) and waits for it; after ten
    /// seconds it is killed, and ``stoppedGracefully`` says so.
    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<200 where process.isRunning { usleep(50_000) }
        if process.isRunning {
            gracefulFailure = true
            kill()
        }
        process.waitUntilExit()
    }

    /// False when the last ``stop()`` had to kill the server.
    public var stoppedGracefully: Bool { !gracefulFailure }
    private var gracefulFailure = false

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    public func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var isRunning: Bool { process.isRunning }
    public var exitStatus: Int32 { process.terminationStatus }

    deinit { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }

    static func isListening(port: Int) -> Bool {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { return false }
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

public struct ConclaveServerProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
