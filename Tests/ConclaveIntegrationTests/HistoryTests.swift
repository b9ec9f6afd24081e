@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import Testing

/// The model-checked history test (issue 19): a server process and many
/// SDK devices go through a seeded random history; after every step the
/// model of who is a member of what is compared with what the devices
/// hold and show, and at the end every message must have reached, once
/// and in order, every device that was in the group when it was sent.
///
/// The default run is short; a long one:
/// `CONCLAVE_HISTORY_STEPS=3000 CONCLAVE_HISTORY_SEED=7 swift test --filter HistoryTests`.
@Suite(.serialized)
struct HistoryTests {
    static var steps: Int { Int(ProcessInfo.processInfo.environment["CONCLAVE_HISTORY_STEPS"] ?? "") ?? 120 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["CONCLAVE_HISTORY_SEED"] ?? "") ?? 19 }
    static var shrinkRuns: Int { Int(ProcessInfo.processInfo.environment["CONCLAVE_HISTORY_SHRINK_RUNS"] ?? "") ?? 24 }

    @Test("19: nothing lost, nothing misdelivered, over a random history with crashes, restarts and de-provisioning")
    func history() async throws {
        let ops = HistoryOp.generate(seed: Self.seed, count: Self.steps)
        guard let outcome = try await HistoryRun.execute(ops) else { return }
        print("history seed \(Self.seed): \(outcome.model.counts), violations: \(outcome.model.violations.count)")
        guard let first = outcome.model.violations.first else { return }
        // Shrink: the failing prefix, then drop chunks while it still fails.
        var failing = Array(ops.prefix(outcome.failedAt.map { $0 + 1 } ?? ops.count))
        var last = outcome
        var runs = 0
        var chunk = max(1, failing.count / 2)
        while chunk >= 1, runs < Self.shrinkRuns {
            var index = 0
            var reduced = false
            while index < failing.count, runs < Self.shrinkRuns {
                var candidate = failing
                candidate.removeSubrange(index..<min(failing.count, index + chunk))
                runs += 1
                if let attempt = try await HistoryRun.execute(candidate), !attempt.model.violations.isEmpty {
                    failing = Array(candidate.prefix(attempt.failedAt.map { $0 + 1 } ?? candidate.count))
                    last = attempt
                    reduced = true
                } else {
                    index += chunk
                }
            }
            if !reduced { chunk /= 2 }
        }
        Issue.record(
            """
            violation: \(first)
            shrunk to \(failing.count) steps (\(runs) re-runs), which fail with: \(last.model.violations.first ?? "")
            \(last.trace.joined(separator: "\n"))
            """)
    }
}

/// One execution of a history against a new network.
final class HistoryRun {
    struct Outcome {
        let model: HistoryModel
        let trace: [String]
        /// The step after which the first violation was seen.
        let failedAt: Int?
    }

    static let names = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"]
    static let groups = [SecurityGroupName("default"), SecurityGroupName("blue")].compactMap { $0 }

    var network: ProcessNetwork
    var model = HistoryModel(userCount: names.count)
    var clients: [String: ConclaveClient] = [:]
    var profiles: [String: String] = [:]
    var trace: [String] = []
    var step = 0
    var serial = 0
    var groupOf: [Int: Int] = [:]

    private init(network: ProcessNetwork) { self.network = network }

    var addresses: [String] { Self.names.map { network.address($0).description } }

    /// Runs `ops` on a new network; stops after the first step with a
    /// violation. Nil when the network cannot start here.
    static func execute(_ ops: [HistoryOp]) async throws -> Outcome? {
        guard let network = try await ProcessNetwork.start(.sqlite, testClock: true, limits: .unthrottled) else { return nil }
        let run = HistoryRun(network: network)
        defer { run.network.stop() }
        try await run.setUp()
        var failedAt: Int?
        for (index, op) in ops.enumerated() {
            run.step = index + 1
            await run.perform(op)
            if !run.model.violations.isEmpty {
                failedAt = index
                break
            }
        }
        if failedAt == nil {
            await run.drainAll()
            run.model.checkAllDelivered(now: network.clock?.now() ?? Date())
            if !run.model.violations.isEmpty { failedAt = ops.count - 1 }
        }
        for client in run.clients.values { await client.close() }
        return Outcome(model: run.model, trace: run.trace, failedAt: failedAt)
    }

    private func setUp() async throws {
        _ = try await network.admin.addGroup(Self.groups[1], SecurityGroupChange(mayMessage: .all))
        for (index, name) in Self.names.enumerated() {
            try await network.users(name, group: Self.groups[index % 2].value)
            groupOf[index] = index % 2
            try await signIn(index)
        }
    }

