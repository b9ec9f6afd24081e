import Foundation
import GRPCCore
import MLSInteropService
import Testing

/// Proposals from outside the group (RFC 9420 §12.1.8): a would-be member's
/// own Add, and proposals of an external sender listed in the group's
/// `external_senders` extension.
@Suite("External proposals")
struct ExternalProposalTests {
    /// A group of Alice and Bob, Bob added by Alice.
    private func twoMembers(_ mls: MLSClient, suite: UInt32, encrypt: Bool) async throws -> (Member, Member) {
        let alice = try await mls.createGroup("alice", suite: suite, encrypt: encrypt)
        let bobPackage = try await mls.createKeyPackage("bob", suite: suite)
        let addBob = try await mls.commit(alice, byValue: [description("add") { $0.keyPackage = bobPackage.keyPackage }])
        _ = try await mls.handlePending(alice)
        let (bob, _) = try await mls.join("bob", transaction: bobPackage.transactionID, welcome: addBob.welcome, encrypt: encrypt)
        try await mls.expectAgreement([alice, bob])
        return (alice, bob)
    }

    private func groupInfo(_ mls: MLSClient, _ member: Member, externalTree: Bool = false) async throws -> MlsClient_GroupInfoResponse {
        try await mls.groupInfo(
            .with {
                $0.stateID = member.stateID
                $0.externalTree = externalTree
            })
    }

    /// Charlie proposes to add himself from a GroupInfo; Alice commits it by
    /// reference, Bob follows, and Charlie joins from the Welcome.
    @Test(arguments: [(UInt32(1), false), (2, true), (3, false)])
    func newMemberAddsItself(suite: UInt32, encrypt: Bool) async throws {
        try await withInteropServer { mls in
            let (alice, bob) = try await twoMembers(mls, suite: suite, encrypt: encrypt)
            let info = try await groupInfo(mls, alice).groupInfo
            let selfAdd = try await mls.newMemberAddProposal(
                .with {
                    $0.groupInfo = info
                    $0.identity = bytes("charlie")
                })
            #expect(!selfAdd.initPriv.isEmpty && !selfAdd.encryptionPriv.isEmpty && !selfAdd.signaturePriv.isEmpty)

            let commit = try await mls.commit(alice, byReference: [selfAdd.proposal])
            #expect(!commit.welcome.isEmpty)
            let aliceEpoch = try await mls.handlePending(alice)
            #expect(try await mls.handle(bob, commit: commit.commit, proposals: [selfAdd.proposal]) == aliceEpoch)
            let (charlie, charlieEpoch) = try await mls.join(
                "charlie", transaction: selfAdd.transactionID, welcome: commit.welcome, encrypt: encrypt)
            #expect(charlieEpoch == aliceEpoch)
            try await mls.expectAgreement([alice, bob, charlie])
            try await mls.send("welcome charlie", from: bob, to: charlie)
            try await mls.send("thanks", from: charlie, to: alice)

            // The transaction was used up by the join.
            await expectStatus(.notFound) {
                try await mls.join("charlie", transaction: selfAdd.transactionID, welcome: commit.welcome, encrypt: encrypt)
            }
        }
    }

