import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// A commit that verified as MLS (D7–D11, D13, D14, D18), before the
/// checks that need facts from outside the group (D12, P1, P2, F5).
struct StagedCommit: Sendable {
    let before: HostedConversation
    let requester: Requester
    let request: CommitRequest
    /// The group after the commit.
    let group: PublicGroup
    let summary: CommitSummary
    let settings: ConversationSettings
    let isExternalJoin: Bool
    /// The certificates every leaf of the new group claims (routing only:
    /// the leaves the commit did not touch were verified when they came in).
    let claims: [UnverifiedDeviceCertificate]
    /// The leaves the commit adds or changes, with their claims: D12
    /// verifies each of them.
    let changedLeaves: [(index: LeafIndex, claim: UnverifiedDeviceCertificate)]

    /// The networks whose keys D12 needs.
    var networksToVerify: Set<NetworkDomain> { Set(changedLeaves.map(\.claim.claimedUser.domain)) }
    /// This network's devices whose liveness D12 needs.
    func localDevicesToCheck(_ domain: NetworkDomain) -> Set<DeviceID> {
        Set(changedLeaves.filter { $0.claim.claimedUser.domain == domain }.map(\.claim.claimedDevice))
    }
    /// The users of the new group.
    var memberUsers: Set<UserAddress> { Set(claims.map(\.claimedUser)) }
    /// Users the commit brings in: users with a leaf after it and none
    /// before (a 1:1's user whose devices all left comes in again, and P1
    /// is checked again).
    var newcomers: Set<UserAddress> {
        memberUsers.subtracting(
            before.group.members.compactMap { UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedUser })
    }
    /// Whether P1, P2, P4 and F5 must look at the commit.
    var needsPolicy: Bool { !newcomers.isEmpty || settings != before.record.settings || summary.reinit != nil }
}

/// A local device as D12 needs to know it.
struct LiveDevice: Sendable {
    let signatureKey: [UInt8]
    let user: UserName
    let suspended: Bool
    /// Waiting for its user's approval (A14): in no conversation yet.
    var pending = false
}

/// What D12, P1, P2 and F5 decide from, loaded by the shell.
struct AdmissionFacts: Sendable {
    /// The keys of the networks in ``StagedCommit/networksToVerify`` that
    /// are this one or pinned peers (absent: not trusted).
    var networkKeys: [NetworkDomain: NetworkPublicKey]
    /// The live devices among ``StagedCommit/localDevicesToCheck(_:)``.
    var devices: [DeviceID: LiveDevice]
    /// The policies of the new group's local users (when ``StagedCommit/needsPolicy``).
    var policies: [UserName: SecurityGroupPolicy]
    var federation: FederationFacts
}

extension DeliveryCore {
    /// D6–D11, D13, D14, D18: the commit is a PublicMessage for the
    /// current epoch, sent by the requester's own leaf (or its user's new
    /// device), that verifies with the public group view, commits every
    /// pending server proposal, and comes with a matching GroupInfo (and a
    /// Welcome when it adds devices).
    static func stageCommit(
        _ request: CommitRequest, to conversation: HostedConversation, by requester: Requester, now: ValidationTime
    ) throws(APIError) -> StagedCommit {
        guard conversation.members.contains(requester.address) else { throw .notFound("conversation") }  // D6
        guard conversation.record.reinit == nil else {  // D25
            throw APIError(.conflict, "the conversation is moving to another cipher suite: its successor group starts next")
        }
        let message = try decode(MLSMessage.self, request.commit.bytes, "MLSMessage")
        guard case .publicMessage(let publicMessage) = message.body, case .commit(let commit) = publicMessage.content.content else {
            throw .invalidMessage("a commit must be a PublicMessage")  // D7
        }
        guard publicMessage.content.groupID == conversation.record.id.bytes else {
            throw .invalidMessage("the commit is for another group")
        }
        guard publicMessage.content.epoch == conversation.record.epoch else {  // D8
            throw APIError(.wrongEpoch, "the conversation is at another epoch", currentEpoch: conversation.record.epoch)
        }
        try checkCommitter(publicMessage.content.sender, commit, in: conversation.group, requester: requester)  // D9
        var group = conversation.group
        let processed: PublicProcessed
        do { processed = try group.process(publicMessage, now: now) } catch {
            throw .invalidMessage("the commit does not verify: \(error.rule) \(error.message)")  // D10
        }
        guard case .commit(let summary) = processed else { throw .invalidMessage("not a commit") }
        let referenced = Set(commit.proposals.compactMap { if case .reference(let ref) = $0 { ref } else { nil } })
        let isExternalJoin = publicMessage.content.sender == .newMemberCommit
        // D11; an external join cannot reference proposals (RFC 9420 §12.4.3.2): the server proposes them again after it.
        guard isExternalJoin || conversation.pendingProposalRefs.allSatisfy(referenced.contains) else {
            throw APIError(.pendingProposals, "the commit must include the server's pending proposals")
        }
        let settings = try settings(of: group)  // D18
        try checkGeneration(of: group, is: conversation.record.generation)  // D25
        try checkGroupInfo(request.groupInfo.bytes, of: group)  // D13
        if !summary.added.isEmpty { try checkWelcome(request.welcome?.bytes, suite: group.context.cipherSuite) }  // D14
        var changed: [(LeafIndex, UnverifiedDeviceCertificate)] = []
        for index in Set(summary.added + summary.updated + [summary.committer]).sorted() {
            guard let leaf = group.tree.leaf(index) else { continue }
            guard let claim = UnverifiedDeviceCertificate(credential: leaf.credential) else {  // D12
                throw APIError(.invalidCredential, "a leaf's credential is not a device certificate")
            }
            let replacesLeaf = !summary.added.contains(index) && !(index == summary.committer && isExternalJoin)
            let previous = conversation.group.tree.leaf(index).flatMap { UnverifiedDeviceCertificate(credential: $0.credential) }
            if replacesLeaf, previous?.claimedDevice != claim.claimedDevice {
                throw APIError(.invalidCredential, "a leaf may not change its device")  // D12
            }
            changed.append((index, claim))
        }
        return StagedCommit(
            before: conversation, requester: requester, request: request, group: group, summary: summary, settings: settings,
            isExternalJoin: isExternalJoin,
            claims: group.members.compactMap { UnverifiedDeviceCertificate(credential: $0.leaf.credential) },
            changedLeaves: changed)
    }