    private func note(_ line: String) { trace.append("\(step): \(line)") }

    private func skip() { model.counts.skipped += 1 }

    /// A new device of the user, approved by one of the user's running
    /// devices; when none runs but a device of a suspended-then-restored
    /// user is left, that one signs in again and approves it; when the user
    /// has no device left at all, the new one makes a new identity key.
    private func signIn(_ user: Int) async throws {
        serial += 1
        let name = Self.names[user]
        let key = "\(name)#\(serial)"
        let client: ConclaveClient
        var how = "a new identity"
        if let approver = model.alive(of: user).first, let approving = clients[approver.key] {
            client = try await network.device(name, "d\(serial)", approvedBy: approving)
            how = "approved by \(approver.key)"
        } else if let dormant = model.devices.first(where: { $0.user == user && $0.state == .dormant }), let profile = profiles[dormant.key]
        {
            let clock = network.clock
            let old = try await ConclaveClient.open(profile: profile, clock: { clock?.now() ?? Date() })
            try await old.login(server: network.url, user: "\(name)@\(network.domain)", password: network.password, deviceName: "d")
            client = try await network.device(name, "d\(serial)", approvedBy: old)
            await old.close()
            how = "approved by \(dormant.key), signed in again"
        } else {
            client = try await network.device(name, "d\(serial)")
        }
        guard let id = await client.device, await !client.isPending else { throw TestSupportError("\(key) is not approved") }
        clients[key] = client
        profiles[key] = client.profile
        model.devices.append(HistoryModel.Device(key: key, user: user, id: id.description, since: step, state: .alive))
        note("\(key) signed in (\(how))")
    }

    private func pickDevice(_ choice: Int) -> HistoryModel.Device? {
        let alive = model.aliveDevices
        return alive.isEmpty ? nil : alive[choice % alive.count]
    }

    private func conversationIndices(of user: Int, rooms: Bool = false) -> [Int] {
        model.conversations.indices.filter { model.conversations[$0].members.contains(user) && (!rooms || !model.conversations[$0].direct) }
    }

    private func reachable(_ user: Int) -> Bool { !model.suspended.contains(user) && !model.alive(of: user).isEmpty }

