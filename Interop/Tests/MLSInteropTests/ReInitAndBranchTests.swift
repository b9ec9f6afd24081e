import Foundation
import GRPCCore
import MLSInteropService
import Testing

/// Reinitialisation (RFC 9420 §11.2) and subgroup branches (§11.3), driven
/// through a real gRPC client as the harness's test-runner does.
@Suite("MLSClient service: ReInit and branches")
struct ReInitAndBranchTests {
    /// Alice, Bob and Charlie, all in one group at epoch 1.
    private func threeMembers(_ mls: MLSClient, suite: UInt32, encrypt: Bool) async throws -> [Member] {
        let alice = try await mls.createGroup("alice", suite: suite, encrypt: encrypt)
        let bobPackage = try await mls.createKeyPackage("bob", suite: suite)
        let charliePackage = try await mls.createKeyPackage("charlie", suite: suite)
        let adds = try await mls.commit(
            alice,
            byValue: [
                description("add") { $0.keyPackage = bobPackage.keyPackage },
                description("add") { $0.keyPackage = charliePackage.keyPackage },
            ])
        _ = try await mls.handlePending(alice)
        let (bob, _) = try await mls.join("bob", transaction: bobPackage.transactionID, welcome: adds.welcome, encrypt: encrypt)
        let (charlie, _) = try await mls.join("charlie", transaction: charliePackage.transactionID, welcome: adds.welcome, encrypt: encrypt)
        try await mls.expectAgreement([alice, bob, charlie])
        return [alice, bob, charlie]
    }

    /// Bob proposes a ReInit to a new group id (and maybe a new suite),
    /// Charlie commits it, and Alice starts the new group for all three.
    @Test(arguments: [(UInt32(1), UInt32(1), false, false), (1, 2, true, true), (3, 3, false, true), (1, 0x004D, true, false)])
    func threeMembersReinitialise(suite: UInt32, newSuite: UInt32, encrypt: Bool, externalTree: Bool) async throws {
        try await withInteropServer { mls in
            let old = try await threeMembers(mls, suite: suite, encrypt: encrypt)
            let (alice, bob, charlie) = (old[0], old[1], old[2])

            let proposal = try await mls.reInitProposal(
                .with {
                    $0.stateID = bob.stateID
                    $0.groupID = bytes("reinitialised")
                    $0.cipherSuite = newSuite
                }
            ).proposal
            let commit = try await mls.reInitCommit(
                .with {
                    $0.stateID = charlie.stateID
                    $0.byReference = [proposal]
                })
            let charlieReInit = try await mls.handlePendingReInitCommit(.with { $0.stateID = charlie.stateID })
            var others: [MlsClient_HandleReInitCommitResponse] = []
            for member in [alice, bob] {
                others.append(
                    try await mls.handleReInitCommit(
                        .with {
                            $0.stateID = member.stateID
                            $0.proposal = [proposal]
                            $0.commit = commit.commit
                        }))
            }
            let (aliceReInit, bobReInit) = (others[0], others[1])
            #expect(Set([aliceReInit, bobReInit, charlieReInit].map(\.epochAuthenticator)).count == 1)
            #expect(Set([aliceReInit, bobReInit, charlieReInit].map(\.reinitID)).count == 3)
            #expect(!charlieReInit.keyPackage.isEmpty)

            // The old group is over: it sends nothing more.
            await expectStatus(.invalidArgument) { try await mls.protect(alice, "too late") }
            await expectStatus(.invalidArgument) { try await mls.commit(bob) }

            // Alice starts the new group with the KeyPackages Bob and Charlie made for it.
            let created = try await mls.reInitWelcome(
                .with {
                    $0.reinitID = aliceReInit.reinitID
                    $0.keyPackage = [bobReInit.keyPackage, charlieReInit.keyPackage]
                    $0.forcePath = true
                    $0.externalTree = externalTree
                })
            #expect(!created.welcome.isEmpty)
            #expect(created.ratchetTree.isEmpty == !externalTree)
            var successors = [Member(name: "alice", stateID: created.stateID)]
            for (member, reinit) in [(bob, bobReInit), (charlie, charlieReInit)] {
                let joined = try await mls.handleReInitWelcome(
                    .with {
                        $0.reinitID = reinit.reinitID
                        $0.welcome = created.welcome
                        $0.ratchetTree = created.ratchetTree
                    })
                #expect(joined.epochAuthenticator == created.epochAuthenticator)
                successors.append(Member(name: member.name, stateID: joined.stateID))
            }
            try await mls.expectAgreement(successors)
            #expect(try await mls.stateAuth(successors[0]) != aliceReInit.epochAuthenticator)
            try await mls.send("in the new group", from: successors[2], to: successors[0])
            try await mls.send("hello again", from: successors[0], to: successors[1])

            // A reinit id is used once; the new group goes on.
            await expectStatus(.notFound) {
                try await mls.handleReInitWelcome(
                    .with {
                        $0.reinitID = bobReInit.reinitID
                        $0.welcome = created.welcome
                    })
            }
            let update = try await mls.commit(successors[1], forcePath: true)
            let epoch = try await mls.handlePending(successors[1])
            #expect(try await mls.handle(successors[0], commit: update.commit) == epoch)
            #expect(try await mls.handle(successors[2], commit: update.commit) == epoch)
        }
    }

