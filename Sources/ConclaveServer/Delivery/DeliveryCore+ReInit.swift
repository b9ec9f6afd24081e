import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// A successor group (D25) that verified as MLS, before the checks that
/// need facts from outside the group (D12, P1, P2, P4).
struct StagedSuccessor: Sendable {
    let before: HostedConversation
    let requester: Requester
    let request: StartSuccessor
    /// The new group at epoch 1.
    let group: PublicGroup
    let settings: ConversationSettings
    /// The certificate every leaf of the new group claims.
    let claims: [UnverifiedDeviceCertificate]

    var memberUsers: Set<UserAddress> { Set(claims.map(\.claimedUser)) }
}

/// Moving a conversation to another cipher suite (RFC 9420 §11.2): a
/// member commits a ReInit, the group then takes nothing more, and a
/// member starts the successor group, with the same id, at epoch 1 (D25 in
/// docs/server.md). Members join it from its Welcome with the old group's
/// resumption secret, which the server never has.
extension DeliveryCore {
    /// D25 for a commit of a ReInit: for this same group id, MLS 1.0, a
    /// suite Conclave devices run and the group is not of, the group's own
    /// extensions (so the successor keeps its external senders and
    /// settings) with the next generation, and members of this network only.
    static func checkReInit(_ reinit: ReInit, in staged: StagedCommit) throws(APIError) {
        let group = staged.before.group
        guard reinit.groupID == group.groupID, reinit.version == .mls10 else {
            throw .invalidMessage("a ReInit keeps the conversation's group id and MLS 1.0")
        }
        guard CipherSuite.deviceSuites.contains(reinit.cipherSuite), reinit.cipherSuite != group.context.cipherSuite else {
            throw .badRequest(
                "a ReInit moves the conversation to another cipher suite that Conclave devices run: \(CipherSuite.deviceSuites.map(\.description))"
            )
        }
        let next = staged.before.record.generation + 1
        guard reinit.extensions == ConversationGeneration.extensions(group.context.extensions, generation: next) else {
            throw .invalidMessage("a ReInit keeps the group's extensions (its external senders and settings), with generation \(next)")
        }
        guard staged.before.remoteDevices.isEmpty, staged.memberUsers.allSatisfy({ $0.domain == staged.requester.address.domain })
        else {
            throw .badRequest("a conversation with members of other networks cannot move to another cipher suite yet")
        }
    }

    /// D25 for `POST /v1/conversations/{id}/successor`: the conversation
    /// committed a ReInit; the new group is the one it asks for (same id,
    /// version, suite and extensions), at epoch 1, its tree verifies (D2),
    /// its GroupInfo is signed by the requester's own leaf (D9) and names
    /// this network's server (D4), its settings are well formed (D18), and
    /// the Welcome is of its suite (D14). Every leaf is a device of a user
    /// of the conversation.
    static func stageSuccessor(
        _ request: StartSuccessor, to conversation: HostedConversation, by requester: Requester, networkKey: NetworkPublicKey,
        now: ValidationTime
    ) throws(APIError) -> StagedSuccessor {
        guard conversation.members.contains(requester.address) else { throw .notFound("conversation") }  // D6
        guard let bytes = conversation.record.reinit, let reinit = try? ReInit(tlsSerialized: bytes) else {
            throw APIError(.conflict, "this conversation committed no ReInit: it has no successor to start")
        }
        let info = try decode(GroupInfo.self, request.groupInfo.bytes, "GroupInfo")
        let context = info.groupContext
        guard context.groupID == reinit.groupID, context.cipherSuite == reinit.cipherSuite, context.version == reinit.version,
            context.extensions == reinit.extensions, context.epoch == 1
        else { throw .invalidMessage("the successor is not the group the ReInit asks for, at epoch 1") }
        let group: PublicGroup
        do { group = try PublicGroup(groupInfo: info, now: now) } catch {
            throw .invalidMessage("the GroupInfo does not verify: \(error.rule) \(error.message)")  // D2
        }
        guard let signer = group.tree.leaf(info.signer), requester.claims(signer),
            conversation.group.members.contains(where: { requester.claims($0.leaf) })
        else {  // D9
            throw APIError(
                .forbidden, "a successor is started by a device of the old group, whose leaf signs the new group's GroupInfo")
        }
        guard info.extensions.first(ofType: .externalPub) != nil else {  // D13
            throw .invalidMessage("the successor's GroupInfo carries no external_pub")
        }
        guard (try? group.context.externalSenders())?.contains(networkKey.externalSender) == true else {  // D4
            throw APIError(.missingExternalSender, "the group must name this network's server in external_senders")
        }
        let settings = try settings(of: group)  // D18
        if group.members.count > 1 { try checkWelcome(request.welcome?.bytes, suite: group.context.cipherSuite) }  // D14
        var claims: [UnverifiedDeviceCertificate] = []
        for member in group.members {
            guard let claim = UnverifiedDeviceCertificate(credential: member.leaf.credential) else {  // D12
                throw APIError(.invalidCredential, "a leaf's credential is not a device certificate")
            }
            guard conversation.members.contains(claim.claimedUser) else {
                throw APIError(.forbidden, "a successor holds users of the conversation only; add others once it started")
            }
            claims.append(claim)
        }
        return StagedSuccessor(
            before: conversation, requester: requester, request: request, group: group, settings: settings, claims: claims)
    }

