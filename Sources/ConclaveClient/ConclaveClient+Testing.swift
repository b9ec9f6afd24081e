import ConclaveProtocol
import Foundation
import MLS

/// Hooks for tests that play a modified client. Not API.
extension ConclaveClient {
    @_spi(Testing) public var sessionTokenForTesting: String? { account?.token }

    /// The PKCE S256 challenge of a verifier, as ``loginWithSSO(server:deviceName:timeout:authorize:)`` sends it.
    @_spi(Testing) public static func pkceChallengeForTesting(_ verifier: String) -> String {
        PKCE.challenge(of: verifier)
    }

    /// Builds (but neither sends nor merges) an empty commit with a path,
    /// with the new epoch's GroupInfo.
    @_spi(Testing) public func captureNextCommitForTesting(_ id: ConversationID) async throws -> CommitRequest {
        guard let (_, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        var group = original
        let output = try group.commit(forcePath: true, now: validationTime, random: random)
        try group.mergePendingCommit()
        return CommitRequest(
            commit: Base64Bytes(output.commit.tlsSerialized), welcome: nil,
            groupInfo: Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized))
    }

    /// The held messages: how many are sealed in the local store, and how
    /// many (burn-on-read) are in memory only.
    @_spi(Testing) public func heldMessageCountsForTesting() async throws -> (onDisk: Int, inMemory: Int) {
        let onDisk = try await store.held().filter { entry in
            if case .event(.message) = try? JSONDecoder().decode(HeldRecord.self, from: Data(entry.value)) { true } else { false }
        }.count
        return (onDisk, heldBurnOnRead.count)
    }

    /// Adds users to any conversation, as a modified client would (no check
    /// that it is a room).
    @_spi(Testing) public func addUsersForTesting(_ users: [UserAddress], to id: ConversationID) async throws -> Conversation {
        try await lock.withLock { try await self.addUsers(users, to: id) }
    }

    /// Commits a ReInit to `suite` and stops there, as a device that
    /// stopped before it started the successor group would.
    @_spi(Testing) public func commitReInitForTesting(_ id: ConversationID, to suite: CipherSuite) async throws {
        try await lock.withLock {
            _ = try await self.commitWithRetry(id) { group in
                let reinit = ReInit(
                    groupID: group.groupID, version: .mls10, cipherSuite: suite,
                    extensions: ConversationGeneration.extensions(group.context.extensions, generation: group.generation + 1))
                return try group.commit(proposals: [.reinit(reinit)], now: self.validationTime, random: self.random)
            }
        }
    }

    /// Starts the successor of a committed ReInit as a hostile member would:
    /// the right group for the server, with a Welcome of another group that
    /// nobody can use.
    @_spi(Testing) public func startSuccessorWithUnusableWelcomeForTesting(_ id: ConversationID) async throws {
        try await lock.withLock {
            let (account, _, _) = try await self.requireAccount()
            guard let (stored, old) = try await self.loadGroup(id), let reinit = old.pendingReInit else {
                throw ClientError.invalid("no ReInit committed")
            }
            let others = Set(await self.verifyLeaves(old).verified.values.map(\.user)).subtracting([account.user])
            let packages = try await self.claimKeyPackages(of: Array(others), suites: [reinit.cipherSuite.rawValue]).packages
            let (successor, _) = try old.reinitialize(
                creator: try await self.newKeyPackageBundle(reinit.cipherSuite), adding: packages, now: self.validationTime,
                random: self.random)
            var decoy = try Group(
                creating: ConversationID.hosted(by: account.user.domain).bytes,
                creator: try await self.newKeyPackageBundle(reinit.cipherSuite),
                random: self.random)
            let decoyMembers = try await self.claimKeyPackages(of: Array(others), suites: [reinit.cipherSuite.rawValue]).packages
            let output = try decoy.commit(adding: decoyMembers, now: self.validationTime, random: self.random)
            let _: CommitAccepted = try await self.api.post(
                "/v1/conversations/\(id)/successor",
                StartSuccessor(
                    groupInfo: Base64Bytes(try successor.groupInfo(includeTree: true).tlsSerialized),
                    welcome: output.welcome.map { Base64Bytes(MLSMessage(body: .welcome($0)).tlsSerialized) }))
            try await self.adoptSuccessor(id, stored, old: old, successor)
        }
    }

    /// The generation of a conversation this device holds (D25).
    @_spi(Testing) public func generationForTesting(_ id: ConversationID) async throws -> UInt64? {
        try await loadGroup(id)?.1.generation
    }

    /// How many epochs before its own commits this device keeps for a conversation.
    @_spi(Testing) public func retainedEpochCountForTesting(_ id: ConversationID) async throws -> Int {
        try await loadGroup(id)?.0.previous?.count ?? 0
    }

    /// This device's MLS state of a conversation, as saved.
    @_spi(Testing) public func groupForTesting(_ id: ConversationID) async throws -> Group? { try await loadGroup(id)?.1 }

    /// Overwrites this device's saved state of a conversation with bytes
    /// that do not decode, as a damaged disk would.
    @_spi(Testing) public func corruptGroupStateForTesting(_ id: ConversationID) async throws {
        try await store.setGroup(id, Array("not a group".utf8))
    }
}

extension AdminClient {
    /// Moves a debug server's clock forward (`CONCLAVE_TEST_CLOCK=1`); a
    /// release server does not have the route.
    @_spi(Testing) public func advanceTestClockForTesting(by seconds: Double) async throws {
        let _: [String: Double] = try await api.post("/v1/admin/test-clock", ["advance_seconds": seconds])
    }
}

extension ConclaveClient {
    /// A modified client that ignores "pending": it joins the user's
    /// conversations by external commit without any approval in its leaves.
    @_spi(Testing) public func joinIgnoringApprovalForTesting() async throws -> [ClientEvent] {
        try await lock.withLock { try await self.performJoinIgnoringApproval() }
    }

    private func performJoinIgnoringApproval() async throws -> [ClientEvent] {
        guard var account else { throw ClientError.notSignedIn }
        account.pending = nil
        try await saveAccount(account)
        try await replenishKeyPackages()
        return try await joinMissingConversations(quietly: false)
    }

    /// A modified client that holds an identity key of the attacker's
    /// choosing and approves itself with it.
    @_spi(Testing) public func adoptIdentityForTesting(_ identity: UserIdentityKey) async throws {
        try await lock.withLock { try await self.performAdoptIdentity(identity) }
    }

    private func performAdoptIdentity(_ identity: UserIdentityKey) async throws {
        guard var account, let signer else { throw ClientError.notSignedIn }
        let approval = try identity.approve(
            user: account.user, device: account.device, signatureKey: signer.publicKey,
            cipherSuite: CipherSuite(rawValue: account.cipherSuite), at: now)
        account.identitySeed = Base64Bytes(identity.seed)
        account.approval = Base64Bytes(approval.tlsSerialized)
        account.pending = nil
        account.transferSeed = nil
        try await saveAccount(account)
    }
}

extension ConclaveClient {
    /// While pending: the public key the identity key is to be sealed to.
    @_spi(Testing) public var transferKeyForTesting: [UInt8]? {
        guard let seed = account?.transferSeed?.bytes, let provider = try? self.provider else { return nil }
        return (try? provider.hpkePublicKey(of: HPKEPrivateKey(seed)))?.bytes
    }
}
