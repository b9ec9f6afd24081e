import Foundation

/// One step of a random history. Choices are numbers that the run reads
/// modulo what exists at that moment (a device, a conversation, a user),
/// so any sub-list of a history is a history too: that is what shrinking
/// needs.
enum HistoryOp: Sendable, Hashable, CustomStringConvertible {
    case send(device: Int, conversation: Int)
    case sendDirect(device: Int, peer: Int)
    case receive(device: Int, crashBeforePrinting: Bool)
    case createRoom(device: Int, members: [Int], expiring: Bool)
    case add(device: Int, conversation: Int, user: Int)
    case remove(device: Int, conversation: Int, member: Int)
    case leave(device: Int, conversation: Int)
    case newDevice(user: Int)
    case logout(device: Int)
    case suspend(user: Int)
    case unsuspend(user: Int)
    case resetDevices(user: Int)
    case moveGroup(user: Int)
    case advanceClock(hours: Int)
    case restartServer

    var description: String {
        switch self {
        case .send(let device, let conversation): "send(device \(device), conversation \(conversation))"
        case .sendDirect(let device, let peer): "sendDirect(device \(device), peer \(peer))"
        case .receive(let device, let crash): "receive(device \(device)\(crash ? ", crash before printing" : ""))"
        case .createRoom(let device, let members, let expiring): "createRoom(device \(device), members \(members), expiring \(expiring))"
        case .add(let device, let conversation, let user): "add(device \(device), conversation \(conversation), user \(user))"
        case .remove(let device, let conversation, let member): "remove(device \(device), conversation \(conversation), member \(member))"
        case .leave(let device, let conversation): "leave(device \(device), conversation \(conversation))"
        case .newDevice(let user): "newDevice(user \(user))"
        case .logout(let device): "logout(device \(device))"
        case .suspend(let user): "suspend(user \(user))"
        case .unsuspend(let user): "unsuspend(user \(user))"
        case .resetDevices(let user): "resetDevices(user \(user))"
        case .moveGroup(let user): "moveGroup(user \(user))"
        case .advanceClock(let hours): "advanceClock(\(hours) h)"
        case .restartServer: "restartServer (SIGKILL)"
        }
    }

    /// A seeded history of `count` steps, with sends and receives most
    /// often and disruptions now and then.
    static func generate(seed: UInt64, count: Int) -> [HistoryOp] {
        var random = SeededRandom(seed: seed)
        func pick() -> Int { Int(random.next() % 1_000_000) }
        return (0..<count).map { _ in
            switch random.next() % 100 {
            case 0..<24: .send(device: pick(), conversation: pick())
            case 24..<34: .sendDirect(device: pick(), peer: pick())
            case 34..<54: .receive(device: pick(), crashBeforePrinting: random.next() % 4 == 0)
            case 54..<60:
                .createRoom(
                    device: pick(), members: (0..<(1 + Int(random.next() % 3))).map { _ in pick() }, expiring: random.next() % 3 == 0)
            case 60..<67: .add(device: pick(), conversation: pick(), user: pick())
            case 67..<71: .remove(device: pick(), conversation: pick(), member: pick())
            case 71..<74: .leave(device: pick(), conversation: pick())
            case 74..<84: .newDevice(user: pick())
            case 84..<86: .logout(device: pick())
            case 86..<88: .suspend(user: pick())
            case 88..<91: .unsuspend(user: pick())
            case 91: .resetDevices(user: pick())
            case 92..<95: .moveGroup(user: pick())
            case 95..<98: .advanceClock(hours: 1 + Int(random.next() % 3))
            default: .restartServer
            }
        }
    }
}

/// SplitMix64: the same history for the same seed, on every machine.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What should be true, in plain Swift (no cryptography): who is a member
/// of what, which devices are alive, what was sent to whom, and what each
/// device has been shown.
struct HistoryModel {
    enum DeviceState: Equatable {
        /// Signed in and running.
        case alive
        /// Its user was suspended: its session ended, its leaves were
        /// removed; the device still exists on the server.
        case dormant
        /// Signed out or reset: it no longer exists on the server.
        case gone
    }

    struct Device {
        let key: String
        let user: Int
        let id: String
        /// The history step at which it signed in.
        let since: Int
        var state: DeviceState
    }

    struct Conversation {
        let id: String
        let direct: Bool
        /// Users certainly in it.
        var members: Set<Int>
        /// Users whose removal the server proposed (a leave, or their last
        /// device gone) and that no commit has shown done yet, with the step.
        var leaving: [Int: Int] = [:]
        /// Users who left it themselves: never back without being added.
        var left: Set<Int> = []
        let expiring: Bool
    }

    struct Sent {
        let text: String
        let conversation: String
        let senderDevice: String
        let recipients: Set<String>
        let expiresAt: Date?
        /// Per sending device: 1, 2, 3, … (the order each device must see).
        let index: Int
    }

    var userCount: Int
    var suspended: Set<Int> = []
    var devices: [Device] = []
    var conversations: [Conversation] = []
    var sent: [String: Sent] = [:]
    var sentOrder: [String] = []
    /// Per device key: text → times shown.
    var shown: [String: [String: Int]] = [:]
    /// Per device key and (sender device, conversation): the last index shown.
    var lastIndex: [String: [String: Int]] = [:]
    var sentCount: [String: Int] = [:]
    var violations: [String] = []
    var counts = HistoryCounts()

    init(userCount: Int) { self.userCount = userCount }

    func alive(of user: Int) -> [Device] { devices.filter { $0.user == user && $0.state == .alive } }
    func device(withID id: String) -> Device? { devices.first { $0.id == id } }
    var aliveDevices: [Device] { devices.filter { $0.state == .alive && !suspended.contains($0.user) } }