    func perform(_ op: HistoryOp) async {
        model.counts.operations += 1
        do {
            switch op {
            case .send(let device, let conversation):
                guard let sender = pickDevice(device) else { return skip() }
                let candidates = conversationIndices(of: sender.user)
                guard !candidates.isEmpty else { return skip() }
                await send(from: sender, in: candidates[conversation % candidates.count])
            case .sendDirect(let device, let peer):
                guard let sender = pickDevice(device) else { return skip() }
                try await sendDirect(from: sender, to: (sender.user + 1 + peer % (Self.names.count - 1)) % Self.names.count)
            case .receive(let device, let crash):
                guard let receiver = pickDevice(device) else { return skip() }
                await receive(on: receiver, crash: crash)
            case .createRoom(let device, let members, let expiring):
                guard let creator = pickDevice(device) else { return skip() }
                let chosen = Set(members.map { $0 % Self.names.count }).subtracting([creator.user]).filter(reachable)
                guard !chosen.isEmpty else { return skip() }
                try await createRoom(by: creator, with: chosen.sorted(), expiring: expiring)
            case .add(let device, let conversation, let user):
                guard let adder = pickDevice(device) else { return skip() }
                let rooms = conversationIndices(of: adder.user, rooms: true)
                guard !rooms.isEmpty else { return skip() }
                let index = rooms[conversation % rooms.count]
                let candidates = (0..<Self.names.count).filter { !model.conversations[index].members.contains($0) && reachable($0) }
                guard !candidates.isEmpty else { return skip() }
                try await add(candidates[user % candidates.count], to: index, by: adder)
            case .remove(let device, let conversation, let member):
                guard let remover = pickDevice(device) else { return skip() }
                let rooms = conversationIndices(of: remover.user, rooms: true).filter { model.conversations[$0].members.count > 1 }
                guard !rooms.isEmpty else { return skip() }
                let index = rooms[conversation % rooms.count]
                let others = model.conversations[index].members.subtracting([remover.user]).sorted()
                try await remove(others[member % others.count], from: index, by: remover)
            case .leave(let device, let conversation):
                guard let leaver = pickDevice(device) else { return skip() }
                let rooms = conversationIndices(of: leaver.user, rooms: true)
                guard !rooms.isEmpty else { return skip() }
                try await leave(rooms[conversation % rooms.count], by: leaver)
            case .newDevice(let choice):
                let user = choice % Self.names.count
                guard !model.suspended.contains(user), model.alive(of: user).count < 3 else { return skip() }
                try await signIn(user)
            case .logout(let device):
                guard let leaving = pickDevice(device), let client = clients[leaving.key] else { return skip() }
                try await client.logout()
                setState(of: leaving.key, .gone)
                note("\(leaving.key) signed out")
                if model.alive(of: leaving.user).isEmpty { model.lostAllDevices(leaving.user, step: step) }
            case .suspend(let choice):
                let user = choice % Self.names.count
                guard !model.suspended.contains(user), let name = UserName(Self.names[user]) else { return skip() }
                _ = try await network.admin.suspend(name)
                model.suspended.insert(user)
                for device in model.alive(of: user) { setState(of: device.key, .dormant) }
                model.lostAllDevices(user, step: step)
                note("\(Self.names[user]) suspended")
            case .unsuspend(let choice):
                let user = choice % Self.names.count
                guard model.suspended.contains(user), let name = UserName(Self.names[user]) else { return skip() }
                _ = try await network.admin.unsuspend(name)
                model.suspended.remove(user)
                note("\(Self.names[user]) unsuspended (their old devices stay signed out)")
            case .resetDevices(let choice):
                let user = choice % Self.names.count
                guard let name = UserName(Self.names[user]) else { return skip() }
                _ = try await network.admin.resetDevices(name)
                for device in model.devices where device.user == user { setState(of: device.key, .gone) }
                model.lostAllDevices(user, step: step)
                note("\(Self.names[user])'s devices reset")
            case .moveGroup(let choice):
                let user = choice % Self.names.count
                guard let name = UserName(Self.names[user]) else { return skip() }
                let next = 1 - (groupOf[user] ?? 0)
                _ = try await network.admin.setGroup(of: name, to: Self.groups[next])
                groupOf[user] = next
                note("\(Self.names[user]) moved to \(Self.groups[next])")
            case .advanceClock(let hours):
                try await network.advanceClock(by: TimeInterval(hours) * 3600)
                note("clock +\(hours) h")
            case .restartServer:
                try await network.restart(kill: true)
                model.counts.restarts += 1
                note("server killed and restarted")
            }
        } catch {
            model.violation("step \(step) \(op) failed: \(error)")
            note("FAILED \(op): \(error)")
        }
    }

    private func setState(of key: String, _ state: HistoryModel.DeviceState) {
        guard let index = model.devices.firstIndex(where: { $0.key == key }) else { return }
        model.devices[index].state = state
        if state != .alive, let client = clients.removeValue(forKey: key) { Task { await client.close() } }
    }

    private func send(from sender: HistoryModel.Device, in index: Int) async {
        guard let client = clients[sender.key], let id = ConversationID(model.conversations[index].id) else { return skip() }
        serial += 1
        let text = "m\(serial)"
        let conversation = model.conversations[index]
        do {
            let sent = try await client.send(text, to: id)
            note("\(sender.key) sent \(text) in \(conversation.id.prefix(8)) to \(sent.recipients.count) devices")
            model.accepted(
                text: text, conversation: index, sender: sender,
                recipients: sent.recipients.map { ($0.user.description, $0.device.description) }, userNames: addresses,
                expiresAt: sent.expiresAt)
        } catch {
            let peer = conversation.members.first { $0 != sender.user }
            if conversation.direct, let peer, !reachable(peer) {
                model.counts.refusedSends += 1
                note("\(sender.key) could not send \(text) to \(Self.names[peer]), who has no running device: \(error)")
            } else {
                model.violation("step \(step): \(sender.key) could not send \(text) in \(conversation.id): \(error)")
                note("FAILED send \(text) by \(sender.key): \(error)")
            }
        }
    }

