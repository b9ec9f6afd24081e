import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Sign in and register this profile as a new device of the user.")
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "The server's URL.") var server: String
    @Option(name: .long, help: "NAME@DOMAIN.") var user: String
    @Option(name: .long, help: "A file holding the password.") var passwordFile: String
    @Option(name: .long, help: "A name for this device.") var deviceName: String = ProcessInfo.processInfo.hostName

    func run() async throws {
        guard UserAddress(user) != nil else { throw ValidationError("--user must be NAME@DOMAIN") }
        let password = try readSecretFile(passwordFile, what: "password")
        try await options.withClient(sync: false) { client in
            let events = try await client.login(server: server, user: user, password: password, deviceName: deviceName)
            print("signed in as \(await client.user?.description ?? user), device \(await client.device?.description ?? "?")")
            for case .joined(let conversation) in events { print("joined \(conversation.title) (\(conversation.id))") }
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message to a user (1:1, created on first use) or to a room.",
        discussion: "conclave send bob@acme.example 'hi' · conclave send --room ROOM 'hi'")
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "A room's id or unique name.") var room: String?
    @Argument(help: "NAME@DOMAIN, then the text; with --room, only the text.") var words: [String]
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await options.withClient { client in
            let conversation: Conversation
            let text: String
            if let room {
                guard !words.isEmpty else { throw ValidationError("give the text to send") }
                conversation = try await client.findConversation(room)
                text = words.joined(separator: " ")
            } else {
                guard words.count >= 2, let peer = UserAddress(words[0]) else { throw ValidationError("usage: send NAME@DOMAIN TEXT") }
                conversation = try await client.directConversation(with: peer)
                text = words.dropFirst().joined(separator: " ")
            }
            let accepted = try await client.send(text, to: conversation.id)
            if json {
                try printJSON(accepted)
            } else {
                print("sent \(accepted.messageId) to \(conversation.title)")
            }
        }
    }
}

struct RoomCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "room", abstract: "Create rooms, change their settings and members, leave them, list them.",
        subcommands: [Create.self, SetSettings.self, Add.self, Remove.self, Leave.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a room; prints its id as the last line.")
        @OptionGroup var options: ProfileOptions
        @Argument(help: "The room's name.") var name: String
        @Option(name: .long, help: "Comma-separated NAME@DOMAIN list.") var members: String = ""
        @Option(
            name: .long,
            help:
                "Message lifetime (30s, 15m, 2h, 7d, or off): messages are deleted this long after sending. Default: the security groups' default."
        )
        var ttl: String?
        @Option(name: .long, help: "Burn-on-read delay (30s, 15m, 2h, 7d, or off): readers delete a message this long after reading it.")
        var bor: String?

        func run() async throws {
            let users = try members.split(separator: ",").map { text in
                guard let address = UserAddress(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("not NAME@DOMAIN: \(text)")
                }
                return address
            }
            let lifetime = try ttl.map { try durationOption($0, "ttl") }
            let burnOnRead = try bor.map { try durationOption($0, "bor") }
            try await options.withClient { client in
                var settings: ConversationSettings?
                if lifetime != nil || burnOnRead != nil {
                    let defaultLifetime = lifetime == nil ? try await client.policyBounds(with: users).messageLifetimeDefault : 0
                    settings = ConversationSettings(messageLifetime: lifetime ?? defaultLifetime, burnOnRead: burnOnRead ?? 0)
                }
                let room = try await client.createRoom(name: name, members: users, settings: settings)
                print("created room \(name) with \(room.members.map(\.description).joined(separator: ", "))\(settingsText(room))")
                print(room.id)
            }
        }
    }

    struct SetSettings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a room's message lifetime or burn-on-read delay, within the members' security-group policy.")
        @OptionGroup var options: ProfileOptions
        @Argument(help: "The room's id or unique name.") var room: String
        @Option(name: .long, help: "Message lifetime (30s, 15m, 2h, 7d, or off).") var ttl: String?
        @Option(name: .long, help: "Burn-on-read delay (30s, 15m, 2h, 7d, or off).") var bor: String?

        func validate() throws {
            guard ttl != nil || bor != nil else { throw ValidationError("give --ttl, --bor or both") }
        }

        func run() async throws {
            let lifetime = try ttl.map { try durationOption($0, "ttl") }
            let burnOnRead = try bor.map { try durationOption($0, "bor") }
            try await options.withClient { client in
                let conversation = try await client.findConversation(room)
                let settings = ConversationSettings(
                    messageLifetime: lifetime ?? conversation.messageLifetime, burnOnRead: burnOnRead ?? conversation.burnOnRead)
                let changed = try await client.setSettings(settings, in: conversation.id)
                print("\(changed.title):\(settingsText(changed, always: true))")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user (all their devices) to a room.")
        @OptionGroup var options: ProfileOptions
        @Argument var room: String
        @Argument var user: String

        func run() async throws {
            try await changeMembers(options, room: room, user: user) { client, address, id in try await client.add([address], to: id) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user (all their devices) from a room.")
        @OptionGroup var options: ProfileOptions
        @Argument var room: String
        @Argument var user: String

        func run() async throws {
            try await changeMembers(options, room: room, user: user) { client, address, id in try await client.remove(address, from: id) }
        }
    }

    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Leave a room (all of your devices).")
        @OptionGroup var options: ProfileOptions
        @Argument var room: String

        func run() async throws {
            try await options.withClient { client in
                let conversation = try await client.findConversation(room)
                try await client.leave(conversation.id)
                print("left \(conversation.title)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List this device's conversations with their members.")
        @OptionGroup var options: ProfileOptions
        @Flag(name: .long, help: "Print one JSON object per line.") var json = false

        func run() async throws {
            try await options.withClient { client in
                for conversation in try await client.conversations() {
                    if json {
                        try printJSON(conversation)
                    } else {
                        print(
                            "\(conversation.id)\t\(conversation.kind.rawValue)\t\(conversation.title)\t\(conversation.members.map(\.description).joined(separator: ","))"
                        )
                    }
                }
            }
        }
    }
}

struct ReceiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive", abstract: "Process pending events and print new messages.",
        discussion: "With --json each message is one JSON object per line: id, conversation, room, from, device, text, sent_at, expires_at."
    )
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "Keep listening this long for new messages (30s, 15m, 2h).") var wait: String?
    @Flag(name: .long, help: "Print one JSON object per line.") var json = false

    func run() async throws {
        let waitSeconds = try wait.map { text -> Int64 in
            guard let seconds = DurationText.seconds(text) else { throw ValidationError("--wait takes a duration such as 30s, 15m, 2h") }
            return seconds
        }
        let client = try await ConclaveClient.open(profile: options.directory)
        for event in try await client.receive() { try EventPrinter(json: json).print(event) }
        if let waitSeconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await event in client.events() { try EventPrinter(json: json).print(event) }
                }
                group.addTask { try await Task.sleep(for: .seconds(waitSeconds)) }
                try await group.next()
                group.cancelAll()
            }
        }
        await client.close()
    }
}

