import ConclaveProtocol
import Foundation
import MLS
import MLSCodec

/// What processing one inbox event came to.
enum EventOutcome: Sendable {
    /// Processed (or dropped with a warning): these events for the user;
    /// `advanced` when the conversation moved to a new epoch or was joined,
    /// so that events deferred behind it may now go through.
    case handled([ClientEvent], advanced: Bool)
    /// Not processable yet (a conversation or an epoch not reached, a peer
    /// network's key not to be had now): kept, and tried again later.
    case deferred
}

/// How a held event is stored: a burn-on-read message only as a
/// placeholder, its text staying in memory (never on disk).
enum HeldRecord: Codable, Sendable {
    case event(ClientEvent)
    case burnOnRead(messageID: String)
}

extension ConclaveClient {
    /// How long, and how many, inbox events may wait for their
    /// conversation or epoch before they are given up (with a warning).
    static let deferredLifetime: TimeInterval = 7 * 86_400
    static let deferredLimit = 1_000

    // MARK: Receiving

    /// Processes the inbox and returns every event not yet confirmed
    /// (messages, joins, membership and settings changes, warnings), oldest
    /// first; they are confirmed at once. An application that must not lose
    /// a message if it stops before showing it uses ``pendingEvents()`` and
    /// ``confirm(through:)`` instead.
    public func receive() async throws -> [ClientEvent] {
        try await lock.withLock {
            try await self.processAll()
            let pending = try await self.takePending()
            if let last = pending.last { try await self.release(through: last.sequence) }
            return pending.map(\.event)
        }
    }

    /// Processes the inbox and returns every event not yet confirmed,
    /// oldest first. They stay held (sealed in the local store; burn-on-read
    /// messages in memory only) until ``confirm(through:)``, so an
    /// application that stops before showing them gets them again.
    public func pendingEvents() async throws -> [PendingEvent] {
        try await lock.withLock {
            try await self.processAll()
            return try await self.takePending()
        }
    }

    /// Confirms that the application showed the held events up to
    /// `sequence`: they are deleted.
    public func confirm(through sequence: Int64) async throws {
        try await lock.withLock { try await self.release(through: sequence) }
    }

    /// Brings the device up to date (joins, commits, key packages) without
    /// returning anything: what it finds waits for the next ``receive()``.
    public func sync() async throws {
        try await lock.withLock { try await self.processAll() }
    }

    /// Everything a receive does: the inbox (and what waited), the server's
    /// proposals committed, conversations of this user that this device is
    /// not in yet joined, key packages topped up.
    func processAll() async throws {
        if isPending {
            try await holdEvents(try await checkApproval())
            if isPending { return }
        }
        try await catchUp(autoCommit: true)
        try await holdEvents(try await joinMissingConversations(quietly: true))
        try await holdEvents(try await ownDeviceChanges())
        try await holdEvents(try await transparencySelfCheck())
        try await replenishKeyPackages()
    }

    /// Processes the inbox on the way to something else (sending,
    /// committing): what it finds is held for the next ``receive()``.
    func catchUp(autoCommit: Bool) async throws {
        try await resolvePendingCommits()
        let api = try self.api
        while true {
            let page: InboxPage = try await api.get("/v1/inbox?after=\(inboxCursor)&limit=200")
            for event in page.events where event.seq > inboxCursor { try await process(event) }
            if let last = page.events.last {
                let _: AckResult = try await api.post("/v1/inbox/ack", InboxAck(upTo: last.seq))
            }
            if page.events.isEmpty { break }  // a page is bounded in bytes too: only an empty one means the end
        }
        try await retryAllDeferred()
        // Every message of an epoch before an own commit was in the inbox when the server took that commit (it
        // takes no message of an older epoch after it, D8): all read now, so those epochs' states go.
        try await dropPreviousEpochs()
        if autoCommit { try await commitServerProposals() }
    }

