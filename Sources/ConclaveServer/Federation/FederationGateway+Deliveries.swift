import ConclaveProtocol
import ConclaveStorage
import Foundation

/// A member's network receiving what a host sends its devices.
extension FederationGateway {
    /// Stores a message of a conversation hosted by `origin` for the local
    /// devices it names. A recipient must be a device of a local member the
    /// delivery lists; devices whose user is suspended, whose security group
    /// may not reach every network in the conversation (F5 on this side), or
    /// whose group's bounds the settings exceed (P2 on this side) are left
    /// out, and the host is asked to remove them.
    func acceptDelivery(_ delivery: FederatedDelivery, from origin: NetworkDomain) async throws -> Int {
        guard !delivery.recipients.isEmpty, delivery.recipients.count <= 10_000, delivery.members.count <= 10_000 else {
            throw APIError.badRequest("a delivery names 1 to 10,000 recipients")
        }
        if let record = try await store.conversation(delivery.conversation), record.host != origin {
            throw APIError(.forbidden, "\(origin) does not host this conversation")
        }
        let (recipients, refused) = try await sortRecipients(delivery, from: origin)
        if !refused.isEmpty {
            // The host is asked to take these devices out of its group, so they do not linger as members.
            try await requestRemoteRemoval(of: refused.sorted(), in: delivery.conversation, host: origin)
        }
        guard !recipients.isEmpty else { throw APIError(.policyFederation, "no recipient of \(domain) may receive this from \(origin)") }
        switch try await store.acceptRemoteDelivery(delivery, origin: origin, localDomain: domain, recipients: recipients.sorted()) {
        case .stored(let notified):
            await hub.notify(notified)
            return recipients.count
        case .duplicate:
            return recipients.count
        case .notTheHost:
            throw APIError(.forbidden, "\(origin) does not host this conversation")
        case .unknownConversation:
            throw APIError(.notFound, "this network holds no such conversation")
        }
    }

    /// The delivery's recipients this network lets receive it, and those it
    /// refuses (F5 and P2 on this side); devices that are not of a listed
    /// local member are neither.
    private func sortRecipients(_ delivery: FederatedDelivery, from origin: NetworkDomain) async throws -> (
        accepted: [DeviceID], refused: [DeviceID]
    ) {
        let members = delivery.memberAddresses(host: origin)
        let localMembers = Set(members.filter { $0.domain == domain }.map(\.name))
        let networks = Set(members.map(\.domain)).union([origin]).subtracting([domain])
        let settings = ConversationSettings(messageLifetime: delivery.messageLifetime, burnOnRead: delivery.burnOnRead)
        var accepted: [DeviceID] = []
        var refused: [DeviceID] = []
        for device in Set(delivery.recipients) {
            guard let record = try await store.device(device), localMembers.contains(record.user) else { continue }
            guard let user = try await store.user(named: record.user), !user.suspended,
                let policy = try await store.policies(of: [user.name])[user.name], networks.allSatisfy(policy.federation.contains),
                ConversationBounds(intersecting: [policy])?.problem(settings) == nil
            else {
                refused.append(device)
                continue
            }
            accepted.append(device)
        }
        return (accepted, refused)
    }
}
