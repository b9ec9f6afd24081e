import ConclaveProtocol
import Foundation
import MLS
import MLSCodec

extension ConclaveClient {
    // MARK: Creating

    /// Creates a room with these users (all their devices) and this user's
    /// other devices. `settings` go into the group's context, where every
    /// member and the server read them; nil takes the default of the
    /// members' security groups. Settings or members that policy forbids
    /// are refused before anything is created.
    public func createRoom(name: String, members: [UserAddress], settings: ConversationSettings? = nil) async throws -> Conversation {
        if let settings, !settings.isValid { throw ClientError.invalid("message lifetime and burn-on-read are at most ten years") }
        return try await lock.withLock {
            let chosen = try await self.settingsWithinPolicy(settings, members: members)
            let id = try await self.createGroup(kind: .room, name: name, peer: nil, settings: chosen)
            return try await self.addUsers(members, to: id)
        }
    }

    /// The bounds the server's policy sets for a conversation of this user
    /// with these users (a refusal when they may not share one).
    public func policyBounds(with members: [UserAddress]) async throws -> ConversationBounds {
        do {
            return try await api.post("/v1/policy", PolicyQuery(members: members))
        } catch let error as ClientError where error.code?.isPolicyRefusal == true {
            guard case .api(_, let detail) = error else { throw error }
            throw ClientError.policy(detail.message)
        }
    }

    /// `settings` checked against the members' bounds, or their default.
    func settingsWithinPolicy(_ settings: ConversationSettings?, members: [UserAddress]) async throws -> ConversationSettings {
        let bounds = try await policyBounds(with: members)
        guard let settings else { return bounds.defaultSettings }
        if let problem = bounds.problem(settings) { throw ClientError.policy(problem) }
        return settings
    }

    /// Changes a conversation's message lifetime and burn-on-read: a commit
    /// of a GroupContextExtensions proposal, so every member agrees on the
    /// new settings. Checked against the members' policy first.
    public func setSettings(_ settings: ConversationSettings, in id: ConversationID) async throws -> Conversation {
        guard settings.isValid else { throw ClientError.invalid("message lifetime and burn-on-read are at most ten years") }
        return try await lock.withLock {
            let (account, _, _) = try await self.requireAccount()
            let others = try await self.current(id).members.filter { $0 != account.user }
            _ = try await self.settingsWithinPolicy(settings, members: others)
            return try await self.commitWithRetry(id) { group in
                let kept = group.context.extensions.filter { $0.type != ConversationSettings.extensionType }
                let extensions = kept + (settings.isDefault ? [] : [settings.extension])
                return try group.commit(proposals: [.groupContextExtensions(extensions)], now: self.validationTime, random: self.random)
            }
        }
    }

    /// The 1:1 conversation with a user: this device's, the server's (joined
    /// by external commit), or a new one.
    public func directConversation(with peer: UserAddress) async throws -> Conversation {
        try await lock.withLock { try await self.findOrCreateDirect(peer) }
    }

    private func findOrCreateDirect(_ peer: UserAddress) async throws -> Conversation {
        let (account, _, _) = try requireAccount()
        guard peer != account.user else { throw ClientError.invalid("a 1:1 conversation needs another user") }
        if let local = try await conversations().first(where: { $0.kind == .direct && $0.peer == peer }) { return local }
        let list: ConversationList = try await api.get("/v1/conversations")
        if let existing = list.conversations.first(where: { $0.kind == .direct && $0.members.contains(peer) }) {
            let joined = try await joinExternally(existing.id)
            guard joined.peer == peer else { throw ClientError.untrusted("the server's 1:1 with \(peer) holds other users") }
            return joined
        }
        do {
            let settings = try await settingsWithinPolicy(nil, members: [peer])
            let id = try await createGroup(kind: .direct, name: nil, peer: peer, settings: settings)
            return try await addUsers([peer], to: id)
        } catch let error as ClientError where error.code == .conversationExists {
            guard case .api(_, let detail) = error, let existing = detail.conversation else { throw error }
            let joined = try await joinExternally(existing)
            guard joined.peer == peer else { throw ClientError.untrusted("the server's 1:1 with \(peer) holds other users") }
            return joined
        }
    }

