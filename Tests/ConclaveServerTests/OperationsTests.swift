@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import Logging
import Testing

/// What an operator reads and relies on: metrics, readiness, the access
/// log, the API keeping to its description (docs/operations.md).
@Suite struct OperationsTests {
    @Test("/metrics counts requests by route template, messages, deliveries and audit entries, behind the admin token")
    func metrics() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            http.expectRefusal(try await http.send(.GET, "/metrics"), .unauthenticated)
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            _ = try await alice.send("hello", to: try await alice.directConversation(with: network.address("bob")).id)
            #expect(texts(try await bob.receive()) == ["hello"])

            let answer = try await http.send(.GET, "/metrics", token: network.adminToken)
            #expect(answer.status == 200)
            #expect(answer.headers.first(name: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = String(decoding: answer.body, as: UTF8.self)
            let samples = Self.samples(text)
            #expect(samples["conclave_messages_accepted_total"] == 1)
            #expect((samples["conclave_messages_delivered_total"] ?? 0) >= 1)
            #expect(samples["conclave_audit_appends_total"] == 4)  // two users created, two identity keys published
            #expect(samples["conclave_inbox_depth"] != nil)
            #expect(samples[#"conclave_http_requests_total{method="POST",route="/v1/conversations/{id}/messages",status="201"}"#] == 1)
            #expect(samples[#"conclave_http_requests_total{method="GET",route="/metrics",status="401"}"#] == 1)
            #expect((samples["conclave_db_transaction_duration_seconds_count"] ?? 0) > 0)
            #expect(text.contains("conclave_http_request_duration_seconds_bucket"))
            // Route templates only: no user name, conversation id or token is a label.
            #expect(!text.contains("alice") && !text.contains("bob"))
            #expect(!text.contains(network.adminToken))
        }
    }

    @Test("/readyz answers once the schema is migrated; /healthz always")
    func readiness() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            #expect(try await http.send(.GET, "/healthz").status == 200)
            let ready = try await http.send(.GET, "/readyz")
            #expect(ready.status == 200)
            #expect(String(decoding: ready.body, as: UTF8.self).contains("ready"))
            // A schema this server does not know (another process migrating, or a newer one) is not ready.
            let database = network.store.database
            try await database.transaction { try await $0.execute("UPDATE schema_version SET version = version + 1") }
            http.expectRefusal(try await http.send(.GET, "/readyz"), .notReady)
            try await database.transaction { try await $0.execute("UPDATE schema_version SET version = version - 1") }
            #expect(try await http.send(.GET, "/readyz").status == 200)
        }
    }

    @Test("A wrong method on a documented path is 405 with Allow; an unknown path is 404")
    func methodNotAllowed() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            let wrong = try await http.send(.DELETE, "/healthz")
            http.expectRefusal(wrong, .methodNotAllowed)
            #expect(wrong.headers.first(name: "Allow") == "GET")
            let users = try await http.send(.PUT, "/v1/admin/users", token: network.adminToken)
            http.expectRefusal(users, .methodNotAllowed)
            #expect(users.headers.first(name: "Allow") == "GET, POST")
            let user = try await http.send(.GET, "/v1/admin/users/alice", token: network.adminToken)
            #expect(user.status == 405)
            #expect(user.headers.first(name: "Allow")?.contains("PATCH") == true)
            http.expectRefusal(try await http.send(.GET, "/v1/nothing-here"), .notFound)
            http.expectRefusal(try await http.send(.GET, "/v1/admin/users/alice/extra/segments"), .notFound)
        }
    }

    @Test("A request that is not HTTP is answered 400 and its connection closed; path parameters are percent-decoded")
    func malformedRequests() async throws {
        try await TestNetwork.run(.sqlite) { network in
            for request in [
                "GET /healthz HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", "GARBAGE\r\n\r\n", "GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
            ] {
                let socket = try RawSocket(url: network.url)
                try socket.send(request)
                let answer = try await withDeadline(.seconds(10), "the answer to a malformed request") { await socket.readUntilClosed() }
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
                #expect(answer.contains("bad_request"))
            }
            try await network.users("bob")
            let http = RawHTTP(baseURL: network.url)
            let devices = try await http.send(.GET, "/v1/admin/users/b%6Fb/devices", token: network.adminToken)
            #expect(devices.status == 200)
            http.expectRefusal(try await http.send(.GET, "/v1/admin/users/b%ZZb/devices", token: network.adminToken), .badRequest)
            // /v1/events is for WebSocket upgrades: a plain GET is told so (after its token is checked).
            http.expectRefusal(try await http.send(.GET, "/v1/events"), .unauthenticated)
        }
    }

    @Test("Request bodies keep to the schema: unknown properties and nulls are refused, with no change")
    func strictBodies() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            try await network.users("alice")
            let alice = try await network.device("alice")
            let token = try #require(await alice.sessionTokenForTesting)
            let extra = try await http.send(.POST, "/v1/inbox/ack", token: token, raw: Array(#"{"up_to": 0, "extra": 1}"#.utf8))
            http.expectRefusal(extra, .badRequest)
            #expect(extra.error?.message.contains("extra") == true)
            #expect(try await http.send(.POST, "/v1/inbox/ack", token: token, raw: Array(#"{"up_to": 0}"#.utf8)).status == 200)

            let null = try await http.send(.PATCH, "/v1/admin/users/alice", token: network.adminToken, raw: Array(#"{"group": null}"#.utf8))
            http.expectRefusal(null, .badRequest)
            #expect(null.error?.message.contains("null") == true)
            let nested = try await http.send(
                .POST, "/v1/admin/groups", token: network.adminToken,
                raw: Array(#"{"name": "staff", "settings": {"files": true, "colour": "red"}}"#.utf8))
            http.expectRefusal(nested, .badRequest)
            #expect(try await network.admin.groups().map(\.policy.name.value) == ["default"])
        }
    }

    @Test("The served OpenAPI document names the public URL as its server")
    func servers() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.publicURL = "https://chat.acme.example" }
        try await TestNetwork.run(.sqlite, configure: configure) { network in
            let served = try await RawHTTP(baseURL: network.url).send(.GET, "/openapi.json")
            let document = try #require(try JSONSerialization.jsonObject(with: served.body) as? [String: Any])
            let servers = try #require(document["servers"] as? [[String: Any]])
            #expect(servers.first?["url"] as? String == "https://chat.acme.example")
            let wellKnown = try await RawHTTP(baseURL: network.url).send(.GET, "/.well-known/conclave").decode(WellKnown.self)
            #expect(wellKnown.federationEndpoint == "https://chat.acme.example/v1/federation")
        }
    }

    @Test("The access log names the route template, status and latency, never a path's user name or a token")
    func accessLog() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("mallory")
            let http = RawHTTP(baseURL: network.url)
            _ = try await http.send(.GET, "/v1/admin/users/mallory/devices", token: network.adminToken)
            let lines = network.log.split(separator: "\n").filter { $0.contains("log=access") }
            let line = try #require(lines.first { $0.contains("route=/v1/admin/users/{name}/devices") })
            #expect(line.contains("status=200") && line.contains("method=GET") && line.contains("latency_ms="))
            #expect(!network.log.contains(network.adminToken))
            #expect(!lines.contains { $0.contains("mallory") })
            // The admin action is logged with its actor and target.
            #expect(
                network.log.contains("admin action") && network.log.contains("action=user.create") && network.log.contains("actor=token"))
        }
    }

    /// `name{labels} value` lines of the Prometheus text format.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}

