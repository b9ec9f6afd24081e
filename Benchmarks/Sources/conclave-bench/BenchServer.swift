import AsyncHTTPClient
import ConclaveServer
import ConclaveSupport
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A `conclave server run` child process (a release build of the main
/// package), on a fresh data directory and a free loopback port, for
/// `conclave-bench`. It is
/// stopped with SIGTERM by its own process id (SIGKILL after ten seconds).
final class BenchServer: @unchecked Sendable {  // the Process is only touched by the bench's main task
    let url: String
    let port: Int
    let adminToken: String
    let logFile: String
    private let process: Process

    /// The server binary started unless `--server-binary` names another:
    /// the main package's release build, from the repository's root.
    static let executable = ".build/release/conclave"

    /// Runs `server init` into `directory`, sets `limits` in its
    /// `conclave.json` (by default the production limits with the rate
    /// limits lifted, so that the load generator is not throttled), then
    /// `server run`, and waits until `/healthz` answers. `executable` runs
    /// another build's server (an older one, for a comparison).
    static func start(
        directory: String, postgres: String?, http: HTTPClient, limits: ServerLimits = .unthrottled, executable: String? = nil
    ) async throws -> BenchServer {
        let executable = executable ?? Self.executable
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchError(
                "no conclave binary at \(executable): run `swift build -c release --product conclave` in the repository's root "
                    + "and start the benchmark from there, or pass --server-binary PATH")
        }
        guard let port = LoopbackPort.free() else { throw BenchError("no free port on 127.0.0.1") }
        let listen = "127.0.0.1:\(port)"
        let logFile = directory + ".log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logFile) else { throw BenchError("cannot write \(logFile)") }
        let extra = postgres.map { ["--postgres", $0] } ?? []

        let initialise = Process()
        initialise.executableURL = URL(fileURLWithPath: executable)
        initialise.arguments = ["server", "init", "--data", directory, "--network", "bench.example", "--listen", listen] + extra
        initialise.standardOutput = log
        initialise.standardError = log
        try initialise.run()
        initialise.waitUntilExit()
        guard initialise.terminationStatus == 0 else { throw BenchError("`conclave server init` failed; see \(logFile)") }
        guard let tokenData = FileManager.default.contents(atPath: directory + "/admin.token") else {
            throw BenchError("`conclave server init` wrote no admin.token")
        }
        let adminToken = String(decoding: tokenData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        try DataDirectory(path: directory).update { $0.limits = limits }
        return try await run(directory: directory, postgres: postgres, http: http, adminToken: adminToken, executable: executable)
    }

    /// Another `server run` on an initialised directory (a second process
    /// on the same PostgreSQL database), on a port of its own.
    static func run(
        directory: String, postgres: String?, http: HTTPClient, adminToken: String, executable: String
    ) async throws -> BenchServer {
        guard let port = LoopbackPort.free() else { throw BenchError("no free port on 127.0.0.1") }
        let listen = "127.0.0.1:\(port)"
        let logFile = directory + "-\(port).log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logFile) else { throw BenchError("cannot write \(logFile)") }
        let extra = postgres.map { ["--postgres", $0] } ?? []
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["server", "run", "--data", directory, "--listen", listen, "--log-level", "warning"] + extra
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let server = BenchServer(process: process, port: port, adminToken: adminToken, logFile: logFile)
        do {
            try await server.waitUntilReady(http: http)
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    private init(process: Process, port: Int, adminToken: String, logFile: String) {
        self.process = process
        self.port = port
        self.url = "http://127.0.0.1:\(port)"
        self.adminToken = adminToken
        self.logFile = logFile
    }

    private func waitUntilReady(http: HTTPClient) async throws {
        for _ in 0..<600 {
            guard process.isRunning else { throw BenchError("the server exited at start; see \(logFile)") }
            var request = HTTPClientRequest(url: url + "/healthz")
            request.method = .GET
            if let response = try? await http.execute(request, timeout: .seconds(2)), response.status == .ok {
                _ = try? await response.body.collect(upTo: 1 << 16)
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the server did not answer on \(url) within 30 s; see \(logFile)")
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The server's resident set size (VmRSS) in bytes, from /proc.
    var residentBytes: Int? { statusKiB("VmRSS").map { $0 * 1024 } }
    /// The server's peak resident set size so far (VmHWM), in KiB.
    var peakKiB: Int? { statusKiB("VmHWM") }

    /// A `… kB` line of /proc/PID/status.
    private func statusKiB(_ field: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes
        }
        return nil
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    var cpuSeconds: Double? { ProcessCPU.seconds(pid: "\(pid)") }

    /// How many file descriptors the server holds open.
    var openFiles: Int? { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count }

    /// The last lines of the server's log, for error messages.
    var logTail: String {
        let text = String(decoding: FileManager.default.contents(atPath: logFile) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").suffix(10).joined(separator: "\n")
    }

    /// SIGTERM (graceful shutdown) to the server's pid, SIGKILL after ten
    /// seconds; waits for it to exit. Returns false when it had to kill.
    @discardableResult
    func stop() -> Bool {
        guard process.isRunning else { return true }
        kill(pid, SIGTERM)
        for _ in 0..<200 where process.isRunning { usleep(50_000) }
        var graceful = true
        if process.isRunning {
            graceful = false
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        return graceful
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// CPU time of a process, from /proc/PID/stat.
enum ProcessCPU {
    /// User + system time in seconds; `pid` may be "self".
    static func seconds(pid: String) -> Double? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After the command name: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The open-file limit of this process (inherited by the server it
/// starts): raised towards `wanted`, as far as the hard limit allows.
enum OpenFileLimit {
    /// Raises the soft limit (and, if allowed, the hard limit) to `wanted`;
    /// returns the soft limit in force afterwards.
    static func raise(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = rlim_t(wanted)
        if limit.rlim_cur >= target { return Int(limit.rlim_cur) }
        var raised = limit
        raised.rlim_cur = target
        raised.rlim_max = max(limit.rlim_max, target)
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return wanted }
        raised.rlim_cur = limit.rlim_max
        raised.rlim_max = limit.rlim_max
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return Int(limit.rlim_max) }
        return Int(limit.rlim_cur)
    }
}

/// A failure of the benchmark's own machinery.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
