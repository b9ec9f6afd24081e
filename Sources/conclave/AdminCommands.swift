import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "The server's URL, e.g. http://127.0.0.1:8080 (default: $CONCLAVE_SERVER).") var server: String?
    @Option(name: .long, help: "A file holding the administrator token, DIR/admin.token (default: $CONCLAVE_ADMIN_TOKEN_FILE).")
    var tokenFile: String?

    /// The flag, else the environment variable (an empty one counts as unset).
    private static func setting(_ flag: String?, _ variable: String) -> String? {
        flag ?? ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    func validate() throws {
        guard Self.setting(server, "CONCLAVE_SERVER") != nil else {
            throw ValidationError("Missing --server URL (or set CONCLAVE_SERVER).")
        }
        guard Self.setting(tokenFile, "CONCLAVE_ADMIN_TOKEN_FILE") != nil else {
            throw ValidationError("Missing --token-file FILE (or set CONCLAVE_ADMIN_TOKEN_FILE).")
        }
    }

    func client() throws -> AdminClient {
        guard let server = Self.setting(server, "CONCLAVE_SERVER"), let tokenFile = Self.setting(tokenFile, "CONCLAVE_ADMIN_TOKEN_FILE")
        else {
            throw ValidationError("Missing --server and --token-file (or CONCLAVE_SERVER and CONCLAVE_ADMIN_TOKEN_FILE).")
        }
        return AdminClient(server: server, token: try readSecretFile(tokenFile, what: "administrator token"))
    }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a network: users and their devices, security groups, federation peers, the audit log, administrators.",
        subcommands: [
            AdminUserCommand.self, AdminGroupCommand.self, AdminFederationCommand.self, AdminAuditCommand.self, AdminNetworkCommand.self,
            AdminSSOCommand.self, AdminSCIMCommand.self, AdminAdministratorCommand.self, AdminTokenCommand.self,
            AdminTransparencyCommand.self,
        ]
    )
}

struct AdminNetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "network", abstract: "The network.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the network's domain, URL and key fingerprint.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let network = try await admin.client().network()
            if json {
                try printJSON(network)
            } else {
                print("domain: \(network.domain)\nurl: \(network.url)\nkey_fingerprint: \(network.keyFingerprint)")
                print("storage: \(network.storage)\nusers: \(network.users)")
            }
        }
    }
}

struct AdminTransparencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transparency", abstract: "The key-transparency log: its head, its witnesses, and the peers this network witnesses.",
        subcommands: [Show.self, Quorum.self, Witness.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the newest tree head, its cosignatures, the peers witnessed and any evidence of a split view.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let status = try await admin.client().transparency()
            if json { return try printJSON(status) }
            AdminTransparencyCommand.print(status)
        }
    }

    struct Quorum: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set how many witness cosignatures clients require of a tree head (0: none, for a network without peers).",
            discussion: "Clients keep the highest quorum they were told: lowering it later does not lower theirs.")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "0 to 16.") var quorum: Int

        func run() async throws { AdminTransparencyCommand.print(try await admin.client().setTransparencyQuorum(quorum)) }
    }

    struct Witness: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Witness every peer's log now (the server does every ten minutes).")
        @OptionGroup var admin: AdminOptions

        func run() async throws {
            for peer in try await admin.client().witnessPeers() { AdminTransparencyCommand.print(peer) }
        }
    }

    static func print(_ status: TransparencyStatus) {
        if let head = try? status.head.signed().head {
            Swift.print("head: \(head.size) entries, root \(Hex.encode(head.root))")
        }
        let witnesses = status.head.witnesses.map(\.witness.value).sorted()
        Swift.print(
            "cosigned by: \(witnesses.isEmpty ? "none" : witnesses.joined(separator: ", ")); quorum required: \(status.head.quorum)")
        for peer in status.peers { print(peer) }
        for evidence in status.evidence {
            Swift.print("EVIDENCE: \(evidence.network) showed \(evidence.reason) (found \(EventPrinter.time(evidence.foundAt)))")
        }
    }

    static func print(_ peer: WitnessedPeer) {
        let seen = peer.size.map { "\($0) entries" } ?? "no head yet"
        Swift.print("witnessing \(peer.network): \(seen)\(peer.problem.map { "; last attempt failed: \($0)" } ?? "")")
    }
}

