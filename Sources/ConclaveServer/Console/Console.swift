import ConclaveProtocol
import ConclaveStorage
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// Where the console is served: with the APIs, on a listener of its own
/// (an internal address the operator chooses), or nowhere.
public enum ConsolePlacement: Sendable, Equatable {
    case mainListener
    case listener(host: String, port: Int)
    case off
}

/// The administrators' web console at `/admin/` (rules R1–R7,
/// docs/admin-guide.md#console): server-rendered pages over the same
/// services as the admin API, for named administrators signed in with a
/// password and, if they set one up, an authenticator code. Each action
/// checks the administrator's role and the form's CSRF token; the audit log
/// records the administrator's name. No page shows message content: the
/// server has none to show.
struct Console: Sendable {
    let api: ConclaveAPI
    let limits: ServerLimits
    let clock: ServerClock
    /// Whether the listener is TLS: the cookies are then `Secure`.
    let tls: Bool
    private let library: MustacheLibrary

    init(api: ConclaveAPI, limits: ServerLimits, clock: ServerClock, tls: Bool) throws {
        self.api = api
        self.limits = limits
        self.clock = clock
        self.tls = tls
        var library = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all { try library.register(text, named: name) }
        self.library = library
    }

    private var administrators: AdministratorService { api.administrators }
    private var domain: String { api.identity.domain.value }

    /// The most audit entries a page shows (the newest).
    static let auditPageSize = 500

