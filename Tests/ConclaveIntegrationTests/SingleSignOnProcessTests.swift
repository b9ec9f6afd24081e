import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// Single sign-on end to end: a `conclave server` process, a real OpenID
/// provider in its own process (oidc-provider-mock, RS256, PKCE required),
/// and the CLI's `login --sso` receiving the provider's redirect on its
/// loopback port; the administrator sets it up with `admin sso set`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SingleSignOnProcessTests {
    @Test("admin sso set, then login --sso through a real provider: the account is made, messages flow, the key rotates")
    func commandLine() async throws {
        guard let network = try await ProcessNetwork.start(.sqlite, testClock: true) else { return }
        defer { network.stop() }
        guard let provider = try await OpenIDProviderProcess.start(logDirectory: network.root) else { return }
        defer { provider.stop() }
        let secret = network.root + "/client-secret"
        try Data("a-client-secret\n".utf8).write(to: URL(fileURLWithPath: secret))
        let tokenFile = network.root + "/server/admin.token"
        func cli(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
            try await ConclaveServerProcess.runCLI(arguments)
        }
        let admin = ["admin", "--server", network.url, "--token-file", tokenFile]
        let set = try await cli(
            admin + [
                "sso", "set", "--issuer", provider.issuer, "--client-id", "conclave", "--client-secret-file", secret, "--create-accounts",
                "on", "--json",
            ])
        #expect(set.status == 0, "\(set.error)")
        #expect(!set.output.contains("a-client-secret"))
        let shown = try await cli(admin + ["sso", "show"])
        #expect(shown.status == 0 && shown.output.contains("client_secret: set") && !shown.output.contains("a-client-secret"))

        try await provider.setClaims(of: "alice-at-idp", ["preferred_username": "alice", "email": "alice@corp.example"])
        func login(_ profile: String) async throws -> (status: Int32, output: String, error: String) {
            let login = try CLIProcess([
                "--profile", network.root + "/" + profile, "login", "--server", network.url, "--sso", "--device-name", profile,
            ])
            try await login.waitForOutput(containing: provider.issuer + "/oauth2/authorize?")
            let url = try #require(login.output.split(separator: "\n").first { $0.hasPrefix(provider.issuer) }.map(String.init))
            try await provider.signIn(at: url, as: "alice-at-idp")
            return await login.waitForExit()
        }
        let first = try await login("alice")
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("signed in as alice@acme.example"))

        try await network.users("bob")
        let bob = try await network.device("bob")
        let sent = try await cli(["--profile", network.root + "/alice", "send", "bob@acme.example", "signed in through the provider"])
        #expect(sent.status == 0, "\(sent.error)")
        #expect(texts(try await bob.receive()) == ["signed in through the provider"])

        // A new signing key at the provider: a minute on, the server fetches the JWKS again for the unknown kid,
        // and the same profile signs its device in again (same device, new session).
        try await provider.rotateKey()
        try await network.advanceClock(by: 61)
        let again = try await login("alice")
        #expect(again.status == 0, "\(again.error)")
        #expect(again.output.contains("signed in again as alice@acme.example"))

        let users = try await cli(admin + ["user", "list"])
        #expect(users.output.contains("alice@acme.example"))
        let audit = try await cli(admin + ["audit", "--json"])
        #expect(audit.output.contains("\"sso.set\"") && audit.output.contains("\"actor\":\"sso\""))
        #expect(!audit.output.contains("a-client-secret"))
    }
}
