import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS

/// Security-group policy (DESIGN.md §5): segmentation ("may message") and
/// the bounds on conversation settings, checked on creation and on every
/// commit, and enforced on existing conversations when a policy or a
/// user's group changes. Rule numbers (P1…) are listed in docs/server.md.
extension ServerState {
    // MARK: Checks

    /// The security groups of these users; an unknown user is a 404.
    func policies(of users: some Collection<UserName>) async throws -> [UserName: SecurityGroupPolicy] {
        let found = try await store.policies(of: Array(Set(users)))
        guard found.count == Set(users).count else { throw APIError.notFound("user") }
        return found
    }

    /// P1: `added` users may share a conversation with every user of
    /// `members`, and they with them, under both groups' "may message".
    func checkSegmentation(
        added: some Collection<UserName>, members: some Collection<UserName>, _ policies: [UserName: SecurityGroupPolicy]
    )
        throws
    {
        for newcomer in added {
            guard let mine = policies[newcomer] else { throw APIError.notFound("user") }
            for other in members where other != newcomer {
                guard let theirs = policies[other] else { throw APIError.notFound("user") }
                guard mine.mayShare(with: theirs) else {
                    throw APIError(
                        .forbidden, "policy_segmentation",
                        "security group \(mine.name) and security group \(theirs.name) may not share a conversation (may-message policy)")
                }
            }
        }
    }

    /// P2: the bounds of a conversation of these users' groups.
    func bounds(_ policies: some Collection<SecurityGroupPolicy>) throws -> ConversationBounds {
        guard let bounds = ConversationBounds(intersecting: Array(policies)) else {
            let names = Set(policies.map(\.name.value)).sorted().joined(separator: ", ")
            throw APIError(
                .forbidden, "policy_conflict", "the message lifetime bounds of security groups \(names) do not overlap (lifetime policy)")
        }
        return bounds
    }

    /// P2: the settings are within the bounds of all members' groups.
    func checkSettings(_ settings: ConversationSettings, _ policies: some Collection<SecurityGroupPolicy>) throws {
        if let problem = try bounds(policies).problem(settings) {
            throw APIError(
                .forbidden, "policy_settings", "these conversation settings are outside the members' security-group policy: \(problem)")
        }
    }

    /// `POST /v1/policy`: the bounds for a conversation of the caller with
    /// these users, or the segmentation error such a conversation would get.
    func conversationBounds(_ query: PolicyQuery, session: Session) async throws -> ConversationBounds {
        guard query.members.count <= 1000 else { throw APIError.badRequest("at most 1000 members") }
        let others = query.members.filter { $0.domain == domain }.map(\.name)
        let remote = query.members.filter { $0.domain != domain }
        let everyone = Set(others + [session.user.name])
        let policies = try await policies(of: everyone)
        try checkSegmentation(added: others, members: everyone, policies)
        try await checkFederation(policies, remote: remote, newcomers: remote)
        return try bounds(policies.values)
    }

    // MARK: Enforcement on existing conversations