    mutating func violation(_ text: String) { violations.append(text) }

    /// A user lost their last device (or was suspended): the server proposed
    /// their removal from every room they were in.
    mutating func lostAllDevices(_ user: Int, step: Int) {
        for index in conversations.indices where !conversations[index].direct && conversations[index].members.contains(user) {
            conversations[index].members.remove(user)
            conversations[index].leaving[user] = step
        }
    }

    /// Checks a message the server accepted against the model, and records
    /// it: every device in the group is a device of a member (or of a user
    /// whose removal is still to be committed), no member's running device
    /// is missing, a 1:1 holds its peer.
    mutating func accepted(
        text: String, conversation index: Int, sender: Device, recipients: [(user: String, device: String)], userNames: [String],
        expiresAt: Date?
    ) {
        var conversation = conversations[index]
        var recipientKeys = Set<String>()
        var usersInTree = Set<Int>()
        for recipient in recipients {
            guard let device = device(withID: recipient.device), userNames[device.user] == recipient.user else {
                violation("\(text): the group holds a device the model does not know: \(recipient.user)/\(recipient.device)")
                continue
            }
            recipientKeys.insert(device.key)
            usersInTree.insert(device.user)
            if device.state == .gone { violation("\(text): signed-out or reset device \(device.key) is still in the group") }
            if conversation.members.contains(device.user) { continue }
            if let since = conversation.leaving[device.user] {
                if device.since > since {
                    // A new device joined a room whose removal of its user was never committed.
                    if conversation.left.contains(device.user) {
                        violation("\(text): \(device.key) is back in \(conversation.id), which its user left")
                    } else {
                        conversation.members.insert(device.user)
                        conversation.leaving[device.user] = nil
                    }
                }
                continue
            }
            violation("\(text): \(device.key) of \(userNames[device.user]) is in \(conversation.id), where its user is not a member")
        }
        for user in conversation.leaving.keys where !usersInTree.contains(user) { conversation.leaving[user] = nil }
        for user in conversation.members where !suspended.contains(user) {
            for device in alive(of: user) where device.key != sender.key && !recipientKeys.contains(device.key) {
                violation("\(text): running device \(device.key) of member \(userNames[user]) is missing from \(conversation.id)")
            }
        }
        if conversation.direct, let peer = conversation.members.first(where: { $0 != sender.user }), !usersInTree.contains(peer) {
            violation("\(text): \"sent\" in a 1:1 that holds no device of the peer \(userNames[peer])")
        }
        conversations[index] = conversation
        let next = (sentCount[sender.key] ?? 0) + 1
        sentCount[sender.key] = next
        sent[text] = Sent(
            text: text, conversation: conversation.id, senderDevice: sender.key, recipients: recipientKeys, expiresAt: expiresAt,
            index: next)
        sentOrder.append(text)
        counts.messages += 1
    }

    /// A device showed a message: it was one, sent to this device, shown
    /// once, after the same sender's earlier ones.
    mutating func shown(text: String, fromDevice: String, conversation: String, on device: Device) {
        guard let sent = sent[text] else {
            violation("\(device.key) was shown a message nobody sent successfully: \(text)")
            return
        }
        counts.deliveries += 1
        if sent.conversation != conversation {
            violation("\(device.key) was shown \(text) in \(conversation), sent in \(sent.conversation)")
        }
        if self.device(withID: fromDevice)?.key != sent.senderDevice {
            violation("\(device.key) was shown \(text) as from \(fromDevice), sent by \(sent.senderDevice)")
        }
        if !sent.recipients.contains(device.key) { violation("\(device.key) was shown \(text), sent when it was not in the group") }
        let times = (shown[device.key]?[text] ?? 0) + 1
        shown[device.key, default: [:]][text] = times
        if times > 1 { violation("\(device.key) was shown \(text) \(times) times") }
        let stream = sent.senderDevice + " " + sent.conversation
        let last = lastIndex[device.key]?[stream] ?? 0
        if sent.index <= last { violation("\(device.key) was shown \(text) (#\(sent.index) of \(sent.senderDevice)) after #\(last)") }
        lastIndex[device.key, default: [:]][stream] = max(last, sent.index)
    }

    /// At the end, after every running device received everything: each
    /// message reached every device that was in the group when it was
    /// sent and still runs, unless it expired first.
    mutating func checkAllDelivered(now: Date) {
        for text in sentOrder {
            guard let sent = sent[text] else { continue }
            for key in sent.recipients {
                guard let device = devices.first(where: { $0.key == key }), device.state == .alive, !suspended.contains(device.user)
                else { continue }
                counts.deliveriesChecked += 1
                if shown[key]?[text] == nil, !(sent.expiresAt.map { $0 <= now } ?? false) {
                    violation("\(key) never got \(text) (sent by \(sent.senderDevice) in \(sent.conversation))")
                }
            }
        }
    }
}

struct HistoryCounts: CustomStringConvertible {
    var operations = 0
    var skipped = 0
    var messages = 0
    var refusedSends = 0
    var deliveries = 0
    var deliveriesChecked = 0
    var crashes = 0
    var restarts = 0
    var warnings = 0

    var description: String {
        "\(operations) operations (\(skipped) not applicable), \(messages) messages sent, \(refusedSends) sends refused visibly, "
            + "\(deliveries) deliveries shown, \(deliveriesChecked) deliveries checked at the end, \(crashes) client crashes, "
            + "\(restarts) server restarts, \(warnings) warnings"
    }
}
