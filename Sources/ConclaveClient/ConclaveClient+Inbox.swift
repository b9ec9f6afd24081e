import ConclaveProtocol
import Foundation
import MLS
import MLSCodec

extension ConclaveClient {
    /// Processes every pending inbox event: joins from Welcomes, applies
    /// commits, decrypts messages (each shown once), commits the server's
    /// pending proposals, acknowledges what was processed, and tops up key
    /// packages.
    public func receive() async throws -> [ClientEvent] {
        try await lock.withLock {
            let held = try await self.takeHeldMessages()
            return held.map(ClientEvent.message) + (try await self.processInbox(autoCommit: true))
        }
    }

    /// Brings the device up to date (joins, commits, key packages) without
    /// taking its new messages: they wait for the next ``receive()``.
    public func sync() async throws {
        try await lock.withLock { try await self.catchUp(autoCommit: true) }
    }

    /// Processes the inbox on the way to something else (sending,
    /// committing): the messages it decrypts are held for the next
    /// ``receive()``, so none is lost: sealed in the local store, except
    /// burn-on-read messages, which stay in memory only.
    func catchUp(autoCommit: Bool) async throws {
        let events = try await processInbox(autoCommit: autoCommit)
        let received = events.compactMap { event -> ReceivedMessage? in if case .message(let message) = event { message } else { nil } }
        guard !received.isEmpty else { return }
        heldBurnOnRead += received.filter { $0.burnOnRead != nil }
        let kept = received.filter { $0.burnOnRead == nil }
        guard !kept.isEmpty else { return }
        try await setHeldMessages(try await heldMessages() + kept)
    }

    private func heldMessages() async throws -> [ReceivedMessage] {
        guard let bytes = try await store.meta("held_messages") else { return [] }
        do { return try ConclaveJSON.decoder().decode([ReceivedMessage].self, from: Data(bytes)) } catch {
            throw ClientError.localStore("held messages are unreadable")
        }
    }

    private func setHeldMessages(_ messages: [ReceivedMessage]) async throws {
        try await store.setMeta("held_messages", Array(try ConclaveJSON.encoder().encode(messages)))
    }

    /// Deletes held messages whose lifetime is over: their plaintext leaves
    /// the disk and memory at expiry.
    func purgeExpiredHeldMessages() async throws {
        let now = clock()
        heldBurnOnRead.removeAll { ($0.expiresAt ?? .distantFuture) <= now }
        let held = try await heldMessages()
        let live = held.filter { ($0.expiresAt ?? .distantFuture) > now }
        if live.count != held.count { try await setHeldMessages(live) }
    }

    private func takeHeldMessages() async throws -> [ReceivedMessage] {
        try await purgeExpiredHeldMessages()
        let held = try await heldMessages() + heldBurnOnRead
        heldBurnOnRead = []
        if !held.isEmpty { try await setHeldMessages([]) }
        return held.sorted { $0.sentAt < $1.sentAt }
    }

    func processInbox(autoCommit: Bool) async throws -> [ClientEvent] {
        let api = try self.api
        var events: [ClientEvent] = []
        while true {
            let page: InboxPage = try await api.get("/v1/inbox?after=\(inboxCursor)&limit=200")
            for event in page.events {
                events += try await handle(event)
                inboxCursor = event.seq
            }
            if let last = page.events.last {
                let _: AckResult = try await api.post("/v1/inbox/ack", InboxAck(upTo: last.seq))
            }
            if page.events.isEmpty { break }  // a page is bounded in bytes too: only an empty one means the end
        }
        if autoCommit {
            for id in needsCommit {
                do {
                    let conversation = try await commitWithRetry(id) { group in
                        try group.commit(includePending: true, now: self.validationTime, random: self.random)
                    }
                    events.append(.membersChanged(conversation))
                } catch {
                    events.append(.warning("could not commit the server's proposals in \(id): \(error)"))
                }
            }
            try await replenishKeyPackages()
        }
        return events
    }

