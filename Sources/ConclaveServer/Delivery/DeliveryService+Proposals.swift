import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// The server's own proposals, sent as the group's external sender
/// (DESIGN.md §2): Remove for de-provisioning, leaving and policy, and
/// GroupContextExtensions for settings that policy no longer allows.
/// Members' clients commit them (D11 holds the conversation until then).
extension DeliveryService {
    /// Proposes removing every leaf of these devices from each of these
    /// conversations. Devices are named by id within `network` (this one
    /// unless said): another network's certificate naming the same id is
    /// not touched.
    func proposeRemoval(of devices: Set<DeviceID>, ofNetwork network: NetworkDomain? = nil, in conversations: [ConversationID])
        async throws
    {
        let network = network ?? domain
        for id in conversations {
            try await proposeAsServer(in: id) { group in
                let alreadyRemoved = Set(group.pendingProposals.compactMap { if case .remove(let leaf) = $0 { leaf } else { nil } })
                return group.members.compactMap { member in
                    guard !alreadyRemoved.contains(member.index),
                        let claim = UnverifiedDeviceCertificate(credential: member.leaf.credential),
                        claim.claimedUser.domain == network, devices.contains(claim.claimedDevice)
                    else { return nil }
                    return .remove(member.index)
                }
            }
        }
    }

    /// Proposes new conversation settings (a GroupContextExtensions
    /// proposal keeping every other extension), unless a settings proposal
    /// of the server already waits in this epoch: a commit may carry only
    /// one, so the next goes out after that commit (``retuneAfterCommit(_:)``).
    /// True when a proposal went out.
    func proposeSettings(_ settings: ConversationSettings, in id: ConversationID) async throws -> Bool {
        try await proposeAsServer(in: id) { group in
            let waiting = group.pendingProposals.contains { if case .groupContextExtensions = $0 { true } else { false } }
            guard !waiting, ConversationSettings(extensions: group.context.extensions) != settings else { return [] }
            let others = group.context.extensions.filter { $0.type != ConversationSettings.extensionType }
            return [.groupContextExtensions(others + (settings.isDefault ? [] : [settings.extension]))]
        }
    }

    /// Signs proposals as the group's external sender, records them as
    /// pending in the current epoch (D11) and delivers them to every member
    /// device. True when any went out.
    @discardableResult
    func proposeAsServer(in id: ConversationID, _ make: (PublicGroup) -> [Proposal]) async throws -> Bool {
        guard let record = try await store.conversation(id), record.host == nil else { return false }
        let pending = try await store.pendingProposals(id).filter { $0.epoch == record.epoch }
        var group = try await publicGroup(record, pending: pending)
        guard let senderIndex = try group.context.externalSenders().firstIndex(of: identity.publicKey.externalSender) else { return false }
        var proposals: [(ref: [UInt8], message: [UInt8])] = []
        for proposal in make(group) {
            let message = try group.externalProposal(proposal, senderIndex: UInt32(senderIndex), signer: identity.serverSigner)
            guard case .publicMessage(let publicMessage) = message.body else { continue }
            _ = try group.process(publicMessage, now: clock.validationTime)
            proposals.append((publicMessage.proposalReference(group.provider), message.tlsSerialized))
        }
        guard !proposals.isEmpty else { return false }
        let recipients = try await store.memberDevices(id).map(\.device)
        let remote = try await store.remoteDevices(id)
        let now = clock.now
        let deliveries = proposals.map { Delivery(kind: .handshake, data: $0.message, sentAt: now, recipients: recipients, remote: remote) }
        let notified = try await store.addPendingProposals(
            id, epoch: record.epoch, generation: record.generation, proposals: proposals, delivery: deliveries)
        await groups.forget(id)
        hub.notify(notified)
        return true
    }

    /// Proposes the nearest settings within these groups' bounds when the
    /// conversation's are outside them. True when a proposal went out.
    func retune(_ record: ConversationRecord, _ policies: [SecurityGroupPolicy]) async throws -> Bool {
        guard let bounds = ConversationBounds(intersecting: policies) else {
            logger.warning("a conversation's members' lifetime bounds do not overlap", metadata: ["conversation": "\(record.id)"])
            return false
        }
        guard bounds.problem(record.settings) != nil else { return false }
        return try await proposeSettings(bounds.clamp(record.settings), in: record.id)
    }

    /// The devices the server's pending Remove proposals in `group` remove,
    /// by network.
    func removalsPending(in group: PublicGroup) -> [NetworkDomain: Set<DeviceID>] {
        var devices: [NetworkDomain: Set<DeviceID>] = [:]
        for case .remove(let leaf) in group.pendingProposals {
            guard let claim = group.tree.leaf(leaf).flatMap({ UnverifiedDeviceCertificate(credential: $0.credential) }) else { continue }
            devices[claim.claimedUser.domain, default: []].insert(claim.claimedDevice)
        }
        return devices
    }

    /// After a commit: the removals it did not carry (an external join
    /// cannot) are proposed again in the new epoch, for the devices still in
    /// the group (``proposeRemoval(of:ofNetwork:in:)`` skips the others).
    func proposeAgain(_ removals: [NetworkDomain: Set<DeviceID>], in id: ConversationID) async {
        for (network, devices) in removals {
            do {
                try await proposeRemoval(of: devices, ofNetwork: network, in: [id])
            } catch {
                logger.warning("could not propose a removal again after a commit", metadata: ["conversation": "\(id)"])
            }
        }
    }

    /// After a commit that carried server proposals: a settings change
    /// that had to wait for the epoch to end goes out now.
    func retuneAfterCommit(_ id: ConversationID) async {
        do {
            guard let record = try await store.conversation(id) else { return }
            let members = try await store.memberUsers(id)
            _ = try await retune(record, Array(try await store.policies(of: members).values))
        } catch {
            logger.warning("could not check a conversation's settings against policy", metadata: ["conversation": "\(id)"])
        }
    }
}

/// The Delivery Service's public view of each group (RFC 9420 §12 without
/// keys), kept in memory by epoch and rebuilt from the stored GroupInfo and
/// tree when missing or stale.
actor GroupCache {
    private struct Entry {
        var group: PublicGroup
        /// The conversation's generation (D25): a successor group restarts at epoch 1.
        var generation: UInt64
        var pendingCount: Int
    }

    private var entries: [ConversationID: Entry] = [:]
    private let capacity = 10_000

    func group(_ id: ConversationID, epoch: UInt64, generation: UInt64, pendingCount: Int) -> PublicGroup? {
        guard let entry = entries[id], entry.group.epoch == epoch, entry.generation == generation, entry.pendingCount == pendingCount
        else { return nil }
        return entry.group
    }

    func store(_ id: ConversationID, _ group: PublicGroup, generation: UInt64, pendingCount: Int) {
        if entries.count >= capacity, entries[id] == nil, let victim = entries.keys.first { entries[victim] = nil }
        entries[id] = Entry(group: group, generation: generation, pendingCount: pendingCount)
    }

    func forget(_ id: ConversationID) { entries[id] = nil }
}
