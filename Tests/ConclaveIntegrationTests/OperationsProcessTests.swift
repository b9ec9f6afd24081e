@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveSupport
import ConclaveTestSupport
import Foundation
import Testing

/// Running a network as an operator does, with real `conclave server`
/// processes: backups, the data directory's lock, signals, logs, TLS.
@Suite(.serialized)
struct OperationsProcessTests {
    let root: String

    init() throws { root = try TestDirectories.make("conclave-ops-") }

    /// `root/server`, initialised for acme.example.
    func initialisedDataDirectory() async throws -> String {
        let data = root + "/server"
        _ = try await ConclaveServerProcess.initialise(directory: data, network: "acme.example")
        return data
    }

    func write(_ text: String, to name: String) -> String {
        let path = root + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        return path
    }

    func cli(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String, error: String) {
        try await ConclaveServerProcess.runCLI(arguments, environment: environment)
    }

    @Test("A backup taken while the server runs restores into a new directory, and a client reads its undelivered messages from it")
    func backupAndRestore() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = try await initialisedDataDirectory()
        let server = try await ConclaveServerProcess.start(directory: data)
        // The admin CLI reads its server and token from the environment.
        let adminEnvironment = ["CONCLAVE_SERVER": server.url, "CONCLAVE_ADMIN_TOKEN_FILE": data + "/admin.token"]
        let password = write("s3cret-passw0rd\n", to: "password")
        for name in ["alice", "bob"] {
            let added = try await cli(["admin", "user", "add", name, "--password-file", password], environment: adminEnvironment)
            #expect(added.status == 0, "\(added.error)")
            let login = try await cli([
                "--profile", root + "/" + name, "login", "--server", server.url, "--user", "\(name)@acme.example", "--password-file",
                password,
            ])
            #expect(login.status == 0, "\(login.error)")
        }
        for text in ["before the backup", "also before"] {
            #expect(try await cli(["--profile", root + "/alice", "send", "bob@acme.example", text]).status == 0)
        }
        let attachment = write("a file shared before the backup\n", to: "attachment.txt")
        #expect(try await cli(["--profile", root + "/alice", "send", "bob@acme.example", "--file", attachment]).status == 0)
        let passphrase = write("correct horse battery staple\n", to: "passphrase")
        let backup = root + "/acme.backup"
        let made = try await cli(["server", "backup", "--data", data, "--to", backup, "--passphrase-file", passphrase])
        #expect(made.status == 0, "\(made.error)")
        #expect(made.output.contains("conclave.sqlite"))
        #expect(made.output.contains("and 1 shared file(s)"))
        #expect((try FileManager.default.attributesOfItem(atPath: backup)[.posixPermissions] as? Int) == 0o600)
        // Encrypted: neither the network key nor the token is in the file as it is on disk.
        let sealed = try Data(contentsOf: URL(fileURLWithPath: backup))
        for secret in ["network.key", "admin.token"] {
            let content = try Data(contentsOf: URL(fileURLWithPath: data + "/" + secret)).prefix(40)
            #expect(sealed.range(of: content) == nil)
        }
        #expect(
            try await cli(["server", "backup", "--data", data, "--to", backup, "--passphrase-file", passphrase]).error.contains("exists"))
        let port = server.port
        server.stop()

        // A wrong passphrase, a damaged file, an occupied directory: refused, and nothing is left behind.
        let wrong = write("not the passphrase at all\n", to: "wrong")
        let restored = root + "/restored"
        let refused = try await cli(["server", "restore", "--from", backup, "--data", restored, "--passphrase-file", wrong])
        #expect(refused.status != 0 && refused.error.contains("passphrase is wrong"))
        #expect(!FileManager.default.fileExists(atPath: restored))
        var damaged = sealed
        damaged[damaged.count / 2] ^= 0x01
        try damaged.write(to: URL(fileURLWithPath: root + "/damaged.backup"))
        #expect(
            try await cli(["server", "restore", "--from", root + "/damaged.backup", "--data", restored, "--passphrase-file", passphrase])
                .status
                != 0)
        try sealed.prefix(sealed.count - 100).write(to: URL(fileURLWithPath: root + "/short.backup"))
        #expect(
            try await cli(["server", "restore", "--from", root + "/short.backup", "--data", restored, "--passphrase-file", passphrase])
                .status
                != 0)
        #expect(!FileManager.default.fileExists(atPath: restored))
        #expect(
            try await cli(["server", "restore", "--from", backup, "--data", data, "--passphrase-file", passphrase]).error.contains(
                "not empty"))

        let done = try await cli(["server", "restore", "--from", backup, "--data", restored, "--passphrase-file", passphrase])
        #expect(done.status == 0, "\(done.error)")
        #expect((try FileManager.default.attributesOfItem(atPath: restored)[.posixPermissions] as? Int) == 0o700)
        #expect((try FileManager.default.attributesOfItem(atPath: restored + "/network.key")[.posixPermissions] as? Int) == 0o600)
        // The restored network, where bob's profile expects it, still holds what bob has not read.
        let again = try await ConclaveServerProcess.start(directory: restored, port: port)
        defer { again.stop() }
        let received = try await cli(["--profile", root + "/bob", "receive", "--json", "--download-dir", root + "/bob-downloads"])
        #expect(received.status == 0, "\(received.error)")
        #expect(received.output.contains("before the backup") && received.output.contains("also before"))
        // The shared file came back with the database: bob saves and checks it.
        #expect(
            FileManager.default.contents(atPath: root + "/bob-downloads/attachment.txt") == Data("a file shared before the backup\n".utf8))
    }

    @Test("One server per SQLite data directory; SIGHUP does not stop a server; JSON logs; shutdown logged")
    func lockSignalsAndLogs() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = try await initialisedDataDirectory()
        let metricsPort = try #require(LoopbackPort.free())
        let consolePort = try #require(LoopbackPort.free())
        let server = try await ConclaveServerProcess.start(
            directory: data,
            extraArguments: [
                "--log-format", "json", "--metrics-listen", "127.0.0.1:\(metricsPort)", "--console-listen", "127.0.0.1:\(consolePort)",
            ])
        // The console on its own listener only (an internal address, say).
        #expect(try await RawHTTP(baseURL: "http://127.0.0.1:\(consolePort)").send(.GET, "/admin/login").status == 200)
        #expect(try await RawHTTP(baseURL: server.url).send(.GET, "/admin/login").status == 404)
        #expect(try await RawHTTP(baseURL: "http://127.0.0.1:\(consolePort)").send(.GET, "/v1/admin/users").status == 404)
        // The metrics on their own listener, without the admin token; not on the main one.
        let scraped = try await RawHTTP(baseURL: "http://127.0.0.1:\(metricsPort)").send(.GET, "/metrics")
        #expect(scraped.status == 200)
        #expect(String(decoding: scraped.body, as: UTF8.self).contains("conclave_messages_accepted_total 0"))
        #expect(try await RawHTTP(baseURL: server.url).send(.GET, "/metrics").status == 404)
        let second = try await cli(["server", "run", "--data", data, "--listen", "127.0.0.1:0"])
        #expect(second.status != 0)
        #expect(second.error.contains("in use by another `conclave server run`"))
        #expect(second.error.contains("Usage: conclave server run"))

        server.hangUp()
        try await server.waitForLog(containing: "nothing to reload")
        #expect(server.isRunning)
        #expect(try await RawHTTP(baseURL: server.url).send(.GET, "/readyz").status == 200)
        server.stop()
        #expect(server.stoppedGracefully)
        let lines = server.log.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 4)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] is String && object?["message"] is String && object?["time"] is String, "\(line)")
        }
        #expect(lines.contains { $0.contains("\"log\":\"access\"") && $0.contains("\"route\":\"/readyz\"") })
        #expect(lines.contains { $0.contains("shutting down") })
        #expect(lines.contains { $0.contains("conclave server stopped") })
        // The lock went with the process: the directory serves again.
        let next = try await ConclaveServerProcess.start(directory: data)
        next.stop()
    }

    @Test("A graceful stop tells each open WebSocket (1001, the server is shutting down) and waits for it to close")
    func shutdownClosesWebSockets() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice")
        let alice = try await network.device("alice")
        let token = try #require(await alice.sessionTokenForTesting)
        // A client that reads but never answers the close frame: the server gives it 5 s, then closes.
        let (socket, upgrade) = try await RawSocket.eventStream(network.url, token: token)
        #expect(upgrade.hasPrefix("HTTP/1.1 101"))
        let server = network.server
        async let stopped: Void = offThePool { server.stop() }
        let rest = try await withDeadline(.seconds(30), "the close frame") { await socket.readUntilClosed() }
        try await stopped
        #expect(rest.contains("the server is shutting down"))
        #expect(server.stoppedGracefully)
        #expect(server.log.contains("conclave server stopped"))
    }

    @Test("HTTPS from the server itself; SIGHUP loads a renewed certificate; a bad one is refused at start and kept out on reload")
    func tls() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let data = try await initialisedDataDirectory()
        let first = try TLSFixtures.certificate(in: root, named: "first")
        let renewed = try TLSFixtures.certificate(in: root, named: "renewed")
        let certificate = root + "/server.crt.pem"
        let key = root + "/server.key.pem"
        try FileManager.default.copyItem(atPath: first.certificate, toPath: certificate)
        try FileManager.default.copyItem(atPath: first.key, toPath: key)

        // A key that does not go with the certificate: refused at start, with the reason.
        let mismatched = try await cli(["server", "run", "--data", data, "--tls-certificate", certificate, "--tls-key", renewed.key])
        #expect(mismatched.status != 0)
        #expect(mismatched.error.contains("does not go with"))

        let server = try await ConclaveServerProcess.start(
            directory: data, extraArguments: ["--tls-certificate", certificate, "--tls-key", key])
        defer { server.stop() }
        #expect(server.url.hasPrefix("https://"))
        #expect(try await TLSFixtures.status(of: server.url + "/healthz", trusting: first.certificate) == 200)
        #expect(try TLSFixtures.servedFingerprint(port: server.port) == (try TLSFixtures.fingerprint(ofFile: first.certificate)))
        // Plain HTTP to the TLS port gets no answer.
        await #expect(throws: (any Error).self) { _ = try await RawHTTP(baseURL: "http://127.0.0.1:\(server.port)").send(.GET, "/healthz") }

        // Renewal: new files in place, then SIGHUP.
        try FileManager.default.removeItem(atPath: certificate)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: renewed.certificate, toPath: certificate)
        try FileManager.default.copyItem(atPath: renewed.key, toPath: key)
        server.hangUp()
        try await server.waitForLog(containing: "TLS certificate and key reloaded")
        #expect(try TLSFixtures.servedFingerprint(port: server.port) == (try TLSFixtures.fingerprint(ofFile: renewed.certificate)))
        #expect(try await TLSFixtures.status(of: server.url + "/readyz", trusting: renewed.certificate) == 200)

        // A half-written renewal: the reload fails and the server keeps the certificate it has.
        try Data("-----BEGIN CERTIFICATE-----\ngarbage\n".utf8).write(to: URL(fileURLWithPath: certificate))
        server.hangUp()
        try await server.waitForLog(containing: "TLS reload failed")
        #expect(server.isRunning)
        #expect(try TLSFixtures.servedFingerprint(port: server.port) == (try TLSFixtures.fingerprint(ofFile: renewed.certificate)))
    }

    @Test("The CLI: no empty profiles, $HOME, errors that name the server and the cause, audit --json with objects")
    func cliPolish() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let password = write("s3cret-passw0rd\n", to: "password")
        // Nothing listens on port 9 of loopback: the error names the URL and why.
        let failed = try await cli([
            "--profile", root + "/nobody", "login", "--server", "http://127.0.0.1:9", "--user", "a@acme.example", "--password-file",
            password,
        ])
        #expect(failed.status != 0)
        #expect(failed.error.contains("http://127.0.0.1:9: connection refused"), "\(failed.error)")
        #expect(!FileManager.default.fileExists(atPath: root + "/nobody"))
        let unread = try await cli(["--profile", root + "/typo", "receive"])
        #expect(unread.status != 0 && unread.error.contains("run `conclave login` first"))
        #expect(!FileManager.default.fileExists(atPath: root + "/typo"))
        // The default profile is under $HOME.
        let home = try await cli(["receive"], environment: ["HOME": root + "/home", "CONCLAVE_PROFILE": ""])
        #expect(home.error.contains("run `conclave login` first"))
        #expect(!FileManager.default.fileExists(atPath: root + "/home/.conclave"))
        // server init on a directory that cannot be created says why, in words.
        let blocked = write("a file, not a directory", to: "blocker")
        let initFailed = try await cli(["server", "init", "--data", blocked + "/data", "--network", "acme.example"])
        #expect(initFailed.status != 0)
        #expect(initFailed.error.contains("cannot create \(blocked)/data") && !initFailed.error.contains("NSCocoaErrorDomain"))

        let data = try await initialisedDataDirectory()
        let server = try await ConclaveServerProcess.start(directory: data)
        defer { server.stop() }
        let admin = ["admin", "--server", server.url, "--token-file", data + "/admin.token"]
        #expect(try await cli(admin + ["user", "add", "alice", "--password-file", password]).status == 0)
        let missing = try await cli(["admin", "user", "list"], environment: ["CONCLAVE_SERVER": "", "CONCLAVE_ADMIN_TOKEN_FILE": ""])
        #expect(missing.error.contains("CONCLAVE_SERVER"))
        let audit = try await cli(admin + ["audit", "--json"])
        let entry = try #require(audit.output.split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any])
        #expect((object["after"] as? [String: Any])?["group"] as? String == "default")
        #expect(try await cli(admin + ["audit", "--verify"]).status == 0)
    }
}