    /// After a change of policy or of users' groups: in every conversation
    /// of the `subjects`, those who may no longer share it with the others
    /// get server Remove proposals, and settings now outside the remaining
    /// members' bounds get a GroupContextExtensions proposal with the
    /// nearest settings inside them (members' clients commit both).
    func enforcePolicy(on subjects: Set<UserName>) async throws -> (removed: Int, retuned: Int) {
        var seen = Set<ConversationID>()
        var removed = 0
        var retuned = 0
        for subject in subjects.sorted() {
            for (record, members) in try await store.conversations(of: subject) where seen.insert(record.id).inserted {
                if let host = record.host {
                    // Hosted elsewhere: this network asks the host to remove its users who may no longer reach a member's network.
                    let networks = Set(try await store.remoteMembers(record.id).map(\.domain)).union([host])
                    let policies = try await store.policies(of: members.filter { subjects.contains($0) })
                    for (user, policy) in policies where networks.contains(where: { !policy.federation.contains($0) }) {
                        try await requestRemoteRemoval(
                            of: try await store.devices(of: user).map(\.id), user: user, in: record.id, host: host)
                        removed += 1
                    }
                    continue
                }
                let policies = try await store.policies(of: members)
                let remoteNetworks = Set(try await store.remoteMembers(record.id).map(\.domain))
                // Those whose group changed and who may no longer share it: segmentation here, federation across networks.
                let offenders = Set(
                    members.filter { member in
                        guard subjects.contains(member), let mine = policies[member] else { return false }
                        return remoteNetworks.contains { !mine.federation.contains($0) }
                            || members.contains { other in
                                other != member && policies[other].map { !mine.mayShare(with: $0) } ?? false
                            }
                    })
                if !offenders.isEmpty {
                    let devices = try await store.memberDevices(record.id).filter { offenders.contains($0.user) }.map(\.device)
                    try await proposeRemoval(of: Set(devices), in: [record.id])
                    removed += offenders.count
                }
                let remaining = members.filter { !offenders.contains($0) }.compactMap { policies[$0] }
                if try await retune(record, remaining) { retuned += 1 }
            }
        }
        return (removed, retuned)
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

    // MARK: Admin API: security groups and the audit log

    func addPolicyRoutes(_ router: ConclaveRouter) {
        router.group("/v1").post("/policy") { request, context in
            let session = try await self.session(request)
            let query = try await request.decodeJSON(PolicyQuery.self, context: context)
            return JSONResponse(try await self.conversationBounds(query, session: session))
        }
        let admin = router.group("/v1/admin")
        admin.get("/groups") { request, _ in
            try self.requireAdmin(request)
            let groups = try await self.store.securityGroups()
            return JSONResponse(SecurityGroupList(groups: groups.map { SecurityGroupInfo(policy: $0.policy, members: $0.members) }))
        }
        admin.post("/groups") { request, context in
            try self.requireAdmin(request)
            let body = try await request.decodeJSON(CreateSecurityGroup.self, context: context)
            let policy = body.settings.applied(to: SecurityGroupPolicy(name: body.name))
            try await self.validate(policy)
            do {
                try await self.store.createSecurityGroup(
                    policy, at: self.clock(), audit: self.audit("group.create", "group:\(policy.name)", before: nil, after: policy))
            } catch StoreError.conflict {
                throw APIError(.conflict, "group_exists", "a security group with this name exists")
            }
            self.logger.info("admin: security group created")
            return JSONResponse(SecurityGroupInfo(policy: policy, members: 0), status: .created)
        }
        admin.patch("/groups/:group") { request, context in
            try self.requireAdmin(request)
            let name = try Self.groupName(context)
            let change = try await request.decodeJSON(SecurityGroupChange.self, context: context)
            guard let before = try await self.store.securityGroup(name) else { throw APIError.notFound("security group") }
            let policy = change.applied(to: before)
            try await self.validate(policy)
            guard
                try await self.store.updateSecurityGroup(
                    policy, audit: self.audit("group.update", "group:\(name)", before: before, after: policy))
            else { throw APIError.notFound("security group") }
            let members = try await self.store.users(inGroup: name)
            let enforced = try await self.enforcePolicy(on: Set(members))
            self.logger.info(
                "admin: security group changed", metadata: ["removals": "\(enforced.removed)", "retuned": "\(enforced.retuned)"])
            return JSONResponse(SecurityGroupInfo(policy: policy, members: members.count))
        }
        admin.delete("/groups/:group") { request, context in
            try self.requireAdmin(request)
            let name = try Self.groupName(context)
            guard name != .default else { throw APIError(.conflict, "group_in_use", "the default security group cannot be deleted") }
            let before = try await self.store.securityGroup(name)
            switch try await self.store.deleteSecurityGroup(
                name, audit: self.audit("group.delete", "group:\(name)", before: before, after: nil))
            {
            case .deleted:
                self.logger.info("admin: security group deleted")
                return JSONResponse(["deleted": name.value])
            case .notFound:
                throw APIError.notFound("security group")
            case .inUse(let accounts):
                throw APIError(
                    .conflict, "group_in_use", "\(accounts) account(s) are in this security group; move them to another group first")
            }
        }
        admin.get("/audit") { request, _ in
            try self.requireAdmin(request)
            var since: Date?
            if let text = request.uri.queryParameters["since"] {
                guard let date = ConclaveJSON.parseTimestamp(String(text)) else {
                    throw APIError.badRequest("since must be an RFC 3339 time, e.g. 2026-11-27T08:00:00Z")
                }
                since = date
            }
            return JSONResponse(AuditLog(entries: try await self.store.auditLog(since: since)))
        }
    }

    /// A policy that can be saved: consistent values, and "may message"
    /// naming groups that exist.
    func validate(_ policy: SecurityGroupPolicy) async throws {
        if let problem = policy.problem { throw APIError(.badRequest, "invalid_policy", problem) }
        if case .only(let names) = policy.mayMessage {
            let known = Set(try await store.securityGroups().map(\.policy.name)).union([policy.name])
            if let unknown = names.first(where: { !known.contains($0) }) {
                throw APIError(.badRequest, "unknown_group", "may-message names security group \(unknown), which does not exist")
            }
        }
    }

    /// An audit entry of the administrator, to be written with the change.
    func audit(_ action: String, _ target: String, before: (any Encodable)?, after: (any Encodable)?, actor: String = "admin")
        -> AuditDraft
    {
        let key = networkKey
        func text(_ value: (any Encodable)?) -> String? {
            guard let value, let data = try? ConclaveJSON.encoder().encode(value) else { return nil }
            return String(decoding: data, as: UTF8.self)
        }
        return AuditDraft(
            actor: actor, action: action, target: target, before: text(before), after: text(after), at: clock(),
            sign: { try key.signature(for: $0) })
    }

    static func groupName(_ context: ConclaveRequestContext) throws -> SecurityGroupName {
        guard let name = SecurityGroupName(try context.parameters.require("group")) else {
            throw APIError.badRequest("not a security group name")
        }
        return name
    }
}

/// What the audit log records of a user.
struct AuditedUser: Encodable {
    var group: String
    var suspended: Bool
    var devices: Int?

    init(_ user: UserRecord, devices: Int? = nil) {
        group = user.securityGroup
        suspended = user.suspended
        self.devices = devices
    }
}