    /// Processes one event in one local transaction: its effects on the
    /// conversation, the events it gives the user, and the inbox cursor are
    /// saved together (or, if this process dies, not at all, and the server
    /// delivers it again).
    private func process(_ event: InboxEvent) async throws {
        var queued = false
        if event.kind != .welcome { queued = !(try await store.deferred(of: event.conversation)).isEmpty }
        let waiting = queued
        let outcome = try await store.atomically {
            // Behind events of its conversation that wait, an event waits too, so that order holds.
            let outcome = waiting ? EventOutcome.deferred : try await self.handleSafely(event)
            switch outcome {
            case .handled(let events, _): try await self.holdEvents(events)
            case .deferred: try await self.deferEvent(event)
            }
            try await self.setInboxCursor(event.seq)
            return outcome
        }
        if case .handled(_, advanced: true) = outcome { try await retryDeferred(event.conversation) }
    }

    /// Handles an event; what goes wrong with this event alone (a message
    /// that does not decrypt, a conversation that refuses) becomes a warning
    /// and never stops the inbox. Only trouble reaching the server (or a
    /// session that ended) stops it, and then nothing is lost.
    func handleSafely(_ event: InboxEvent) async throws -> EventOutcome {
        do {
            return try await handle(event)
        } catch let error as ClientError where error.stopsProcessing {
            throw error
        } catch let error as MLSError {
            return .handled(
                [.warning("could not read an event of conversation \(event.conversation): \(error.rule) \(error.message)")], advanced: false
            )
        } catch {
            return .handled([.warning("could not process an event of conversation \(event.conversation): \(error)")], advanced: false)
        }
    }

    private func handle(_ event: InboxEvent) async throws -> EventOutcome {
        guard let message = try? MLSMessage(tlsSerialized: event.message.bytes) else {
            return .handled([.warning("dropped an undecodable message in \(event.conversation)")], advanced: false)
        }
        switch (event.kind, message.body) {
        case (.welcome, .welcome(let welcome)):
            return try await join(welcome, event: event)
        case (.handshake, .publicMessage(let handshake)):
            return try await apply(handshake, message, id: event.conversation)
        case (.application, .privateMessage(let privateMessage)):
            guard let generation = ConversationGeneration.generation(of: privateMessage.authenticatedData) else {
                return .handled([.warning("dropped a message of \(event.conversation) that names no generation")], advanced: false)
            }
            return try await decrypt(message, epoch: privateMessage.epoch, generation: generation, event: event)
        default:
            return .handled([.warning("dropped a message of the wrong kind in \(event.conversation)")], advanced: false)
        }
    }

    /// An event of a conversation this device does not hold: dropped if
    /// the device left it or was removed; else it waits (its Welcome may be
    /// on the way).
    private func unknownConversation(_ id: ConversationID) async throws -> EventOutcome {
        try await store.departed(id) ? .handled([], advanced: false) : .deferred
    }

    // MARK: Welcome

