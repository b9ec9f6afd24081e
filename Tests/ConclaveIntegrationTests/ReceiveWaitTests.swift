import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// `conclave receive --wait` against a server process that stops and
/// comes back (issue 19, problem 5), and the CLI's refusals (problem 6).
@Suite(.serialized)
struct ReceiveWaitTests {
    @Test("19.5 receive --wait reconnects after a restart, and exits 1 with a message when the server stays down")
    func waitSurvivesRestartAndFailsVisibly() async throws {
        guard var network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let profile = network.root + "/profiles/bob-cli"
        let passwordFile = network.root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data(network.password.utf8))
        let login = try await ConclaveServerProcess.runCLI([
            "--profile", profile, "login", "--server", network.url, "--user", "bob@\(network.domain)", "--password-file", passwordFile,
        ])
        #expect(login.status == 0, "\(login.error)")
        let direct = try await alice.directConversation(with: network.address("bob"))

        // Up, down, up again: every message is printed once and the wait ends well.
        let listener = try CLIProcess(["--profile", profile, "receive", "--wait", "20s", "--json"])
        try await alice.send("first", to: direct.id)
        try await listener.waitForOutput(containing: "\"first\"")
        try await network.restart(kill: true)
        try await alice.send("after the restart", to: direct.id)
        try await listener.waitForOutput(containing: "\"after the restart\"")
        let ended = await listener.waitForExit()
        #expect(ended.status == 0, "\(ended.error)")
        #expect(ended.error.contains("reconnecting"))
        #expect(ended.output.components(separatedBy: "\"first\"").count == 2)

        // Down for good: the wait ends with status 1 and says why. The kill must come within the wait, after the CLI's
        // start, which takes seconds on a loaded two-core runner (and this test's own turn to run, more): the message is
        // sent first, and the wait is long.
        try await alice.send("last", to: direct.id)
        let second = try CLIProcess(["--profile", profile, "receive", "--wait", "60s"])
        try await second.waitForOutput(containing: "last")
        network.server.kill()  // at once: a graceful stop may keep the connection open past the wait
        let failed = await second.waitForExit()
        #expect(failed.status == 1)
        #expect(failed.error.contains("could not reconnect"))
    }

    @Test("19.6 The CLI refuses an empty message and a second room of the same name, and prints its version")
    func refusals() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        _ = try await network.device("bob")
        let passwordFile = network.root + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data(network.password.utf8))
        func cli(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(["--profile", network.root + "/profiles/alice-cli"] + arguments)
        }
        #expect(
            try await cli(["login", "--server", network.url, "--user", "alice@\(network.domain)", "--password-file", passwordFile]).status
                == 0)
        let empty = try await cli(["send", "bob@\(network.domain)", ""])
        #expect(empty.status != 0)
        #expect(empty.error.contains("empty"))
        #expect(try await cli(["room", "create", "team", "--members", "bob@\(network.domain)"]).status == 0)
        let again = try await cli(["room", "create", "team", "--members", "bob@\(network.domain)"])
        #expect(again.status != 0)
        #expect(again.error.contains("already in a room named team"))
        #expect(try await cli(["room", "create", "team", "--members", "bob@\(network.domain)", "--allow-duplicate-name"]).status == 0)
        let version = try await ConclaveServerProcess.runCLI(["--version"])
        #expect(version.status == 0)
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == ConclaveVersion.current)
    }
}
