import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Synchronization
import Testing

/// Encrypted files against a real server process: an upload survives the
/// server's death, and the CLI sends, receives and saves files safely.
@Suite(.serialized)
struct FileProcessTests {
    /// `size` random bytes (from the system's generator, a word at a time) written to `path`.
    static func write(_ size: Int, to path: String) throws -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size + 8)
        while bytes.count < size { withUnsafeBytes(of: generator.next()) { bytes.append(contentsOf: $0) } }
        bytes.removeLast(bytes.count - size)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return bytes
    }

    @Test("An upload resumes where it stopped after the server is killed mid-way")
    func resumedUpload() async throws {
        guard var network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let direct = try await alice.directConversation(with: network.address("bob"))
        _ = try await bob.receive()
        let path = network.root + "/big.bin"
        let bytes = try Self.write(40 << 20, to: path)

        // The server is SIGKILLed once two 8 MiB pieces are stored, and started again on the same data.
        let reports = Shared<[UInt64]>([])
        let (killed, signal) = AsyncStream.makeStream(of: Void.self)
        let server = network.server
        let restarted = Shared<ConclaveServerProcess?>(nil)
        let (directory, port) = (network.dataDirectory, server.port)
        let sent = try await withThrowingTaskGroup(of: SentFile?.self) { group in
            group.addTask {
                try await alice.sendFile(at: path, to: direct.id) { done, _ in
                    let count = reports.value.withLock { reports in
                        reports.append(done)
                        return reports.count
                    }
                    if count == 2 {
                        server.kill()
                        signal.yield()
                    }
                }
            }
            group.addTask {
                for await _ in killed { break }
                let process = try await ConclaveServerProcess.start(directory: directory, port: port)
                restarted.value.withLock { $0 = process }
                return nil
            }
            var sent: SentFile?
            for try await result in group where result != nil { sent = result }
            return try #require(sent)
        }
        if let process = restarted.value.withLock({ $0 }) { network.server = process }
        #expect(!server.isRunning)
        // Each piece counted once: the upload went on from the server's count, not from the start.
        let total = EncryptedFile.sealedSize(of: UInt64(bytes.count))
        let pieces = Int((total + (8 << 20) - 1) / (8 << 20))
        let counted = reports.value.withLock { $0 }
        #expect(counted.count == pieces)
        #expect(counted == counted.sorted() && Set(counted).count == counted.count)
        #expect(counted.last == total)

        let events = try await bob.receive(until: { messages($0).contains { $0.file != nil } })
        let file = try #require(messages(events).first { $0.file != nil }?.file)
        #expect(file.id == sent.file.id)
        let saved = try await bob.saveFile(file, in: direct.id, to: network.root + "/bob")
        #expect(FileManager.default.contents(atPath: saved) == Data(bytes))
    }

    @Test("send --file and receive --download-dir: progress stays off a pipe, names are sanitised, nothing is overwritten")
    func commandLine() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let passwordFile = network.root + "/password"
        try Data((network.password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
        func cli(_ profile: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(["--profile", network.root + "/" + profile] + arguments)
        }
        for name in ["alice", "bob"] {
            let login = try await cli(
                name, ["login", "--server", network.url, "--user", "\(name)@acme.example", "--password-file", passwordFile])
            #expect(login.status == 0, "\(login.error)")
        }
        let report = network.root + "/report.pdf"
        let bytes = try Self.write(100_000, to: report)
        let sent = try await cli("alice", ["send", "bob@acme.example", "--file", report, "--json", "the report"])
        #expect(sent.status == 0, "\(sent.error)")
        #expect(!sent.error.contains("["))  // no progress bar when standard error is not a terminal
        let sentLine = try #require(try JSONSerialization.jsonObject(with: Data(sent.output.utf8)) as? [String: Any])
        let sentFile = try #require(sentLine["file"] as? [String: Any])
        #expect(sentFile["name"] as? String == "report.pdf")
        #expect(sentFile["media_type"] as? String == "application/pdf")
        #expect((sentFile["size"] as? Int) == 100_000)

        // A hostile sender names its file to escape the download directory and to hide its type.
        try await network.users("mallory")
        let mallory = try await network.device("mallory")
        let direct = try await mallory.directConversation(with: network.address("bob"))
        let hostile = network.root + "/hostile.bin"
        _ = try Self.write(10, to: hostile)
        try await mallory.sendFile(at: hostile, name: "../../.ssh/authorized_keys\u{202E}fdp.exe\u{7}", to: direct.id)

        let downloads = network.root + "/downloads"
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: downloads + "/report.pdf"))
        let received = try await cli("bob", ["receive", "--json", "--download-dir", downloads])
        #expect(received.status == 0, "\(received.error)")
        let lines = received.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let files = lines.filter { $0["type"] as? String == "message" }.compactMap { $0["file"] as? [String: Any] }
        #expect(files.count == 2)
        let reportLine = try #require(files.first { $0["name"] as? String == "report.pdf" })
        let reportPath = try #require(reportLine["path"] as? String)
        #expect(reportPath == downloads + "/report (1).pdf")  // the file already there is kept
        #expect(FileManager.default.contents(atPath: downloads + "/report.pdf") == Data("keep me".utf8))
        #expect(FileManager.default.contents(atPath: reportPath) == Data(bytes))
        #expect(reportLine["sha256"] as? String == sentFile["sha256"] as? String)
        let hostileLine = try #require(files.first { $0["name"] as? String != "report.pdf" })
        let hostilePath = try #require(hostileLine["path"] as? String)
        #expect(hostileLine["name"] as? String == "authorized_keysfdp.exe")
        #expect(hostilePath == downloads + "/authorized_keysfdp.exe")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: downloads).sorted() == [
                "authorized_keysfdp.exe", "report (1).pdf", "report.pdf",
            ])
        // Received once: a second receive has nothing more.
        let again = try await cli("bob", ["receive", "--json", "--download-dir", downloads])
        #expect(!again.output.contains("\"file\""))
    }
}

/// A value tasks share.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