    /// D12, D21 for a successor with the facts the shell loaded; then the
    /// store's write: the new group at generation + 1, its Welcome for every
    /// device but the requester's. Its users are the conversation's, its
    /// suite passed P4 with the ReInit, and its settings are the old
    /// group's: policy changes since are applied to it as to any
    /// conversation (server proposals), so a policy change never leaves a
    /// conversation frozen.
    static func admitSuccessor(
        _ staged: StagedSuccessor, facts: AdmissionFacts, domain: NetworkDomain, now: Date
    ) throws(APIError) -> CommitWrite {
        for member in staged.group.members {
            guard let claim = UnverifiedDeviceCertificate(credential: member.leaf.credential) else { continue }
            guard claim.claimedUser.domain == domain else {
                throw .badRequest("a conversation with members of other networks cannot move to another cipher suite yet")
            }
            try checkCertificate(claim, of: member.leaf, facts: facts, domain: domain)  // D12
        }
        guard Set(staged.claims.map(\.claimedDevice)).count == staged.claims.count else {  // D12: one leaf per device
            throw APIError(.invalidCredential, "two leaves of the group name the same device")
        }
        if let pair = staged.before.directUsers, !staged.memberUsers.isSubset(of: pair) {  // D21
            throw APIError(.directConversation, "a 1:1 conversation holds its two users only; create a room to talk with more")
        }
        let users = staged.memberUsers.map(\.name)
        let before = staged.before
        let oldUsers = Set(before.members.filter { $0.domain == domain }.map(\.name))
        let kept = Set((before.directUsers ?? []).filter { $0.domain == domain }.map(\.name))
        let others = staged.claims.filter { $0.claimedDevice != staged.requester.device }
        var write = CommitWrite(
            conversation: before.record.id, fromEpoch: before.record.epoch, toEpoch: staged.group.epoch,
            groupInfo: staged.request.groupInfo.bytes, ratchetTree: staged.group.tree.exported.tlsSerialized, settings: staged.settings,
            devices: staged.claims.map { MemberDevice(device: $0.claimedDevice, user: $0.claimedUser.name) },
            addedUsers: [], removedUsers: Array(oldUsers.subtracting(users).subtracting(kept)),
            deliveries: others.isEmpty
                ? []
                : staged.request.welcome.map {
                    [Delivery(kind: .welcome, data: $0.bytes, sentAt: now, recipients: others.map(\.claimedDevice), remote: [])]
                } ?? [])
        write.generation = before.record.generation
        write.startsSuccessor = true
        return write
    }
}
