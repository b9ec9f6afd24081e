import ConclaveProtocol
import ConclaveStorage
import Foundation

/// A user as SCIM shows it (RFC 7643 §4.1): the resource id is the user
/// name; `active` is not suspended; `group` is the one security group;
/// `externalID` the directory's `externalId`, when it gave one.
struct SCIMUser: Sendable, Equatable {
    let name: UserName
    let active: Bool
    let group: String
    let created: Date
    let externalID: String?

    init(_ record: UserRecord, externalID: String?) {
        name = record.name
        active = !record.suspended
        group = record.securityGroup
        created = record.createdAt
        self.externalID = externalID
    }
}

/// A security group as SCIM shows it (RFC 7643 §4.2): the id and display
/// name are the group's name; the members its accounts; `externalID` the
/// directory's `externalId`, when it gave one.
struct SCIMGroup: Sendable, Equatable {
    let name: SecurityGroupName
    let members: [UserName]
    let externalID: String?
}

/// One page of a list, and how many items the whole list has.
struct SCIMListing<Item: Sendable>: Sendable {
    let total: Int
    let startIndex: Int
    let items: [Item]

    init(_ all: [Item], page: SCIMPage) {
        total = all.count
        startIndex = page.startIndex
        items = Array(page.window(all))
    }

    init(total: Int, page: SCIMPage, items: [Item]) {
        self.total = total
        startIndex = page.startIndex
        self.items = items
    }
}

/// SCIM 2.0 provisioning (RFC 7643, RFC 7644): an identity provider's
/// directory creates, changes and removes accounts and moves them between
/// security groups. Every change goes through ``AdminService`` or
/// ``PolicyService``, so it is enforced as an administrator's would be and
/// audited with the actor `scim`; only the `externalId` a directory gives an
/// account or a group, which is the directory's own, is stored directly.
final class SCIMService: Sendable {
    /// The audit log's actor for every SCIM change.
    static let auditActor = "scim"
    /// The longest `externalId` kept, in bytes of UTF-8.
    static let maximumExternalIDLength = 1024

    private let store: ConclaveStore
    private let admin: AdminService
    private let policy: PolicyService

    init(store: ConclaveStore, admin: AdminService, policy: PolicyService) {
        self.store = store
        self.admin = admin
        self.policy = policy
    }

    /// Checks a request's bearer token: one of the directory's tokens
    /// (`scim_tokens`, kept as hashes). The administrator token is not one.
    /// 401 otherwise.
    func authenticate(token: String?) async throws {
        guard let token, !token.isEmpty, try await store.scimTokenExists(hash: Tokens.hash(token)) else {
            throw SCIMError.unauthenticated
        }
    }

    // MARK: Users

    /// The user `id` names; 404 when there is none.
    func user(id: String) async throws -> SCIMUser { try await scimUser(try await record(try Self.userName(id))) }

    /// The users, by name; `filter` may only be `userName eq "…"` (the
    /// value compared as a user name, so in any case). External ids are
    /// read for the page's users only.
    func users(filter: String?, page: SCIMPage) async throws -> SCIMListing<SCIMUser> {
        guard let filter else {
            let records = try await store.users().map { $0.user }
            var users: [SCIMUser] = []
            for record in page.window(records) { users.append(try await scimUser(record)) }
            return SCIMListing(total: records.count, page: page, items: users)
        }
        let value = try SCIMEquality.filterValue(filter, attribute: "userName", schema: SCIMSchema.user)
        guard let name = UserName(value), let record = try await store.user(named: name) else { return SCIMListing([], page: page) }
        return SCIMListing([try await scimUser(record)], page: page)
    }

    /// Creates an account in the `default` security group, with the
    /// `externalId` given. Without a password it signs in through single
    /// sign-on only; with `active` false it is suspended right after.
    func createUser(_ change: SCIMUserChange) async throws -> SCIMUser {
        guard let text = change.userName else { throw SCIMError.invalidValue("userName is required") }
        guard let name = UserName(text) else {
            throw SCIMError.invalidValue("userName must be 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")
        }
        try Self.check(change.externalID)
        _ = try await admin.createAccount(name, password: change.password, group: .default, actor: Self.auditActor)
        try await Self.save(change.externalID) { try await store.setSCIMExternalID(user: name, to: $0) }
        if change.active == false { _ = try await admin.setSuspended(name, true, actor: Self.auditActor) }
        return try await scimUser(try await record(name))
    }

