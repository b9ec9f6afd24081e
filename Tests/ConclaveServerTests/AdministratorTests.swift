import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import NIOHTTP1
import Testing

@testable import ConclaveServer

/// Named administrators and API tokens with roles (rules R1–R7,
/// docs/server.md#administrators), over the admin API and the console's
/// forms (no browser here: ConsoleBrowserTests drives Chromium).
@Suite(.serialized, .timeLimit(.minutes(5)))
struct AdministratorTests {
    /// One admin API route: its method, its path in the OpenAPI document,
    /// the path and body a test sends, and the roles that may use it.
    struct Route: Sendable, CustomStringConvertible {
        var method: HTTPMethod
        var template: String
        var path: String
        var body: String?
        var roles: Set<AdminRole>
        var description: String { "\(method) \(path)" }

        init(_ method: HTTPMethod, _ template: String, _ roles: Set<AdminRole>, path: String? = nil, body: String? = nil) {
            self.method = method
            self.template = template
            self.path = path ?? template
            self.body = body
            self.roles = roles
        }
    }

    static let everyone: Set<AdminRole> = [.auditor, .helpdesk, .admin, .owner]
    static let auditing: Set<AdminRole> = [.auditor, .admin, .owner]
    static let support: Set<AdminRole> = [.helpdesk, .admin, .owner]
    static let managing: Set<AdminRole> = [.admin, .owner]
    static let owner: Set<AdminRole> = [.owner]

