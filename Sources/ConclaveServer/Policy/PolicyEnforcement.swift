import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// Applies policy to existing conversations, at once (DESIGN.md §5), after
/// a change of a security group or of a user's group.
struct PolicyEnforcement: Sendable {
    let store: ConclaveStore
    let delivery: DeliveryService
    let gateway: FederationGateway

    /// After a change of policy or of users' groups: in every conversation
    /// of the `subjects`, those who may no longer share it with the others
    /// get server Remove proposals, and settings now outside the remaining
    /// members' bounds get a GroupContextExtensions proposal with the
    /// nearest settings inside them (members' clients commit both).
    func enforce(on subjects: Set<UserName>) async throws -> (removed: Int, retuned: Int) {
        var seen = Set<ConversationID>()
        var removed = 0
        var retuned = 0
        for subject in subjects.sorted() {
            for (record, members) in try await store.conversations(of: subject) where seen.insert(record.id).inserted {
                if let host = record.host {
                    removed += try await askHost(host, record.id, members: members.filter(subjects.contains))
                    continue
                }
                let (offenders, remaining) = try await sortMembers(record.id, members, subjects: subjects)
                if !offenders.isEmpty {
                    let devices = try await store.memberDevices(record.id).filter { offenders.contains($0.user) }.map(\.device)
                    try await delivery.proposeRemoval(of: Set(devices), in: [record.id])
                    removed += offenders.count
                }
                if try await delivery.retune(record, remaining) { retuned += 1 }
            }
        }
        return (removed, retuned)
    }

    /// Members whose group changed and who may no longer share the
    /// conversation (segmentation here, federation across networks), and
    /// the policies of those who stay.
    private func sortMembers(_ id: ConversationID, _ members: [UserName], subjects: Set<UserName>) async throws -> (
        offenders: Set<UserName>, remaining: [SecurityGroupPolicy]
    ) {
        let policies = try await store.policies(of: members)
        let remoteNetworks = Set(try await store.remoteMembers(id).map(\.domain))
        let offenders = Set(
            members.filter { member in
                guard subjects.contains(member), let mine = policies[member] else { return false }
                return remoteNetworks.contains { !mine.federation.contains($0) }
                    || members.contains { other in other != member && policies[other].map { !mine.mayShare(with: $0) } ?? false }
            })
        return (offenders, members.filter { !offenders.contains($0) }.compactMap { policies[$0] })
    }

    /// Hosted elsewhere: this network asks the host to remove its users who
    /// may no longer reach a member's network. Returns how many.
    private func askHost(_ host: NetworkDomain, _ id: ConversationID, members: [UserName]) async throws -> Int {
        let networks = Set(try await store.remoteMembers(id).map(\.domain)).union([host])
        var removed = 0
        for (user, policy) in try await store.policies(of: members) where networks.contains(where: { !policy.federation.contains($0) }) {
            try await gateway.requestRemoteRemoval(of: try await store.devices(of: user).map(\.id), in: id, host: host)
            removed += 1
        }
        return removed
    }
}