    /// PUT and PATCH: `userName` cannot change (400 `mutability`); a
    /// password resets the password; `active` suspends (cutting the user's
    /// devices out at once) or unsuspends, when it differs from now;
    /// `externalId` is set or (PATCH remove) cleared. Absent attributes stay
    /// as they are.
    func updateUser(id: String, _ change: SCIMUserChange) async throws -> SCIMUser {
        let name = try Self.userName(id)
        let before = try await record(name)
        if let text = change.userName, UserName(text) != name { throw SCIMError.mutability("userName cannot change") }
        try Self.check(change.externalID)
        if let password = change.password { _ = try await admin.updateUser(name, UserChange(password: password), actor: Self.auditActor) }
        if let active = change.active, active == before.suspended {
            _ = try await admin.setSuspended(name, !active, actor: Self.auditActor)
        }
        try await Self.save(change.externalID) { try await store.setSCIMExternalID(user: name, to: $0) }
        return try await scimUser(try await record(name))
    }

    /// Deletes the account, its devices cut out of every conversation.
    func deleteUser(id: String) async throws { try await admin.deleteUser(try Self.userName(id), actor: Self.auditActor) }

    /// A resource id that is not a user name names no user: 404.
    private static func userName(_ id: String) throws -> UserName {
        guard let name = UserName(id) else { throw SCIMError.notFound("user") }
        return name
    }

    private func record(_ name: UserName) async throws -> UserRecord {
        guard let record = try await store.user(named: name) else { throw SCIMError.notFound("user") }
        return record
    }

    private func scimUser(_ record: UserRecord) async throws -> SCIMUser {
        SCIMUser(record, externalID: try await store.scimExternalID(user: record.name))
    }

    // MARK: External ids

    /// An `externalId` a change sets is at most ``maximumExternalIDLength``
    /// bytes (400 `invalidValue`); checked before anything changes.
    private static func check(_ change: SCIMExternalIDChange) throws {
        if case .set(let value) = change, value.utf8.count > maximumExternalIDLength {
            throw SCIMError.invalidValue("externalId must be at most \(maximumExternalIDLength) bytes")
        }
    }

    /// Stores what `change` asks with `store`: the new value, or nil when
    /// it is removed; nothing when it is unchanged.
    private static func save(_ change: SCIMExternalIDChange, with store: (String?) async throws -> Void) async throws {
        switch change {
        case .unchanged: return
        case .set(let value): try await store(value)
        case .removed: try await store(nil)
        }
    }

    // MARK: Groups

    /// The security group `id` names, with its members; 404 when none.
    func group(id: String) async throws -> SCIMGroup { try await group(try await existingGroup(id)) }

    /// The security groups, by name; `filter` may only be
    /// `displayName eq "…"`. Members are read for the page's groups only.
    func groups(filter: String?, page: SCIMPage) async throws -> SCIMListing<SCIMGroup> {
        var names = try await store.securityGroups().map(\.policy.name)
        if let filter {
            let wanted = SecurityGroupName(try SCIMEquality.filterValue(filter, attribute: "displayName", schema: SCIMSchema.group))
            names = names.filter { $0 == wanted }
        }
        var groups: [SCIMGroup] = []
        for name in page.window(names) { groups.append(try await group(name)) }
        return SCIMListing(total: names.count, page: page, items: groups)
    }