/// The operator's settings: flags over environment over conclave.json.
@Suite struct RunSettingsTests {
    let file: DataDirectory.Settings

    init() throws {
        let json = #"""
            {"network": "acme.example", "listen": "127.0.0.1:8080", "admin_token_sha256": "", "session_lifetime_seconds": 60,
             "public_url": "https://file.acme.example", "log_level": "warning"}
            """#
        file = try ConclaveJSON.decoder().decode(DataDirectory.Settings.self, from: Data(json.utf8))
    }

    @Test("A flag wins over the environment, which wins over conclave.json, which wins over the default")
    func precedence() throws {
        let fromFile = try RunSettings.resolve(flags: [:], environment: [:], file: file)
        #expect(fromFile.publicURL == "https://file.acme.example")
        #expect(fromFile.logLevel == Logger.Level.warning)
        #expect(fromFile.logFormat == RunSettings.LogFormat.text)
        #expect(fromFile.listen == ("127.0.0.1", 8080))
        let environment = [
            "CONCLAVE_PUBLIC_URL": "https://env.acme.example/", "CONCLAVE_LOG_FORMAT": "json", "CONCLAVE_LISTEN": "0.0.0.0:9000",
        ]
        let fromEnvironment = try RunSettings.resolve(flags: [:], environment: environment, file: file)
        #expect(fromEnvironment.publicURL == "https://env.acme.example")
        #expect(fromEnvironment.logFormat == RunSettings.LogFormat.json)
        #expect(fromEnvironment.listen == ("0.0.0.0", 9000))
        let fromFlags = try RunSettings.resolve(
            flags: ["public_url": "https://flag.acme.example", "log_level": "debug"], environment: environment, file: file)
        #expect(fromFlags.publicURL == "https://flag.acme.example")
        #expect(fromFlags.logLevel == Logger.Level.debug)
        #expect(fromFlags.logFormat == RunSettings.LogFormat.json)
        // An empty variable counts as unset: conclave.json's value applies.
        #expect(try RunSettings.resolve(flags: [:], environment: ["CONCLAVE_LOG_LEVEL": ""], file: file).logLevel == Logger.Level.warning)
    }

    @Test("Invalid settings are refused, naming the setting and where it may come from")
    func invalid() throws {
        func problem(_ flags: [String: String], _ environment: [String: String] = [:]) -> String? {
            do throws(RunSettings.Invalid) {
                _ = try RunSettings.resolve(flags: flags, environment: environment, file: file)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(problem(["log_level": "bogus"])?.contains("--log-level, CONCLAVE_LOG_LEVEL") == true)
        #expect(problem([:], ["CONCLAVE_LOG_FORMAT": "xml"])?.contains("text or json") == true)
        #expect(problem(["public_url": "ftp://x"])?.contains("http(s)://host") == true)
        #expect(problem(["public_url": "https://chat.acme.example/path"]) != nil)
        #expect(problem(["tls_certificate": "/etc/cert.pem"])?.contains("both") == true)
        #expect(problem(["listen": "nowhere"])?.contains("HOST:PORT") == true)
        #expect(problem(["metrics_listen": "127.0.0.1:8080"])?.contains("differ") == true)
        #expect(problem(["tls_certificate": "/c.pem", "tls_key": "/k.pem", "metrics_listen": "127.0.0.1:9100"]) == nil)
    }
}
