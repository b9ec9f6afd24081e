import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "The server's URL, e.g. http://127.0.0.1:8080.") var server: String
    @Option(name: .long, help: "A file holding the administrator token (DIR/admin.token).") var tokenFile: String

    func client() throws -> AdminClient {
        AdminClient(server: server, token: try readSecretFile(tokenFile, what: "administrator token"))
    }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a network: its users and their devices.",
        subcommands: [AdminUserCommand.self, AdminNetworkCommand.self]
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

struct AdminUserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Create, list, suspend, unsuspend and delete users; list and reset their devices.",
        subcommands: [Add.self, List.self, Suspend.self, Unsuspend.self, Delete.self, Devices.self, ResetDevices.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var admin: AdminOptions
        @Argument(help: "The user name (a-z 0-9 . _ -).") var name: String
        @Option(name: .long, help: "The security group.") var group: String?
        @Option(name: .long, help: "A file holding the initial password (8+ characters).") var passwordFile: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            guard let user = UserName(name) else { throw ValidationError("not a user name: use a-z 0-9 . _ -, at most 64") }
            let created = try await admin.client().addUser(user, password: try readSecretFile(passwordFile, what: "password"), group: group)
            if json { try printJSON(created) } else { print("created \(created.address) (group \(created.group))") }
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
