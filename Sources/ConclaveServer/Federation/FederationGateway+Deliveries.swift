import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// A peer-hosted conversation as a member's network reads it from the
/// member-signed GroupInfo and tree a delivery carries (F6).
struct RemoteGroupView: Sendable {
    let epoch: UInt64
    let settings: ConversationSettings
    let suite: CipherSuite
    /// Users of other networks whose leaves verify with their pinned key.
    let remoteUsers: Set<UserAddress>
    /// Every network a leaf claims (for F5, verified or not).
    let networks: Set<NetworkDomain>
    /// This network's users with a leaf, and their leaves' devices.
    let localDevices: [UserName: Set<DeviceID>]
}

/// A member's network receiving what a host sends its devices.
extension FederationGateway {
    /// Stores a message of a conversation hosted by `origin` for the local
    /// devices it names, after this network's own checks (F6, F7 in
    /// docs/federation.md): the conversation id carries the origin's tag;
    /// Welcomes and handshakes carry the group's member-signed state, from
    /// which the members and settings are read; a device receives only if
    /// its user has a leaf in that state (or had one, for the commit that
    /// removes it), is not suspended, and may share the conversation under
    /// this network's policy (F5, P1 among this network's users, P2 on the
    /// group's own settings). Users the policy refuses are not recorded as
    /// members, and the host is asked to remove their devices.
    func acceptDelivery(_ delivery: FederatedDelivery, from origin: NetworkDomain) async throws -> Int {
        guard !delivery.recipients.isEmpty, delivery.recipients.count <= 10_000 else {
            throw APIError.badRequest("a delivery names 1 to 10,000 recipients")
        }
        let existing = try await store.conversation(delivery.conversation)
        if let existing, existing.host != origin { throw APIError(.forbidden, "\(origin) does not host this conversation") }
        guard existing != nil || delivery.conversation.isHosted(by: origin) else {  // F7
            throw APIError(.forbidden, "this conversation id is not one \(origin) may host")
        }
        let recorded = existing == nil ? [] : try await store.memberUsers(delivery.conversation)
        var state: RemoteConversationState?
        let recipients: [DeviceID]
        if delivery.kind == .application {
            guard let existing else { throw APIError(.notFound, "this network holds no such conversation") }
            // The policy as it stands now, on the members and settings last read from the group's state.
            let networks = Set(try await store.remoteMembers(existing.id).map(\.domain)).union([origin])
            let policies = try await store.policies(of: recorded)
            let allowed = recorded.filter { user in
                guard let policy = policies[user] else { return false }
                return networks.allSatisfy(policy.federation.contains)
                    && ConversationBounds(intersecting: [policy])?.problem(existing.settings) == nil
            }
            recipients = try await devices(of: Set(allowed), among: delivery.recipients)
        } else {
            let view = try await verifiedView(delivery, origin: origin)
            let allowed = try await allowedUsers(view, delivery.conversationKind, conversation: delivery.conversation, host: origin)
            state = RemoteConversationState(
                epoch: view.epoch, members: allowed.map(identity.address) + view.remoteUsers, settings: view.settings)
            let leaving = delivery.kind == .handshake ? Set(recorded).subtracting(view.localDevices.keys) : []
            recipients =
                delivery.kind == .welcome
                ? delivery.recipients.filter { device in allowed.contains { view.localDevices[$0]?.contains(device) == true } }
                : try await devices(of: Set(allowed).union(leaving), among: delivery.recipients)
        }
        guard !recipients.isEmpty else { throw APIError(.policyFederation, "no recipient of \(domain) may receive this from \(origin)") }
        switch try await store.acceptRemoteDelivery(
            delivery, origin: origin, localDomain: domain, recipients: Array(Set(recipients)).sorted(), state: state)
        {
        case .stored(let notified):
            hub.notify(notified)
            return recipients.count
        case .duplicate:
            return recipients.count
        case .notTheHost:
            throw APIError(.forbidden, "\(origin) does not host this conversation")
        case .unknownConversation:
            throw APIError(.notFound, "this network holds no such conversation")
        }
    }