    private func join(_ welcome: Welcome, event: InboxEvent) async throws -> EventOutcome {
        let id = event.conversation
        if let (stored, existing) = try await loadGroup(id) {
            if existing.pendingReInit != nil { return try await joinSuccessor(welcome, id, stored, existing) }
            // This device's own ReInit, whose fate it did not learn (it stopped after sending it): a successor's
            // Welcome that carries its resumption secret settles that it was accepted.
            if let bytes = stored.pendingNext?.bytes, let next = try? Group(snapshot: bytes), next.pendingReInit != nil {
                var settled = stored
                settled.pendingNext = nil
                settled.retain(existing)
                return try await joinSuccessor(welcome, id, settled, next)
            }
            return .handled([], advanced: false)
        }
        // A Welcome to a conversation this device left or was removed from is a new add when it is for one of this
        // device's key packages (a stale one names a package used up then): the device joins again.
        let (account, signer, _) = try requireAccount()
        for secrets in welcome.secrets {
            guard let (bytes, lastResort) = try await store.keyPackage(secrets.newMember) else { continue }
            let bundle = try KeyPackageBundle(serialized: bytes, signer: signer)
            let group = try Group(welcome: welcome, keyPackage: bundle, now: validationTime)
            let leaves = await verifyLeaves(group)
            guard leaves.unavailable.isEmpty else { return .deferred }  // a peer network's key, later
            guard leaves.failed.isEmpty, group.groupID == id.bytes else {
                return .handled(
                    [.warning("refused to join \(id): a device in it has no valid certificate of its network")], advanced: false)
            }
            if !lastResort { try await store.deleteKeyPackage(secrets.newMember) }
            var kind = event.conversationKind ?? .room
            var name = event.name
            if event.conversationKind == nil, let meta: ConversationInfo = try? await api.get("/v1/conversations/\(id)") {
                (kind, name) = (meta.kind, meta.name)
            }
            let peer = Self.directPeer(kind, leaves, me: account.user, listed: [])
            let stored = StoredConversation(kind: kind, name: name, peer: peer, snapshot: Base64Bytes([]))
            try await saveGroup(id, stored, group)
            try await store.clearDeparted(id)
            var events: [ClientEvent] = [.joined(await conversation(id, stored, group))]
            if kind == .direct && peer == nil {
                events.append(
                    .warning("conversation \(id) calls itself a 1:1 but holds other users than you and one peer; it is not used as a 1:1"))
            }
            return .handled(events, advanced: true)
        }
        return .handled([.warning("a Welcome to \(id) matches none of this device's key packages")], advanced: false)
    }

    /// The successor of a conversation whose ReInit this device processed
    /// (D25): joined from its Welcome only with the old group's resumption
    /// secret (``Group/joinSuccessor(welcome:keyPackage:now:)``), and only
    /// when every device in it has a valid certificate. A Welcome without
    /// that secret is a member adding this device to a later group of the
    /// conversation (it was left out of the successor): joined as any
    /// Welcome. Who came and went with the move is reported.
    private func joinSuccessor(_ welcome: Welcome, _ id: ConversationID, _ stored: StoredConversation, _ old: Group) async throws
        -> EventOutcome
    {
        let (_, signer, _) = try requireAccount()
        for secrets in welcome.secrets {
            guard let (bytes, lastResort) = try await store.keyPackage(secrets.newMember) else { continue }
            let bundle = try KeyPackageBundle(serialized: bytes, signer: signer)
            let group: Group
            do {
                group = try old.joinSuccessor(welcome: welcome, keyPackage: bundle, now: validationTime)
            } catch {
                // An Add into the successor (epoch 2 on), which this device was left out of: the group the ReInit named,
                // its settings aside, one generation on.
                guard let reinit = old.pendingReInit, old.generation < UInt64.max,
                    let added = try? Group(welcome: welcome, keyPackage: bundle, now: validationTime), added.groupID == id.bytes,
                    added.epoch > 1, added.generation == old.generation + 1, added.cipherSuite == reinit.cipherSuite,
                    added.context.extensions.filter({ $0.type != ConversationSettings.extensionType })
                        == reinit.extensions.filter({ $0.type != ConversationSettings.extensionType })
                else { return .handled([.warning("refused the new group of \(id): \(error.message)")], advanced: false) }
                group = added
            }
            let leaves = await verifyLeaves(group)
            guard leaves.unavailable.isEmpty else { return .deferred }
            guard leaves.failed.isEmpty else {
                return .handled(
                    [.warning("refused the new group of \(id): a device in it has no valid certificate of its network")], advanced: false)
            }
            if !lastResort { try await store.deleteKeyPackage(secrets.newMember) }
            let before = await verifyLeaves(old)
            try await adoptSuccessor(id, stored, old: old, group)
            let conversation = try await current(id)
            var events: [ClientEvent] = []
            if group.cipherSuite != old.cipherSuite { events.append(.cipherSuiteChanged(conversation)) }
            if let change = Self.membershipChange(conversation, before: before, after: leaves, by: nil, proposedByServer: false) {
                events.append(.membersChanged(change))
            }
            for (_, certificate) in leaves.unapproved.sorted(by: { $0.key < $1.key }) {
                events.append(.untrustedDevice(id, DeviceRef(certificate)))  // C6
            }
            return .handled(events, advanced: true)
        }
        return .handled([.warning("the new group of \(id) was started without this device (none of its key packages)")], advanced: false)
    }

