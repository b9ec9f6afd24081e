import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation
import MLS

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign in: register this profile as a new device of the user, or sign its device in again.",
        discussion: """
            A new profile becomes a new device (its own keys, a certificate from the network) and joins the user's \
            conversations. A profile that already holds a device of this user signs that device in again (after its \
            session expired): it keeps its conversations and unread messages.
            """)
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "The server's URL.") var server: String
    @Option(name: .long, help: "NAME@DOMAIN (with a password).") var user: String?
    @Option(name: .long, help: "A file holding the password.") var passwordFile: String?
    @Flag(
        name: .long,
        help: "Sign in through the network's identity provider: open the printed URL in a browser; the redirect comes back to this machine."
    )
    var sso = false
    @Option(name: .long, help: "With --sso: seconds to wait for the provider (default 300).") var ssoTimeout: Int = 300
    @Option(name: .long, help: "A name for this device.") var deviceName: String = ProcessInfo.processInfo.hostName
    @Flag(name: .long, help: "Print one JSON object: device, user, pending, approval_code.") var json = false

    func validate() throws {
        if sso {
            guard passwordFile == nil else { throw ValidationError("--sso signs in at the identity provider: leave --password-file out") }
            guard (10...3600).contains(ssoTimeout) else { throw ValidationError("--sso-timeout must be 10 to 3600 seconds") }
        } else {
            guard let user, UserAddress(user) != nil else { throw ValidationError("--user must be NAME@DOMAIN (or use --sso)") }
            guard passwordFile != nil else { throw ValidationError("give --password-file FILE (or use --sso)") }
        }
    }

    func run() async throws {
        try await options.withClient(sync: false, creating: true) { client in
            let existing = await client.device
            let events: [ClientEvent]
            if sso {
                let json = json
                events = try await client.loginWithSSO(server: server, deviceName: deviceName, timeout: .seconds(ssoTimeout)) { url in
                    // With --json the URL goes to stderr, so that stdout stays one JSON object.
                    // The server chose this URL: control characters (terminal escapes) are not printed.
                    let shown = String(String.UnicodeScalarView(url.unicodeScalars.filter { $0.properties.generalCategory != .control }))
                    let text = "open this address in a browser to sign in (waiting for the provider):\n\(shown)\n"
                    if json { FileHandle.standardError.write(Data(text.utf8)) } else { print(text, terminator: "") }
                    fflush(nil)
                }
            } else {
                let password = try readSecretFile(passwordFile ?? "", what: "password")
                events = try await client.login(server: server, user: user ?? "", password: password, deviceName: deviceName)
            }
            let device = await client.device?.description ?? "?"
            let address = await client.user?.description ?? user ?? "?"
            let code = await client.approvalCode
            if json {
                try printJSON(LoginLine(device: device, user: address, pending: code != nil, approvalCode: code))
            } else if existing != nil {
                print("signed in again as \(address), device \(device): a new session; nothing was lost")
            } else if let code {
                print("signed in as \(address), device \(device): waiting for approval")
                print("approval code: \(code)")
                print("on one of your other devices run: conclave device approve \(code)")
            } else {
                print("signed in as \(address), device \(device)")
            }
            let printer = EventPrinter(json: json)
            for event in events { try printer.print(event) }
        }
    }
}

struct LoginLine: Encodable {
    let device: String
    let user: String
    let pending: Bool
    let approvalCode: String?
}

struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout",
        abstract: "Sign this device out: it leaves every conversation, and the profile is erased.",
        discussion: """
            The server removes the device from every conversation and deletes its key packages and inbox, then the \
            profile's keys and state are erased. With --local only the profile is erased (when the session expired or \
            the device was removed already); the device then stays listed until an administrator removes it.
            """)
    @OptionGroup var options: ProfileOptions
    @Flag(name: .long, help: "Erase the profile without asking the server.") var local = false

    func run() async throws {
        try await options.withClient(sync: false) { client in
            guard let user = await client.user, let device = await client.device else { throw ClientError.notSignedIn }
            try await client.logout(localOnly: local)
            print(
                local ? "erased this profile (device \(device) of \(user) stays on the server)" : "signed out device \(device) of \(user)")
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message or a file to a user (1:1, created on first use) or to a room.",
        discussion: """
            conclave send bob@acme.example 'hi' · conclave send --room ROOM 'hi' · conclave send bob@acme.example --file \
            report.pdf ['caption']. "sent" means the server stored the message for every device listed; a 1:1 whose peer \
            has no device left gets the peer's current devices added first, and if there are none nothing is sent (exit \
            status 1). A file is encrypted on this device with a key of its own and uploaded in pieces (resumed after a \
            lost connection or a server restart); only the message, end-to-end encrypted, carries its name, type and key. \
            A progress bar shows on a terminal.
            """)
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "A room's id or unique name.") var room: String?
    @Option(name: .long, help: "A file to send; the text, if any, is its caption.") var file: String?
    @Argument(help: "NAME@DOMAIN, then the text; with --room, only the text.") var words: [String] = []
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct SentLine: Encodable {
        let id: String
        let conversation: ConversationID
        let to: String
        let recipients: [String]
        var file: FileLine?
    }

    func run() async throws {
        try await options.withClient { client in
            let conversation: Conversation
            let text: String
            if let room {
                guard !words.isEmpty || file != nil else { throw ValidationError("give the text to send") }
                conversation = try await client.findConversation(room)
                text = words.joined(separator: " ")
            } else {
                guard words.count >= (file == nil ? 2 : 1), let peer = UserAddress(words[0]) else {
                    throw ValidationError("usage: send NAME@DOMAIN TEXT, or send NAME@DOMAIN --file PATH [CAPTION]")
                }
                conversation = try await client.directConversation(with: peer)
                text = words.dropFirst().joined(separator: " ")
            }
            if let file {
                try await sendFile(file, caption: text, to: conversation, with: client)
                return
            }
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ValidationError("the message is empty") }
            let sent = try await client.send(text, to: conversation.id)
            if json {
                try printJSON(
                    SentLine(
                        id: sent.id, conversation: sent.conversation, to: conversation.title, recipients: sent.recipients.map(\.description)
                    ))
            } else {
                let count = sent.recipients.count
                print("sent \(sent.id) to \(conversation.title) (\(count) device\(count == 1 ? "" : "s"))")
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
        @Flag(
            name: .long,
            help: "Create it even if you are in a room of that name already (the name then needs the room id to tell them apart).")
        var allowDuplicateName = false

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
                let room = try await client.createRoom(
                    name: name, members: users, settings: settings, allowDuplicateName: allowDuplicateName)
                print("created room \(name) with \(room.members.map(\.description).joined(separator: ", "))\(settingsText(room))")
                print(room.id)
            }
        }
    }

    struct SetSettings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract:
                "Change a conversation's message lifetime, burn-on-read delay or cipher suite, within the members' security-group policy.")
        @OptionGroup var options: ProfileOptions
        @Argument(help: "The room's id or unique name.") var room: String
        @Option(name: .long, help: "Message lifetime (30s, 15m, 2h, 7d, or off).") var ttl: String?
        @Option(name: .long, help: "Burn-on-read delay (30s, 15m, 2h, 7d, or off).") var bor: String?
        @Option(
            name: .long,
            help: """
                Move the conversation to another MLS cipher suite: pq (hybrid post-quantum X-Wing, 0x004D) or classical \
                (suite 1). Every member's devices follow; the old group is closed.
                """) var cipherSuite: String?

        func validate() throws {
            guard ttl != nil || bor != nil || cipherSuite != nil else { throw ValidationError("give --ttl, --bor or --cipher-suite") }
            if let cipherSuite, Self.suite(cipherSuite) == nil { throw ValidationError("--cipher-suite takes pq or classical") }
        }

        static func suite(_ text: String) -> CipherSuite? {
            switch text {
            case "pq": .xwingChacha20Sha256Ed25519
            case "classical": .x25519Aes128Sha256Ed25519
            default: nil
            }
        }

        func run() async throws {
            let lifetime = try ttl.map { try durationOption($0, "ttl") }
            let burnOnRead = try bor.map { try durationOption($0, "bor") }
            try await options.withClient { client in
                var conversation = try await client.findConversation(room)
                if lifetime != nil || burnOnRead != nil {
                    let settings = ConversationSettings(
                        messageLifetime: lifetime ?? conversation.messageLifetime, burnOnRead: burnOnRead ?? conversation.burnOnRead)
                    conversation = try await client.setSettings(settings, in: conversation.id)
                    print("\(conversation.title):\(settingsText(conversation, always: true))")
                }
                if let suite = cipherSuite.flatMap(Self.suite) {
                    conversation = try await client.moveConversation(conversation.id, to: suite)
                    print(
                        "\(conversation.title): \(suiteText(conversation)) with \(conversation.members.map(\.description).joined(separator: ", "))"
                    )
                }
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
        static let configuration = CommandConfiguration(
            abstract: "Leave a room (all of your devices), or hide a 1:1.",
            discussion: "A 1:1 cannot be left: it is hidden on this device, and shows again when a message arrives or you write.")
        @OptionGroup var options: ProfileOptions
        @Argument(help: "A room's id or unique name, or NAME@DOMAIN for a 1:1.") var room: String

        func run() async throws {
            try await options.withClient { client in
                let conversation = try await client.findConversation(room)
                try await client.leave(conversation.id)
                if conversation.kind == .direct {
                    print("hid your 1:1 with \(conversation.title) on this device (it stays; it shows again when a message arrives)")
                } else {
                    print("left \(conversation.title)")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List this device's conversations: id, kind, title, members, settings.")
        @OptionGroup var options: ProfileOptions
        @Flag(name: .long, help: "Print one JSON object per line.") var json = false
        @Flag(name: .long, help: "Include hidden 1:1s.") var all = false

        func run() async throws {
            try await options.withClient { client in
                for conversation in try await client.conversations() where all || !conversation.hidden {
                    if json {
                        try printJSON(ConversationLine(conversation))
                    } else {
                        let members = conversation.members.map(\.description).joined(separator: ",")
                        print(
                            "\(conversation.id)\t\(conversation.kind.rawValue)\t\(conversation.title)\t\(members)\(settingsText(conversation))\t\(suiteText(conversation))\(conversation.hidden ? "\t(hidden)" : "")"
                        )
                    }
                }
            }
        }
    }
}

struct ReceiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive", abstract: "Process pending events and print messages and everything else you should know.",
        discussion: """
            Prints messages, joins, membership and device changes, settings changes and warnings, oldest first. An event \
            is kept (sealed on this device) until it has been printed, so a receive that is interrupted loses nothing. \
            With --json each event is one JSON object per line with a "type": message (id, conversation, room, from, \
            device, text, sent_at, expires_at, burn_on_read, file), joined, members, settings, removed, warning; a setting \
            that is off is null. A message's file is downloaded, decrypted and checked (size, SHA-256) into --download-dir \
            under its sanitised name, never replacing a file there; "file" then holds name, size, media_type, sha256 and \
            path, or error when it could not be had (policy, expired, damaged). When the server cannot be reached the \
            message stays pending and the next receive tries again. --wait keeps listening, reconnecting with backoff when \
            the connection drops; it exits 1 if it cannot reconnect before the time is up, or if the server ends the session.
            """)
    @OptionGroup var options: ProfileOptions
    @Option(name: .long, help: "Keep listening this long for new events (30s, 15m, 2h).") var wait: String?
    @Option(name: .long, help: "Save received files here (default: the profile's downloads/).") var downloadDir: String?
    @Flag(name: .long, help: "Print one JSON object per line.") var json = false

    func run() async throws {
        let waitSeconds = try wait.map { text -> Int64 in
            guard let seconds = DurationText.seconds(text) else { throw ValidationError("--wait takes a duration such as 30s, 15m, 2h") }
            return seconds
        }
        let client = try await options.open()
        let printer = EventPrinter(json: json, downloadDirectory: downloadDir ?? options.directory + "/downloads")
        do {
            try await printer.printPending(of: client)
            if let waitSeconds { try await Listener(client: client, printer: printer).listen(for: .seconds(waitSeconds)) }
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }
}

/// `receive --wait`: pushed events until the time is up, reconnecting
/// with backoff (1 s doubling to 30 s) when the connection drops.
struct Listener: Sendable {
    let client: ConclaveClient
    let printer: EventPrinter

    /// Fails when the session ended, or when the connection is down at the
    /// end and could not be made again.
    func listen(for duration: Duration) async throws {
        let state = ListenerState()
        let finished = await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask { await self.loop(state) }
            group.addTask {
                try? await Task.sleep(for: duration)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let finished { throw finished }
        if let lost = state.lostBecause { throw ListenFailure("could not reconnect to the server before the wait ended: \(lost)") }
    }

    private func loop(_ state: ListenerState) async -> (any Error)? {
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled {
            do {
                for try await _ in client.inboxRings() {
                    state.lostBecause = nil
                    backoff = .seconds(1)
                    try await printer.printPending(of: client)
                }
                return nil  // cancelled: the wait is over
            } catch let error as ClientError where error.stopsListening {
                return error
            } catch {
                if Task.isCancelled { return nil }
                state.lostBecause = "\(error)"
                // A session that ended shows on an ordinary request; the connection alone cannot tell.
                do { try await printer.printPending(of: client) } catch let error as ClientError where error.stopsListening {
                    return error
                } catch {}
                FileHandle.standardError.write(
                    Data("warning: lost the connection to the server (\(error)); reconnecting in \(backoff)\n".utf8))
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
        return nil
    }
}

/// Why `receive --wait` ended badly (exit status 1).
struct ListenFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Whether the listener is connected: nil, or why not.
final class ListenerState: @unchecked Sendable {  // touched by the listening task only, read after it ended
    var lostBecause: String?
}

extension ClientError {
    /// Errors after which listening cannot go on: the session is over.
    var stopsListening: Bool {
        switch self {
        case .sessionEnded, .deviceRemoved, .notSignedIn: true
        case .api(let status, _): status == 401 || status == 403
        default: false
        }
    }
}

/// How the CLI shows events: a line for people, or one JSON object per line
/// for scripts, with a `type`; a setting that is off is `null`.
struct EventPrinter: Sendable {
    let json: Bool
    /// Where received files are saved; nil: they are not downloaded.
    var downloadDirectory: String? = nil

    /// Prints what the device holds for the user, then confirms it: what
    /// was not printed (the process stopped, or a file could not be
    /// downloaded for now) comes again next time.
    func printPending(of client: ConclaveClient) async throws {
        let pending = try await client.pendingEvents()
        var printed: Int64?
        do {
            for item in pending {
                try await show(item.event, with: client)
                printed = item.sequence
            }
        } catch {
            if let printed {
                fflush(nil)
                try await client.confirm(through: printed)
            }
            throw error
        }
        if let last = pending.last {
            fflush(nil)  // printed before it is confirmed
            try await client.confirm(through: last.sequence)
        }
    }

    /// Prints an event, after saving the file of a message that shares one.
    func show(_ event: ClientEvent, with client: ConclaveClient) async throws {
        if case .message(let message) = event {
            try print(event, file: try await download(message, with: client))
        } else {
            try print(event)
        }
    }

    func print(_ event: ClientEvent, file: FileOutcome? = nil) throws {
        if json {
            try printJSON(EventLine(event, file: file))
            return
        }
        switch event {
        case .message(let message):
            let place = message.room.map { "[\($0)] " } ?? ""
            var notes: [String] = []
            if let expiresAt = message.expiresAt { notes.append("expires \(Self.time(expiresAt))") }
            if let burn = message.burnOnRead { notes.append("burns \(DurationText.format(burn)) after reading") }
            let suffix = notes.isEmpty ? "" : "  (\(notes.joined(separator: ", ")))"
            var text = message.text
            if let shared = message.file {
                let described = "file \(ConclaveClient.safeFileName(shared.name)) (\(FileLine.size(shared.size)))"
                let outcome =
                    switch file {
                    case .saved(let path): "[\(described) saved to \(path)]"
                    case .refused(let why): "[\(described) not saved: \(why)]"
                    case nil: "[\(described)]"
                    }
                text = text.isEmpty ? outcome : text + " " + outcome
            }
            Swift.print("\(Self.time(message.sentAt)) \(place)\(message.from): \(text)\(suffix)")
        case .joined(let conversation):
            Swift.print(
                "* joined \(conversation.title) with \(conversation.members.map(\.description).joined(separator: ", "))\(settingsText(conversation))"
            )
        case .membersChanged(let change):
            Swift.print("* \(change.conversation.title): \(Self.describe(change))")
        case .settingsChanged(let change):
            Swift.print(
                "* \(change.conversation.title):\(settingsText(change.conversation, always: true))\(Self.byline(change.by, change.proposedByServer))"
            )
        case .cipherSuiteChanged(let conversation):
            Swift.print("* \(conversation.title): moved to the \(suiteText(conversation)) cipher suite")
        case .removed(let id, let by):
            Swift.print("* you were removed from \(id)\(Self.byline(by, false))")
        case .warning(let text):
            FileHandle.standardError.write(Data("warning: \(text)\n".utf8))
        case .untrustedDevice(let id, let device):
            FileHandle.standardError.write(
                Data("warning: \(id) holds device \(device), which \(device.user) did not approve: it is removed before you send\n".utf8))
        case .identityChanged(let user):
            Swift.print("* \(user)'s identity changed: compare your safety number (conclave safety-number \(user))")
        case .ownDevice(let device, let change):
            switch change {
            case .signedIn:
                Swift.print("* a new device signed in to your account: \(device.id) (\(device.name)), waiting for your approval")
            case .approved: Swift.print("* your device \(device.id) (\(device.name)) was approved")
            case .removed: Swift.print("* your device \(device.id) was removed")
            }
        case .approved:
            Swift.print("* this device was approved and joined your conversations")
        case .transparencyAlarm(let problem):
            Swift.print("* ALARM (key transparency): \(problem); tell your administrator and your contacts")
        }
    }

    static func describe(_ change: MembershipChange) -> String {
        var parts: [String] = []
        if !change.addedUsers.isEmpty { parts.append("added \(change.addedUsers.map(\.description).joined(separator: ", "))") }
        if !change.removedUsers.isEmpty { parts.append("removed \(change.removedUsers.map(\.description).joined(separator: ", "))") }
        let newDevices = change.addedDevices.filter { !change.addedUsers.contains($0.user) }
        let goneDevices = change.removedDevices.filter { !change.removedUsers.contains($0.user) }
        if !newDevices.isEmpty { parts.append("new device \(newDevices.map(\.description).joined(separator: ", "))") }
        if !goneDevices.isEmpty { parts.append("device removed \(goneDevices.map(\.description).joined(separator: ", "))") }
        return parts.joined(separator: "; ") + byline(change.by, change.proposedByServer)
    }

    static func byline(_ by: DeviceRef?, _ server: Bool) -> String {
        let who = by.map { " (by \($0)" } ?? " ("
        if server { return who + (by == nil ? "" : ", ") + "proposed by the server)" }
        return by == nil ? "" : who + ")"
    }

    static func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: date)
    }
}

/// One event as a JSON line.
struct EventLine: Encodable {
    let event: ClientEvent
    let file: FileOutcome?

    init(_ event: ClientEvent, file: FileOutcome? = nil) {
        self.event = event
        self.file = file
    }

    enum Key: String, CodingKey {
        case type, id, conversation, room, from, device, text, sentAt, expiresAt, burnOnRead, kind, title, members, messageLifetime, by
        case proposedByServer, addedUsers, removedUsers, addedDevices, removedDevices, file, cipherSuite
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch event {
        case .message(let message):
            try container.encode("message", forKey: .type)
            try container.encode(message.id, forKey: .id)
            try container.encode(message.conversation, forKey: .conversation)
            try container.encode(message.room, forKey: .room)
            try container.encode(message.from, forKey: .from)
            try container.encode("\(message.from)/\(message.device)", forKey: .device)
            try container.encode(message.text, forKey: .text)
            try container.encode(message.sentAt, forKey: .sentAt)
            try container.encode(message.expiresAt, forKey: .expiresAt)
            try container.encode(message.burnOnRead, forKey: .burnOnRead)
            try container.encode(
                message.file.map { shared in
                    switch file {
                    case .saved(let path): FileLine(shared, path: path, error: nil)
                    case .refused(let why): FileLine(shared, path: nil, error: why)
                    case nil: FileLine(shared, path: nil, error: nil)
                    }
                }, forKey: .file)
        case .joined(let conversation):
            try container.encode("joined", forKey: .type)
            try Self.encode(conversation, into: &container)
        case .membersChanged(let change):
            try container.encode("members", forKey: .type)
            try Self.encode(change.conversation, into: &container)
            try container.encode(change.by?.description, forKey: .by)
            try container.encode(change.proposedByServer, forKey: .proposedByServer)
            try container.encode(change.addedUsers, forKey: .addedUsers)
            try container.encode(change.removedUsers, forKey: .removedUsers)
            try container.encode(change.addedDevices.map(\.description), forKey: .addedDevices)
            try container.encode(change.removedDevices.map(\.description), forKey: .removedDevices)
        case .settingsChanged(let change):
            try container.encode("settings", forKey: .type)
            try Self.encode(change.conversation, into: &container)
            try container.encode(change.by?.description, forKey: .by)
            try container.encode(change.proposedByServer, forKey: .proposedByServer)
        case .cipherSuiteChanged(let conversation):
            try container.encode("cipher_suite", forKey: .type)
            try Self.encode(conversation, into: &container)
            try container.encode(conversation.cipherSuite, forKey: .cipherSuite)
        case .removed(let id, let by):
            try container.encode("removed", forKey: .type)
            try container.encode(id, forKey: .conversation)
            try container.encode(by?.description, forKey: .by)
        case .warning(let text):
            try container.encode("warning", forKey: .type)
            try container.encode(text, forKey: .text)
        case .untrustedDevice(let id, let device):
            try container.encode("untrusted_device", forKey: .type)
            try container.encode(id, forKey: .conversation)
            try container.encode(device.user, forKey: .from)
            try container.encode(device.description, forKey: .device)
        case .identityChanged(let user):
            try container.encode("identity_changed", forKey: .type)
            try container.encode(user, forKey: .from)
        case .ownDevice(let device, let change):
            try container.encode("own_device", forKey: .type)
            try container.encode(device.id.description, forKey: .device)
            try container.encode(device.name, forKey: .title)
            try container.encode(change.rawValue, forKey: .kind)
        case .approved:
            try container.encode("approved", forKey: .type)
        case .transparencyAlarm(let problem):
            try container.encode("transparency_alarm", forKey: .type)
            try container.encode(problem, forKey: .text)
        }
    }

    static func encode(_ conversation: Conversation, into container: inout KeyedEncodingContainer<Key>) throws {
        try container.encode(conversation.id, forKey: .conversation)
        try container.encode(conversation.kind, forKey: .kind)
        try container.encode(conversation.title, forKey: .title)
        try container.encode(conversation.members, forKey: .members)
        try container.encode(conversation.messageLifetime > 0 ? conversation.messageLifetime : nil, forKey: .messageLifetime)
        try container.encode(conversation.burnOnRead > 0 ? conversation.burnOnRead : nil, forKey: .burnOnRead)
    }
}

/// A conversation as `room list --json` prints it: settings that are off are null.
struct ConversationLine: Encodable {
    let id: ConversationID
    let kind: ConversationKind
    let title: String
    let name: String?
    let peer: UserAddress?
    let members: [UserAddress]
    let devices: [String]
    let epoch: UInt64
    let messageLifetime: UInt64?
    let burnOnRead: UInt64?
    let cipherSuite: UInt16
    let postQuantum: Bool
    let hidden: Bool

    init(_ conversation: Conversation) {
        id = conversation.id
        kind = conversation.kind
        title = conversation.title
        name = conversation.name
        peer = conversation.peer
        members = conversation.members
        devices = conversation.devices.map(\.description)
        epoch = conversation.epoch
        messageLifetime = conversation.messageLifetime > 0 ? conversation.messageLifetime : nil
        burnOnRead = conversation.burnOnRead > 0 ? conversation.burnOnRead : nil
        cipherSuite = conversation.cipherSuite
        postQuantum = conversation.isPostQuantum
        hidden = conversation.hidden
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, title, name, peer, members, devices, epoch, messageLifetime, burnOnRead, cipherSuite, postQuantum, hidden
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(kind, forKey: .kind)
        try container.encode(title, forKey: .title)
        try container.encode(name, forKey: .name)
        try container.encode(peer, forKey: .peer)
        try container.encode(members, forKey: .members)
        try container.encode(devices, forKey: .devices)
        try container.encode(epoch, forKey: .epoch)
        try container.encode(messageLifetime, forKey: .messageLifetime)
        try container.encode(burnOnRead, forKey: .burnOnRead)
        try container.encode(cipherSuite, forKey: .cipherSuite)
        try container.encode(postQuantum, forKey: .postQuantum)
        try container.encode(hidden, forKey: .hidden)
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
    do {
        return try PolicyText.duration(text, option)
    } catch {
        throw ValidationError("--\(error.field) takes \(error.takes)")
    }
}

/// `post-quantum (0x004D)` or `classical (0x0001)`.
func suiteText(_ conversation: Conversation) -> String {
    "\(conversation.isPostQuantum ? "post-quantum" : "classical") (0x\(String(format: "%04X", conversation.cipherSuite)))"
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