    /// The devices among `candidates` of these local users who are not suspended.
    private func devices(of users: Set<UserName>, among candidates: [DeviceID]) async throws -> [DeviceID] {
        var found: [DeviceID] = []
        for device in Set(candidates) {
            guard let record = try await store.device(device), users.contains(record.user),
                let user = try await store.user(named: record.user), !user.suspended
            else { continue }
            found.append(device)
        }
        return found
    }

    /// The group's state as the delivery carries it, checked (signature by
    /// a member leaf, tree hash, parent hashes), with every leaf of this
    /// network verified against this network's key: a host cannot name a
    /// user of this network whose device this network did not certify.
    private func verifiedView(_ delivery: FederatedDelivery, origin: NetworkDomain) async throws -> RemoteGroupView {
        guard let infoBytes = delivery.groupInfo?.bytes, let treeBytes = delivery.ratchetTree?.bytes else {
            throw APIError.badRequest("a Welcome or handshake delivery carries the group's GroupInfo and tree")
        }
        let group: PublicGroup
        do {
            group = try PublicGroup(
                groupInfo: try GroupInfo(tlsSerialized: infoBytes), ratchetTree: try RatchetTreeNodes(tlsSerialized: treeBytes),
                now: clock.validationTime)
        } catch {
            throw APIError.invalidMessage("the delivered group state does not verify")
        }
        guard group.groupID == delivery.conversation.bytes else { throw APIError.invalidMessage("the group state is of another group") }
        var remote = Set<UserAddress>()
        var networks = Set<NetworkDomain>()
        var local: [UserName: Set<DeviceID>] = [:]
        for member in group.members {
            guard let claim = UnverifiedDeviceCertificate(credential: member.leaf.credential) else {
                throw APIError(.invalidCredential, "a leaf of the group is not a device certificate")
            }
            let network = claim.claimedUser.domain
            networks.insert(network)
            if network == domain {
                guard let certificate = claim.verified(for: member.leaf, by: identity.publicKey) else {
                    throw APIError(.invalidCredential, "a leaf names a user of \(domain) that \(domain) did not certify")
                }
                local[certificate.user.name, default: []].insert(certificate.device)
            } else if let key = try? await directory.peerKey(network), let certificate = claim.verified(for: member.leaf, by: key) {
                remote.insert(certificate.user)
            }
        }
        guard let settings = ConversationSettings(extensions: group.context.extensions) else {
            throw APIError(.invalidSettings, "the group's settings extension is malformed")
        }
        return RemoteGroupView(
            epoch: group.epoch, settings: settings, suite: group.context.cipherSuite, remoteUsers: remote,
            networks: networks.subtracting([domain]), localDevices: local)
    }

    /// This network's users in the group whom its policy lets stay: not
    /// suspended, their group reaches every other network (F5) and allows
    /// the group's settings (P2) and, when new to it, its cipher suite (P4),
    /// and they may share it with this network's other members (P1; a user
    /// new to the conversation gives way to those already in it). A 1:1 with more than two users keeps none. The host
    /// is asked to remove the devices of those refused.
    private func allowedUsers(
        _ view: RemoteGroupView, _ kind: ConversationKind, conversation: ConversationID, host: NetworkDomain
    ) async throws -> [UserName] {
        let users = Array(view.localDevices.keys)
        let policies = try await store.policies(of: users)
        let recorded = Set(try await store.memberUsers(conversation))
        var allowed: [UserName] = []
        let kindAllows = kind != .direct || view.localDevices.count + view.remoteUsers.count <= 2
        // Members already recorded first, so that a newcomer who may not meet them is the one refused.
        for user in users.sorted(by: { (recorded.contains($0) ? 0 : 1, $0.value) < (recorded.contains($1) ? 0 : 1, $1.value) }) {
            guard kindAllows, let policy = policies[user], let record = try await store.user(named: user), !record.suspended,
                view.networks.allSatisfy(policy.federation.contains),
                ConversationBounds(intersecting: [policy])?.problem(view.settings) == nil,
                recorded.contains(user) || policy.cipherSuites.allows(view.suite),
                allowed.allSatisfy({ other in policies[other].map(policy.mayShare(with:)) ?? false })
            else {
                try await requestRemoteRemoval(of: Array(view.localDevices[user] ?? []).sorted(), in: conversation, host: host)
                continue
            }
            allowed.append(user)
        }
        return allowed
    }
}