    // MARK: Handshakes

    private func apply(_ handshake: PublicMessage, _ message: MLSMessage, id: ConversationID) async throws -> EventOutcome {
        guard let (loaded, current) = try await loadGroup(id) else { return try await unknownConversation(id) }
        // A group whose ReInit is committed takes nothing more (the server's proposals sent meanwhile are moot:
        // its successor holds only live devices, D25); its successor's Welcome comes next.
        if current.pendingReInit != nil { return .handled([], advanced: false) }
        let epoch = handshake.content.epoch
        var (stored, original) = try await adoptPendingCommit(id, loaded, current, evidence: epoch)
        if epoch < original.epoch { return .handled([], advanced: false) }  // processed before (at-least-once delivery)
        if epoch > original.epoch { return .deferred }
        if stored.pendingNext != nil {
            // Another commit of this epoch reached this device: this device's own commit lost the race.
            stored.pendingNext = nil
            try await store.setFlag(.pendingCommit, id, false)
        }
        var group = original
        switch try group.process(message, now: validationTime) {
        case .commit(let summary):
            let byServer = !original.state.pendingProposals.isEmpty
            let before = await verifyLeaves(original)
            if summary.removedSelf {
                try await forget(id)
                return .handled([.removed(id, by: before.verified[summary.committer].map(DeviceRef.init))], advanced: false)
            }
            try await saveGroup(id, stored, group)
            try await store.setFlag(.needsCommit, id, !group.state.pendingProposals.isEmpty)
            let after = await verifyLeaves(group)
            let conversation = await conversation(id, stored, group)
            let by = after.verified[summary.committer].map(DeviceRef.init)
            var events: [ClientEvent] = []
            if let change = Self.membershipChange(conversation, before: before, after: after, by: by, proposedByServer: byServer) {
                events.append(.membersChanged(change))
            }
            if ConversationSettings(extensions: original.context.extensions) != ConversationSettings(extensions: group.context.extensions) {
                events.append(.settingsChanged(SettingsChange(conversation: conversation, by: by, proposedByServer: byServer)))
            }
            if !after.failed.isEmpty {
                events.append(
                    .warning(
                        "conversation \(id) now holds a device without a valid certificate of its network; it is removed before anything is sent"
                    ))
            }
            for (index, certificate) in after.unapproved.sorted(by: { $0.key < $1.key }) where before.unapproved[index] == nil {
                events.append(.untrustedDevice(id, DeviceRef(certificate)))  // C6
            }
            return .handled(events, advanced: true)
        case .proposal(_, let sender):
            try await saveGroup(id, stored, group)
            if case .external = sender { try await store.setFlag(.needsCommit, id, true) }
            return .handled([], advanced: false)
        case .application:
            return .handled([.warning("dropped application data sent in the clear in \(id)")], advanced: false)
        }
    }

    /// Who came and went between two verified views of a group; nil when nobody did.
    static func membershipChange(
        _ conversation: Conversation, before: LeafVerification, after: LeafVerification, by: DeviceRef?, proposedByServer: Bool
    ) -> MembershipChange? {
        let old = Set(before.verified.values.map(DeviceRef.init))
        let new = Set(after.verified.values.map(DeviceRef.init))
        guard old != new else { return nil }
        let oldUsers = Set(old.map(\.user))
        let newUsers = Set(new.map(\.user))
        return MembershipChange(
            conversation: conversation, by: by, proposedByServer: proposedByServer,
            addedUsers: newUsers.subtracting(oldUsers).sorted(), removedUsers: oldUsers.subtracting(newUsers).sorted(),
            addedDevices: new.subtracting(old).sorted(), removedDevices: old.subtracting(new).sorted())
    }

