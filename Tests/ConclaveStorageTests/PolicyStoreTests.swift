import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Security groups and the audit log in the store.
@Suite struct PolicyStoreTests {
    static let key = NetworkSigningKey.generate(domain: NetworkDomain("acme.example")!)  // a literal of the test

    static func draft(_ action: String, _ target: String = "user:alice") -> AuditDraft {
        AuditDraft(
            actor: "admin", action: action, target: target, before: nil, after: "{\"x\":1}", at: testNow(),
            sign: { try key.signature(for: $0) })
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func securityGroupsAndMembership(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            // The first migration made the default group, which allows everything.
            #expect(try await store.securityGroup(.default) == SecurityGroupPolicy(name: .default))
            let staff = try #require(SecurityGroupName("staff"))
            var policy = SecurityGroupPolicy(name: staff, mayMessage: .only([staff]), messageLifetimeMax: 3600)
            try await store.createSecurityGroup(policy, at: testNow(), audit: Self.draft("group.create", "group:staff"))
            await #expect {
                try await store.createSecurityGroup(policy, at: testNow(), audit: Self.draft("group.create", "group:staff"))
            } throws: { isConflict($0) }
            policy.burnOnReadMax = 0
            #expect(try await store.updateSecurityGroup(policy, audit: Self.draft("group.update", "group:staff")))
            #expect(try await store.securityGroup(staff) == policy)

            let alice = try await store.addUser("alice")
            try await store.setSecurityGroup(of: alice, to: staff, audit: Self.draft("user.update"))
            #expect(try await store.users(inGroup: staff) == [alice])
            #expect(try await store.policies(of: [alice]) == [alice: policy])
            await #expect(throws: StoreError.notFound("security group")) {
                try await store.setSecurityGroup(of: alice, to: try #require(SecurityGroupName("nope")), audit: Self.draft("user.update"))
            }
            await #expect(throws: StoreError.notFound("security group")) {
                try await store.createUser(
                    UserRecord(
                        name: try #require(UserName("bob")), passwordHash: "x", securityGroup: "nope", suspended: false,
                        createdAt: testNow()))
            }
            #expect(try await store.deleteSecurityGroup(staff, audit: Self.draft("group.delete")) == .inUse(accounts: 1))
            try await store.setSecurityGroup(of: alice, to: .default, audit: Self.draft("user.update"))
            #expect(try await store.deleteSecurityGroup(staff, audit: Self.draft("group.delete")) == .deleted)
            #expect(try await store.deleteSecurityGroup(staff, audit: Self.draft("group.delete")) == .notFound)
            // Every change that happened is in the log; the refused ones are not.
            #expect(
                try await store.auditLog().map(\.action) == [
                    "group.create", "group.update", "user.update", "user.update", "group.delete",
                ])
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func concurrentAppendsKeepOneChain(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 { group.addTask { try await store.appendAudit(Self.draft("test.\(index)")) } }
                try await group.waitForAll()
            }
            let entries = try await store.auditLog()
            #expect(entries.map(\.seq) == Array(1...40))
            let verification = AuditVerification(checking: entries, key: Self.key.publicKey)
            #expect(verification.isIntact)
            #expect(verification.head == entries.last?.hash)
            // Another network's key does not verify it.
            let other = NetworkSigningKey.generate(domain: NetworkDomain("globex.example")!)  // a literal of the test
            #expect(AuditVerification(checking: entries, key: other.publicKey).brokenAt == 1)
        }
    }
}