    /// C3: a 1:1's peer is the one other user whose leaves verified in the
    /// tree this device joined; a "1:1" with more users has none, and is
    /// never taken for the 1:1 with anyone.
    static func directPeer(_ kind: ConversationKind, _ leaves: LeafVerification, me: UserAddress) -> UserAddress? {
        let others = Set(leaves.verified.values.map(\.user)).subtracting([me])
        return kind == .direct && others.count == 1 ? others.first : nil
    }

    /// Creates the group with this device alone, naming the network's server
    /// as external sender (for de-provisioning), and registers it.
    private func createGroup(
        kind: ConversationKind, name: String?, peer: UserAddress?, settings: ConversationSettings = ConversationSettings()
    ) async throws -> ConversationID {
        let (account, signer, networkKey) = try requireAccount()
        let provider = try self.provider
        let id = ConversationID.hosted(by: account.user.domain)
        let bundle = try KeyPackageBundle.create(
            provider, credential: try credential, signer: signer, lifetime: Lifetime(notBefore: now - 3600, notAfter: now + 90 * 24 * 3600),
            capabilities: ConversationSettings.capabilities(provider.suite), random: random)
        var writer = TLSWriter()
        writer.writeVector([networkKey.externalSender])
        let group = try Group(
            creating: id.bytes, creator: bundle,
            extensions: [Extension(type: .externalSenders, data: writer.bytes)] + (settings.isDefault ? [] : [settings.extension]),
            random: random)
        let _: ConversationInfo = try await api.post(
            "/v1/conversations",
            CreateConversation(
                kind: kind, name: name, peer: peer, groupInfo: Base64Bytes(try group.groupInfo(includeTree: true).tlsSerialized)))
        try await saveGroup(id, StoredConversation(kind: kind, name: name, peer: peer, snapshot: Base64Bytes([])), group)
        return id
    }

    // MARK: Membership

    /// Adds users (every device of each) to a conversation.
    public func add(_ users: [UserAddress], to id: ConversationID) async throws -> Conversation {
        try await lock.withLock { try await self.addUsers(users, to: id) }
    }