    /// D9: a member commits as itself; an external commit comes from a new
    /// device of a member user.
    static func checkCommitter(_ sender: Sender, _ commit: Commit, in group: PublicGroup, requester: Requester) throws(APIError) {
        switch sender {
        case .member(let leaf):
            guard let node = group.tree.leaf(leaf), requester.claims(node) else {
                throw APIError(.forbidden, "a device may only commit as itself")
            }
        case .newMemberCommit:
            guard let path = commit.path, requester.claims(path.leafNode) else {
                throw APIError(.forbidden, "only a member's own new device may join by external commit")
            }
        default:
            throw .invalidMessage("a commit comes from a member or a joining device")
        }
    }

    /// D13: the new GroupInfo has the new epoch's context, a member's valid
    /// signature, and `external_pub`.
    static func checkGroupInfo(_ bytes: [UInt8], of group: PublicGroup) throws(APIError) {
        let info = try decode(GroupInfo.self, bytes, "GroupInfo")
        guard info.groupContext == group.context, let signer = group.tree.leaf(info.signer),
            info.verifySignature(group.provider, signerKey: signer.signatureKey), info.extensions.first(ofType: .externalPub) != nil
        else { throw .invalidMessage("the GroupInfo does not match the new epoch") }
    }

    /// D14: a commit that adds devices carries their Welcome, of the group's suite.
    static func checkWelcome(_ bytes: [UInt8]?, suite: CipherSuite) throws(APIError) {
        guard let bytes, case .welcome(let welcome) = try decode(MLSMessage.self, bytes, "MLSMessage").body, welcome.cipherSuite == suite
        else { throw .invalidMessage("a commit that adds members needs their Welcome") }
    }

    /// D12, P1, P2, P4, F5 with the facts the shell loaded; then the store's
    /// write and the fan-out of the accepted commit.
    static func admit(
        _ staged: StagedCommit, facts: AdmissionFacts, domain: NetworkDomain, now: Date
    ) throws(APIError) -> CommitWrite {
        for (index, claim) in staged.changedLeaves {
            guard let leaf = staged.group.tree.leaf(index) else { continue }
            try checkCertificate(claim, of: leaf, facts: facts, domain: domain)
        }
        guard Set(staged.claims.map(\.claimedDevice)).count == staged.claims.count else {  // D12: one leaf per device
            throw APIError(.invalidCredential, "two leaves of the group name the same device")
        }
        if let pair = staged.before.directUsers, !staged.memberUsers.isSubset(of: pair) {  // D21
            throw APIError(.directConversation, "a 1:1 conversation holds its two users only; create a room to talk with more")
        }
        if staged.needsPolicy {
            let local = staged.memberUsers.filter { $0.domain == domain }
            let remote = staged.memberUsers.filter { $0.domain != domain }
            let policies = facts.policies.filter { policy in local.contains { $0.name == policy.key } }
            guard policies.count == local.count else { throw .notFound("user") }
            try PolicyRules.checkSegmentation(
                added: staged.newcomers.filter { $0.domain == domain }.map(\.name), members: local.map(\.name), policies)  // P1
            try PolicyRules.checkFederation(
                policies, local: domain, remote: remote, newcomers: staged.newcomers, facts.federation)  // F5
            try PolicyRules.checkSettings(staged.settings, policies.values)  // P2
            if !staged.newcomers.isEmpty { try PolicyRules.checkCipherSuite(staged.group.context.cipherSuite, policies.values) }  // P4
            if let reinit = staged.summary.reinit {
                try checkReInit(reinit, in: staged)  // D25
                try PolicyRules.checkCipherSuite(reinit.cipherSuite, policies.values)  // P4
            }
        }
        var write = commitWrite(staged, domain: domain, now: now)
        write.reinit = staged.summary.reinit?.tlsSerialized
        return write
    }