/// How the CLI shows events: a line for people, or JSON lines for scripts
/// (messages only).
struct EventPrinter {
    let json: Bool

    struct MessageLine: Encodable {
        let id: String
        let conversation: ConversationID
        let room: String?
        let from: UserAddress
        let device: String
        let text: String
        let sentAt: Date
        let expiresAt: Date?
        let burnOnRead: UInt64?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(conversation, forKey: .conversation)
            try container.encode(room, forKey: .room)
            try container.encode(from, forKey: .from)
            try container.encode(device, forKey: .device)
            try container.encode(text, forKey: .text)
            try container.encode(sentAt, forKey: .sentAt)
            try container.encode(expiresAt, forKey: .expiresAt)
            try container.encode(burnOnRead, forKey: .burnOnRead)
        }

        enum CodingKeys: String, CodingKey { case id, conversation, room, from, device, text, sentAt, expiresAt, burnOnRead }
    }

    func print(_ event: ClientEvent) throws {
        switch event {
        case .message(let message):
            if json {
                try printJSON(
                    MessageLine(
                        id: message.id, conversation: message.conversation, room: message.room, from: message.from,
                        device: "\(message.from)/\(message.device)", text: message.text, sentAt: message.sentAt,
                        expiresAt: message.expiresAt, burnOnRead: message.burnOnRead))
            } else {
                let place = message.room.map { "[\($0)] " } ?? ""
                Swift.print("\(place)\(message.from): \(message.text)")
            }
        case .joined(let conversation):
            if !json { Swift.print("* joined \(conversation.title)") }
        case .membersChanged(let conversation):
            if !json { Swift.print("* \(conversation.title): members \(conversation.members.map(\.description).joined(separator: ", "))") }
        case .removed(let id):
            if !json { Swift.print("* removed from \(id)") }
        case .warning(let text):
            FileHandle.standardError.write(Data("warning: \(text)\n".utf8))
        }
    }
}

/// `room add` and `room remove`: one user in or out of a room, then its members.
func changeMembers(
    _ options: ProfileOptions, room: String, user: String,
    _ change: (ConclaveClient, UserAddress, ConversationID) async throws -> Conversation
) async throws {
    guard let address = UserAddress(user) else { throw ValidationError("not NAME@DOMAIN: \(user)") }
    try await options.withClient { client in
        let conversation = try await change(client, address, try await client.findConversation(room).id)
        print("\(conversation.title): \(conversation.members.map(\.description).joined(separator: ", "))")
    }
}

/// A duration option: `30s`, `15m`, `2h`, `7d`, or `off` (0).
func durationOption(_ text: String, _ option: String) throws -> UInt64 {
    if ["off", "none", "0"].contains(text) { return 0 }
    guard let value = DurationText.seconds(text) else {
        throw ValidationError("--\(option) takes a duration such as 30s, 15m, 2h, 7d (at most ten years), or off")
    }
    return UInt64(value)
}

/// ` (messages expire after 7d, burn 30s after reading)`, or nothing for defaults.
func settingsText(_ conversation: Conversation, always: Bool = false) -> String {
    guard always || conversation.messageLifetime > 0 || conversation.burnOnRead > 0 else { return "" }
    let lifetime =
        conversation.messageLifetime > 0
        ? "messages expire after \(DurationText.format(conversation.messageLifetime))" : "messages do not expire"
    let burn = conversation.burnOnRead > 0 ? "burn \(DurationText.format(conversation.burnOnRead)) after reading" : "burn-on-read off"
    return " (\(lifetime), \(burn))"
}
