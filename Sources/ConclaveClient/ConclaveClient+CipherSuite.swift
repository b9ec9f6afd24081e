import ConclaveProtocol
import Foundation
import MLS

/// Moving a conversation to another cipher suite (RFC 9420 §11.2; D25 in
/// docs/server.md): a commit of a ReInit ends the old group, and a member
/// starts its successor, with the same id, adding every member device; the
/// others join it from its Welcome, which needs the old group's resumption
/// secret (so only its members can). Messages then name the
/// conversation's generation in their authenticated data.
extension ConclaveClient {
    /// Moves a conversation to `suite` (for the hybrid post-quantum
    /// 0x004D: `conclave room set ROOM --cipher-suite pq`). Refused before
    /// anything changes when the members' security groups do not allow the
    /// suite or a member device cannot use it. On a conversation whose
    /// ReInit was committed but whose successor did not start (its device
    /// stopped on the way), it starts the successor.
    public func moveConversation(_ id: ConversationID, to suite: CipherSuite) async throws -> Conversation {
        guard CipherSuite.deviceSuites.contains(suite) else {
            throw ClientError.invalid("Conclave devices run the cipher suites \(CipherSuite.deviceSuites.map(\.description)) only")
        }
        return try await lock.withLock {
            try await self.catchUp(autoCommit: true)
            guard let (stored, group) = try await self.loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
            if let pending = group.pendingReInit {
                guard pending.cipherSuite == suite else {
                    throw ClientError.invalid("this conversation is already moving to \(pending.cipherSuite); finish that move first")
                }
                return try await self.startSuccessor(id, claimed: nil)
            }
            guard group.context.cipherSuite != suite else { return await self.conversation(id, stored, group) }
            let (account, _, _) = try await self.requireAccount()
            let others = await self.conversation(id, stored, group).members.filter { $0 != account.user }
            guard id.isHosted(by: account.user.domain), others.allSatisfy({ $0.domain == account.user.domain }) else {
                throw ClientError.invalid("a conversation with members of other networks cannot move to another cipher suite yet")
            }
            let bounds = try await self.policyBounds(with: others)
            guard bounds.cipherSuites.contains(suite.rawValue) else {
                throw ClientError.policy("the members' security groups do not allow conversations of \(suite) (cipher-suite policy)")
            }
            // Every member device must be able to follow: their key packages of the new suite, before anything changes.
            let packages = try await self.claimKeyPackages(of: others, suites: [suite.rawValue]).packages.filter(self.canJoinSuccessor)
            let covered = Set(packages.map(\.leafNode.signatureKey))
            let stranded = group.members.filter { $0.index != group.ownLeaf && !covered.contains($0.leaf.signatureKey) }
            guard stranded.isEmpty else {
                throw ClientError.invalid(
                    "\(stranded.count) device(s) in this conversation have no key package of \(suite) and could not follow the move "
                        + "(they need a newer Conclave, or to sign in again); nothing was changed")
            }
            let reinit = ReInit(
                groupID: group.groupID, version: .mls10, cipherSuite: suite,
                extensions: ConversationGeneration.extensions(group.context.extensions, generation: group.generation + 1))
            _ = try await self.commitWithRetry(id) { group in
                try group.commit(proposals: [.reinit(reinit)], now: self.validationTime, random: self.random)
            }
            return try await self.startSuccessor(id, claimed: packages)
        }
    }

    /// Starts the successor of a group whose ReInit is committed: a new
    /// group of the ReInit's suite with every device of its members (the
    /// `claimed` key packages when they cover the old group's devices, else
    /// new ones), sent to the server, which delivers its Welcome. When
    /// another member started it first, the Welcome is on its way: this
    /// device catches up and joins from it.
    func startSuccessor(_ id: ConversationID, claimed: [KeyPackage]?) async throws -> Conversation {
        guard let (stored, old) = try await loadGroup(id), let reinit = old.pendingReInit else {
            throw ClientError.invalid("conversation \(id) committed no move to another cipher suite")
        }
        let (account, _, _) = try requireAccount()
        let devices = Set(old.members.map(\.leaf.signatureKey)).subtracting([old.tree.leaf(old.ownLeaf)?.signatureKey].compactMap { $0 })
        var packages = claimed ?? []
        if !devices.isSubset(of: Set(packages.map(\.leafNode.signatureKey))) {
            // Users suspended, deleted or left without devices since are left out: the new group goes on without them.
            let users = Set(await verifyLeaves(old).verified.values.map(\.user)).subtracting([account.user])
            packages = try await claimKeyPackages(of: Array(users), suites: [reinit.cipherSuite.rawValue], leavingOutUnavailable: true)
                .packages
        }
        packages = packages.filter(canJoinSuccessor)
        guard old.generation < UInt64.max else { throw ClientError.invalid("conversation \(id) has moved too often") }
        let (successor, welcome) = try old.reinitialize(
            creator: try newKeyPackageBundle(reinit.cipherSuite), adding: packages, now: validationTime, random: random)
        let request = StartSuccessor(
            groupInfo: Base64Bytes(try successor.groupInfo(includeTree: true).tlsSerialized),
            welcome: welcome.map { Base64Bytes(MLSMessage(body: .welcome($0)).tlsSerialized) })
        do {
            let _: CommitAccepted = try await api.post("/v1/conversations/\(id)/successor", request)
        } catch let error as ClientError where error.code == .conflict {
            try await catchUp(autoCommit: false)  // another member's successor: its Welcome joins this device
            guard let (_, group) = try await loadGroup(id), group.pendingReInit == nil else {
                // No usable Welcome came (the successor left this device out, or its starter sent a bad one): join the
                // conversation's current group as any device of a member does, from the server's GroupInfo.
                do {
                    return try await joinExternally(id)
                } catch let error as ClientError where error.code == .notFound {
                    throw ClientError.invalid(
                        "conversation \(id) moved to its new group without you (a member left you out); ask a member to add you again")
                }
            }
            return try await current(id)
        }
        try await adoptSuccessor(id, stored, old: old, successor)
        return try await current(id)
    }

    /// Whether a claimed key package can be added to a successor group: not
    /// expired, and its leaf takes the generation extension (0xF0C2) the new
    /// group's context carries.
    nonisolated func canJoinSuccessor(_ package: KeyPackage) -> Bool {
        guard case .keyPackage(let lifetime) = package.leafNode.source else { return false }
        let now = UInt64(max(0, Date().timeIntervalSince1970))
        return lifetime.notBefore <= now + 3600 && now <= lifetime.notAfter
            && package.leafNode.capabilities.extensions.contains(ConversationGeneration.extensionType)
    }

    /// The successor replaces the old group; the old one (with the states
    /// this device's own last commits ended) is kept for the messages of
    /// it still in the inbox.
    func adoptSuccessor(_ id: ConversationID, _ stored: StoredConversation, old: Group, _ successor: Group) async throws {
        var next = stored
        next.pendingNext = nil
        next.predecessor = (stored.previous ?? []) + [Base64Bytes(old.snapshot())]
        next.previous = nil
        let adopted = next
        try await store.atomically {
            try await self.saveGroup(id, adopted, successor)
            try await self.store.setFlag(.previousEpochs, id, true)
            try await self.store.setFlag(.pendingCommit, id, false)
            try await self.store.setFlag(.needsCommit, id, false)
        }
    }
}