    // MARK: Application messages

    private func decrypt(_ message: MLSMessage, epoch: UInt64, generation: UInt64, event: InboxEvent) async throws -> EventOutcome {
        let id = event.conversation
        guard let (loaded, current) = try await loadGroup(id) else { return try await unknownConversation(id) }
        if generation > current.generation { return .deferred }  // the successor's Welcome comes first (D25)
        if generation < current.generation {
            return try await decryptInPredecessor(message, epoch: epoch, generation: generation, event: event, loaded, current)
        }
        var (stored, original) = try await adoptPendingCommit(id, loaded, current, evidence: epoch)
        if epoch > original.epoch { return .deferred }
        var group = original
        // A message of an epoch this device's own commit ended: read with that epoch's state, kept for it.
        let past = (stored.previous ?? []).firstIndex { (try? Group(snapshot: $0.bytes))?.epoch == epoch }
        if epoch < original.epoch, let past, let bytes = stored.previous?[past].bytes { group = try Group(snapshot: bytes) }
        guard case .application(let application) = try group.process(message, now: validationTime) else {
            return .handled([], advanced: false)
        }
        if stored.hidden == true { stored.hidden = nil }  // a hidden 1:1 shows again when a message arrives
        if epoch < original.epoch, let past {
            stored.previous?[past] = Base64Bytes(group.snapshot())  // its used keys deleted
            try await saveGroup(id, stored, original)
        } else {
            try await saveGroup(id, stored, group)
        }
        return try await received(application, in: group, stored: stored, event: event)
    }

    /// A message of the group the conversation was before its successor
    /// started (D25), still in the inbox: read with that group's state of
    /// its epoch, kept until the inbox was read to its end.
    private func decryptInPredecessor(
        _ message: MLSMessage, epoch: UInt64, generation: UInt64, event: InboxEvent, _ loaded: StoredConversation, _ current: Group
    ) async throws -> EventOutcome {
        var stored = loaded
        guard generation + 1 == current.generation,
            let past = (stored.predecessor ?? []).firstIndex(where: { (try? Group(snapshot: $0.bytes))?.epoch == epoch }),
            let bytes = stored.predecessor?[past].bytes
        else { return .handled([.warning("a message of \(event.conversation)'s former group can no longer be read")], advanced: false) }
        var group = try Group(snapshot: bytes)
        guard case .application(let application) = try group.process(message, now: validationTime) else {
            return .handled([], advanced: false)
        }
        stored.predecessor?[past] = Base64Bytes(group.snapshot())  // its used keys deleted
        if stored.hidden == true { stored.hidden = nil }
        try await saveGroup(event.conversation, stored, current)
        return try await received(application, in: group, stored: stored, event: event)
    }

