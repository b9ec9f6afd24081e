import ArgumentParser
import AsyncHTTPClient
import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `conclave-bench files`: a large encrypted file sent and received over
/// loopback, by the SDK in this process and by the `conclave` CLI as a
/// child process (whose peak memory the kernel reports when it exits).
struct FileBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "Send and receive a large encrypted file over loopback; print MiB/s each way and the client's peak memory.",
        discussion: """
            Starts a release server, raises the default security group's max-file-size, signs alice and bob in and \
            writes a file of MEGABYTES random MiB. SDK rows: alice's sendFile (seal, upload in 8 MiB pieces) and bob's \
            saveFile (download, open, check size and SHA-256, write) timed in this process. CLI rows: `conclave send \
            --file` and `conclave receive --download-dir` run as child processes on the same profiles, timed from start \
            to exit (their start-up and sync included); their peak resident memory is their VmHWM, read from /proc \
            until they exit. The server's peak (VmHWM) is read at the end. MiB/s counts the plaintext. A benchmark, not a test: \
            it fails only when its machinery does.
            """)

    @Option(name: .long, help: "The file's size in MiB.") var megabytes = 1024
    @Option(name: .long, help: "The conclave binary for the server and the CLI (default: .build/release/conclave).")
    var conclaveBinary: String?
    @Option(name: .long, help: "Keep the benchmark's files in this new directory instead of a temporary one that is deleted.")
    var directory: String?

    func validate() throws {
        guard (1...65_536).contains(megabytes) else { throw ValidationError("--megabytes must be 1 to 65536") }
    }

    func run() async throws {
        let root = directory ?? NSTemporaryDirectory() + "conclave-files-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let binary = conclaveBinary ?? BenchServer.executable
        let http = HTTPClient(configuration: HTTPClient.Configuration())
        say("== conclave bench files: \(megabytes) MiB, server and CLI \(binary), files in \(root)")
        let rows: [(String, String)]
        do {
            rows = try await measure(root: root, binary: binary, http: http)
        } catch {
            try? await http.shutdown()
            say("== failed: \(error); files kept in \(root)")
            throw ExitCode.failure
        }
        try await http.shutdown()
        say("")
        say("| measure | value |\n|---|---:|")
        for (measure, value) in rows { say("| \(measure) | \(value) |") }
        if directory == nil { try? FileManager.default.removeItem(atPath: root) }
    }

    private func measure(root: String, binary: String, http: HTTPClient) async throws -> [(String, String)] {
        let server = try await BenchServer.start(
            directory: root + "/server", postgres: nil, http: http, limits: .unthrottled, executable: conclaveBinary)
        defer { server.stop() }
        let network = BenchNetwork(server: server, root: root)
        _ = try await network.admin.updateGroup(.default, SecurityGroupChange(maxFileSize: UInt64(megabytes + 1) << 20))
        let devices = try await network.devices(["alice", "bob"])
        guard devices.count == 2, let bobAddress = network.address("bob") else {
            throw BenchError("the devices did not sign in")
        }
        let (alice, bob) = (devices[0], devices[1])
        let direct = try await alice.directConversation(with: bobAddress)
        _ = try await bob.receive()
        let path = root + "/payload.bin"
        try Self.writeRandom(megabytes << 20, to: path)
        let mebibytes = Double(megabytes)
        var rows: [(String, String)] = []

        say("== SDK: alice sends, bob saves")
        var start = ContinuousClock.now
        let sent = try await alice.sendFile(at: path, to: direct.id)
        let up = ContinuousClock.now - start
        let events = try await bob.receive()
        guard let file = events.compactMap({ event -> SharedFile? in if case .message(let m) = event { m.file } else { nil } }).first
        else { throw BenchError("bob did not receive the file") }
        start = ContinuousClock.now
        let saved = try await bob.saveFile(file, in: direct.id, to: root + "/sdk-downloads")
        let down = ContinuousClock.now - start
        guard file.id == sent.file.id, Self.size(saved) == UInt64(megabytes) << 20 else { throw BenchError("the saved file differs") }
        try? FileManager.default.removeItem(atPath: saved)
        rows.append(("SDK upload (seal + 8 MiB pieces)", Self.rate(mebibytes, up)))
        rows.append(("SDK download (open + verify + write)", Self.rate(mebibytes, down)))
        await alice.close()
        await bob.close()

        say("== CLI: conclave send --file, conclave receive --download-dir")
        let profiles = root + "/profiles/"
        let send = try Self.spawn(
            binary, ["--profile", profiles + "\(network.tag)-alice", "send", bobAddress.description, "--file", path],
            output: root + "/send.out")
        guard send.status == 0 else { throw BenchError("conclave send failed (\(send.status)); see \(root)/send.out") }
        let receive = try Self.spawn(
            binary, ["--profile", profiles + "\(network.tag)-bob", "receive", "--download-dir", root + "/cli-downloads"],
            output: root + "/receive.out")
        guard receive.status == 0, Self.size(root + "/cli-downloads/payload.bin") == UInt64(megabytes) << 20 else {
            throw BenchError("conclave receive failed (\(receive.status)); see \(root)/receive.out")
        }
        rows.append(("CLI send --file (whole command)", Self.rate(mebibytes, send.elapsed)))
        rows.append(("CLI send --file: peak client memory (VmHWM)", Self.mebibytes(send.maxRSSKiB)))
        rows.append(("CLI receive --download-dir (whole command)", Self.rate(mebibytes, receive.elapsed)))
        rows.append(("CLI receive --download-dir: peak client memory (VmHWM)", Self.mebibytes(receive.maxRSSKiB)))
        if let peak = server.peakKiB { rows.append(("server peak memory (VmHWM)", Self.mebibytes(peak))) }
        return rows
    }

    /// `size` pseudo-random bytes (SplitMix64 from a random seed: cheap, and
    /// nothing along the way compresses them), written a MiB at a time.
    static func writeRandom(_ size: Int, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw BenchError("cannot write \(path)")
        }
        defer { try? handle.close() }
        var state = UInt64.random(in: 0...UInt64.max)
        var buffer = [UInt64](repeating: 0, count: 1 << 17)
        var written = 0
        while written < size {
            for index in buffer.indices {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                buffer[index] = z ^ (z >> 31)
            }
            let count = min(size - written, buffer.count * 8)
            try buffer.withUnsafeBytes { try handle.write(contentsOf: Data($0.prefix(count))) }
            written += count
        }
        try handle.synchronize()  // on disk before the clock starts: its writeback does not compete with the transfer
    }

    static func size(_ path: String) -> UInt64? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value
    }

    static func rate(_ mebibytes: Double, _ elapsed: Duration) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return String(format: "%.0f MiB/s (%.2f s)", mebibytes / seconds, seconds)
    }

    static func mebibytes(_ kibibytes: Int) -> String { String(format: "%.1f MiB", Double(kibibytes) / 1024) }

    /// Runs a child process to its end, standard output and error into
    /// `output`: its exit status, wall time and peak resident memory (the
    /// child's own VmHWM from /proc, read every 5 ms until it exits: the
    /// kernel's ru_maxrss of a spawned child also counts the parent's memory
    /// at the spawn).
    static func spawn(_ executable: String, _ arguments: [String], output: String) throws -> (
        status: Int32, elapsed: Duration, maxRSSKiB: Int
    ) {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let start = ContinuousClock.now
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot start \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var peak = 0
        while true {
            if let hwm = statusKiB(pid: pid, field: "VmHWM") { peak = max(peak, hwm) }
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            guard waited == 0 else { throw BenchError("waitpid failed") }
            usleep(5_000)
        }
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, ContinuousClock.now - start, peak)
    }

    /// A `… kB` line of /proc/PID/status.
    static func statusKiB(pid: pid_t, field: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 2 ? Int(fields[1]) : nil
        }
        return nil
    }
}