    /// Every admin API route, and who may use it, as issue 17 defines the
    /// roles (the test checks this table covers the OpenAPI document).
    static let routes: [Route] = [
        Route(.GET, "/v1/admin/network", everyone),
        Route(.GET, "/v1/admin/whoami", everyone),
        Route(.GET, "/v1/admin/users", everyone),
        Route(.GET, "/v1/admin/users/{name}/devices", everyone, path: "/v1/admin/users/nobody/devices"),
        Route(.GET, "/v1/admin/groups", everyone),
        Route(.GET, "/v1/admin/audit", auditing),
        Route(.POST, "/v1/admin/users/{name}/suspend", support, path: "/v1/admin/users/nobody/suspend"),
        Route(.POST, "/v1/admin/users/{name}/unsuspend", support, path: "/v1/admin/users/nobody/unsuspend"),
        Route(.POST, "/v1/admin/users/{name}/reset-devices", support, path: "/v1/admin/users/nobody/reset-devices"),
        Route(.PATCH, "/v1/admin/users/{name}", support, path: "/v1/admin/users/nobody", body: #"{"password":"a new password"}"#),
        Route(.PATCH, "/v1/admin/users/{name}", managing, path: "/v1/admin/users/nobody", body: #"{"group":"default"}"#),
        Route(.PATCH, "/v1/admin/users/{name}", managing, path: "/v1/admin/users/nobody", body: #"{"sso_unlink":true}"#),
        Route(.POST, "/v1/admin/users", managing, body: "{}"),
        Route(.DELETE, "/v1/admin/users/{name}", managing, path: "/v1/admin/users/nobody"),
        Route(.POST, "/v1/admin/groups", managing, body: "{}"),
        Route(.PATCH, "/v1/admin/groups/{group}", managing, path: "/v1/admin/groups/nogroup", body: "{}"),
        Route(.DELETE, "/v1/admin/groups/{group}", managing, path: "/v1/admin/groups/nogroup"),
        Route(.GET, "/v1/admin/federation", managing),
        Route(.POST, "/v1/admin/federation/peers", owner, body: "{}"),
        Route(.DELETE, "/v1/admin/federation/peers/{domain}", owner, path: "/v1/admin/federation/peers/nowhere.example"),
        Route(.PUT, "/v1/admin/federation/mode", owner, body: "{}"),
        Route(.GET, "/v1/admin/transparency", managing),
        Route(.POST, "/v1/admin/transparency/witness", managing),
        Route(.PUT, "/v1/admin/transparency", owner, body: "{}"),
        Route(.GET, "/v1/admin/sso", owner),
        Route(.PUT, "/v1/admin/sso", owner, body: "{}"),
        Route(.DELETE, "/v1/admin/sso", owner),
        Route(.GET, "/v1/admin/scim/tokens", owner),
        Route(.POST, "/v1/admin/scim/tokens", owner),
        Route(.DELETE, "/v1/admin/scim/tokens/{id}", owner, path: "/v1/admin/scim/tokens/none"),
        Route(.GET, "/v1/admin/administrators", owner),
        Route(.POST, "/v1/admin/administrators", owner, body: "{}"),
        Route(.PATCH, "/v1/admin/administrators/{name}", owner, path: "/v1/admin/administrators/nobody", body: "{}"),
        Route(.DELETE, "/v1/admin/administrators/{name}", owner, path: "/v1/admin/administrators/nobody"),
        Route(.GET, "/v1/admin/tokens", owner),
        Route(.POST, "/v1/admin/tokens", owner, body: "{}"),
        Route(.DELETE, "/v1/admin/tokens/{name}", owner, path: "/v1/admin/tokens/nobody"),
    ]

    @Test("R1: each role reaches exactly its routes; the table covers every admin route of the OpenAPI document")
    func roleMatrix() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            var tokens: [AdminRole: String] = [:]
            for role in AdminRole.allCases {
                tokens[role] = try await network.admin.createAdminToken(try #require(AdminName("script-\(role.rawValue)")), role: role)
                    .token
            }
            for route in Self.routes {
                let anonymous = try await http.send(route.method, route.path, raw: route.body.map { Array($0.utf8) })
                http.expectRefusal(anonymous, .unauthenticated)
                for role in AdminRole.allCases {
                    let answer = try await http.send(route.method, route.path, token: tokens[role], raw: route.body.map { Array($0.utf8) })
                    if route.roles.contains(role) {
                        #expect(answer.status != 403 && answer.status != 401, "\(role) on \(route): \(answer.status)")
                    } else {
                        http.expectRefusal(answer, .forbidden)
                    }
                }
            }
            // Every admin route of the API description is in the table.
            let document = try await http.send(.GET, "/openapi.json")
            let paths = try #require((try JSONSerialization.jsonObject(with: document.body) as? [String: Any])?["paths"] as? [String: Any])
            let covered = Set(Self.routes.map { "\($0.method.rawValue) \($0.template)" })
            for (path, item) in paths where path.hasPrefix("/v1/admin") {
                for method in (item as? [String: Any] ?? [:]).keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                    #expect(covered.contains("\(method.uppercased()) \(path)"), "no role test for \(method.uppercased()) \(path)")
                }
            }
        }
    }

    @Test("R2: the audit log names who acted: token, token:NAME, admin:NAME; a revoked token stops at once")
    func auditNames() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let created = try await network.admin.createAdminToken(try #require(AdminName("provisioner")), role: .admin)
            #expect(created.info.createdBy == "token")
            let script = AdminClient(server: network.url, token: created.token)
            #expect(try await script.whoami() == AdminIdentity(actor: "token:provisioner", role: .admin))
            _ = try await script.addUser(try #require(UserName("dana")), password: network.password, group: nil)
            await expectRefused(.forbidden) { _ = try await script.createAdminToken(try #require(AdminName("more")), role: .owner) }
            try await network.admin.revokeAdminToken(created.info.name)
            await expectRefused(.unauthenticated) { _ = try await script.users() }
            let audit = try await network.admin.audit()
            #expect(audit.contains { $0.actor == "token:provisioner" && $0.action == "user.create" && $0.target == "user:dana" })
            #expect(audit.contains { $0.actor == "token" && $0.action == "admin_token.create" && $0.target == "token:provisioner" })
            #expect(audit.contains { $0.actor == "token" && $0.action == "admin_token.revoke" })
            // The token itself is in no entry and no listing.
            #expect(!audit.contains { ($0.after ?? "").contains(created.token) })
            #expect(try await network.admin.adminTokens().isEmpty)
        }
    }

    @Test(
        "Administrators: created, changed, removed; names unique, passwords of 12 or more, secrets shown once", arguments: Backend.allCases)
    func administrators(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            let name = try #require(AdminName("ops"))
            let created = try await admin.addAdministrator(
                CreateAdministrator(name: name, role: .helpdesk, password: "twelve chars", totp: true))
            #expect(created.administrator.role == .helpdesk && created.administrator.totp)
            let secret = try #require(created.totpSecret)
            #expect(TOTP(base32Secret: secret) != nil)
            #expect(created.totpURI?.hasPrefix("otpauth://totp/") == true)
            await expectRefused(.conflict) {
                _ = try await admin.addAdministrator(CreateAdministrator(name: name, role: .owner, password: "another password"))
            }
            await expectRefused(.badRequest) {
                _ = try await admin.addAdministrator(
                    CreateAdministrator(name: try #require(AdminName("short")), role: .owner, password: "eleven char"))
            }
            let listed = try await admin.administrators()
            #expect(listed.map(\.name) == [name] && listed.first?.totp == true)
            let changed = try await admin.updateAdministrator(name, AdministratorChange(role: .auditor, totp: false))
            #expect(changed.administrator.role == .auditor && !changed.administrator.totp && changed.totpSecret == nil)
            try await admin.removeAdministrator(name)
            #expect(try await admin.administrators().isEmpty)
            await expectRefused(.notFound) { try await admin.removeAdministrator(name) }
            let actions = try await admin.audit().filter { $0.target == "admin:ops" }.map(\.action)
            #expect(actions == ["admin.create", "admin.update", "admin.remove"])
            // Never a hash or a secret in the log.
            #expect(try await !admin.audit().contains { ($0.after ?? "").contains(secret) || ($0.after ?? "").contains("scrypt") })
        }
    }

    @Test("R3–R5: console sign-in with an authenticator, each code once; wrong answers alike; limits; sessions end")
    func consoleSignIn() async throws {
        try await TestNetwork.run(.sqlite, testClock: true) { network in
            let clock = try #require(network.clock)
            let name = try #require(AdminName("root"))
            let created = try await network.admin.addAdministrator(
                CreateAdministrator(name: name, role: .owner, password: "root password!", totp: true))
            let secret = try #require(created.totpSecret)
            let totp = try #require(TOTP(base32Secret: secret))
            let console = ConsoleClient(baseURL: network.url)

            // Unsigned: every page sends to the sign-in page.
            #expect(try await console.get("/admin/users").location == "/admin/login")
            // Without the code, with a wrong code, with a wrong password: the same refusal.
            for (password, code) in [("root password!", ""), ("root password!", "000000"), ("wrong password", totp.code(at: clock.now()))] {
                let refused = try await console.signIn("root", password: password, code: code)
                #expect(refused.status == 401 && refused.html.contains("wrong name, password or authenticator code"))
            }
            clock.advance(by: 2)  // past the backoff after three failures (A1)
            let code = totp.code(at: clock.now())
            let signedIn = try await console.signIn("root", password: "root password!", code: code)
            #expect(signedIn.status == 303 && signedIn.location == "/admin/", "\(signedIn.status) \(signedIn.html)")
            let cookie = try #require(signedIn.setCookies.first { $0.hasPrefix("conclave_console=") })
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"))
            #expect(!cookie.contains("Secure"))  // plain HTTP here; see `secureBehindProxy`
            let dashboard = try await console.get("/admin/")
            #expect(dashboard.status == 200 && dashboard.html.contains("root") && dashboard.html.contains("owner"))
            for header in ["Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"] {
                #expect(dashboard.headers.first(name: header) != nil, "missing \(header)")
            }
            #expect(dashboard.headers.first(name: "Content-Security-Policy")?.contains("default-src 'none'") == true)
            #expect(!dashboard.html.contains("<script"))

            // The same code again, from another browser: refused (used once).
            let other = ConsoleClient(baseURL: network.url)
            #expect(try await other.signIn("root", password: "root password!", code: code).status == 401)
            // The next code (30 s later) works there.
            clock.advance(by: 30)
            #expect(try await other.signIn("root", password: "root password!", code: totp.code(at: clock.now())).status == 303)

            // A new password signs every session out.
            _ = try await network.admin.updateAdministrator(name, AdministratorChange(password: "root password 2"))
            #expect(try await console.get("/admin/").location == "/admin/login")
            #expect(try await other.get("/admin/").location == "/admin/login")

            // Failed sign-ins are limited per address and name, like users' (A1): then 429, even for the right answer.
            let limited = ConsoleClient(baseURL: network.url)
            var statuses: [Int] = []
            for _ in 0..<12 { statuses.append(try await limited.signIn("root", password: "guess", code: "123456").status) }
            #expect(statuses.contains(429))
            let late = try await limited.signIn("root", password: "root password 2", code: totp.code(at: clock.now()))
            #expect(late.status == 429)
        }
    }

    @Test("R6: a console form without the session's CSRF token, or from a role without the right, changes nothing (403)")
    func consoleForgery() async throws {
        try await TestNetwork.run(.sqlite) { network in
            for (admin, role) in [("helen", AdminRole.helpdesk), ("otto", .owner)] {
                _ = try await network.admin.addAdministrator(
                    CreateAdministrator(name: try #require(AdminName(admin)), role: role, password: "a long password"))
            }
            try await network.users("alice")
            let owner = ConsoleClient(baseURL: network.url)
            #expect(try await owner.signIn("otto", password: "a long password").status == 303)
            _ = try await owner.get("/admin/users/alice")
            // A cross-site POST: the browser sends the cookie (were it not SameSite=Strict), but not the token.
            let forged = try await owner.post("/admin/users/alice/suspend", csrf: false, headers: [("Origin", "https://evil.example")])
            #expect(forged.status == 403)
            let wrongToken = try await owner.post("/admin/users/alice/suspend", [("csrf", "not-the-token")], csrf: false)
            #expect(wrongToken.status == 403)
            #expect(try await network.admin.users().first?.suspended == false)
            // With the token, it works.
            #expect(try await owner.post("/admin/users/alice/suspend").location == "/admin/users/alice?done=suspended")
            #expect(try await network.admin.users().first?.suspended == true)

            // helpdesk: no federation page, no owner action, even with a valid token for its own session.
            let helpdesk = ConsoleClient(baseURL: network.url)
            #expect(try await helpdesk.signIn("helen", password: "a long password").status == 303)
            let home = try await helpdesk.get("/admin/")
            #expect(!home.html.contains("href=\"/admin/federation\"") && !home.html.contains("href=\"/admin/audit\""))
            #expect(try await helpdesk.get("/admin/federation").status == 403)
            #expect(try await helpdesk.get("/admin/audit").status == 403)
            #expect(try await helpdesk.post("/admin/federation/mode", [("mode", "open")]).status == 403)
            #expect(try await helpdesk.post("/admin/users/alice/delete").status == 403)
            #expect(try await helpdesk.post("/admin/groups", [("name", "sneaky")]).status == 403)
            #expect(try await network.admin.federation().mode != .open)
            #expect(try await network.admin.users().count == 1)
            #expect(try await !network.admin.groups().contains { $0.policy.name.value == "sneaky" })
            // What helpdesk may do, it does, under its own name.
            #expect(try await helpdesk.post("/admin/users/alice/unsuspend").status == 303)
            #expect(try await network.admin.audit().contains { $0.actor == "admin:helen" && $0.action == "user.unsuspend" })
            // A role taken away counts at once, in the session already open.
            _ = try await network.admin.updateAdministrator(try #require(AdminName("helen")), AdministratorChange(role: .auditor))
            #expect(try await helpdesk.post("/admin/users/alice/suspend").status == 403)
            // Sign-out ends the session on the server, and only with the CSRF token.
            #expect(try await helpdesk.post("/admin/logout", csrf: false).status == 403)
            #expect(try await helpdesk.get("/admin/").status == 200)
            let session = try #require(await helpdesk.cookie("conclave_console"))
            #expect(try await helpdesk.post("/admin/logout").location == "/admin/login")
            await helpdesk.setCookie("conclave_console", session)
            #expect(try await helpdesk.get("/admin/").location == "/admin/login")
        }
    }

    /// Every console page and action, and who may use it (the same roles as the API's routes).
    static let consoleRoutes: [(method: String, path: String, roles: Set<AdminRole>)] = [
        ("GET", "/admin/", everyone), ("GET", "/admin/users", everyone), ("GET", "/admin/users/alice", everyone),
        ("GET", "/admin/groups", everyone), ("GET", "/admin/groups/default", everyone), ("GET", "/admin/settings", everyone),
        ("GET", "/admin/audit", auditing), ("GET", "/admin/federation", managing),
        ("GET", "/admin/users/alice/reset-devices", support), ("GET", "/admin/users/alice/delete", managing),
        ("GET", "/admin/groups/default/delete", managing), ("GET", "/admin/federation/peers/nowhere.example/remove", owner),
        ("POST", "/admin/users/nobody/suspend", support), ("POST", "/admin/users/nobody/unsuspend", support),
        ("POST", "/admin/users/nobody/password", support), ("POST", "/admin/users/nobody/reset-devices", support),
        ("POST", "/admin/users", managing), ("POST", "/admin/users/nobody/group", managing),
        ("POST", "/admin/users/nobody/delete", managing),
        ("POST", "/admin/groups", managing), ("POST", "/admin/groups/nogroup", managing),
        ("POST", "/admin/groups/nogroup/delete", managing),
        ("POST", "/admin/federation/mode", owner), ("POST", "/admin/federation/peers", owner),
        ("POST", "/admin/federation/peers/nowhere.example/remove", owner),
    ]

    @Test("R1 in the console: each role reaches exactly its pages and actions")
    func consoleRoleMatrix() async throws {
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("alice")
            for role in AdminRole.allCases {
                let name = "console-\(role.rawValue)"
                _ = try await network.admin.addAdministrator(
                    CreateAdministrator(name: try #require(AdminName(name)), role: role, password: "a long password"))
                let console = ConsoleClient(baseURL: network.url)
                #expect(try await console.signIn(name, password: "a long password").status == 303)
                _ = try await console.get("/admin/")
                for route in Self.consoleRoutes {
                    let page = route.method == "GET" ? try await console.get(route.path) : try await console.post(route.path)
                    if route.roles.contains(role) {
                        #expect(
                            page.status != 403 && page.location != "/admin/login",
                            "\(role) on \(route.method) \(route.path): \(page.status)")
                    } else {
                        #expect(page.status == 403, "\(role) on \(route.method) \(route.path): \(page.status)")
                    }
                }
            }
            // Nothing the refused ones tried happened; what was allowed failed on its missing target.
            #expect(try await network.admin.users().map(\.name.value) == ["alice"])
            #expect(try await network.admin.federation().peers.isEmpty)
        }
    }

    @Test("Console forms give the CLI's validation messages and change nothing when refused")
    func consoleValidation() async throws {
        try await TestNetwork.run(.sqlite) { network in
            _ = try await network.admin.addAdministrator(
                CreateAdministrator(name: try #require(AdminName("ann")), role: .admin, password: "a long password"))
            let console = ConsoleClient(baseURL: network.url)
            #expect(try await console.signIn("ann", password: "a long password").status == 303)
            _ = try await console.get("/admin/groups")
            #expect(try await console.post("/admin/groups", [("name", "staff")]).location == "/admin/groups/staff?done=group-added")
            let shown = try await console.get("/admin/groups/staff").field("version") ?? ""
            let bad = try await console.post(
                "/admin/groups/staff",
                [("version", shown), ("may_message", "all"), ("ttl_max", "forever"), ("files", "on"), ("max_file_size", "10M")])
            #expect(bad.status == 400 && bad.html.contains("ttl-max takes a duration such as 30s, 15m, 2h, 7d (at most ten years), or off"))
            let unchanged = try #require(try await network.admin.groups().first { $0.policy.name.value == "staff" })
            #expect(unchanged.policy.messageLifetimeMax == 0)
            let saved = try await console.post(
                "/admin/groups/staff",
                [
                    ("version", shown), ("may_message", "staff"), ("federate", "none"), ("ttl_max", "7d"), ("bor_max", "off"),
                    ("files", "off"),
                    ("max_file_size", "1M"),
                ])
            #expect(saved.location == "/admin/groups/staff?done=group-saved")
            let policy = try #require(try await network.admin.groups().first { $0.policy.name.value == "staff" }).policy
            #expect(policy.mayMessage == .only([try #require(SecurityGroupName("staff"))]) && policy.federation == .noNetworks)
            #expect(policy.messageLifetimeMax == 604_800 && !policy.files && policy.maxFileSize == 1 << 20)
            // The page shows what was saved, as typed.
            let page = try await console.get("/admin/groups/staff")
            #expect(page.html.contains("value=\"7d\"") && page.html.contains("value=\"1M\""))
            // Another administrator changes the policy meanwhile: this page's form no longer saves (409), nothing is undone.
            _ = try await network.admin.updateGroup(try #require(SecurityGroupName("staff")), SecurityGroupChange(files: true))
            let stale = try await console.post("/admin/groups/staff", [("version", page.field("version") ?? ""), ("ttl_max", "1d")])
            #expect(stale.status == 409 && stale.html.contains("was changed since the page was shown"))
            let afterStale = try #require(try await network.admin.groups().first { $0.policy.name.value == "staff" }).policy
            #expect(afterStale.files && afterStale.messageLifetimeMax == 604_800)
            // A user with a short password: the API's message, no account.
            let short = try await console.post("/admin/users", [("name", "bob"), ("password", "short"), ("group", "staff")])
            #expect(short.status == 400 && short.html.contains("a password has 8 to 1024 characters"))
            #expect(try await network.admin.users().isEmpty)
            // The audit log, filtered, and verified: intact, then broken where someone with the database altered it.
            let filtered = try await console.get("/admin/audit?actor=admin:ann&action=group.")
            #expect(filtered.html.contains("group.create") && filtered.html.contains("group.update"))
            #expect(!filtered.html.contains("admin.sign_in"))
            #expect(try await console.get("/admin/audit?verify=1").html.contains("intact"))
            try await network.store.database.transaction { connection in
                try await connection.execute("UPDATE audit_log SET target = 'group:other' WHERE seq = 2")
            }
            #expect(try await console.get("/admin/audit?verify=1").html.contains("BROKEN at entry 2"))
            #expect(try await console.get("/admin/audit?since=yesterday").status == 400)
            // Markup in what an administrator types comes back escaped.
            let search = try await console.get("/admin/users?q=%3Cscript%3Ealert(1)%3C/script%3E")
            #expect(!search.html.contains("<script>") && search.html.contains("&lt;script&gt;"))
        }
    }

    @Test("Cookies are Secure when a trusted proxy says the browser came over https, and only then")
    func secureBehindProxy() async throws {
        for trusted in [true, false] {
            let proxies: Set<String> = trusted ? ["127.0.0.1"] : []
            let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.trustedProxies = proxies }
            try await TestNetwork.run(.sqlite, configure: configure) { network in
                let console = ConsoleClient(baseURL: network.url)
                let login = try await console.get("/admin/login", headers: [("X-Forwarded-Proto", "https")])
                #expect(!login.setCookies.isEmpty)
                #expect(login.setCookies.allSatisfy { $0.contains("Secure") == trusted && $0.contains("HttpOnly") })
            }
        }
    }
}