    /// D12 for one new or changed leaf: its certificate verifies with the
    /// key of the network that issued it, and a device of this network is
    /// live, of a user who is not suspended, with this signature key.
    static func checkCertificate(
        _ claim: UnverifiedDeviceCertificate, of leaf: LeafNode, facts: AdmissionFacts, domain: NetworkDomain
    ) throws(APIError) {
        guard let key = facts.networkKeys[claim.claimedUser.domain], let certificate = claim.verified(for: leaf, by: key)
        else { throw APIError(.invalidCredential, "a leaf's credential is not a certificate of this network or of a peer") }
        guard certificate.user.domain == domain else { return }  // its own network vouches for a remote device
        guard let device = facts.devices[certificate.device], device.signatureKey == certificate.signatureKey.bytes,
            device.user == certificate.user.name, !device.suspended, !device.pending
        else { throw APIError(.inactiveDevice, "a device in the commit is unknown, deleted, suspended or waiting for approval") }
    }

    /// The store's write for an admitted commit: the new epoch and group
    /// state, the members it leaves, the commit for the old members (but
    /// the committer) and the Welcome for the devices it adds.
    static func commitWrite(_ staged: StagedCommit, domain: NetworkDomain, now: Date) -> CommitWrite {
        let before = staged.before
        let requester = staged.requester
        let local = staged.claims.filter { $0.claimedUser.domain == domain }
        let remote = staged.claims.filter { $0.claimedUser.domain != domain }
        let oldUsers = Set(
            before.group.members.compactMap { UnverifiedDeviceCertificate(credential: $0.leaf.credential)?.claimedUser }
                .filter { $0.domain == domain }.map(\.name))
        let newUsers = Set(local.map(\.claimedUser.name))
        // A 1:1 keeps its two users as members for its whole life, with or without devices (D21).
        let kept = Set((before.directUsers ?? []).filter { $0.domain == domain }.map(\.name))
        var deliveries = [
            Delivery(
                kind: .handshake, data: staged.request.commit.bytes, senderDevice: requester.device, sentAt: now,
                recipients: before.localDevices.filter { !requester.isLocal || $0 != requester.device },
                remote: before.remoteDevices.filter { $0 != requester.remoteDevice })
        ]
        if let welcome = staged.request.welcome?.bytes, !staged.summary.added.isEmpty {
            let added = staged.summary.added.compactMap {
                staged.group.tree.leaf($0).flatMap { UnverifiedDeviceCertificate(credential: $0.credential) }
            }
            deliveries.append(
                Delivery(
                    kind: .welcome, data: welcome, sentAt: now,
                    recipients: added.filter { $0.claimedUser.domain == domain }.map(\.claimedDevice),
                    remote: added.filter { $0.claimedUser.domain != domain }.map {
                        RemoteDevice(device: $0.claimedDevice, user: $0.claimedUser)
                    }
                ))
        }
        var write = CommitWrite(
            conversation: before.record.id, fromEpoch: before.record.epoch, toEpoch: staged.group.epoch,
            groupInfo: staged.request.groupInfo.bytes, ratchetTree: staged.group.tree.exported.tlsSerialized, settings: staged.settings,
            devices: local.map { MemberDevice(device: $0.claimedDevice, user: $0.claimedUser.name) },
            addedUsers: Array(newUsers.subtracting(oldUsers)), removedUsers: Array(oldUsers.subtracting(newUsers).subtracting(kept)),
            remoteMembers: Set(remote.map(\.claimedUser)).sorted(),
            remoteDevices: remote.map { RemoteDevice(device: $0.claimedDevice, user: $0.claimedUser) }, deliveries: deliveries)
        write.generation = before.record.generation
        return write
    }
}
