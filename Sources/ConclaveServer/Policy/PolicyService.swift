import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// Security-group policy (DESIGN.md §5): the policies of users, the bounds
/// a conversation of some users gets, and the administrators' security
/// groups. The checks themselves are ``PolicyRules``; applying a change to
/// existing conversations is ``PolicyEnforcement``.
final class PolicyService: Sendable {
    private let store: ConclaveStore
    private let identity: NetworkIdentity
    private let audit: AuditRecorder

    init(store: ConclaveStore, identity: NetworkIdentity, audit: AuditRecorder) {
        self.store = store
        self.identity = identity
        self.audit = audit
    }

    /// The security groups of these users; an unknown user is a 404.
    func policies(of users: some Collection<UserName>) async throws -> [UserName: SecurityGroupPolicy] {
        let found = try await store.policies(of: Array(Set(users)))
        guard found.count == Set(users).count else { throw APIError.notFound("user") }
        return found
    }

    /// The network's federation mode and pinned peers, for F5.
    /// A9: what is told about a user (devices, identity key) is told only to
    /// a device of a user who may message them; anyone else gets 404, as for
    /// a user who does not exist.
    func checkVisible(_ name: UserName, to session: Session) async throws {
        do {
            let users = [session.user.name, name]
            try PolicyRules.checkSegmentation(added: [name], members: users, try await policies(of: users))
        } catch let error as APIError where error.code == .policySegmentation {
            throw APIError.notFound("user")
        }
    }

    func federationFacts() async throws -> FederationFacts {
        FederationFacts(mode: try await store.federationMode(), peers: Set(try await store.peers().map(\.peer.domain)))
    }

    /// F5 for these users' policies (see ``PolicyRules/checkFederation``).
    func checkFederation(
        _ policies: [UserName: SecurityGroupPolicy], remote: some Collection<UserAddress>, newcomers: some Collection<UserAddress>
    ) async throws {
        guard !remote.isEmpty else { return }
        try PolicyRules.checkFederation(
            policies, local: identity.domain, remote: remote, newcomers: newcomers, try await federationFacts())
    }

    /// `POST /v1/policy`: the bounds for a conversation of the caller with
    /// these users, or the refusal such a conversation would get.
    func conversationBounds(_ query: PolicyQuery, session: Session) async throws -> ConversationBounds {
        guard query.members.count <= 1000 else { throw APIError.badRequest("at most 1000 members") }
        let others = query.members.filter { $0.domain == identity.domain }.map(\.name)
        let remote = query.members.filter { $0.domain != identity.domain }
        let everyone = Set(others + [session.user.name])
        let policies = try await policies(of: everyone)
        try PolicyRules.checkSegmentation(added: others, members: everyone, policies)
        try await checkFederation(policies, remote: remote, newcomers: remote)
        return try PolicyRules.bounds(policies.values)
    }

    // MARK: Security groups (admin API)

    func securityGroups() async throws -> SecurityGroupList {
        SecurityGroupList(groups: try await store.securityGroups().map { SecurityGroupInfo(policy: $0.policy, members: $0.members) })
    }

    func createGroup(_ body: CreateSecurityGroup, actor: String) async throws -> SecurityGroupInfo {
        let policy = body.settings.applied(to: SecurityGroupPolicy(name: body.name))
        try await validate(policy)
        let draft = audit.draft("group.create", "group:\(policy.name)", before: nil, after: policy, actor: actor)
        do {
            try await store.createSecurityGroup(policy, at: audit.clock.now, audit: draft)
        } catch StoreError.conflict {
            throw APIError(.groupExists, "a security group with this name exists")
        }
        audit.appended(draft)
        return SecurityGroupInfo(policy: policy, members: 0)
    }

    /// Changes a group's policy; returns it with the group's members, whom
    /// the caller then enforces it on.
    func updateGroup(_ name: SecurityGroupName, _ change: SecurityGroupChange, actor: String) async throws -> (
        SecurityGroupPolicy, [UserName]
    ) {
        guard let before = try await store.securityGroup(name) else { throw APIError.notFound("security group") }
        let policy = change.applied(to: before)
        try await validate(policy)
        let draft = audit.draft("group.update", "group:\(name)", before: before, after: policy, actor: actor)
        guard try await store.updateSecurityGroup(policy, audit: draft) else { throw APIError.notFound("security group") }
        audit.appended(draft)
        return (policy, try await store.users(inGroup: name))
    }

    func deleteGroup(_ name: SecurityGroupName, actor: String) async throws {
        guard name != .default else { throw APIError(.groupInUse, "the default security group cannot be deleted") }
        let before = try await store.securityGroup(name)
        let draft = audit.draft("group.delete", "group:\(name)", before: before, after: nil, actor: actor)
        switch try await store.deleteSecurityGroup(name, audit: draft) {
        case .deleted: audit.appended(draft)
        case .notFound: throw APIError.notFound("security group")
        case .inUse(let accounts):
            throw APIError(.groupInUse, "\(accounts) account(s) are in this security group; move them to another group first")
        }
    }

    /// A policy that can be saved: consistent values, and "may message"
    /// naming groups that exist.
    private func validate(_ policy: SecurityGroupPolicy) async throws {
        if let problem = policy.problem { throw APIError(.invalidPolicy, problem) }
        if case .only(let names) = policy.mayMessage {
            let known = Set(try await store.securityGroups().map(\.policy.name)).union([policy.name])
            if let unknown = names.first(where: { !known.contains($0) }) {
                throw APIError(.unknownGroup, "may-message names security group \(unknown), which does not exist")
            }
        }
    }

    /// The audit log since a time.
    func auditLog(since: Date?) async throws -> AuditLog { AuditLog(entries: try await store.auditLog(since: since)) }
}
