import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the PostgreSQL programs of one installation: directly, or as the
/// `postgres` user through `runuser` when this process is root (`initdb`
/// and `postgres` refuse to run as root).
struct Runner: Sendable {
    /// The `postgres` user's ids, when the server programs must run as it.
    struct Owner: Sendable {
        let uid: uid_t
        let gid: gid_t
    }

    let binDirectory: String
    let owner: Owner?
    let runuser: String?

    /// A runner for the programs in `binDirectory`, or why there is none.
    static func make(binDirectory: String) -> Result<Runner, PostgresServerError> {
        let files = FileManager.default
        for program in ["initdb", "pg_ctl", "postgres", "createdb", "pg_isready"]
        where !files.isExecutableFile(atPath: "\(binDirectory)/\(program)") {
            return .failure(
                PostgresServerError(
                    "\(binDirectory)/\(program) not found (install PostgreSQL 15, or set CONCLAVE_POSTGRES_BIN to its bin directory)"))
        }
        guard getuid() == 0 else { return .success(Runner(binDirectory: binDirectory, owner: nil, runuser: nil)) }
        guard let entry = getpwnam("postgres") else {
            return .failure(PostgresServerError("running as root, and there is no postgres user to run initdb as"))
        }
        guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: files.isExecutableFile(atPath:)) else {
            return .failure(PostgresServerError("running as root, and runuser is not installed to run initdb as postgres"))
        }
        let owner = Owner(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
        return .success(Runner(binDirectory: binDirectory, owner: owner, runuser: runuser))
    }

    /// A new empty directory under /tmp, owned by whoever runs the server.
    func makeDirectory() throws -> String {
        var template = Array("/tmp/conclave-pg.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let directory = made else { throw PostgresServerError("cannot create a directory under /tmp: errno \(errno)") }
        if let owner, chown(directory, owner.uid, owner.gid) != 0 {
            let code = errno
            try? FileManager.default.removeItem(atPath: directory)
            throw PostgresServerError("cannot give \(directory) to the postgres user: errno \(code)")
        }
        return directory
    }

    /// Runs a server program (as `postgres` when root) and waits for it.
    func run(_ program: String, _ arguments: [String], in directory: String) throws {
        let path = "\(binDirectory)/\(program)"
        if let runuser {
            try execute(runuser, ["-u", "postgres", "--", path] + arguments, in: directory)
        } else {
            try execute(path, arguments, in: directory)
        }
    }

    /// Runs a client program (`createdb`, `psql`) as this process's user.
    func runClient(_ program: String, _ arguments: [String], in directory: String) throws {
        try execute("\(binDirectory)/\(program)", arguments, in: directory)
    }

    /// Starts `postgres` as a child of this process (as `postgres` when
    /// root), its output copied to `server.log` in `directory`, and waits
    /// until it logs that it accepts connections; throws, with the end of
    /// the server's log, when it exits or 60 s pass.
    func launchServer(_ arguments: [String], directory: String) throws -> Process {
        let log = "\(directory)/server.log"
        guard FileManager.default.createFile(atPath: log, contents: nil), let output = FileHandle(forWritingAtPath: log) else {
            throw PostgresServerError("cannot create \(log)")
        }
        let path = "\(binDirectory)/postgres"
        let process = Self.process(runuser ?? path, runuser == nil ? arguments : ["-u", "postgres", "--", path] + arguments, in: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let watcher = LogWatcher(copyingTo: output, from: pipe, marker: "ready to accept connections")
        process.terminationHandler = { _ in watcher.processExited() }
        try process.run()
        do {
            guard try watcher.waitForMarker(timeout: 60) else {
                stopServer(process, directory: directory)
                throw PostgresServerError("postgres did not accept connections within 60 s: \(Self.tail(of: log))")
            }
        } catch let error as LogWatcherError {
            throw PostgresServerError("postgres exited (\(error)): \(Self.tail(of: log))")
        }
        return process
    }

    /// `pg_ctl stop -m fast`, then waits for the server process to end.
    func stopServer(_ server: Process, directory: String) {
        guard server.isRunning else { return }
        if (try? run("pg_ctl", ["-D", "\(directory)/data", "-w", "-t", "60", "stop", "-m", "fast"], in: directory)) == nil {
            // pg_ctl could not signal it (say, it never wrote its pid file): ask the child itself.
            server.interrupt()
        }
        server.waitUntilExit()
    }

    static func tail(of path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(5).joined(separator: " | ")
    }

    /// Runs a program to its end; a failure carries its output.
    private func execute(_ path: String, _ arguments: [String], in directory: String) throws {
        let process = Self.process(path, arguments, in: directory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let name = (path as NSString).lastPathComponent
            throw PostgresServerError("\(name) \(arguments.last ?? "") failed (status \(process.terminationStatus)): \(text)")
        }
    }

    private static func process(_ path: String, _ arguments: [String], in directory: String) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        environment["PGCONNECT_TIMEOUT"] = "10"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        return process
    }
}