    func addUsers(_ users: [UserAddress], to id: ConversationID) async throws -> Conversation {
        let (account, _, _) = try requireAccount()
        var packages: [KeyPackage] = []
        for user in Set(users + [account.user]) {
            let networkKey = try await confirmNetworkKey(for: user.domain)
            let claimed: ClaimedKeyPackages = try await api.post("/v1/key-packages/claim", KeyPackageClaim(user: user))
            var found = 0
            for entry in claimed.keyPackages where entry.deviceId != account.device {
                guard case .keyPackage(let package) = try? MLSMessage(tlsSerialized: entry.keyPackage.bytes).body,
                    let certificate = VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: networkKey),
                    certificate.user == user,
                    certificate.device == entry.deviceId
                else { throw ClientError.invalid("a key package of \(user) does not carry a valid certificate") }
                packages.append(package)
                found += 1
            }
            if found == 0 && user != account.user { throw ClientError.noDevices(user) }
        }
        guard !packages.isEmpty else { return try await current(id) }
        return try await commitWithRetry(id) { group in
            let alreadyIn = Set(group.members.map { $0.leaf.signatureKey })
            let fresh = packages.filter { !alreadyIn.contains($0.leafNode.signatureKey) }
            return try group.commit(adding: fresh, now: self.validationTime, random: self.random)
        }
    }

    /// Removes a user (every device) from a conversation.
    public func remove(_ user: UserAddress, from id: ConversationID) async throws -> Conversation {
        try await lock.withLock {
            try await self.commitWithRetry(id) { group in
                let leaves = group.members.filter { UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedUser == user }.map(
                    \.index)
                guard !leaves.isEmpty else { throw ClientError.invalid("\(user) is not in this conversation") }
                return try group.commit(removing: leaves, now: self.validationTime, random: self.random)
            }
        }
    }

    /// Leaves a conversation: the server proposes removing all of this user's
    /// devices, another member commits it, and this device drops its state.
    public func leave(_ id: ConversationID) async throws {
        try await lock.withLock {
            let _: [String: Bool] = try await self.api.post("/v1/conversations/\(id)/leave")
            try await self.store.deleteGroup(id)
        }
    }

    func current(_ id: ConversationID) async throws -> Conversation {
        guard let (stored, group) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        return await conversation(id, stored, group)
    }

    /// Builds a commit, sends it with the new epoch's GroupInfo, and merges it
    /// once the server accepts it. When another commit won the epoch, or the
    /// server's proposals must come first, it catches up and tries again.
    func commitWithRetry(_ id: ConversationID, _ build: (inout Group) throws -> CommitOutput) async throws -> Conversation {
        var lastError: (any Error)?
        for _ in 0..<4 {
            guard let (stored, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
            var group = original
            let output = try build(&group)
            var next = group
            try next.mergePendingCommit()
            let request = CommitRequest(
                commit: Base64Bytes(output.commit.tlsSerialized),
                welcome: output.welcome.map { Base64Bytes(MLSMessage(body: .welcome($0)).tlsSerialized) },
                groupInfo: Base64Bytes(try next.groupInfo(includeTree: false).tlsSerialized))
            do {
                let _: CommitAccepted = try await api.post("/v1/conversations/\(id)/commits", request)
                try await saveGroup(id, stored, next)
                needsCommit.remove(id)
                return await conversation(id, stored, next)
            } catch let error as ClientError where error.code == .wrongEpoch || error.code == .pendingProposals {
                lastError = error
                try await catchUp(autoCommit: false)
            }
        }
        throw lastError ?? ClientError.invalid("the commit was not accepted")
    }

    // MARK: Joining by external commit

    /// Joins the user's conversations this device is not in yet (a new
    /// device): each by external commit from the server's GroupInfo.
    func joinMissingConversations() async throws -> [ClientEvent] {
        let list: ConversationList = try await api.get("/v1/conversations")
        let local = Set(try await store.groupIDs())
        var events: [ClientEvent] = []
        for info in list.conversations where !local.contains(info.id) {
            do {
                events.append(.joined(try await joinExternally(info.id)))
            } catch {
                events.append(.warning("could not join conversation \(info.id): \(error)"))
            }
        }
        return events
    }

    func joinExternally(_ id: ConversationID) async throws -> Conversation {
        let (account, signer, _) = try requireAccount()
        var lastError: (any Error)?
        for _ in 0..<4 {
            let response: GroupInfoResponse = try await api.get("/v1/conversations/\(id)/group-info")
            let info = try GroupInfo(tlsSerialized: response.groupInfo.bytes)
            let tree = try RatchetTreeNodes(tlsSerialized: response.ratchetTree.bytes)
            let (group, commit) = try Group.joinExternally(
                groupInfo: info, ratchetTree: tree, credential: try credential, signer: signer,
                capabilities: ConversationSettings.capabilities(try provider.suite), now: validationTime, random: random)
            let leaves = await verifyLeaves(group)
            if let (_, error) = leaves.unavailable.first { throw error }
            guard leaves.failed.isEmpty else {
                throw ClientError.untrusted("conversation \(id) holds a device without a valid certificate of its network")
            }
            let request = CommitRequest(
                commit: Base64Bytes(commit.tlsSerialized), welcome: nil,
                groupInfo: Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized))
            do {
                let _: CommitAccepted = try await api.post("/v1/conversations/\(id)/commits", request)
            } catch let error as ClientError where error.code == .wrongEpoch {
                lastError = error
                continue
            }
            let meta: ConversationInfo = try await api.get("/v1/conversations/\(id)")
            let stored = StoredConversation(
                kind: meta.kind, name: meta.name, peer: Self.directPeer(meta.kind, leaves, me: account.user), snapshot: Base64Bytes([]))
            try await saveGroup(id, stored, group)
            return await conversation(id, stored, group)
        }
        throw lastError ?? ClientError.invalid("could not join conversation \(id)")
    }

    // MARK: Finding conversations

    /// A conversation by id, unique room name, or (for 1:1) user address.
    public func findConversation(_ text: String) async throws -> Conversation {
        let all = try await conversations()
        if let id = ConversationID(text), let match = all.first(where: { $0.id == id }) { return match }
        if let address = UserAddress(text), let match = all.first(where: { $0.kind == .direct && $0.peer == address }) { return match }
        let named = all.filter { $0.kind == .room && $0.name == text }
        if named.count > 1 { throw ClientError.ambiguousConversation(text) }
        if let match = named.first { return match }
        let prefixed = all.filter { $0.id.description.hasPrefix(text.lowercased()) }
        if text.count >= 6, prefixed.count == 1, let match = prefixed.first { return match }
        throw ClientError.unknownConversation(text)
    }
}