    private func sendDirect(from sender: HistoryModel.Device, to peer: Int) async throws {
        if let index = model.conversations.firstIndex(where: { $0.direct && $0.members == [sender.user, peer] }) {
            return await send(from: sender, in: index)
        }
        guard let client = clients[sender.key] else { return skip() }
        let conversation: Conversation
        do {
            conversation = try await client.directConversation(with: network.address(Self.names[peer]))
        } catch {
            if reachable(peer) {
                model.violation("step \(step): \(sender.key) could not open a 1:1 with \(Self.names[peer]): \(error)")
            } else {
                model.counts.refusedSends += 1
                note("\(sender.key) could not open a 1:1 with \(Self.names[peer]), who has no running device")
            }
            return
        }
        if model.conversations.contains(where: { $0.id == conversation.id.description }) {
            return model.violation("step \(step): the 1:1 of \(sender.key) with \(Self.names[peer]) is an existing conversation of others")
        }
        model.conversations.append(
            HistoryModel.Conversation(id: conversation.id.description, direct: true, members: [sender.user, peer], expiring: false))
        note("\(sender.key) opened a 1:1 with \(Self.names[peer]): \(conversation.id.description.prefix(8))")
        await send(from: sender, in: model.conversations.count - 1)
    }

    private func receive(on receiver: HistoryModel.Device, crash: Bool) async {
        guard var client = clients[receiver.key] else { return skip() }
        do {
            if crash {
                let pending = try await client.pendingEvents()
                await client.close()
                let clock = network.clock
                client = try await ConclaveClient.open(profile: client.profile, clock: { clock?.now() ?? Date() })
                clients[receiver.key] = client
                model.counts.crashes += 1
                note("\(receiver.key) died with \(pending.count) events decrypted but not shown")
            }
            let events = try await client.receive()
            record(events, on: receiver)
        } catch {
            model.violation("step \(step): receive on \(receiver.key) failed: \(error)")
            note("FAILED receive on \(receiver.key): \(error)")
        }
    }

    private func record(_ events: [ClientEvent], on device: HistoryModel.Device) {
        var shown: [String] = []
        for event in events {
            switch event {
            case .message(let message):
                shown.append(message.text)
                model.shown(
                    text: message.text, fromDevice: message.device.description, conversation: message.conversation.description, on: device)
            case .warning(let warning):
                model.counts.warnings += 1
                note("\(device.key) warned: \(warning)")
            case .untrustedDevice(let conversation, let untrusted):
                note("\(device.key) was told \(untrusted) in \(conversation.description.prefix(8)) is not approved by its user")
            case .identityChanged(let user):
                note("\(device.key) was told \(user)'s identity changed")
            default: break
            }
        }
        if !shown.isEmpty { note("\(device.key) was shown \(shown.joined(separator: " "))") }
    }

    private func createRoom(by creator: HistoryModel.Device, with members: [Int], expiring: Bool) async throws {
        guard let client = clients[creator.key] else { return skip() }
        serial += 1
        let room = try await client.createRoom(
            name: "r\(serial)", members: members.map { network.address(Self.names[$0]) },
            settings: expiring ? ConversationSettings(messageLifetime: 3600) : nil)
        model.conversations.append(
            HistoryModel.Conversation(id: room.id.description, direct: false, members: Set(members + [creator.user]), expiring: expiring))
        note(
            "\(creator.key) created room \(room.id.description.prefix(8)) with \(members.map { Self.names[$0] })\(expiring ? ", 1 h lifetime" : "")"
        )
    }

    private func add(_ user: Int, to index: Int, by adder: HistoryModel.Device) async throws {
        guard let client = clients[adder.key], let id = ConversationID(model.conversations[index].id) else { return skip() }
        _ = try await client.add([network.address(Self.names[user])], to: id)
        model.conversations[index].members.insert(user)
        model.conversations[index].leaving[user] = nil
        model.conversations[index].left.remove(user)
        note("\(adder.key) added \(Self.names[user]) to \(id.description.prefix(8))")
    }

    private func remove(_ user: Int, from index: Int, by remover: HistoryModel.Device) async throws {
        guard let client = clients[remover.key], let id = ConversationID(model.conversations[index].id) else { return skip() }
        _ = try await client.remove(network.address(Self.names[user]), from: id)
        model.conversations[index].members.remove(user)
        note("\(remover.key) removed \(Self.names[user]) from \(id.description.prefix(8))")
    }

    private func leave(_ index: Int, by leaver: HistoryModel.Device) async throws {
        guard let client = clients[leaver.key], let id = ConversationID(model.conversations[index].id) else { return skip() }
        try await client.leave(id)
        model.conversations[index].members.remove(leaver.user)
        model.conversations[index].leaving[leaver.user] = step
        model.conversations[index].left.insert(leaver.user)
        note("\(leaver.key) left \(id.description.prefix(8))")
    }

    /// Every running device receives until nothing is left.
    private func drainAll() async {
        step += 1
        for _ in 0..<2 {
            for device in model.aliveDevices { await receive(on: device, crash: false) }
        }
    }
}