    /// Creates a security group with the default policy and the
    /// `externalId` given, then moves its `members` into it. Every member
    /// is checked before the group exists.
    func createGroup(_ change: SCIMGroupChange) async throws -> SCIMGroup {
        guard let text = change.displayName else { throw SCIMError.invalidValue("displayName is required") }
        guard let name = SecurityGroupName(text) else {
            throw SCIMError.invalidValue("displayName must be 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")
        }
        try Self.check(change.externalID)
        let plan = try await moves(change.edits, group: name, current: [])
        _ = try await policy.createGroup(CreateSecurityGroup(name: name, settings: SecurityGroupChange()), actor: Self.auditActor)
        try await Self.save(change.externalID) { try await store.setSCIMExternalID(group: name, to: $0) }
        try await move(plan, into: name)
        return try await group(name)
    }

    /// PUT and PATCH: `displayName` cannot change (400 `mutability`);
    /// `externalId` is set or (PATCH remove) cleared; the member edits move
    /// users in (from whatever group they are in) and out (to `default`),
    /// after every new member is checked.
    func updateGroup(id: String, _ change: SCIMGroupChange) async throws -> SCIMGroup {
        let name = try await existingGroup(id)
        if let text = change.displayName, SecurityGroupName(text) != name { throw SCIMError.mutability("displayName cannot change") }
        try Self.check(change.externalID)
        let plan = try await moves(change.edits, group: name, current: Set(try await store.users(inGroup: name)))
        try await Self.save(change.externalID) { try await store.setSCIMExternalID(group: name, to: $0) }
        try await move(plan, into: name)
        return try await group(name)
    }

    /// Deletes an empty security group; one with members is refused (409),
    /// and `default` can never be deleted.
    func deleteGroup(id: String) async throws {
        guard let name = SecurityGroupName(id) else { throw SCIMError.notFound("group") }
        try await policy.deleteGroup(name, actor: Self.auditActor)
    }

    private func existingGroup(_ id: String) async throws -> SecurityGroupName {
        guard let name = SecurityGroupName(id), try await store.securityGroup(name) != nil else { throw SCIMError.notFound("group") }
        return name
    }

    private func group(_ name: SecurityGroupName) async throws -> SCIMGroup {
        SCIMGroup(name: name, members: try await store.users(inGroup: name), externalID: try await store.scimExternalID(group: name))
    }

    // MARK: Members

    /// Who a member change moves: into the group, and out of it to `default`.
    private struct Moves {
        var joining: [UserName]
        var leaving: [UserName]
    }

    /// The moves that take a group from `current` members to what `edits`
    /// make of them. Every user who joins must exist (400 `invalidValue`
    /// otherwise, before anyone moves); a removed value that is not a
    /// member is ignored. Leaving `default` is no move at all.
    private func moves(_ edits: [SCIMMemberEdit], group: SecurityGroupName, current: Set<UserName>) async throws -> Moves {
        var target = current
        for edit in edits {
            switch edit {
            case .add(let values): target.formUnion(try Self.memberNames(values))
            case .replace(let values): target = Set(try Self.memberNames(values))
            case .remove(let values): target.subtract(values.compactMap(UserName.init))
            case .removeAll: target.removeAll()
            }
        }
        let joining = target.subtracting(current).sorted()
        for name in joining {
            guard try await store.user(named: name) != nil else {
                throw SCIMError.invalidValue("member \(name) does not exist; nothing was changed")
            }
        }
        return Moves(joining: joining, leaving: group == .default ? [] : current.subtracting(target).sorted())
    }

    /// Moves each user through ``AdminService/updateUser(_:_:actor:)``:
    /// enforced at once, audited.
    private func move(_ moves: Moves, into group: SecurityGroupName) async throws {
        for name in moves.joining { _ = try await admin.updateUser(name, UserChange(group: group), actor: Self.auditActor) }
        for name in moves.leaving { _ = try await admin.updateUser(name, UserChange(group: .default), actor: Self.auditActor) }
    }

    /// The users member values name; a value that is not a user name is a
    /// member that does not exist (400 `invalidValue`).
    private static func memberNames(_ values: [String]) throws -> [UserName] {
        try values.map { value in
            guard let name = UserName(value) else {
                throw SCIMError.invalidValue("a member does not exist (its value is not a user name); nothing was changed")
            }
            return name
        }
    }
}