    /// A decrypted application message as the user sees it, from a device
    /// whose certificate verifies.
    private func received(_ application: ApplicationMessage, in group: Group, stored: StoredConversation, event: InboxEvent) async throws
        -> EventOutcome
    {
        let id = event.conversation
        let leaves = await verifyLeaves(group, [application.sender])
        guard leaves.unavailable.isEmpty else {
            return .handled([.warning("a message in \(id) comes from a network whose key cannot be had now; not shown")], advanced: false)
        }
        guard let certificate = leaves.verified[application.sender] else {
            return .handled([.warning("a message in \(id) comes from a device without a valid certificate; not shown")], advanced: false)
        }
        guard let body = try? ConclaveJSON.decoder().decode(MessageBody.self, from: Data(application.data)) else {
            return .handled([.warning("a message in \(id) is not a Conclave message")], advanced: false)
        }
        guard try await store.markSeen(body.id, at: clock()) else { return .handled([], advanced: false) }
        // C5: the expiry comes from the lifetime the members agreed on in the group's context; the server's own
        // stamp can only bring it closer.
        let settings = ConversationSettings(extensions: group.context.extensions) ?? ConversationSettings()
        let agreed = settings.messageLifetime > 0 ? event.sentAt.addingTimeInterval(TimeInterval(settings.messageLifetime)) : nil
        let expiresAt = [agreed, event.expiresAt].compactMap { $0 }.min()
        // Expired ciphertext the server had not swept yet is not shown.
        if let expiresAt, expiresAt <= clock() { return .handled([], advanced: false) }
        var events: [ClientEvent] = []
        var file = body.file
        if let shared = file, !shared.isWellFormed {
            events.append(.warning("a message in \(id) shares a file whose description is malformed; the file is left out"))
            file = nil
        }
        let received = ReceivedMessage(
            id: body.id, conversation: id, room: stored.name, from: certificate.user, device: certificate.device, text: body.text,
            sentAt: event.sentAt, expiresAt: expiresAt, burnOnRead: settings.burnOnRead > 0 ? settings.burnOnRead : nil, file: file)
        return .handled(events + [.message(received)], advanced: false)
    }

    // MARK: This device's own commits

    /// Evidence that this device's own commit was accepted: traffic of the
    /// next epoch while the device is one behind, with a commit of its own
    /// pending for that epoch (every other commit is delivered to the
    /// device; its own never is). Then the pending epoch is adopted.
    private func adoptPendingCommit(_ id: ConversationID, _ stored: StoredConversation, _ group: Group, evidence epoch: UInt64) async throws
        -> (StoredConversation, Group)
    {
        guard epoch == group.epoch + 1, let bytes = stored.pendingNext?.bytes, let next = try? Group(snapshot: bytes), next.epoch == epoch
        else { return (stored, group) }
        var adopted = stored
        adopted.pendingNext = nil
        adopted.retain(group)
        try await saveGroup(id, adopted, next)
        try await store.setFlag(.previousEpochs, id, true)
        try await store.setFlag(.pendingCommit, id, false)
        try await store.setFlag(.needsCommit, id, false)
        return (adopted, next)
    }

    /// For each conversation where a commit of this device was sent and
    /// its fate is unknown (the process stopped, or the answer was lost),
    /// asks the server: the same epoch and group context as the pending
    /// one means it was accepted; an older epoch means it was not.
    private func resolvePendingCommits() async throws {
        for id in try await store.flagged(.pendingCommit) {
            guard let (stored, group) = try await loadGroup(id), let bytes = stored.pendingNext?.bytes,
                let next = try? Group(snapshot: bytes), next.epoch > group.epoch
            else {
                try await clearPendingCommit(id)
                continue
            }
            let response: GroupInfoResponse
            do { response = try await api.get("/v1/conversations/\(id)/group-info") } catch let error as ClientError
                where !error.stopsProcessing
            {
                continue  // not a member any more, or refused: the inbox will tell
            }
            let serverGroup = (try? GroupInfo(tlsSerialized: response.groupInfo.bytes))?.groupContext
            if let serverGroup, (ConversationGeneration.generation(in: serverGroup.extensions) ?? 0) > group.generation {
                continue  // a successor started since: the inbox tells whether this device's commit (a ReInit?) was accepted
            }
            if response.epoch < next.epoch {
                try await clearPendingCommit(id)
            } else if response.epoch == next.epoch {
                let accepted = serverGroup == next.context
                if accepted {
                    _ = try await adoptPendingCommit(id, stored, group, evidence: next.epoch)
                } else {
                    try await clearPendingCommit(id)
                }
            }
        }
    }

    private func dropPreviousEpochs() async throws {
        for id in try await store.flagged(.previousEpochs) {
            try await store.atomically {
                if let (stored, group) = try await self.loadGroup(id), stored.previous != nil || stored.predecessor != nil {
                    var cleared = stored
                    cleared.previous = nil
                    cleared.predecessor = nil
                    try await self.saveGroup(id, cleared, group)
                }
                try await self.store.setFlag(.previousEpochs, id, false)
            }
        }
    }