    /// Handles one inbox event; a malformed or unprocessable one becomes a
    /// warning and is skipped, so one bad message cannot block the inbox.
    func handle(_ event: InboxEvent) async throws -> [ClientEvent] {
        guard let message = try? MLSMessage(tlsSerialized: event.message.bytes) else {
            return [.warning("dropped an undecodable message in \(event.conversation)")]
        }
        do {
            switch (event.kind, message.body) {
            case (.welcome, .welcome(let welcome)):
                return try await join(welcome, id: event.conversation)
            case (.handshake, .publicMessage(let handshake)):
                return try await apply(handshake, message, id: event.conversation)
            case (.application, .privateMessage):
                return try await decrypt(message, event: event)
            default:
                return [.warning("dropped a message of the wrong kind in \(event.conversation)")]
            }
        } catch let error as MLSError {
            return [.warning("dropped a message in \(event.conversation): \(error.rule) \(error.message)")]
        }
    }

    private func join(_ welcome: Welcome, id: ConversationID) async throws -> [ClientEvent] {
        if try await store.group(id) != nil { return [] }
        let (account, signer, _) = try requireAccount()
        for secrets in welcome.secrets {
            guard let (bytes, lastResort) = try await store.keyPackage(secrets.newMember) else { continue }
            let bundle = try KeyPackageBundle(serialized: bytes, signer: signer)
            let group = try Group(welcome: welcome, keyPackage: bundle, now: validationTime)
            let leaves = await verifyLeaves(group)
            if let (_, error) = leaves.unavailable.first { throw error }
            guard leaves.failed.isEmpty, group.groupID == id.bytes else {
                return [.warning("refused to join \(id): a device in it has no valid certificate of the network")]
            }
            if !lastResort { try await store.deleteKeyPackage(secrets.newMember) }
            let meta: ConversationInfo = try await api.get("/v1/conversations/\(id)")
            let stored = StoredConversation(
                kind: meta.kind, name: meta.name, peer: Self.directPeer(meta.kind, leaves, me: account.user), snapshot: Base64Bytes([]))
            try await saveGroup(id, stored, group)
            var events: [ClientEvent] = [.joined(await conversation(id, stored, group))]
            if meta.kind == .direct && stored.peer == nil {
                events.append(
                    .warning("conversation \(id) calls itself a 1:1 but holds other users than you and one peer; it is not used as a 1:1"))
            }
            return events
        }
        return [.warning("a Welcome to \(id) matches none of this device's key packages")]
    }

    private func apply(_ handshake: PublicMessage, _ message: MLSMessage, id: ConversationID) async throws -> [ClientEvent] {
        guard let (stored, original) = try await loadGroup(id) else { return [] }
        guard handshake.content.epoch == original.epoch else {
            // An older epoch's message was processed already (at-least-once delivery).
            return handshake.content.epoch < original.epoch ? [] : [.warning("a handshake of \(id) is from a future epoch")]
        }
        var group = original
        switch try group.process(message, now: validationTime) {
        case .commit(let summary):
            if summary.removedSelf {
                try await store.deleteGroup(id)
                needsCommit.remove(id)
                return [.removed(id)]
            }
            needsCommit.remove(id)
            try await saveGroup(id, stored, group)
            let changed = summary.added + summary.updated + [summary.committer]
            var events: [ClientEvent] = [.membersChanged(await conversation(id, stored, group))]
            if !(await verifyLeaves(group, changed)).failed.isEmpty {
                events.append(.warning("conversation \(id) now holds a device without a valid certificate of the network"))
            }
            return events
        case .proposal(_, let sender):
            try await saveGroup(id, stored, group)
            if case .external = sender { needsCommit.insert(id) }
            return []
        case .application:
            return [.warning("dropped application data sent in the clear")]
        }
    }