    func addRoutes(to router: ConclaveRouter) {
        let admin = router.group("/admin").add(middleware: ConsoleErrorMiddleware())
        admin.get("/static/console.css") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/css; charset=utf-8"
            headers[.cacheControl] = "max-age=3600"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: ConsoleTemplates.stylesheet)))
        }
        addSignInRoutes(admin)
        // The router does not tell `/admin` from `/admin/`: both are the dashboard.
        admin.get("") { request, _ in
            try await page(request, .readDirectory) { session in try await dashboard(session, request) }
        }
        addUserRoutes(admin)
        addGroupRoutes(admin)
        addFederationRoutes(admin)
        admin.get("/audit") { request, _ in
            try await page(request, .readAudit) { session in try await auditPage(session, request) }
        }
        admin.get("/settings") { request, _ in
            try await page(request, .readDirectory) { session in try await settingsPage(session, request) }
        }
    }

    // MARK: Sign-in (R3, R4)

    private struct LoginBody: Sendable {
        var csrf: String
        var network: String
        var name: String
        var error: String?
    }

    private func addSignInRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/login") { request, context in
            if try await session(request) != nil { return ConsoleResponse.redirect(to: "/admin/") }
            return loginPage(request, context, name: "", error: nil)
        }
        admin.post("/login") { request, context in
            let form = try? await ConsoleForm.read(request)
            guard let form, let sent = form["csrf"], let expected = request.cookies[ConsoleResponse.loginCookieName]?.value,
                constantTimeEquals(Array(sent.utf8), Array(expected.utf8))
            else {
                return loginPage(request, context, name: "", error: APIError(.forbidden, "The sign-in form expired: sign in again."))
            }
            let name = form["name"] ?? ""
            do {
                let (cookie, _) = try await administrators.signIn(
                    name: name, password: form.raw("password") ?? "", code: form["code"] ?? "",
                    from: context.clientAddress(of: request, trustedProxies: api.trustedProxies))
                return ConsoleResponse.redirect(
                    to: "/admin/",
                    cookies: [
                        ConsoleResponse.cookie(
                            ConsoleResponse.cookieName, cookie, secure: secure(request, context),
                            maxAge: Int(AdministratorService.sessionLifetime)),
                        ConsoleResponse.cookie(ConsoleResponse.loginCookieName, "", secure: secure(request, context), maxAge: 0),
                    ])
            } catch let error as APIError {
                return loginPage(request, context, name: name, error: error)
            }
        }
        admin.post("/logout") { request, context in
            // Only with the session's CSRF token: another site cannot sign an administrator out either.
            guard let found = try await session(request), let cookie = request.cookies[ConsoleResponse.cookieName]?.value else {
                return ConsoleResponse.redirect(to: "/admin/login")
            }
            guard let form = try? await ConsoleForm.read(request), checkCSRF(form, found) else {
                return errorPage(
                    found, APIError(.forbidden, "this form did not come from the console (no valid CSRF token): nothing was done"))
            }
            try await administrators.signOut(cookie: cookie)
            return ConsoleResponse.redirect(
                to: "/admin/login",
                cookies: [ConsoleResponse.cookie(ConsoleResponse.cookieName, "", secure: secure(request, context), maxAge: 0)])
        }
    }

    private func loginPage(_ request: Request, _ context: ConclaveRequestContext, name: String, error: APIError?) -> Response {
        let csrf = Tokens.random()
        let body = LoginBody(csrf: csrf, network: domain, name: String(name.prefix(64)), error: error?.message)
        var response = ConsoleResponse.html(
            library.render(body, withTemplate: "login") ?? "", status: error?.status ?? .ok,
            cookies: [ConsoleResponse.cookie(ConsoleResponse.loginCookieName, csrf, secure: secure(request, context), maxAge: 3600)])
        if let wait = error?.retryAfter { response.headers[.retryAfter] = String(wait) }
        return response
    }

    /// `Secure` cookies when the listener is TLS, or when a trusted reverse
    /// proxy says the browser reached it over https.
    private func secure(_ request: Request, _ context: ConclaveRequestContext) -> Bool {
        if tls { return true }
        guard let peer = context.remoteAddress?.ipAddress, api.trustedProxies.contains(peer) else { return false }
        return request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
    }

    private func session(_ request: Request) async throws -> AdministratorService.ConsoleSession? {
        try await administrators.session(cookie: request.cookies[ConsoleResponse.cookieName]?.value)
    }

    private func checkCSRF(_ form: ConsoleForm, _ session: AdministratorService.ConsoleSession) -> Bool {
        guard let sent = form["csrf"] else { return false }
        return constantTimeEquals(Array(sent.utf8), Array(session.csrf.utf8))
    }

    // MARK: Pages and actions

    /// A GET page: signed in (else to the sign-in page) with `permission`
    /// (else 403), rendered, or the error page.
    private func page(
        _ request: Request, _ permission: AdminPermission,
        _ build: (AdministratorService.ConsoleSession) async throws -> Response
    ) async throws -> Response {
        guard let session = try await session(request) else { return ConsoleResponse.redirect(to: "/admin/login") }
        do {
            try session.principal.require(permission)
            return try await build(session)
        } catch let error as APIError {
            return errorPage(session, error)
        }
    }

    /// A form's action: signed in, the form's CSRF token matching the
    /// session's (403 otherwise, nothing done), `permission` (403), then the
    /// action; an error renders `failed` with the message.
    private func action(
        _ request: Request, _ permission: AdminPermission,
        _ run: (AdministratorService.ConsoleSession, ConsoleForm) async throws -> Response,
        failed: ((AdministratorService.ConsoleSession, ConsoleForm, APIError) async throws -> Response)? = nil
    ) async throws -> Response {
        guard let session = try await session(request) else { return ConsoleResponse.redirect(to: "/admin/login") }
        let form: ConsoleForm
        do {
            form = try await ConsoleForm.read(request)
        } catch let error as APIError {
            return errorPage(session, error)
        }
        guard checkCSRF(form, session) else {
            return errorPage(
                session, APIError(.forbidden, "this form did not come from the console (no valid CSRF token): nothing was done"))
        }
        do {
            try session.principal.require(permission)
            return try await run(session, form)
        } catch let error as APIError {
            guard error.code != .forbidden, let failed else { return errorPage(session, error) }
            do {
                return try await failed(session, form, error)
            } catch let pageError as APIError {
                return errorPage(session, pageError)  // the page itself is gone (a deleted user, say)
            }
        }
    }

    private struct ErrorBody: Sendable {
        var status: Int
        var message: String
    }

    private func errorPage(_ session: AdministratorService.ConsoleSession, _ error: APIError) -> Response {
        render(
            "error", session, title: "Error", ErrorBody(status: Int(error.status.code), message: error.message), status: error.status)
    }

    private func chrome(_ session: AdministratorService.ConsoleSession, title: String, notice: String?, error: String?) -> ConsoleChrome {
        let principal = session.principal
        return ConsoleChrome(
            title: title, admin: session.administrator.name.value, role: principal.role.rawValue, csrf: session.csrf, network: domain,
            notice: notice, error: error,
            nav: .init(
                users: principal.may(.readDirectory), groups: principal.may(.readDirectory), federation: principal.may(.readFederation),
                audit: principal.may(.readAudit), settings: principal.may(.readDirectory)))
    }

    private func render<Body: Sendable>(
        _ template: String, _ session: AdministratorService.ConsoleSession, title: String, _ body: Body, notice: String? = nil,
        error: String? = nil, status: HTTPResponse.Status = .ok
    ) -> Response {
        let page = ConsolePage(chrome: chrome(session, title: title, notice: notice, error: error), body: body)
        return ConsoleResponse.html(library.render(page, withTemplate: template) ?? "", status: status)
    }

    /// The fixed notice a redirect names (`?done=…`): never text from the URL.
    private static func notice(_ request: Request) -> String? {
        guard let done = request.uri.queryParameters["done"] else { return nil }
        return notices[String(done)]
    }

    private static let notices = [
        "user-added": "The user was added.",
        "suspended": "The account was suspended: its devices are signed out and leave their conversations.",
        "unsuspended": "The account was unsuspended.", "moved": "The user was moved; the new group's policy applies at once.",
        "password": "The password was set. New devices signed in with it wait for approval by the user's own devices.",
        "devices-reset": "The user's devices were removed and signed out.", "user-deleted": "The account was deleted.",
        "group-added": "The security group was created.", "group-saved": "The policy was saved and applies at once.",
        "group-deleted": "The security group was deleted.", "mode": "The federation mode was changed.", "peer-added": "The peer was added.",
        "peer-removed": "The peer was removed; its users left the conversations hosted here.",
    ]

    // MARK: Dashboard

    private struct DashboardBody: Sendable {
        struct Federation: Sendable {
            var mode: String
            var peers: Int
        }
        var users: Int
        var suspended: Int
        var devices: Int
        var groups: Int
        var storage: String
        var health: String
        var version: String
        var federation: Federation?
        var recent: [AuditRow]?
    }

    private func dashboard(_ session: AdministratorService.ConsoleSession, _ request: Request) async throws -> Response {
        let users = try await api.admin.users().users
        let principal = session.principal
        var federation: DashboardBody.Federation?
        if principal.may(.readFederation) {
            let state = try await api.directory.state()
            federation = .init(mode: state.mode.rawValue, peers: state.peers.count)
        }
        var recent: [AuditRow]?
        if principal.may(.readAudit) {
            recent = try await api.policy.auditLog(since: nil).entries.suffix(10).reversed().map(AuditRow.init)
        }
        let opened = await api.ready.opened
        let current = await api.store.isCurrent()
        let ready = opened && current
        let body = DashboardBody(
            users: users.count, suspended: users.filter(\.suspended).count, devices: users.reduce(0) { $0 + $1.devices },
            groups: try await api.policy.securityGroups().groups.count, storage: api.store.database.dialect.rawValue,
            health: ready ? "ready" : "not ready (database or schema)", version: conclaveAPIVersion, federation: federation, recent: recent)
        return render("dashboard", session, title: "Dashboard", body, notice: Self.notice(request))
    }

    // MARK: Users

    private struct UsersBody: Sendable {
        struct Row: Sendable {
            var name: String
            var group: String
            var suspended: Bool
            var devices: Int
            var url: String
        }
        struct Group: Sendable { var name: String }
        var query: String
        var users: [Row]
        var groups: [Group]
        var canManage: Bool
    }

    private struct UserBody: Sendable {
        struct Device: Sendable {
            var id: String
            var status: String
            var created: String
        }
        struct Group: Sendable {
            var name: String
            var selected: Bool
        }
        var name: String
        var group: String
        var suspended: Bool
        var sso: Bool
        var devices: [Device]
        var groups: [Group]
        var canManage: Bool
        var canSupport: Bool
        var base: String
    }

    private struct ConfirmBody: Sendable {
        var question: String
        var detail: String
        var action: String
        var button: String
        var cancel: String
    }

    private func addUserRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/users") { request, _ in
            try await page(request, .readDirectory) { session in
                try await usersPage(session, query: request.uri.queryParameters["q"].map(String.init) ?? "", notice: Self.notice(request))
            }
        }
        admin.post("/users") { request, _ in
            try await action(request, .manage) { session, form in
                guard let name = form["name"].flatMap(UserName.init) else {
                    throw APIError.badRequest("a user name is 1 to 64 of a-z 0-9 . _ - and starts with a letter or digit")
                }
                let body = CreateUser(name: name, password: form.raw("password") ?? "", group: form["group"])
                _ = try await api.admin.createUser(body, actor: session.principal.actor)
                return ConsoleResponse.redirect(to: "/admin/users/\(consolePath(name.value))?done=user-added")
            } failed: { session, _, error in
                try await usersPage(session, query: "", error: error)
            }
        }
        admin.get("/users/:name") { request, context in
            try await page(request, .readDirectory) { session in
                try await userPage(session, try context.userName, notice: Self.notice(request))
            }
        }
        addUserAction(admin, "suspend", .support, done: "suspended") { session, name, _ in
            _ = try await api.admin.setSuspended(name, true, actor: session.principal.actor)
        }
        addUserAction(admin, "unsuspend", .support, done: "unsuspended") { session, name, _ in
            _ = try await api.admin.setSuspended(name, false, actor: session.principal.actor)
        }
        addUserAction(admin, "password", .support, done: "password") { session, name, form in
            _ = try await api.admin.updateUser(name, UserChange(password: form.raw("password") ?? ""), actor: session.principal.actor)
        }
        addUserAction(admin, "group", .manage, done: "moved") { session, name, form in
            guard let group = form["group"].flatMap(SecurityGroupName.init) else { throw APIError.badRequest("choose a security group") }
            _ = try await api.admin.updateUser(name, UserChange(group: group), actor: session.principal.actor)
        }
        addConfirmed(
            admin, "/users/:name/reset-devices", .support, target: .name, question: "Reset the devices of NAME?",
            detail: "Every device of this account is removed and signed out, and leaves its conversations. The user signs in again.",
            button: "Reset devices", cancel: "/admin/users/NAME"
        ) { session, context in
            let name = try context.userName
            _ = try await api.admin.resetDevices(name, actor: session.principal.actor)
            return "/admin/users/\(consolePath(name.value))?done=devices-reset"
        }
        addConfirmed(
            admin, "/users/:name/delete", .manage, target: .name, question: "Delete the account NAME?",
            detail: "The account and its devices are deleted at once and leave every conversation. This cannot be undone.",
            button: "Delete account", cancel: "/admin/users/NAME"
        ) { session, context in
            try await api.admin.deleteUser(try context.userName, actor: session.principal.actor)
            return "/admin/users?done=user-deleted"
        }
    }

    /// A one-form action on a user, back to the user's page.
    private func addUserAction(
        _ admin: RouterGroup<ConclaveRequestContext>, _ verb: String, _ permission: AdminPermission, done: String,
        _ run: @escaping @Sendable (AdministratorService.ConsoleSession, UserName, ConsoleForm) async throws -> Void
    ) {
        admin.post("/users/:name/\(verb)") { request, context in
            let name = try context.userName
            return try await action(request, permission) { session, form in
                try await run(session, name, form)
                return ConsoleResponse.redirect(to: "/admin/users/\(consolePath(name.value))?done=\(done)")
            } failed: { session, _, error in
                try await userPage(session, name, error: error)
            }
        }
    }

    /// What a destructive action's path names: checked before the
    /// confirmation page shows it.
    private enum Target: String {
        case name, group, domain

        func validated(_ text: String) -> String? {
            switch self {
            case .name: UserName(text)?.value
            case .group: SecurityGroupName(text)?.value
            case .domain: NetworkDomain(text)?.value
            }
        }
    }

    /// A destructive action: GET shows the question (`NAME` in it and in
    /// `cancel` is the path's `target`, validated), POST (with the CSRF
    /// token) does it and redirects to where `run` says.
    private func addConfirmed(
        _ admin: RouterGroup<ConclaveRequestContext>, _ path: String, _ permission: AdminPermission, target: Target, question: String,
        detail: String, button: String, cancel: String,
        _ run: @escaping @Sendable (AdministratorService.ConsoleSession, ConclaveRequestContext) async throws -> String
    ) {
        admin.get(RouterPath(path)) { request, context in
            try await page(request, permission) { session in
                guard let value = target.validated(try context.pathParameter(target.rawValue)) else {
                    throw APIError.badRequest("not a valid \(target.rawValue)")
                }
                let body = ConfirmBody(
                    question: question.replacingOccurrences(of: "NAME", with: value), detail: detail,
                    action: "/admin" + path.replacingOccurrences(of: ":" + target.rawValue, with: consolePath(value)), button: button,
                    cancel: cancel.replacingOccurrences(of: "NAME", with: consolePath(value)))
                return render("confirm", session, title: button, body)
            }
        }
        admin.post(RouterPath(path)) { request, context in
            try await action(request, permission) { session, _ in ConsoleResponse.redirect(to: try await run(session, context)) }
        }
    }

    private func usersPage(
        _ session: AdministratorService.ConsoleSession, query: String, notice: String? = nil, error: APIError? = nil
    ) async throws -> Response {
        let needle = query.lowercased().trimmingCharacters(in: .whitespaces)
        let rows = try await api.admin.users().users.filter { needle.isEmpty || $0.name.value.contains(needle) }.map {
            UsersBody.Row(
                name: $0.name.value, group: $0.group, suspended: $0.suspended, devices: $0.devices,
                url: "/admin/users/\(consolePath($0.name.value))")
        }
        let groups = try await api.policy.securityGroups().groups.map { UsersBody.Group(name: $0.policy.name.value) }
        let body = UsersBody(query: String(query.prefix(64)), users: rows, groups: groups, canManage: session.principal.may(.manage))
        return render(
            "users", session, title: "Users", body, notice: notice, error: error?.message, status: error?.status ?? .ok)
    }

    private func userPage(
        _ session: AdministratorService.ConsoleSession, _ name: UserName, notice: String? = nil, error: APIError? = nil
    ) async throws -> Response {
        guard let user = try await api.store.user(named: name) else { throw APIError.notFound("user") }
        let devices = try await api.authentication.deviceList(of: name).devices.map {
            UserBody.Device(
                id: $0.deviceId.description, status: $0.pending == true ? "pending" : "approved",
                created: ConclaveJSON.formatTimestamp($0.createdAt))
        }
        let groups = try await api.policy.securityGroups().groups.map {
            UserBody.Group(name: $0.policy.name.value, selected: $0.policy.name.value == user.securityGroup)
        }
        let body = UserBody(
            name: name.value, group: user.securityGroup, suspended: user.suspended, sso: try await api.store.ssoSubject(of: name) != nil,
            devices: devices, groups: groups, canManage: session.principal.may(.manage), canSupport: session.principal.may(.support),
            base: "/admin/users/\(consolePath(name.value))")
        return render("user", session, title: name.value, body, notice: notice, error: error?.message, status: error?.status ?? .ok)
    }

    // MARK: Security groups

    private struct GroupsBody: Sendable {
        struct Row: Sendable {
            var name: String
            var members: Int
            var mayMessage: String
            var federation: String
            var lifetime: String
            var burnOnRead: String
            var files: String
            var cipherSuites: String
            var url: String
        }
        var groups: [Row]
        var canManage: Bool
    }

    private struct GroupBody: Sendable {
        var version: String
        struct Member: Sendable {
            var name: String
            var url: String
        }
        var name: String
        var base: String
        var canManage: Bool
        var members: [Member]
        var mayMessage: String
        var federate: String
        var ttlMin: String
        var ttlMax: String
        var ttlDefault: String
        var borMax: String
        var filesOn: Bool
        var maxFileSize: String
        var cipherSuites: String
        var suites: [SuiteOption]

        struct SuiteOption: Sendable {
            var value: String
            var selected: Bool
        }
    }

    private func addGroupRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/groups") { request, _ in
            try await page(request, .readDirectory) { session in try await groupsPage(session, notice: Self.notice(request)) }
        }
        admin.post("/groups") { request, _ in
            try await action(request, .manage) { session, form in
                guard let name = form["name"].flatMap(SecurityGroupName.init) else {
                    throw APIError.badRequest("not a security group name: use a-z 0-9 . _ -, at most 64")
                }
                _ = try await api.policy.createGroup(
                    CreateSecurityGroup(name: name, settings: SecurityGroupChange()), actor: session.principal.actor)
                return ConsoleResponse.redirect(to: "/admin/groups/\(consolePath(name.value))?done=group-added")
            } failed: { session, _, error in
                try await groupsPage(session, error: error)
            }
        }
        admin.get("/groups/:group") { request, context in
            try await page(request, .readDirectory) { session in
                try await groupPage(session, try groupName(context), notice: Self.notice(request))
            }
        }
        admin.post("/groups/:group") { request, context in
            let name = try groupName(context)
            return try await action(request, .manage) { session, form in
                guard let policy = try await api.store.securityGroup(name) else { throw APIError.notFound("security group") }
                // The policy as the form showed it: if another administrator changed it since, nothing is saved.
                guard form["version"] == Self.policyVersion(policy) else {
                    throw APIError(
                        .conflict, "this group's policy was changed since the page was shown: here it is now; make your change again")
                }
                // As the CLI: only the settings the administrator changed (a new maximum lifetime alone
                // then moves the default inside it, as `group set --ttl-max` does).
                let text = Self.policyText(form).changes(from: PolicyText(policy))
                let change: SecurityGroupChange
                do {
                    change = try text.change()
                } catch let error as PolicyText.Invalid {
                    throw APIError(.invalidSettings, "\(error.field) takes \(error.takes)")
                }
                let (_, members) = try await api.policy.updateGroup(name, change, actor: session.principal.actor)
                _ = try await api.enforcement.enforce(on: Set(members))
                return ConsoleResponse.redirect(to: "/admin/groups/\(consolePath(name.value))?done=group-saved")
            } failed: { session, form, error in
                try await groupPage(session, name, typed: error.code == .conflict ? nil : Self.policyText(form), error: error)
            }
        }
        addConfirmed(
            admin, "/groups/:group/delete", .manage, target: .group, question: "Delete the security group NAME?",
            detail: "A group that still has members cannot be deleted: move them first.", button: "Delete group",
            cancel: "/admin/groups/NAME"
        ) { session, context in
            try await api.policy.deleteGroup(try groupName(context), actor: session.principal.actor)
            return "/admin/groups?done=group-deleted"
        }
    }

    private func groupName(_ context: ConclaveRequestContext) throws -> SecurityGroupName {
        try context.parameter("group", as: "a security group name", SecurityGroupName.init)
    }

    private func groupsPage(
        _ session: AdministratorService.ConsoleSession, notice: String? = nil, error: APIError? = nil
    ) async throws -> Response {
        let rows = try await api.policy.securityGroups().groups.map { info -> GroupsBody.Row in
            let text = PolicyText(info.policy)
            return GroupsBody.Row(
                name: info.policy.name.value, members: info.members, mayMessage: text.mayMessage ?? "",
                federation: text.federate ?? "",
                lifetime: "min \(text.ttlMin ?? ""), max \(text.ttlMax ?? ""), default \(text.ttlDefault ?? "")",
                burnOnRead: text.borMax == "off" ? "off" : "up to \(text.borMax ?? "")",
                files: info.policy.files ? "on, up to \(text.maxFileSize ?? "")" : "off", cipherSuites: text.cipherSuites ?? "",
                url: "/admin/groups/\(consolePath(info.policy.name.value))")
        }
        let body = GroupsBody(groups: rows, canManage: session.principal.may(.manage))
        return render(
            "groups", session, title: "Security groups", body, notice: notice, error: error?.message, status: error?.status ?? .ok)
    }

    /// A short digest of a group's policy: the policy form carries the one
    /// it showed, so a change made meanwhile by someone else is not undone.
    private static func policyVersion(_ policy: SecurityGroupPolicy) -> String {
        let text = PolicyText(policy)
        let fields = [
            text.mayMessage, text.federate, text.ttlMin, text.ttlMax, text.ttlDefault, text.borMax, text.files, text.maxFileSize,
            text.cipherSuites,
        ]
        let digest = SHA256.hash(data: Array(fields.map { $0 ?? "" }.joined(separator: "\u{0}").utf8))
        return digest.prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// The policy form's fields, as typed.
    private static func policyText(_ form: ConsoleForm) -> PolicyText {
        PolicyText(
            mayMessage: form["may_message"], federate: form["federate"], ttlMin: form["ttl_min"], ttlMax: form["ttl_max"],
            ttlDefault: form["ttl_default"], borMax: form["bor_max"], files: form["files"], maxFileSize: form["max_file_size"],
            cipherSuites: form["cipher_suites"])
    }

    /// A group's page; after a refused change, its form shows what was
    /// `typed` (so nothing typed is lost), the error above it.
    private func groupPage(
        _ session: AdministratorService.ConsoleSession, _ name: SecurityGroupName, typed: PolicyText? = nil, notice: String? = nil,
        error: APIError? = nil
    ) async throws -> Response {
        guard let policy = try await api.store.securityGroup(name) else { throw APIError.notFound("security group") }
        let text = typed ?? PolicyText(policy)
        let members = try await api.store.users(inGroup: name).map {
            GroupBody.Member(name: $0.value, url: "/admin/users/\(consolePath($0.value))")
        }
        let body = GroupBody(
            version: Self.policyVersion(policy), name: name.value, base: "/admin/groups/\(consolePath(name.value))",
            canManage: session.principal.may(.manage), members: members,
            mayMessage: text.mayMessage ?? "", federate: text.federate ?? "", ttlMin: text.ttlMin ?? "", ttlMax: text.ttlMax ?? "",
            ttlDefault: text.ttlDefault ?? "", borMax: text.borMax ?? "", filesOn: (text.files ?? "on") == "on",
            maxFileSize: text.maxFileSize ?? "", cipherSuites: text.cipherSuites ?? "",
            suites: CipherSuitePolicy.allCases.map { .init(value: $0.rawValue, selected: $0.rawValue == text.cipherSuites) })
        return render("group", session, title: name.value, body, notice: notice, error: error?.message, status: error?.status ?? .ok)
    }

    // MARK: Federation

    private struct FederationBody: Sendable {
        struct Mode: Sendable {
            var value: String
            var selected: Bool
        }
        struct Peer: Sendable {
            var domain: String
            var url: String
            var fingerprint: String
            var removeURL: String
        }
        var mode: String
        var modes: [Mode]
        var peers: [Peer]
        var canManage: Bool
        var ownDomain: String
        var ownFingerprint: String
    }

    private func addFederationRoutes(_ admin: RouterGroup<ConclaveRequestContext>) {
        admin.get("/federation") { request, _ in
            try await page(request, .readFederation) { session in try await federationPage(session, notice: Self.notice(request)) }
        }
        admin.post("/federation/mode") { request, _ in
            try await action(request, .own) { session, form in
                guard let mode = form["mode"].flatMap(FederationMode.init(rawValue:)) else {
                    throw APIError.badRequest("the mode is off, listed or open")
                }
                _ = try await api.directory.setMode(FederationModeChange(mode: mode), actor: session.principal.actor)
                return ConsoleResponse.redirect(to: "/admin/federation?done=mode")
            } failed: { session, _, error in
                try await federationPage(session, error: error)
            }
        }
        admin.post("/federation/peers") { request, _ in
            try await action(request, .own) { session, form in
                guard let domain = form["domain"].flatMap(NetworkDomain.init) else {
                    throw APIError.badRequest("the peer's domain is a DNS name such as globex.example")
                }
                let peer = AddFederationPeer(domain: domain, url: form["url"] ?? "", keyFingerprint: form["fingerprint"] ?? "")
                _ = try await api.directory.pin(peer, actor: session.principal.actor)
                return ConsoleResponse.redirect(to: "/admin/federation?done=peer-added")
            } failed: { session, _, error in
                try await federationPage(session, error: error)
            }
        }
        addConfirmed(
            admin, "/federation/peers/:domain/remove", .own, target: .domain, question: "Remove the peer network NAME?",
            detail: "Its users leave every conversation hosted here, and this network stops talking to it.", button: "Remove peer",
            cancel: "/admin/federation"
        ) { session, context in
            try await api.gateway.removePeer(try peerDomain(context), actor: session.principal.actor)
            return "/admin/federation?done=peer-removed"
        }
    }

    private func peerDomain(_ context: ConclaveRequestContext) throws -> NetworkDomain {
        try context.parameter("domain", as: "a domain", NetworkDomain.init)
    }

    private func federationPage(
        _ session: AdministratorService.ConsoleSession, notice: String? = nil, error: APIError? = nil
    ) async throws -> Response {
        let state = try await api.directory.state()
        let body = FederationBody(
            mode: state.mode.rawValue, modes: FederationMode.allCases.map { .init(value: $0.rawValue, selected: $0 == state.mode) },
            peers: state.peers.map {
                .init(
                    domain: $0.domain.value, url: $0.url, fingerprint: $0.keyFingerprint,
                    removeURL: "/admin/federation/peers/\(consolePath($0.domain.value))/remove")
            }, canManage: session.principal.may(.own), ownDomain: domain, ownFingerprint: api.identity.publicKey.fingerprint)
        return render("federation", session, title: "Federation", body, notice: notice, error: error?.message, status: error?.status ?? .ok)
    }

    // MARK: Audit log

    struct AuditRow: Sendable {
        var seq: Int64
        var at: String
        var actor: String
        var action: String
        var target: String
        var change: String

        init(_ entry: AuditEntry) {
            seq = entry.seq
            at = ConclaveJSON.formatTimestamp(entry.at)
            actor = entry.actor
            action = entry.action
            target = entry.target
            change = [entry.before.map { "before \($0)" }, entry.after.map { "after \($0)" }].compactMap { $0 }.joined(separator: " ")
        }
    }

    private struct AuditBody: Sendable {
        struct Verification: Sendable {
            var intact: Bool
            var entries: Int
            var head: String
            var brokenAt: Int64?
            var problem: String?
        }
        var since: String
        var actor: String
        var action: String
        var entries: [AuditRow]
        var truncated: Bool
        var verification: Verification?
    }

    private func auditPage(_ session: AdministratorService.ConsoleSession, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let (sinceText, actor, action) = (
            query["since"].map(String.init) ?? "", query["actor"].map(String.init) ?? "", query["action"].map(String.init) ?? ""
        )
        var since: Date?
        var error: String?
        if !sinceText.isEmpty {
            if let age = DurationText.seconds(sinceText) {
                since = clock.now.addingTimeInterval(-TimeInterval(age))
            } else if let date = ConclaveJSON.parseTimestamp(sinceText) {
                since = date
            } else {
                error = "since takes an RFC 3339 time (2026-11-27T08:00:00Z) or an age such as 2h"
            }
        }
        var verification: AuditBody.Verification?
        if query["verify"] == "1" {
            let result = AuditVerification(checking: try await api.policy.auditLog(since: nil).entries, key: api.identity.publicKey)
            verification = .init(
                intact: result.isIntact, entries: result.entries, head: result.head, brokenAt: result.brokenAt, problem: result.problem)
        }
        let matching = try await api.policy.auditLog(since: since).entries.filter {
            (actor.isEmpty || $0.actor == actor || $0.actor.hasPrefix(actor + ":")) && (action.isEmpty || $0.action.hasPrefix(action))
        }
        let body = AuditBody(
            since: String(sinceText.prefix(64)), actor: String(actor.prefix(64)), action: String(action.prefix(64)),
            entries: matching.suffix(Self.auditPageSize).reversed().map(AuditRow.init), truncated: matching.count > Self.auditPageSize,
            verification: verification)
        return render("audit", session, title: "Audit log", body, error: error, status: error == nil ? .ok : .badRequest)
    }

    // MARK: Settings

    private struct SettingsBody: Sendable {
        struct Network: Sendable {
            var domain: String
            var url: String
            var fingerprint: String
            var storage: String
            var apiVersion: String
        }
        struct SSO: Sendable {
            var configured: Bool
            var issuer: String
            var passwords: Bool
        }
        struct Limit: Sendable {
            var name: String
            var value: String
        }
        struct Administrator: Sendable {
            var name: String
            var role: String
            var totp: Bool
        }
        struct Token: Sendable {
            var name: String
            var role: String
            var created: String
            var createdBy: String
        }
        var network: Network
        /// Owners only, as `GET /v1/admin/sso`.
        var sso: SSO?
        var limits: [Limit]
        var administrators: [Administrator]?
        var tokens: [Token]?
    }

    private func settingsPage(_ session: AdministratorService.ConsoleSession, _ request: Request) async throws -> Response {
        let network = try await api.admin.network()
        let sso = try await SingleSignOn.stored(in: api.store)
        var limitRows: [SettingsBody.Limit] = []
        if let data = try? ConclaveJSON.encoder().encode(limits),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            limitRows = object.keys.sorted().map { SettingsBody.Limit(name: $0, value: "\(object[$0] ?? "")") }
        }
        var administrators: [SettingsBody.Administrator]?
        var tokens: [SettingsBody.Token]?
        if session.principal.may(.own) {
            administrators = try await api.administrators.administrators().administrators.map {
                .init(name: $0.name.value, role: $0.role.rawValue, totp: $0.totp)
            }
            tokens = try await api.administrators.tokens().tokens.map {
                .init(
                    name: $0.name.value, role: $0.role.rawValue, created: ConclaveJSON.formatTimestamp($0.createdAt),
                    createdBy: $0.createdBy)
            }
        }
        let body = SettingsBody(
            network: .init(
                domain: network.domain.value, url: network.url, fingerprint: network.keyFingerprint, storage: network.storage,
                apiVersion: network.apiVersion),
            sso: session.principal.may(.own)
                ? .init(configured: sso != nil, issuer: sso?.issuer ?? "", passwords: sso?.passwordsAllowed ?? true) : nil,
            limits: limitRows,
            administrators: administrators, tokens: tokens)
        return render("settings", session, title: "Settings", body, notice: Self.notice(request))
    }
}