struct AdminUserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Create, list, move, suspend, unsuspend and delete users; list and reset their devices.",
        subcommands: [Add.self, SetGroup.self, List.self, Suspend.self, Unsuspend.self, Delete.self, Devices.self, ResetDevices.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The user name (a-z 0-9 . _ -).") var name: String
        @Option(name: .long, help: "The security group (default: default).") var group: String?
        @Option(name: .long, help: "A file holding the initial password (8+ characters).") var passwordFile: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let user = UserName(name) else { throw ValidationError("not a user name: use a-z 0-9 . _ -, at most 64") }
            let created = try await admin.client().addUser(user, password: try readSecretFile(passwordFile, what: "password"), group: group)
            if json { try printJSON(created) } else { print("created \(created.address) (group \(created.group))") }
        }
    }

    struct SetGroup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Move a user to another security group, set a new password, or unlink single sign-on.",
            discussion: """
                --group takes effect at once: the server proposes removing the user from conversations the new group \
                may not share, and tighter conversation settings where the new group's bounds require them. \
                --password-file sets a new password (audited as user.password_reset): whoever holds it can sign in new \
                devices, which stay waiting until one of the user's own devices approves them. --sso-unlink lets another \
                identity at the provider (a re-created directory account) sign in as this user (user.sso_unlink).
                """)
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        @Option(name: .long, help: "The security group.") var group: String?
        @Option(name: .long, help: "A file holding the new password (8+ characters).") var passwordFile: String?
        @Flag(name: .long, help: "Unbind the account from its identity-provider subject.") var ssoUnlink = false

        func run() async throws {
            guard group != nil || passwordFile != nil || ssoUnlink else {
                throw ValidationError("give --group, --password-file or --sso-unlink")
            }
            let target = try group.map { text in
                guard let target = SecurityGroupName(text) else { throw ValidationError("not a security group name: \(text)") }
                return target
            }
            let password = try passwordFile.map { try readSecretFile($0, what: "password") }
            let user = try await admin.client().updateUser(
                try userName(name), UserChange(group: target, password: password, ssoUnlink: ssoUnlink ? true : nil))
            if password != nil { print("set a new password for \(user.address)") }
            if ssoUnlink { print("\(user.address) is no longer bound to an identity at the provider") }
            if target != nil { print("\(user.address) is in security group \(user.group)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print one JSON object per line.") var json = false

        func run() async throws {
            for user in try await admin.client().users() {
                if json {
                    try printJSON(user)
                } else {
                    print("\(user.address)\tgroup=\(user.group)\tdevices=\(user.devices)\(user.suspended ? "\tSUSPENDED" : "")")
                }
            }
        }
    }

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Suspend a user: sessions end, delivery stops, devices leave every conversation.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        func run() async throws { print("suspended \(try await admin.client().suspend(try userName(name)).address)") }
    }

    struct Unsuspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a suspension (the user signs in again).")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        func run() async throws { print("unsuspended \(try await admin.client().unsuspend(try userName(name)).address)") }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user and its devices; they leave every conversation.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        func run() async throws {
            try await admin.client().delete(try userName(name))
            print("deleted \(name)")
        }
    }

    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a user's devices.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        @Flag(name: .long, help: "Print one JSON object per line.") var json = false

        func run() async throws {
            let list = try await admin.client().devices(try userName(name))
            for device in list.devices {
                if json {
                    try printJSON(device)
                } else {
                    print("\(list.user)/\(device.deviceId)\t\(device.name)\tcreated \(ConclaveJSON.formatTimestamp(device.createdAt))")
                }
            }
        }
    }

    struct ResetDevices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-devices", abstract: "Delete all of a user's devices; they leave every conversation.")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        func run() async throws { print("removed \(try await admin.client().resetDevices(try userName(name))) devices of \(name)") }
    }
}

func userName(_ text: String) throws -> UserName {
    guard let name = UserName(text) else { throw ValidationError("not a user name: \(text)") }
    return name
}

/// The policy options `group add` and `group set` share; each one given
/// becomes a field of the change.
struct GroupPolicyOptions: ParsableArguments {
    @Option(name: .long, help: "Security groups its members may share conversations with: G1,G2 or all.") var mayMessage: String?
    @Option(name: .long, help: "Networks its members may reach: none, all, or D1,D2.") var federate: String?
    @Option(name: .long, help: "Shortest message lifetime allowed (30s, 15m, 2h, 7d, or off).") var ttlMin: String?
    @Option(name: .long, help: "Longest message lifetime allowed (off: messages may be kept forever).") var ttlMax: String?
    @Option(name: .long, help: "Lifetime of new conversations that name none (off: no expiry).") var ttlDefault: String?
    @Option(name: .long, help: "Longest burn-on-read delay allowed, or off to forbid burn-on-read.") var borMax: String?
    @Option(name: .long, help: "Whether members may share files: on or off.") var files: String?
    @Option(name: .long, help: "Largest file members may share: bytes, or with K, M, G (1024-based).") var maxFileSize: String?
    @Option(
        name: .long,
        help: """
            MLS cipher suites of members' conversations: classical (suite 1 only), pq-preferred (hybrid post-quantum \
            X-Wing when every member's devices support it; the default) or pq-required (post-quantum only).
            """) var cipherSuites: String?