    /// Alice branches a two-member subgroup with Bob off a three-member group.
    @Test(arguments: [(UInt32(1), false, false), (2, true, true)])
    func twoMemberBranch(suite: UInt32, encrypt: Bool, externalTree: Bool) async throws {
        try await withInteropServer { mls in
            let old = try await threeMembers(mls, suite: suite, encrypt: encrypt)
            let (alice, bob, charlie) = (old[0], old[1], old[2])

            let bobPackage = try await mls.createKeyPackage("bob", suite: suite)
            let branch = try await mls.createBranch(
                .with {
                    $0.stateID = alice.stateID
                    $0.groupID = bytes("branch")
                    $0.keyPackages = [bobPackage.keyPackage]
                    $0.forcePath = true
                    $0.externalTree = externalTree
                })
            #expect(!branch.welcome.isEmpty)
            #expect(branch.ratchetTree.isEmpty == !externalTree)
            let joined = try await mls.handleBranch(
                .with {
                    $0.stateID = bob.stateID
                    $0.transactionID = bobPackage.transactionID
                    $0.welcome = branch.welcome
                    $0.ratchetTree = branch.ratchetTree
                })
            #expect(joined.epochAuthenticator == branch.epochAuthenticator)
            let aliceBranch = Member(name: "alice", stateID: branch.stateID)
            let bobBranch = Member(name: "bob", stateID: joined.stateID)
            try await mls.expectAgreement([aliceBranch, bobBranch])
            try await mls.send("just us", from: bobBranch, to: aliceBranch)
            #expect(try await mls.export(aliceBranch) == (try await mls.export(bobBranch)))

            // The original group carries on beside its branch.
            let update = try await mls.commit(charlie, forcePath: true)
            let epoch = try await mls.handlePending(charlie)
            #expect(try await mls.handle(alice, commit: update.commit) == epoch)
            #expect(try await mls.handle(bob, commit: update.commit) == epoch)
            try await mls.expectAgreement([alice, bob, charlie])

            // Charlie, not in the branch, cannot join it with his own KeyPackage.
            let charliePackage = try await mls.createKeyPackage("charlie", suite: suite)
            await expectStatus(.invalidArgument) {
                try await mls.handleBranch(
                    .with {
                        $0.stateID = charlie.stateID
                        $0.transactionID = charliePackage.transactionID
                        $0.welcome = branch.welcome
                        $0.ratchetTree = branch.ratchetTree
                    })
            }
        }
    }

    @Test func badReInitAndBranchRequests() async throws {
        try await withInteropServer { mls in
            let old = try await threeMembers(mls, suite: 1, encrypt: false)
            let (alice, bob) = (old[0], old[1])
            let garbage = Data([0xde, 0xad, 0xbe, 0xef])

            // A ReInitCommit needs a ReInit; the state is unchanged after the refusal.
            await expectStatus(.invalidArgument) { try await mls.reInitCommit(.with { $0.stateID = alice.stateID }) }
            await expectStatus(.failedPrecondition) { try await mls.handlePendingReInitCommit(.with { $0.stateID = alice.stateID }) }
            await expectStatus(.invalidArgument) {
                try await mls.reInitProposal(
                    .with {
                        $0.stateID = alice.stateID
                        $0.cipherSuite = 4
                    })
            }
            // An ordinary commit handled as a ReInit commit is refused without changing the state.
            let plain = try await mls.commit(bob, forcePath: true)
            await expectStatus(.invalidArgument) {
                try await mls.handleReInitCommit(
                    .with {
                        $0.stateID = alice.stateID
                        $0.commit = plain.commit
                    })
            }
            _ = try await mls.handle(alice, commit: plain.commit)
            _ = try await mls.handlePending(bob)
            try await mls.expectAgreement([alice, bob])

            await expectStatus(.notFound) { try await mls.reInitWelcome(.with { $0.reinitID = 77_777 }) }
            await expectStatus(.notFound) { try await mls.handleReInitWelcome(.with { $0.reinitID = 77_777 }) }
            await expectStatus(.invalidArgument) {
                try await mls.createBranch(
                    .with {
                        $0.stateID = alice.stateID
                        $0.groupID = bytes("branch")
                        $0.keyPackages = [garbage]
                    })
            }
            // A branch holds only members of the group.
            let dave = try await mls.createKeyPackage("dave", suite: 1)
            await expectStatus(.invalidArgument) {
                try await mls.createBranch(
                    .with {
                        $0.stateID = alice.stateID
                        $0.groupID = bytes("branch")
                        $0.keyPackages = [dave.keyPackage]
                    })
            }
            await expectStatus(.notFound) {
                try await mls.handleBranch(
                    .with {
                        $0.stateID = bob.stateID
                        $0.transactionID = 77_777
                        $0.welcome = garbage
                    })
            }
            try await mls.expectAgreement([alice, bob])
        }
    }
}