    private func clearPendingCommit(_ id: ConversationID) async throws {
        if let (stored, group) = try await loadGroup(id), stored.pendingNext != nil {
            var cleared = stored
            cleared.pendingNext = nil
            try await saveGroup(id, cleared, group)
        }
        try await store.setFlag(.pendingCommit, id, false)
    }

    /// Commits the server's proposals (removals, settings) in every
    /// conversation that has some, as members must before anything else
    /// happens there (D11).
    private func commitServerProposals() async throws {
        for id in try await store.flagged(.needsCommit) {
            do {
                guard let (_, before) = try await loadGroup(id) else {
                    try await store.setFlag(.needsCommit, id, false)
                    continue
                }
                let old = await verifyLeaves(before)
                let conversation = try await commitWithRetry(id) { group in
                    try group.commit(includePending: true, now: self.validationTime, random: self.random)
                }
                guard let (_, after) = try await loadGroup(id) else { continue }
                let own = try requireAccount().0
                let change = Self.membershipChange(
                    conversation, before: old, after: await verifyLeaves(after), by: DeviceRef(user: own.user, device: own.device),
                    proposedByServer: true)
                try await holdEvents(change.map { [.membersChanged($0)] } ?? [])
            } catch let error as ClientError where error.stopsProcessing {
                throw error
            } catch {
                try await holdEvents([.warning("could not commit the server's proposals in \(id): \(error)")])
            }
        }
    }

    // MARK: Deferred events

    private func deferEvent(_ event: InboxEvent) async throws {
        try await store.deferEvent(
            seq: event.seq, conversation: event.conversation, at: clock(), Array(try JSONEncoder().encode(event)))
    }

    /// Tries a conversation's waiting events again, Welcomes first, then in
    /// inbox order, until one still has to wait.
    func retryDeferred(_ id: ConversationID) async throws {
        let waiting = try await store.deferred(of: id).compactMap { entry -> (Int64, InboxEvent)? in
            guard let event = try? JSONDecoder().decode(InboxEvent.self, from: Data(entry.value)) else { return nil }
            return (entry.seq, event)
        }
        for (seq, event) in waiting.filter({ $0.1.kind == .welcome }) + waiting.filter({ $0.1.kind != .welcome }) {
            let outcome = try await store.atomically {
                let outcome = try await self.handleSafely(event)
                if case .handled(let events, _) = outcome {
                    try await self.holdEvents(events)
                    try await self.store.dropDeferred(seq: seq)
                }
                return outcome
            }
            if case .deferred = outcome, event.kind != .welcome { return }
        }
    }

    /// Every conversation's waiting events, tried again (a peer network
    /// reachable again, a Welcome that came); those waiting too long, or
    /// beyond the limit, are given up with a warning.
    private func retryAllDeferred() async throws {
        let expired = try await store.dropDeferred(before: clock().addingTimeInterval(-Self.deferredLifetime))
        if expired > 0 {
            try await holdEvents([.warning("\(expired) events waited more than 7 days for their conversation and were given up")])
        }
        let excess = try await store.deferredCount() - Self.deferredLimit
        if excess > 0 {
            try await store.dropOldestDeferred(excess)
            try await holdEvents([.warning("\(excess) events waiting for their conversation were given up (too many wait)")])
        }
        for id in try await store.deferredConversations() { try await retryDeferred(id) }
    }

    // MARK: Held events

    /// Holds events for the user (in the caller's transaction, if any).
    func holdEvents(_ events: [ClientEvent]) async throws {
        let encoder = JSONEncoder()  // local records: Swift's own keys, read back by JSONDecoder()
        for event in events {
            let record: HeldRecord
            if case .message(let message) = event, message.burnOnRead != nil {
                heldBurnOnRead[message.id] = message
                record = .burnOnRead(messageID: message.id)
            } else {
                record = .event(event)
            }
            try await store.hold(Array(try encoder.encode(record)))
        }
    }