    /// The change these options make, with the console's validation (``PolicyText``).
    func change() throws -> SecurityGroupChange {
        let text = PolicyText(
            mayMessage: mayMessage, federate: federate, ttlMin: ttlMin, ttlMax: ttlMax, ttlDefault: ttlDefault, borMax: borMax,
            files: files, maxFileSize: maxFileSize, cipherSuites: cipherSuites)
        do {
            return try text.change()
        } catch {
            throw ValidationError("--\(error.field) takes \(error.takes)")
        }
    }
}

struct AdminGroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "Security groups: whom members may talk to, message lifetimes, burn-on-read, federation, files.",
        subcommands: [Add.self, SetPolicy.self, List.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a security group.",
            discussion:
                """
                Unset options take the defaults: may message all, federate all, no lifetime bounds, burn-on-read allowed, \
                files on (100M), cipher suites pq-preferred.
                """
        )
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The group's name (a-z 0-9 . _ -).") var name: String
        @OptionGroup var policy: GroupPolicyOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let group = SecurityGroupName(name) else {
                throw ValidationError("not a security group name: use a-z 0-9 . _ -, at most 64")
            }
            let created = try await admin.client().addGroup(group, try policy.change())
            if json {
                try printJSON(created)
            } else {
                print("created security group \(created.policy.name)\n\(AdminGroupCommand.describe(created))")
            }
        }
    }

    struct SetPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a security group's policy.",
            discussion: """
                Takes effect at once: members who may no longer share a conversation are removed from it by the server, \
                and conversation settings outside the new bounds are tightened (members' clients commit both).
                """)
        @OptionGroup var admin: AdminOptions
        @Argument var name: String
        @OptionGroup var policy: GroupPolicyOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let group = SecurityGroupName(name) else { throw ValidationError("not a security group name: \(name)") }
            let change = try policy.change()
            guard change != SecurityGroupChange() else { throw ValidationError("give at least one setting to change") }
            let updated = try await admin.client().updateGroup(group, change)
            if json {
                try printJSON(updated)
            } else {
                print("updated security group \(updated.policy.name)\n\(AdminGroupCommand.describe(updated))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List security groups and their policies.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print one JSON object per line.") var json = false

        func run() async throws {
            for group in try await admin.client().groups() {
                if json {
                    try printJSON(group)
                } else {
                    print("\(group.policy.name) (\(group.members) accounts)\n\(AdminGroupCommand.describe(group))")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a security group (refused while accounts are in it).")
        @OptionGroup var admin: AdminOptions
        @Argument var name: String

        func run() async throws {
            guard let group = SecurityGroupName(name) else { throw ValidationError("not a security group name: \(name)") }
            try await admin.client().deleteGroup(group)
            print("deleted security group \(group)")
        }
    }

    static func describe(_ info: SecurityGroupInfo) -> String {
        let policy = info.policy
        func duration(_ seconds: UInt64, zero: String) -> String { seconds == 0 ? zero : DurationText.format(seconds) }
        return [
            "  may message: \(policy.mayMessage.description)",
            "  federation: \(policy.federation.description)",
            "  message lifetime: min \(duration(policy.messageLifetimeMin, zero: "none")), max \(duration(policy.messageLifetimeMax, zero: "none")), default \(duration(policy.messageLifetimeDefault, zero: "no expiry"))",
            "  burn-on-read: \(policy.burnOnReadMax == 0 ? "off" : "up to " + DurationText.format(policy.burnOnReadMax))",
            "  files: \(policy.files ? "on, up to \(policy.maxFileSize) bytes" : "off")",
            "  cipher suites: \(policy.cipherSuites.rawValue)",
        ].joined(separator: "\n")
    }
}

struct AdminAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List the administrators' audit log, or verify its hash chain and signatures.",
        discussion: """
            --verify fetches the whole log and checks, entry by entry, the sequence, the hash chain and the network key's \
            signature; it reports the first broken entry and exits with status 1 if any. Record the printed head hash: \
            a later log that does not contain it was truncated.
            """)
    @OptionGroup var admin: AdminOptions
    @Flag(name: .long, help: "Print one JSON object per line.") var json = false
    @Option(name: .long, help: "Only entries from this time on: RFC 3339 (2026-11-27T08:00:00Z) or an age (30m, 2h, 7d).") var since:
        String?
    @Flag(name: .long, help: "Check the chain and signatures of the whole log.") var verify = false

    func run() async throws {
        let client = try admin.client()
        if verify {
            let (result, fingerprint) = try await client.verifyAudit()
            if json {
                try printJSON(result)
            } else if let broken = result.brokenAt {
                print("audit log BROKEN at entry \(broken): \(result.problem ?? "")")
            } else {
                print("audit log intact: \(result.entries) entries, head \(result.head)\nsigned by network key \(fingerprint)")
            }
            if !result.isIntact { throw ExitCode(1) }
            return
        }
        var from: Date?
        if let since {
            if let age = DurationText.seconds(since) {
                from = Date().addingTimeInterval(-TimeInterval(age))
            } else if let date = ConclaveJSON.parseTimestamp(since) {
                from = date
            } else {
                throw ValidationError("--since takes an RFC 3339 time or an age such as 2h")
            }
        }
        for entry in try await client.audit(since: from) {
            if json {
                try printAuditJSON(entry)
            } else {
                let change = [entry.before.map { "before \($0)" }, entry.after.map { "after \($0)" }].compactMap { $0 }.joined(
                    separator: " ")
                print(
                    "\(entry.seq)\t\(ConclaveJSON.formatTimestamp(entry.at))\t\(entry.actor)\t\(entry.action)\t\(entry.target)\t\(change)")
            }
        }
    }
}

