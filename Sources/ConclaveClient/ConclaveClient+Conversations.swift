import ConclaveProtocol
import Foundation
import MLS
import MLSCodec

extension ConclaveClient {
    // MARK: Creating

    /// Creates a room with these users (all their devices) and this user's
    /// other devices. `settings` go into the group's context, where every
    /// member and the server read them; nil takes the default of the
    /// members' security groups. Settings or members that policy forbids,
    /// a member without a device, or a name this device already has a room
    /// of (unless `allowDuplicateName`) are refused before anything is
    /// created.
    public func createRoom(
        name: String, members: [UserAddress], settings: ConversationSettings? = nil, allowDuplicateName: Bool = false
    ) async throws -> Conversation {
        if let settings, !settings.isValid { throw ClientError.invalid("message lifetime and burn-on-read are at most ten years") }
        return try await lock.withLock {
            if !allowDuplicateName, let existing = try await self.conversations().first(where: { $0.kind == .room && $0.name == name }) {
                throw ClientError.roomNameTaken(name, existing.id)
            }
            let bounds = try await self.policyBounds(with: members)
            let chosen = try Self.settings(settings, within: bounds)
            let (suite, packages) = try await self.claimKeyPackages(of: members, suites: bounds.cipherSuites)
            let id = try await self.createGroup(kind: .room, name: name, peer: nil, settings: chosen, suite: suite)
            return try await self.commitAdding(packages, to: id)
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
    static func settings(_ settings: ConversationSettings?, within bounds: ConversationBounds) throws -> ConversationSettings {
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
            _ = try Self.settings(settings, within: try await self.policyBounds(with: others))
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
            let bounds = try await policyBounds(with: [peer])
            let (suite, packages) = try await claimKeyPackages(of: [peer], suites: bounds.cipherSuites)
            let id = try await createGroup(kind: .direct, name: nil, peer: peer, settings: bounds.defaultSettings, suite: suite)
            return try await commitAdding(packages, to: id)
        } catch let error as ClientError where error.code == .conversationExists {
            guard case .api(_, let detail) = error, let existing = detail.conversation else { throw error }
            let joined = try await joinExternally(existing)
            guard joined.peer == peer else { throw ClientError.untrusted("the server's 1:1 with \(peer) holds other users") }
            return joined
        }
    }

    /// C3: a 1:1's peer is the one other user whose leaves verified in the
    /// tree this device joined; a "1:1" with more users has none, and is
    /// never taken for the 1:1 with anyone. Only when the tree holds no
    /// other user (the peer's devices all left) is the peer the conversation's
    /// listed other user, whose devices the next send adds (C4).
    static func directPeer(_ kind: ConversationKind, _ leaves: LeafVerification, me: UserAddress, listed: [UserAddress]) -> UserAddress? {
        guard kind == .direct else { return nil }
        let others = Set(leaves.verified.values.map(\.user)).subtracting([me])
        if others.isEmpty {
            let named = Set(listed).subtracting([me])
            return named.count == 1 ? named.first : nil
        }
        return others.count == 1 ? others.first : nil
    }

    /// Creates the group with this device alone, naming the network's server
    /// as external sender (for de-provisioning), and registers it.
    private func createGroup(
        kind: ConversationKind, name: String?, peer: UserAddress?, settings: ConversationSettings, suite: CipherSuite
    ) async throws -> ConversationID {
        let (account, _, networkKey) = try requireAccount()
        let id = ConversationID.hosted(by: account.user.domain)
        let bundle = try newKeyPackageBundle(suite)
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

    /// Adds users (every device of each) to a room. A 1:1 holds its two
    /// users for its whole life: nobody is added to it (create a room). A
    /// user whose security group does not allow the room's cipher suite is
    /// refused before anything changes (move the room first,
    /// ``moveConversation(_:to:)``).
    public func add(_ users: [UserAddress], to id: ConversationID) async throws -> Conversation {
        try await lock.withLock {
            let room = try await self.current(id)
            guard room.kind == .room else {
                throw ClientError.invalid("a 1:1 conversation holds its two users only; create a room to talk with more")
            }
            let (account, _, _) = try await self.requireAccount()
            let bounds = try await self.policyBounds(with: Array(Set(users).subtracting([account.user])))
            guard bounds.cipherSuites.contains(room.cipherSuite) else {
                let suite = CipherSuite(rawValue: room.cipherSuite)
                throw ClientError.policy(
                    "the members' security groups do not allow this room's cipher suite \(suite) (cipher-suite policy)"
                        + (suite.isPostQuantum ? "" : "; move it first: conclave room set ROOM --cipher-suite pq"))
            }
            return try await self.addUsers(users, to: id)
        }
    }

    func addUsers(_ users: [UserAddress], to id: ConversationID) async throws -> Conversation {
        guard let (_, group) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        let suite = group.context.cipherSuite
        return try await commitAdding(try await claimKeyPackages(of: users, suites: [suite.rawValue]).packages, to: id)
    }

    /// Commits adding these key packages' devices (those not in the group yet).
    func commitAdding(_ packages: [KeyPackage], to id: ConversationID) async throws -> Conversation {
        guard !packages.isEmpty else { return try await current(id) }
        return try await commitWithRetry(id) { group in
            let alreadyIn = Set(group.members.map { $0.leaf.signatureKey })
            let fresh = packages.filter { !alreadyIn.contains($0.leafNode.signatureKey) }
            return try group.commit(adding: fresh, now: self.validationTime, random: self.random)
        }
    }

    /// One key package of every device of these users and of this user's
    /// other devices, each verified against its network's key, all of one
    /// suite: the first of `allowed` (the members' policy, strongest first)
    /// that this device and every one of theirs supports. A user without a
    /// device is refused (``ClientError/noDevices(_:)``), and so is one
    /// with a device that has none of the allowed suites (a policy that
    /// requires post-quantum, and a device that cannot).
    /// `leavingOutUnavailable`: a user who is gone (404) or has no device,
    /// and a device without a key package of the suite, are left out
    /// instead (a successor group goes on without them).
    func claimKeyPackages(of users: [UserAddress], suites allowed: [UInt16], leavingOutUnavailable: Bool = false) async throws -> (
        suite: CipherSuite, packages: [KeyPackage]
    ) {
        let (account, _, _) = try requireAccount()
        var candidates = allowed.map(CipherSuite.init(rawValue:)).filter(CipherSuite.deviceSuites.contains)
        guard !candidates.isEmpty else {
            throw ClientError.policy("this device supports none of the cipher suites the members' security groups allow")
        }
        // Other users first, this user's other devices last; a user whose devices share only a weaker suite
        // narrows the choice, and those claimed with a stronger one are claimed again.
        let others = Set(users).subtracting([account.user]).sorted { $0.description < $1.description }
        var claims: [UserAddress: ClaimedKeyPackages] = [:]
        while true {
            for user in others + [account.user] where claims[user] == nil {
                let claimed: ClaimedKeyPackages
                do {
                    claimed = try await api.post(
                        "/v1/key-packages/claim", KeyPackageClaim(user: user, cipherSuites: candidates.map(\.rawValue)))
                } catch let error as ClientError where leavingOutUnavailable && error.code == .notFound {
                    claims[user] = ClaimedKeyPackages(user: user, cipherSuite: candidates[0].rawValue, keyPackages: [], missing: [])
                    continue
                }
                guard let index = candidates.firstIndex(of: CipherSuite(rawValue: claimed.cipherSuite)) else {
                    throw ClientError.invalid("the server handed out key packages of another suite")
                }
                if !claimed.missing.isEmpty && !leavingOutUnavailable {
                    throw ClientError.policy(
                        "\(user == account.user ? "one of your devices" : "a device of \(user)") cannot use \(Self.describe(candidates)), "
                            + "which the members' security groups require (cipher-suite policy); it needs a newer Conclave")
                }
                if index > 0 {
                    candidates.removeFirst(index)
                    claims = claims.filter { $0.value.cipherSuite == claimed.cipherSuite }
                }
                claims[user] = claimed
            }
            guard claims.count == others.count + 1 else { continue }
            var packages: [KeyPackage] = []
            for (user, claimed) in claims where !(leavingOutUnavailable && claimed.keyPackages.isEmpty) {
                packages += try await verifiedPackages(claimed, of: user, account)
            }
            return (candidates.first ?? .x25519Aes128Sha256Ed25519, packages)
        }
    }

    /// `post-quantum suite 0x004D`, or the classical suite(s).
    private static func describe(_ suites: [CipherSuite]) -> String {
        suites.allSatisfy(\.isPostQuantum) ? "the post-quantum cipher suite" : "any of the cipher suites \(suites.map(\.description))"
    }

    /// A claim's packages but this device's, each carrying a certificate
    /// of `user` for its device by the user's network; none is a
    /// ``ClientError/noDevices(_:)`` (for another user).
    private func verifiedPackages(_ claimed: ClaimedKeyPackages, of user: UserAddress, _ account: Account) async throws -> [KeyPackage] {
        let networkKey = try await confirmNetworkKey(for: user.domain)
        var packages: [KeyPackage] = []
        for entry in claimed.keyPackages where entry.deviceId != account.device {
            guard case .keyPackage(let package) = try? MLSMessage(tlsSerialized: entry.keyPackage.bytes).body,
                package.cipherSuite.rawValue == claimed.cipherSuite,
                let certificate = VerifiedDeviceCertificate.verify(leaf: package.leafNode, networkKey: networkKey),
                certificate.user == user,
                certificate.device == entry.deviceId
            else { throw ClientError.invalid("a key package of \(user) does not carry a valid certificate") }
            packages.append(package)
        }
        if packages.isEmpty && user != account.user { throw ClientError.noDevices(user) }
        return packages
    }

    /// Removes a user (every device) from a room.
    public func remove(_ user: UserAddress, from id: ConversationID) async throws -> Conversation {
        try await lock.withLock {
            guard try await self.current(id).kind == .room else {
                throw ClientError.invalid("a 1:1 conversation holds its two users for its whole life; nobody is removed from it")
            }
            try await self.catchUp(autoCommit: false)  // the user may have been added by a commit this device has not read
            return try await self.commitWithRetry(id) { group in
                let leaves = group.members.filter { UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedUser == user }.map(
                    \.index)
                guard !leaves.isEmpty else { throw ClientError.invalid("\(user) is not in this conversation") }
                return try group.commit(removing: leaves, now: self.validationTime, random: self.random)
            }
        }
    }

    /// Leaves a room: what is waiting for this device is processed first
    /// (messages stay held for the next receive), then the server proposes
    /// removing all of this user's devices, another member commits it, and
    /// this device drops its state. "Leaving" a 1:1 hides it on this
    /// device: it stays, with both users, and shows again when a message
    /// arrives or the user writes.
    public func leave(_ id: ConversationID) async throws {
        try await lock.withLock {
            let (stored, group) = try await self.joinedGroup(id)
            if stored.kind == .direct {
                var hidden = stored
                hidden.hidden = true
                try await self.saveGroup(id, hidden, group)
                return
            }
            try await self.catchUp(autoCommit: true)
            let _: [String: Bool] = try await self.api.post("/v1/conversations/\(id)/leave")
            try await self.store.atomically { try await self.forget(id) }
        }
    }

    func current(_ id: ConversationID) async throws -> Conversation {
        let (stored, group) = try await joinedGroup(id)
        return await conversation(id, stored, group)
    }

    /// This device's state of a conversation; when it holds none yet, the
    /// inbox is processed first (the Welcome may be waiting there).
    func joinedGroup(_ id: ConversationID) async throws -> (StoredConversation, Group) {
        if let found = try await loadGroup(id) { return found }
        try await catchUp(autoCommit: true)
        guard let found = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        return found
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
            // Written ahead: if the server takes the commit and this process stops before saving the new epoch, the
            // device still finds its way (it never receives its own commit).
            var written = stored
            written.pendingNext = Base64Bytes(next.snapshot())
            let pending = written
            try await store.atomically {
                try await self.saveGroup(id, pending, original)
                try await self.store.setFlag(.pendingCommit, id, true)
            }
            do {
                let _: CommitAccepted = try await api.post("/v1/conversations/\(id)/commits", request)
            } catch let error as ClientError where error.code == .wrongEpoch || error.code == .pendingProposals {
                lastError = error
                try await clearPendingCommit(id, stored, original)
                try await catchUp(autoCommit: false)
                continue
            } catch let error as ClientError where error.code != nil && !error.stopsProcessing {
                try await clearPendingCommit(id, stored, original)
                throw error
            }
            let accepted = next
            var kept = stored
            kept.retain(original)
            let retained = kept
            try await store.atomically {
                try await self.saveGroup(id, retained, accepted)
                try await self.store.setFlag(.previousEpochs, id, true)
                try await self.store.setFlag(.pendingCommit, id, false)
                try await self.store.setFlag(.needsCommit, id, !accepted.state.pendingProposals.isEmpty)
            }
            return await conversation(id, retained, accepted)
        }
        throw lastError ?? ClientError.invalid("the commit was not accepted")
    }

    /// The commit was refused: the group stays in its epoch.
    private func clearPendingCommit(_ id: ConversationID, _ stored: StoredConversation, _ group: Group) async throws {
        try await store.atomically {
            try await self.saveGroup(id, stored, group)
            try await self.store.setFlag(.pendingCommit, id, false)
        }
    }

    // MARK: Joining by external commit

    /// Joins the user's conversations this device is not in yet (a new
    /// device, a 1:1 this user's devices all left, a join that failed
    /// before): each by external commit from the server's GroupInfo. Rooms
    /// this device left are not joined again. `quietly`: a failure is
    /// reported once per conversation, not at every receive.
    func joinMissingConversations(quietly: Bool) async throws -> [ClientEvent] {
        let list: ConversationList = try await api.get("/v1/conversations")
        let local = Set(try await store.groupIDs())
        var events: [ClientEvent] = []
        for info in list.conversations where !local.contains(info.id) {
            if try await store.departed(info.id) { continue }
            do {
                if let joined = try await joinExternally(info.id, listed: info, unlessWelcomed: true) { events.append(.joined(joined)) }
                joinWarnings.remove(info.id)
            } catch let error as ClientError where error.stopsProcessing {
                throw error
            } catch {
                if !quietly || joinWarnings.insert(info.id).inserted {
                    events.append(.warning("could not join conversation \(info.name ?? info.id.description): \(error)"))
                }
            }
        }
        return events
    }

    /// Joins a conversation by external commit. A leaf this device already
    /// has in the group (a join whose answer was lost, or state lost
    /// locally) is replaced in the same commit (resynchronisation).
    func joinExternally(_ id: ConversationID, listed: ConversationInfo? = nil) async throws -> Conversation {
        guard let joined = try await joinExternally(id, listed: listed, unlessWelcomed: false) else { return try await current(id) }
        return joined
    }

    /// With `unlessWelcomed`: when the group already holds a leaf of this
    /// device, a member added it and its Welcome is in the inbox: the inbox
    /// is processed first, and the join happens only if that did not bring
    /// the group (nil then: the Welcome's `joined` event is held).
    private func joinExternally(_ id: ConversationID, listed: ConversationInfo?, unlessWelcomed: Bool) async throws -> Conversation? {
        var welcomeChecked = !unlessWelcomed
        let (account, signer, _) = try requireAccount()
        let meta: ConversationInfo
        if let listed { meta = listed } else { meta = try await api.get("/v1/conversations/\(id)") }
        var lastError: (any Error)?
        for _ in 0..<4 {
            let response: GroupInfoResponse = try await api.get("/v1/conversations/\(id)/group-info")
            let info = try GroupInfo(tlsSerialized: response.groupInfo.bytes)
            let tree = try RatchetTreeNodes(tlsSerialized: response.ratchetTree.bytes)
            let current = try PublicGroup(groupInfo: info, ratchetTree: tree, now: validationTime)
            let ownOldLeaf = current.members.first {
                UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedDevice == account.device
                    && UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedUser == account.user
            }?.index
            if ownOldLeaf != nil, !welcomeChecked {
                welcomeChecked = true
                try await catchUp(autoCommit: false)
                if try await store.group(id) != nil { return nil }
                continue
            }
            let (group, commit) = try Group.joinExternally(
                groupInfo: info, ratchetTree: tree, credential: try credential, signer: signer,
                capabilities: ConversationSettings.capabilities(info.groupContext.cipherSuite), leafExtensions: leafExtensions,
                removing: ownOldLeaf,
                now: validationTime, random: random)
            let leaves = await verifyLeaves(group)
            if let (_, error) = leaves.unavailable.first { throw error }
            guard leaves.failed.isEmpty else {  // a device without a certificate; an unapproved one is removed before sending (C6)
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
            let stored = StoredConversation(
                kind: meta.kind, name: meta.name, peer: Self.directPeer(meta.kind, leaves, me: account.user, listed: meta.members),
                snapshot: Base64Bytes([]))
            try await saveGroup(id, stored, group)
            try await store.setFlag(.needsCommit, id, !group.state.pendingProposals.isEmpty)
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
        if named.count > 1 { throw ClientError.ambiguousConversation("\(text): \(named.map(\.id.description).joined(separator: ", "))") }
        if let match = named.first { return match }
        let prefixed = all.filter { $0.id.description.hasPrefix(text.lowercased()) }
        if text.count >= 6, prefixed.count == 1, let match = prefixed.first { return match }
        throw ClientError.unknownConversation(text)
    }
}