    /// The held events, oldest first; expired messages are deleted, not returned.
    private func takePending() async throws -> [PendingEvent] {
        let now = clock()
        var pending: [PendingEvent] = []
        for (seq, value) in try await store.held() {
            guard let record = try? JSONDecoder().decode(HeldRecord.self, from: Data(value)) else {
                throw ClientError.localStore("a held event is unreadable")
            }
            switch record {
            case .event(.message(let message)) where (message.expiresAt ?? .distantFuture) <= now:
                try await store.releaseOne(seq)
            case .event(let event):
                pending.append(PendingEvent(sequence: seq, event: event))
            case .burnOnRead(let id):
                if let message = heldBurnOnRead[id], (message.expiresAt ?? .distantFuture) > now {
                    pending.append(PendingEvent(sequence: seq, event: .message(message)))
                } else if heldBurnOnRead[id] == nil {
                    pending.append(
                        PendingEvent(
                            sequence: seq,
                            event: .warning(
                                "a burn-on-read message was lost: the app stopped before showing it (it is never written to disk)")))
                } else {
                    heldBurnOnRead[id] = nil
                    try await store.releaseOne(seq)
                }
            }
        }
        return pending
    }

    private func release(through sequence: Int64) async throws {
        for (seq, value) in try await store.held() where seq <= sequence {
            if case .burnOnRead(let id) = try? JSONDecoder().decode(HeldRecord.self, from: Data(value)) {
                heldBurnOnRead[id] = nil
            }
        }
        try await store.release(through: sequence)
    }

    /// Deletes held messages whose lifetime is over: their plaintext leaves
    /// the disk and memory at expiry.
    func purgeExpiredHeldMessages() async throws {
        let now = clock()
        heldBurnOnRead = heldBurnOnRead.filter { ($0.value.expiresAt ?? .distantFuture) > now }
        for (seq, value) in try await store.held() {
            if case .event(.message(let message)) = try? JSONDecoder().decode(HeldRecord.self, from: Data(value)),
                (message.expiresAt ?? .distantFuture) <= now
            {
                try await store.releaseOne(seq)
            }
        }
    }

    // MARK: Inbox cursor

    /// The last inbox event whose effects are saved.
    func loadInboxCursor() async throws {
        guard let bytes = try await store.meta("inbox_cursor") else { return }
        guard let value = Int64(String(decoding: bytes, as: UTF8.self)) else {
            throw ClientError.localStore("the inbox cursor is unreadable")
        }
        inboxCursor = value
    }

    private func setInboxCursor(_ seq: Int64) async throws {
        try await store.setMeta("inbox_cursor", Array(String(seq).utf8))
        inboxCursor = seq
    }

    /// Drops a conversation this device left or was removed from: its
    /// state, what waited for it, and any later event of it.
    func forget(_ id: ConversationID) async throws {
        try await store.deleteGroup(id)
        try await store.setFlag(.needsCommit, id, false)
        try await store.setFlag(.pendingCommit, id, false)
        try await store.markDeparted(id, at: clock())
        let dropped = try await store.dropDeferred(conversation: id)
        if dropped > 0 { try await holdEvents([.warning("\(dropped) events of conversation \(id) could not be read before you left it")]) }
    }
}

extension DeviceRef {
    init(_ certificate: VerifiedDeviceCertificate) { self.init(user: certificate.user, device: certificate.device) }
}

extension ClientError {
    /// Errors that stop processing the inbox (nothing is lost; it goes on
    /// next time): the server cannot be reached or is overloaded, or the
    /// session ended. Anything else concerns one event alone.
    var stopsProcessing: Bool {
        switch self {
        case .transport: true
        case .api(let status, _): status == 401 || status == 429 || status >= 500
        case .localStore: true
        default: false
        }
    }
}