    private func decrypt(_ message: MLSMessage, event: InboxEvent) async throws -> [ClientEvent] {
        let id = event.conversation
        guard let (stored, original) = try await loadGroup(id) else { return [] }
        var group = original
        guard case .application(let application) = try group.process(message, now: validationTime) else { return [] }
        try await saveGroup(id, stored, group)
        guard let certificate = await verifyLeaves(group, [application.sender]).verified[application.sender] else {
            return [.warning("a message in \(id) comes from a device without a valid certificate; not shown")]
        }
        guard let body = try? ConclaveJSON.decoder().decode(MessageBody.self, from: Data(application.data)) else {
            return [.warning("a message in \(id) is not a Conclave message")]
        }
        guard try await store.markSeen(body.id, at: clock()) else { return [] }
        // C5: the expiry comes from the lifetime the members agreed on in the group's context; the server's own
        // stamp can only bring it closer.
        let settings = ConversationSettings(extensions: group.context.extensions) ?? ConversationSettings()
        let agreed = settings.messageLifetime > 0 ? event.sentAt.addingTimeInterval(TimeInterval(settings.messageLifetime)) : nil
        let expiresAt = [agreed, event.expiresAt].compactMap { $0 }.min()
        // Expired ciphertext the server had not swept yet is not shown.
        if let expiresAt, expiresAt <= clock() { return [] }
        return [
            .message(
                ReceivedMessage(
                    id: body.id, conversation: id, room: stored.name, from: certificate.user, device: certificate.device, text: body.text,
                    sentAt: event.sentAt, expiresAt: expiresAt, burnOnRead: settings.burnOnRead > 0 ? settings.burnOnRead : nil))
        ]
    }

    // MARK: Sending

    /// Encrypts and sends a text message. The group state is saved before
    /// the message leaves, so a key is never used twice even after a crash.
    /// A refused epoch is caught up and retried with a new encryption.
    @discardableResult
    public func send(_ text: String, to id: ConversationID) async throws -> MessageAccepted {
        try await lock.withLock { try await self.performSend(text, to: id) }
    }

    private func performSend(_ text: String, to id: ConversationID) async throws -> MessageAccepted {
        let messageID = UUID().uuidString.lowercased()
        let body = Array(try ConclaveJSON.encoder().encode(MessageBody(id: messageID, text: text)))
        var lastError: (any Error)?
        if try await store.group(id) == nil {
            // Not joined yet: the Welcome may be waiting in the inbox.
            try await catchUp(autoCommit: true)
        }
        for _ in 0..<4 {
            try await ensureTrusted(id)
            guard let (stored, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
            var group = original
            let message = try group.encrypt(body, random: random)
            try await saveGroup(id, stored, group)
            do {
                return try await api.post(
                    "/v1/conversations/\(id)/messages", SendMessage(messageId: messageID, message: Base64Bytes(message.tlsSerialized)))
            } catch let error as ClientError where error.code == .wrongEpoch || error.code == .pendingProposals {
                lastError = error
                try await catchUp(autoCommit: true)
            }
        }
        throw lastError ?? ClientError.invalid("the message was not accepted")
    }

    /// Before anything is sent into a group (C3, C4 in docs/client.md):
    /// every leaf's certificate verifies with the key of its network (a leaf
    /// that does not is removed by a commit of this device first), and a
    /// 1:1 holds this user and the peer only; a 1:1 whose peer has no device
    /// left gets the peer's current devices added again.
    func ensureTrusted(_ id: ConversationID) async throws {
        guard let (stored, group) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        let (account, _, _) = try requireAccount()
        let leaves = await verifyLeaves(group)
        if let (_, error) = leaves.unavailable.first { throw error }
        if !leaves.failed.isEmpty {
            let untrusted = Set(leaves.failed.compactMap { group.tree.leaf($0)?.signatureKey })
            _ = try await commitWithRetry(id) { group in
                let remove = group.members.filter { untrusted.contains($0.leaf.signatureKey) && $0.index != group.ownLeaf }.map(\.index)
                return try group.commit(removing: remove, now: self.validationTime, random: self.random)
            }
        }
        guard stored.kind == .direct else { return }
        guard let peer = stored.peer else { throw ClientError.untrusted("this 1:1 conversation has no known peer") }
        let users = Set(leaves.verified.values.map(\.user))
        guard users.isSubset(of: [account.user, peer]) else {
            throw ClientError.untrusted("the 1:1 conversation with \(peer) holds other users")
        }
        if !users.contains(peer) { _ = try await addUsers([peer], to: id) }
    }
}
