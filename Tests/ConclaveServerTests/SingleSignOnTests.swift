@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

/// Single sign-on (rules O1–O9 in docs/server.md#single-sign-on) against the
/// tests' own OpenID provider on loopback: the happy path through the SDK
/// and its loopback redirect, every ID-token check with a provider that
/// bends the token, state and PKCE replays, key rotation, and the account
/// rules.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SingleSignOnTests {
    /// Sets single sign-on on `network` for `provider`.
    @discardableResult
    static func configure(
        _ network: some NetworkFixture, _ provider: TestOpenIDProvider, createAccounts: Bool = true, passwordsAllowed: Bool? = nil,
        groupMap: [SSOGroupMapping]? = nil
    ) async throws -> SSOSettings {
        try await network.admin.setSSO(
            SetSSO(
                issuer: provider.issuer, clientId: provider.clientID, clientSecret: provider.clientSecret,
                groupClaim: groupMap == nil ? nil : "groups", groupMap: groupMap, createAccounts: createAccounts,
                passwordsAllowed: passwordsAllowed))
    }

    /// A new profile signing in through the provider, as a browser would.
    static func signIn(_ network: some NetworkFixture, _ name: String = "sso") async throws -> ConclaveClient {
        let client = try await network.profile(name, "laptop")
        try await client.loginWithSSO(server: network.url, deviceName: "laptop", timeout: .seconds(30)) { url in
            try await TestOpenIDProvider.browse(url)
        }
        return client
    }

    static func expectRefused(
        _ code: ErrorCode, _ network: some NetworkFixture, sourceLocation: SourceLocation = #_sourceLocation,
        _ comment: Comment? = nil
    ) async {
        do {
            _ = try await signIn(network)
            Issue.record("the sign-in was accepted: \(comment ?? "")", sourceLocation: sourceLocation)
        } catch let error as ClientError {
            #expect(error.code == code, "\(error) \(comment ?? "")", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error) \(comment ?? "")", sourceLocation: sourceLocation)
        }
    }

    @Test("A user signs in through the provider: the account is made in the mapped group, and messages flow", arguments: Backend.allCases)
    func happyPath(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await TestOpenIDProvider.run { provider in
                let staff = try #require(SecurityGroupName("staff"))
                _ = try await network.admin.addGroup(staff, SecurityGroupChange())
                let shown = try await Self.configure(
                    network, provider, groupMap: [SSOGroupMapping(value: "engineering", group: staff)])
                #expect(shown.clientSecretSet && shown.userClaim == "preferred_username" && shown.passwordsAllowed)
                try await network.users("bob")
                let bob = try await network.device("bob")

                provider.signIn(as: ["sub": "subject-alice", "preferred_username": "Alice"], groups: ["other", "engineering"])
                let alice = try await Self.signIn(network)
                #expect(await alice.user == network.address("alice"))
                let account = try #require(try await network.admin.users().first { $0.name.value == "alice" })
                #expect(account.group == "staff" && account.devices == 1)

                let direct = try await alice.directConversation(with: network.address("bob"))
                try await alice.send("hello from single sign-on", to: direct.id)
                #expect(texts(try await bob.receive()) == ["hello from single sign-on"])

                // The same profile signs its device in again through the provider: same device, a new session.
                let device = await alice.device
                try await alice.loginWithSSO(server: network.url, deviceName: "laptop", timeout: .seconds(30)) { url in
                    try await TestOpenIDProvider.browse(url)
                }
                #expect(await alice.device == device)
                try await alice.send("still here", to: direct.id)
                #expect(texts(try await bob.receive()) == ["still here"])

                let audit = try await network.admin.audit()
                #expect(audit.contains { $0.actor == "token" && $0.action == "sso.set" })
                #expect(audit.contains { $0.actor == "sso" && $0.action == "user.create" && $0.target == "user:alice" })
                #expect(
                    !audit.contains {
                        ($0.after ?? "").contains(provider.clientSecret) || ($0.before ?? "").contains(provider.clientSecret)
                    })
                #expect(!network.log.contains(provider.clientSecret))

                // A deleted account is not created again by its user's next sign-in; an administrator's re-creation lifts that.
                let aliceName = try #require(UserName("alice"))
                try await network.admin.delete(aliceName)
                provider.signIn(as: ["sub": "subject-alice", "preferred_username": "alice"])
                await Self.expectRefused(.ssoFailed, network)
                try await network.users("alice")
                _ = try await Self.signIn(network)
                #expect(try await network.admin.devices(aliceName).devices.count == 1)
            }
        }
    }

    @Test("An ID token that fails any check signs nothing in")
    func hostileTokens() async throws {
        try await TestNetwork.run(.sqlite, testClock: true) { network in
            let clock = try #require(network.clock)
            try await TestOpenIDProvider.run(clock: { clock.now() }) { provider in
                try await Self.configure(network, provider)
                let now: @Sendable () -> Int = { Int(clock.now().timeIntervalSince1970) }
                let hidden = provider.rotateKey(publish: false, makeCurrent: false)
                let cases: [(String, @Sendable (inout TestOpenIDProvider.TokenParts) -> Void)] = [
                    ("another issuer", { $0.payload["iss"] = "http://127.0.0.1:1" }),
                    ("another audience", { $0.payload["aud"] = "another-client" }),
                    ("an extra audience", { $0.payload["aud"] = ["conclave-test", "another-client"] }),
                    ("another authorized party", { $0.payload["azp"] = "another-client" }),
                    ("expired", { $0.payload["exp"] = now() - 120 }),
                    ("issued an hour ago", { $0.payload["iat"] = now() - 3600 }),
                    ("issued in the future", { $0.payload["iat"] = now() + 600 }),
                    ("no exp", { $0.payload["exp"] = nil }),
                    ("another nonce", { $0.payload["nonce"] = "not-this-sign-in" }),
                    ("no nonce", { $0.payload["nonce"] = nil }),
                    (
                        "alg none",
                        {
                            $0.header["alg"] = "none"
                            $0.signing = .unsigned
                        }
                    ),
                    (
                        "HS256 keyed with the public key",
                        {
                            $0.header["alg"] = "HS256"
                            $0.signing = .hmacWithPublicKey
                        }
                    ),
                    ("RS256 header on an EC key", { $0.header["alg"] = "RS256" }),
                    ("a corrupted signature", { $0.signing = .corrupted }),
                    (
                        "a key the provider does not publish",
                        {
                            $0.header["kid"] = hidden
                            $0.signing = .key(hidden)
                        }
                    ),
                    ("signed by another key than its kid", { $0.signing = .key(hidden) }),
                    ("no user-name claim", { $0.payload["preferred_username"] = nil }),
                    ("a user name this network refuses", { $0.payload["preferred_username"] = "alice smith!" }),
                    ("no subject", { $0.payload["sub"] = nil }),
                ]
                for (name, bend) in cases {
                    provider.tamper(bend)
                    await Self.expectRefused(.ssoFailed, network, Comment(rawValue: name))
                    // Failures count against this address as failed passwords do (A1); the next case comes after the window.
                    clock.advance(by: 3600)
                }
                #expect(provider.tokensIssued == cases.count)
                #expect(try await network.admin.users().isEmpty)
                // The provider is fine again: the same user signs in.
                _ = try await Self.signIn(network)
                #expect(try await network.admin.users().map(\.name.value) == ["alice"])
            }
        }
    }

    @Test("A rotated key is fetched once an unknown kid arrives, at most once a minute")
    func keyRotation() async throws {
        try await TestNetwork.run(.sqlite, testClock: true) { network in
            let clock = try #require(network.clock)
            try await TestOpenIDProvider.run(clock: { clock.now() }) { provider in
                try await Self.configure(network, provider)
                _ = try await Self.signIn(network)
                provider.rotateKey()
                // The keys were fetched moments ago: the unknown kid does not make the server fetch again yet.
                await Self.expectRefused(.ssoFailed, network)
                clock.advance(by: 61)
                _ = try await Self.signIn(network)
                #expect(try await network.admin.devices(try #require(UserName("alice"))).devices.count == 2)
            }
        }
    }

    @Test("A state is used once, the PKCE verifier must match, and redirects go to loopback only")
    func stateAndPKCE() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await TestOpenIDProvider.run { provider in
                let http = RawHTTP(baseURL: network.url)
                let verifier = String(repeating: "v", count: 43)
                let challenge = ConclaveClient.pkceChallengeForTesting(verifier)
                let redirect = "http://127.0.0.1:9/callback"
                http.expectRefusal(
                    try await http.send(.POST, "/v1/sso/start", json: SSOStart(redirectUri: redirect, codeChallenge: challenge)), .ssoOff)
                try await Self.configure(network, provider)
                for bad in [
                    "https://evil.example/callback", "http://10.0.0.1:9/callback", "http://127.0.0.1/callback", "javascript:alert(1)",
                ] {
                    http.expectRefusal(
                        try await http.send(.POST, "/v1/sso/start", json: SSOStart(redirectUri: bad, codeChallenge: challenge)), .badRequest
                    )
                }
                http.expectRefusal(
                    try await http.send(.POST, "/v1/sso/start", json: SSOStart(redirectUri: redirect, codeChallenge: "short")), .badRequest)

                func started() async throws -> (state: String, code: String) {
                    let answer = try await http.send(
                        .POST, "/v1/sso/start", json: SSOStart(redirectUri: redirect, codeChallenge: challenge))
                    let start = try answer.decode(SSOStarted.self)
                    let query = try await TestOpenIDProvider.authorize(start.authorizationUrl)
                    #expect(query["state"] == start.state)
                    return (start.state, try #require(query["code"]))
                }
                func finish(_ state: String, _ code: String, verifier: String, key: UInt8) -> SSOFinish {
                    SSOFinish(
                        state: state, code: code, codeVerifier: verifier, deviceName: "raw",
                        signatureKey: Base64Bytes([UInt8](repeating: key, count: 32)), cipherSuite: 1)
                }
                // A wrong verifier: refused before the provider is asked, and the state is spent.
                let first = try await started()
                let wrong = String(repeating: "w", count: 43)
                http.expectRefusal(
                    try await http.send(.POST, "/v1/sso/finish", json: finish(first.state, first.code, verifier: wrong, key: 1)), .ssoFailed
                )
                http.expectRefusal(
                    try await http.send(.POST, "/v1/sso/finish", json: finish(first.state, first.code, verifier: verifier, key: 1)),
                    .ssoFailed)
                // The right one signs in once; the same state and code again are refused.
                let second = try await started()
                let accepted = try await http.send(
                    .POST, "/v1/sso/finish", json: finish(second.state, second.code, verifier: verifier, key: 2))
                #expect(accepted.status == 201)
                http.expectRefusal(
                    try await http.send(.POST, "/v1/sso/finish", json: finish(second.state, second.code, verifier: verifier, key: 3)),
                    .ssoFailed)
                // No verifier at all is not a request of the documented shape.
                let third = try await started()
                let missing = #"{"state":"\#(third.state)","code":"\#(third.code)","device_name":"raw"}"#
                http.expectRefusal(try await http.send(.POST, "/v1/sso/finish", raw: Array(missing.utf8)), .badRequest)
                #expect(try await network.admin.devices(try #require(UserName("alice"))).devices.count == 1)
            }
        }
    }

    @Test("Suspended, unknown and re-bound accounts are refused; passwords can be turned off", arguments: Backend.allCases)
    func accounts(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await TestOpenIDProvider.run { provider in
                try await Self.configure(network, provider, createAccounts: false)
                try await network.users("carol", "bob")
                let carol = try #require(UserName("carol"))

                provider.signIn(as: ["sub": "subject-carol", "preferred_username": "carol"])
                _ = try await Self.signIn(network)
                // O7: another subject with carol's name (a re-created directory account) is refused until unlinked.
                provider.signIn(as: ["sub": "subject-impostor", "preferred_username": "carol"])
                await Self.expectRefused(.forbidden, network)
                _ = try await network.admin.updateUser(carol, UserChange(ssoUnlink: true))
                _ = try await Self.signIn(network)
                // O7: an identity bound to an account signs in to it, whatever name it claims now; bob stays unbound.
                provider.signIn(as: ["sub": "subject-impostor", "preferred_username": "bob"])
                let renamed = try await Self.signIn(network)
                #expect(await renamed.user == network.address("carol"))
                // O6: no account and no creation at sign-in.
                provider.signIn(as: ["sub": "subject-dave", "preferred_username": "dave"])
                await Self.expectRefused(.ssoFailed, network)
                #expect(try await network.admin.users().map(\.name.value) == ["bob", "carol"])
                // A suspended account cannot sign in through the provider either.
                _ = try await network.admin.suspend(carol)
                provider.signIn(as: ["sub": "subject-impostor", "preferred_username": "carol"])
                await Self.expectRefused(.forbidden, network)

                // Passwords off: password sign-in is refused for everyone; on again, it works.
                try await Self.configure(network, provider, createAccounts: false, passwordsAllowed: false)
                await #expect(throws: ClientError.self) { _ = try await network.device("bob") }
                let http = RawHTTP(baseURL: network.url)
                let login = LoginRequest(
                    user: "bob", password: network.password, deviceName: "raw", signatureKey: Base64Bytes([UInt8](repeating: 9, count: 32)),
                    cipherSuite: 1)
                http.expectRefusal(try await http.send(.POST, "/v1/login", json: login), .passwordSignInOff)
                try await Self.configure(network, provider, createAccounts: false, passwordsAllowed: true)
                _ = try await network.device("bob")

                let audit = try await network.admin.audit()
                #expect(audit.contains { $0.action == "user.sso_unlink" && $0.target == "user:carol" })
                #expect(audit.filter { $0.action == "user.sso_bind" && $0.actor == "sso" }.count == 2)
            }
        }
    }

    @Test("Settings: checked before they are stored, the secret never shown, off again on request")
    func settings() async throws {
        try await TestNetwork.run(.sqlite, testClock: true) { network in
            let clock = try #require(network.clock)
            try await TestOpenIDProvider.run(clock: { clock.now() }) { provider in
                let http = RawHTTP(baseURL: network.url)
                http.expectRefusal(try await http.send(.GET, "/v1/admin/sso", token: network.adminToken), .ssoOff)
                let noSecret = SetSSO(issuer: provider.issuer, clientId: provider.clientID)
                http.expectRefusal(try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: noSecret), .badRequest)
                // An issuer that does not answer: 400, nothing stored.
                let unreachable = SetSSO(issuer: "http://127.0.0.1:1", clientId: "c", clientSecret: "s")
                http.expectRefusal(
                    try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: unreachable), .badRequest)
                let plainHTTP = SetSSO(issuer: "http://idp.example", clientId: "c", clientSecret: "s")
                http.expectRefusal(try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: plainHTTP), .badRequest)
                let unknownGroup = SetSSO(
                    issuer: provider.issuer, clientId: "c", clientSecret: "s",
                    groupMap: [SSOGroupMapping(value: "x", group: try #require(SecurityGroupName("nowhere")))])
                http.expectRefusal(try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: unknownGroup), .unknownGroup)
                let noOpenID = SetSSO(issuer: provider.issuer, clientId: "c", clientSecret: "s", scopes: ["email"])
                http.expectRefusal(try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: noOpenID), .badRequest)
                http.expectRefusal(try await http.send(.GET, "/v1/admin/sso", token: network.adminToken), .ssoOff)

                try await Self.configure(network, provider)
                let shown = try await http.send(.GET, "/v1/admin/sso", token: network.adminToken)
                #expect(shown.status == 200 && !String(decoding: shown.body, as: UTF8.self).contains(provider.clientSecret))
                // user_claim email needs the organisation's email domains.
                http.expectRefusal(
                    try await http.send(.PUT, "/v1/admin/sso", token: network.adminToken, json: SetSSO(userClaim: "email")), .badRequest)
                // A change keeps what it leaves out, the secret included.
                let changed = try await network.admin.setSSO(SetSSO(userClaim: "email", emailDomains: ["Corp.example"]))
                #expect(changed.clientSecretSet && changed.userClaim == "email" && changed.issuer == provider.issuer)
                #expect(changed.emailDomains == ["corp.example"])
                // O6: an address of another domain, an unverified one, or one whose verification is not said, names nobody.
                for claims in [
                    ["sub": "s-1", "email": "erin@evil.example", "email_verified": "true"],
                    ["sub": "s-2", "email": "erin@corp.example", "email_verified": "false"],
                    ["sub": "s-3", "email": "erin@corp.example"],
                    ["sub": "s-4", "email": "\u{212A}im@corp.example", "email_verified": "true"],
                ] {
                    provider.signIn(as: claims)
                    await Self.expectRefused(.ssoFailed, network, Comment(rawValue: claims["email"] ?? ""))
                    clock.advance(by: 3600)  // past the failed sign-in backoff (A1)
                }
                provider.signIn(as: ["sub": "s-erin", "email": "Erin@corp.example", "email_verified": "true"])
                _ = try await Self.signIn(network)
                #expect(try await network.admin.users().map(\.name.value) == ["erin"])

                try await network.admin.removeSSO()
                http.expectRefusal(try await http.send(.GET, "/v1/admin/sso", token: network.adminToken), .ssoOff)
                http.expectRefusal(try await http.send(.DELETE, "/v1/admin/sso", token: network.adminToken), .ssoOff)
                http.expectRefusal(try await http.send(.GET, "/v1/admin/sso"), .unauthenticated)
            }
        }
    }
}
