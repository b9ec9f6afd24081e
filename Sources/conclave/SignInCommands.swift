import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct AdminSSOCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sso",
        abstract: "Single sign-on with an OpenID Connect provider: show, set, remove.",
        discussion: """
            The server is the provider's confidential client: register it there with redirect URIs on the loopback \\
            address (http://127.0.0.1, any port: RFC 8252), then give the issuer, the client id and a file holding the \\
            client secret. Users then sign in with `conclave login --server URL --sso`. See docs/admin-guide.md#single-sign-on.
            """,
        subcommands: [Show.self, Set.self, Remove.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the single sign-on settings (never the secret).")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let settings = try await admin.client().ssoSettings()
            if json { try printJSON(settings) } else { printSettings(settings) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set single sign-on (options left out keep their value).",
            discussion: """
                The server fetches ISSUER/.well-known/openid-configuration first and refuses settings whose provider \\
                does not answer. --group-map VALUE=GROUP (repeatable) puts users whose --group-claim holds VALUE in \\
                security group GROUP at every sign-in; the first mapping that matches wins. --create-accounts on creates \\
                an account at a user's first sign-in; --passwords off refuses password sign-in for every user.
                """)
        @OptionGroup var admin: AdminOptions
        @Option(name: .long, help: "The provider's issuer URL (https; http only on loopback).") var issuer: String?
        @Option(name: .long, help: "The client id registered at the provider.") var clientId: String?
        @Option(name: .long, help: "A file holding the client secret (required the first time).") var clientSecretFile: String?
        @Option(name: .long, help: "Scopes, space-separated (default: \"openid email profile\").") var scopes: String?
        @Option(name: .long, help: "The claim that gives the user name: preferred_username (default), email, or another.")
        var userClaim: String?
        @Option(name: .long, help: "With --user-claim email: a domain whose verified addresses are users here (repeatable).")
        var emailDomain: [String] = []
        @Option(name: .long, help: "A claim listing the user's groups at the provider (\"\" for none).") var groupClaim: String?
        @Option(name: .long, help: "VALUE=GROUP: a group-claim value and the security group it means (repeatable).")
        var groupMap: [String] = []
        @Flag(name: .long, help: "Clear every group mapping.") var clearGroupMap = false
        @Option(name: .long, help: "on|off: create accounts at first sign-in (default off).") var createAccounts: OnOff?
        @Option(name: .long, help: "on|off: whether users may still sign in with passwords (default on).") var passwords: OnOff?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            var mappings: [SSOGroupMapping]?
            if clearGroupMap || !groupMap.isEmpty {
                mappings = try groupMap.map { text in
                    guard let equals = text.lastIndex(of: "="), let group = SecurityGroupName(String(text[text.index(after: equals)...])),
                        equals != text.startIndex
                    else { throw ValidationError("--group-map takes VALUE=GROUP, e.g. engineering=staff") }
                    return SSOGroupMapping(value: String(text[..<equals]), group: group)
                }
            }
            let change = SetSSO(
                issuer: issuer, clientId: clientId,
                clientSecret: try clientSecretFile.map { try readSecretFile($0, what: "client secret") },
                scopes: scopes.map { $0.split(separator: " ").map(String.init) }, userClaim: userClaim,
                emailDomains: emailDomain.isEmpty ? nil : emailDomain, groupClaim: groupClaim,
                groupMap: mappings, createAccounts: createAccounts.map { $0 == .on }, passwordsAllowed: passwords.map { $0 == .on })
            let settings = try await admin.client().setSSO(change)
            if json { try printJSON(settings) } else { printSettings(settings) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Turn single sign-on off: users sign in with passwords again.")
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            try await admin.client().removeSSO()
            print("single sign-on is off: users sign in with passwords")
        }
    }

    enum OnOff: String, ExpressibleByArgument, CaseIterable {
        case on, off
    }
}

private func printSettings(_ settings: SSOSettings) {
    print("issuer: \(settings.issuer)\nclient_id: \(settings.clientId)\nclient_secret: \(settings.clientSecretSet ? "set" : "missing")")
    print("scopes: \(settings.scopes.joined(separator: " "))\nuser_claim: \(settings.userClaim)")
    if !settings.emailDomains.isEmpty { print("email_domains: \(settings.emailDomains.joined(separator: " "))") }
    print("group_claim: \(settings.groupClaim ?? "(none)")")
    for mapping in settings.groupMap { print("group_map: \(mapping.value) -> \(mapping.group)") }
    print("create_accounts: \(settings.createAccounts ? "on" : "off")\npasswords: \(settings.passwordsAllowed ? "on" : "off")")
}

struct AdminSCIMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scim",
        abstract: "The directory's SCIM 2.0 access (SERVER/scim/v2): its bearer tokens.",
        subcommands: [Token.self])

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list and revoke the directory's bearer tokens.", subcommands: [Create.self, List.self, Revoke.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a token for the identity provider's SCIM client (shown once, stored hashed).")
            @OptionGroup var admin: AdminOptions
            @Flag(name: .long, help: "Print JSON: id, token, created_at.") var json = false

            func run() async throws {
                let created = try await admin.client().createSCIMToken()
                if json {
                    try printJSON(created)
                } else {
                    print("id: \(created.id)\ntoken: \(created.token)")
                    print("give the token to the directory's SCIM client with the base URL SERVER/scim/v2; it is not shown again")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the tokens (ids and creation times).")
            @OptionGroup var admin: AdminOptions

            func run() async throws {
                for token in try await admin.client().scimTokens() {
                    print("\(token.id)\tcreated=\(ConclaveJSON.formatTimestamp(token.createdAt))")
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a token at once.")
            @OptionGroup var admin: AdminOptions
            @Argument(help: "The token's id (scim-…).") var id: String

            func run() async throws {
                try await admin.client().revokeSCIMToken(id)
                print("revoked \(id)")
            }
        }
    }
}