    /// An external signer joins the group's `external_senders` by a
    /// GroupContextExtensions proposal that another member commits; it then
    /// removes a member and adds a new one by external proposals, each
    /// committed by a member, and everyone agrees.
    @Test(arguments: [(UInt32(1), false), (1, true), (2, false)])
    func externalSigner(suite: UInt32, encrypt: Bool) async throws {
        try await withInteropServer { mls in
            let (alice, bob) = try await twoMembers(mls, suite: suite, encrypt: encrypt)
            let charliePackage = try await mls.createKeyPackage("charlie", suite: suite)
            let addCharlie = try await mls.commit(bob, byValue: [description("add") { $0.keyPackage = charliePackage.keyPackage }])
            _ = try await mls.handlePending(bob)
            _ = try await mls.handle(alice, commit: addCharlie.commit)
            let (charlie, _) = try await mls.join(
                "charlie", transaction: charliePackage.transactionID, welcome: addCharlie.welcome, encrypt: encrypt)
            try await mls.expectAgreement([alice, bob, charlie])

            // Two signers, so that the one used is not the first in the list.
            var signers: [MlsClient_CreateExternalSignerResponse] = []
            for name in ["server-1", "server-2"] {
                let signer = try await mls.createExternalSigner(
                    .with {
                        $0.cipherSuite = suite
                        $0.identity = bytes(name)
                    })
                #expect(!signer.externalSender.isEmpty)
                signers.append(signer)

                // Bob proposes to add the signer; Alice commits it.
                let gce = try await mls.addExternalSigner(
                    .with {
                        $0.stateID = bob.stateID
                        $0.externalSender = signer.externalSender
                    }
                ).proposal
                let commit = try await mls.commit(alice, byReference: [gce])
                let epoch = try await mls.handlePending(alice)
                #expect(try await mls.handle(bob, commit: commit.commit, proposals: [gce]) == epoch)
                #expect(try await mls.handle(charlie, commit: commit.commit, proposals: [gce]) == epoch)
                try await mls.expectAgreement([alice, bob, charlie])
            }
            let server = signers[1]

            // The signer removes Charlie, from a GroupInfo with the tree given apart; Bob commits.
            let info = try await groupInfo(mls, alice, externalTree: true)
            #expect(!info.ratchetTree.isEmpty)
            let remove = try await mls.externalSignerProposal(
                .with {
                    $0.signerID = server.signerID
                    $0.signerIndex = 1
                    $0.groupInfo = info.groupInfo
                    $0.ratchetTree = info.ratchetTree
                    $0.description_p = description("remove") { $0.removedID = charlie.identity }
                }
            ).proposal
            let removeCommit = try await mls.commit(bob, byReference: [remove])
            let bobEpoch = try await mls.handlePending(bob)
            #expect(try await mls.handle(alice, commit: removeCommit.commit, proposals: [remove]) == bobEpoch)
            #expect(try await mls.handle(charlie, commit: removeCommit.commit, proposals: [remove]).isEmpty)
            await expectStatus(.failedPrecondition) { try await mls.stateAuth(charlie) }
            try await mls.expectAgreement([alice, bob])
            try await mls.send("charlie is gone", from: alice, to: bob)

            // The signer adds Dave (GroupInfo with the tree inside); Alice commits, Dave joins.
            let davePackage = try await mls.createKeyPackage("dave", suite: suite)
            let bobInfo = try await groupInfo(mls, bob).groupInfo
            let add = try await mls.externalSignerProposal(
                .with {
                    $0.signerID = server.signerID
                    $0.signerIndex = 1
                    $0.groupInfo = bobInfo
                    $0.description_p = description("add") { $0.keyPackage = davePackage.keyPackage }
                }
            ).proposal
            let addCommit = try await mls.commit(alice, byReference: [add])
            let aliceEpoch = try await mls.handlePending(alice)
            #expect(try await mls.handle(bob, commit: addCommit.commit, proposals: [add]) == aliceEpoch)
            let (dave, daveEpoch) = try await mls.join(
                "dave", transaction: davePackage.transactionID, welcome: addCommit.welcome, encrypt: encrypt)
            #expect(daveEpoch == aliceEpoch)
            try await mls.expectAgreement([alice, bob, dave])
            try await mls.send("hello dave", from: bob, to: dave)

            // External senders may not send an Update; a signer not in the group may not propose.
            let current = try await groupInfo(mls, alice).groupInfo
            await expectStatus(.invalidArgument) {
                try await mls.externalSignerProposal(
                    .with {
                        $0.signerID = server.signerID
                        $0.groupInfo = current
                        $0.description_p = description("update")
                    })
            }
            let outsider = try await mls.createExternalSigner(
                .with {
                    $0.cipherSuite = suite
                    $0.identity = bytes("outsider")
                })
            await expectStatus(.invalidArgument) {
                try await mls.externalSignerProposal(
                    .with {
                        $0.signerID = outsider.signerID
                        $0.groupInfo = current
                        $0.description_p = description("remove") { $0.removedID = bob.identity }
                    })
            }
            try await mls.expectAgreement([alice, bob, dave])
        }
    }
}
