import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

extension AdminRole: ExpressibleByArgument {}

/// `conclave admin admin …`: named administrators (they sign in to the console).
struct AdminAdministratorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Named administrators, who sign in to the web console (SERVER/admin/) with a password and an authenticator.",
        discussion: """
            Roles: owner (everything, including administrators and federation), admin (users, security groups, policies), \
            helpdesk (suspend and unsuspend, reset devices and passwords, read users), auditor (read-only: users, groups, \
            audit log). Needs an owner's token.
            """,
        subcommands: [Add.self, List.self, Set.self, Remove.self])

    static func printCreated(_ created: AdministratorCreated, json: Bool) throws {
        if json { return try printJSON(created) }
        let admin = created.administrator
        print("administrator \(admin.name)\trole=\(admin.role.rawValue)\tauthenticator=\(admin.totp ? "on" : "off")")
        if let secret = created.totpSecret, let uri = created.totpURI {
            print("authenticator secret: \(secret)\nauthenticator URI: \(uri)")
            print("add it to an authenticator app now (TOTP, SHA-1, 6 digits, 30 s); it is not shown again")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a named administrator.")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The administrator's name (a-z 0-9 . _ -).") var name: String
        @Option(name: .long, help: "owner, admin, helpdesk or auditor.") var role: AdminRole
        @Option(name: .long, help: "A file holding the password (12 to 1,024 characters).") var passwordFile: String
        @Flag(name: .long, help: "Set up an authenticator (TOTP): prints its secret and otpauth:// URI once.") var totp = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let name = AdminName(name) else { throw ValidationError("not an administrator name: use a-z 0-9 . _ -, at most 64") }
            let body = CreateAdministrator(
                name: name, role: role, password: try readSecretFile(passwordFile, what: "password"), totp: totp ? true : nil)
            try AdminAdministratorCommand.printCreated(try await admin.client().addAdministrator(body), json: json)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the named administrators.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let list = try await admin.client().administrators()
            if json { return try printJSON(AdministratorList(administrators: list)) }
            for item in list {
                print(
                    "\(item.name)\trole=\(item.role.rawValue)\tauthenticator=\(item.totp ? "on" : "off")"
                        + "\tcreated=\(ConclaveJSON.formatTimestamp(item.createdAt))")
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change an administrator's role, password or authenticator.",
            discussion: "A new password or authenticator signs the administrator's console sessions out; a new role counts at once.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        @Option(name: .long, help: "owner, admin, helpdesk or auditor.") var role: AdminRole?
        @Option(name: .long, help: "A file holding a new password.") var passwordFile: String?
        @Option(name: .long, help: "on: a new authenticator secret (printed once); off: none.") var totp: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let name = AdminName(name) else { throw ValidationError("not an administrator name: \(name)") }
            if let totp, !["on", "off"].contains(totp) { throw ValidationError("--totp takes on or off") }
            let change = AdministratorChange(
                role: role, password: try passwordFile.map { try readSecretFile($0, what: "password") }, totp: totp.map { $0 == "on" })
            guard change != AdministratorChange() else { throw ValidationError("give --role, --password-file or --totp") }
            try AdminAdministratorCommand.printCreated(try await admin.client().updateAdministrator(name, change), json: json)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an administrator; their console sessions end at once.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String

        func run() async throws {
            guard let name = AdminName(name) else { throw ValidationError("not an administrator name: \(name)") }
            try await admin.client().removeAdministrator(name)
            print("removed administrator \(name)")
        }
    }
}

/// `conclave admin token …`: named API tokens with a role, for scripts.
struct AdminTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Named API tokens with a role, for scripts (the audit log names them token:NAME). Needs an owner's token.",
        subcommands: [Create.self, List.self, Revoke.self, WhoAmI.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token (shown once, stored hashed).")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The token's name (a-z 0-9 . _ -).") var name: String
        @Option(name: .long, help: "owner, admin, helpdesk or auditor.") var role: AdminRole
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let name = AdminName(name) else { throw ValidationError("not a token name: use a-z 0-9 . _ -, at most 64") }
            let created = try await admin.client().createAdminToken(name, role: role)
            if json { return try printJSON(created) }
            print("token \(created.info.name)\trole=\(created.info.role.rawValue)\n\(created.token)")
            print("keep it in a file for --token-file; it is not shown again")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the API tokens (names, roles, creation times).")
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            for token in try await admin.client().adminTokens() {
                print(
                    "\(token.name)\trole=\(token.role.rawValue)\tcreated=\(ConclaveJSON.formatTimestamp(token.createdAt))\tby=\(token.createdBy)"
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token at once.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String

        func run() async throws {
            guard let name = AdminName(name) else { throw ValidationError("not a token name: \(name)") }
            try await admin.client().revokeAdminToken(name)
            print("revoked token \(name)")
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whoami", abstract: "Show who the token in --token-file is (as the audit log names it) and its role.")
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            let identity = try await admin.client().whoami()
            print("\(identity.actor)\trole=\(identity.role.rawValue)")
        }
    }
}