/// An audit entry as one JSON object, its `before` and `after` states as
/// the JSON objects they are (the API carries them as the exact strings
/// the entry's hash covers; `audit --verify` checks those).
private func printAuditJSON(_ entry: AuditEntry) throws {
    guard var object = try JSONSerialization.jsonObject(with: ConclaveJSON.encoder().encode(entry)) as? [String: Any] else { return }
    for key in ["before", "after"] {
        if let text = object[key] as? String,
            let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        {
            object[key] = value
        }
    }
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

struct AdminFederationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federation",
        abstract: "Other networks this one talks to: pin peers by key fingerprint, choose the federation mode.",
        subcommands: [Add.self, List.self, Remove.self, Mode.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pin a peer network.",
            discussion: """
                FINGERPRINT is what the other administrator's `conclave admin network show` prints as key_fingerprint \
                (sha256:…). If the peer answers now, its published domain and key are checked against what you give.
                """)
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The peer's domain, e.g. globex.example.") var domain: String
        @Option(name: .long, help: "The peer server's URL, e.g. https://chat.globex.example.") var url: String
        @Option(name: .long, help: "The peer's key fingerprint (sha256:…).") var key: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let peer = NetworkDomain(domain) else { throw ValidationError("not a domain: \(domain)") }
            let added = try await admin.client().addPeer(peer, url: url, keyFingerprint: key)
            if json { try printJSON(added) } else { print("pinned \(added.domain) at \(added.url) (\(added.keyFingerprint))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the federation mode and the pinned peers.")
        @OptionGroup var admin: AdminOptions
        @Flag(name: .long, help: "Print JSON: one object with mode and peers.") var json = false

        func run() async throws {
            let state = try await admin.client().federation()
            if json {
                try printJSON(state)
            } else {
                print("federation mode: \(state.mode.rawValue)")
                for peer in state.peers {
                    print("\(peer.domain)\t\(peer.url)\t\(peer.keyFingerprint)\tpinned by \(peer.pinnedBy)")
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unpin a peer network: its requests are refused from now on.")
        @OptionGroup var admin: AdminOptions
        @Argument var domain: String

        func run() async throws {
            guard let peer = NetworkDomain(domain) else { throw ValidationError("not a domain: \(domain)") }
            try await admin.client().removePeer(peer)
            print("removed \(peer)")
        }
    }

    struct Mode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "off: no federation; listed (default): pinned peers only; open: also unlisted networks, pinned on first contact.")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "off, listed or open.") var mode: String

        func run() async throws {
            guard let chosen = FederationMode(rawValue: mode) else { throw ValidationError("the mode is off, listed or open") }
            print("federation mode: \(try await admin.client().setFederationMode(chosen).mode.rawValue)")
        }
    }
}
