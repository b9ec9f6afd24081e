import Foundation
import GRPCCore
import MLSInteropService
import Testing

/// Drives the MLSClient service as the interop harness's test-runner does,
/// through a real gRPC client over HTTP/2 on 127.0.0.1.
@Suite("MLSClient service")
struct InteropTests {
    @Test func nameAndCipherSuites() async throws {
        try await withInteropServer { mls in
            #expect(try await mls.name(MlsClient_NameRequest()).name == "Conclave")
            let suites = try await mls.supportedCiphersuites(MlsClient_SupportedCiphersuitesRequest()).ciphersuites
            #expect(suites == [1, 2, 3, 5, 7, 0x004D])  // the registry's suites it runs, and the hybrid post-quantum one
        }
    }

    /// The whole life of a group: add by commit + Welcome, application data
    /// both ways, an Update committed by another member, a removal, an
    /// external join, exporter agreement, and freeing the states.
    @Test(arguments: [(UInt32(1), false), (1, true), (2, true), (3, false), (0x004D, true)])
    func groupLifecycle(suite: UInt32, encrypt: Bool) async throws {
        try await withInteropServer { mls in
            // Alice creates the group and adds Bob by reference to her own Add proposal.
            let alice = try await mls.createGroup("alice", suite: suite, encrypt: encrypt)
            let bobPackage = try await mls.createKeyPackage("bob", suite: suite)
            #expect(!bobPackage.initPriv.isEmpty && !bobPackage.encryptionPriv.isEmpty && !bobPackage.signaturePriv.isEmpty)
            let addBob = try await mls.addProposal(
                .with {
                    $0.stateID = alice.stateID
                    $0.keyPackage = bobPackage.keyPackage
                }
            ).proposal
            let addBobCommit = try await mls.commit(alice, byReference: [addBob])
            #expect(!addBobCommit.welcome.isEmpty)
            #expect(addBobCommit.ratchetTree.isEmpty)
            let aliceEpoch1 = try await mls.handlePending(alice)
            let (bob, bobEpoch1) = try await mls.join(
                "bob", transaction: bobPackage.transactionID, welcome: addBobCommit.welcome, encrypt: encrypt)
            #expect(aliceEpoch1 == bobEpoch1)
            try await mls.expectAgreement([alice, bob])

            // Application data both ways.
            try await mls.send("hello bob", from: alice, to: bob)
            try await mls.send("hello alice", from: bob, to: alice)

            // Bob adds Charlie by value; Alice follows.
            let charliePackage = try await mls.createKeyPackage("charlie", suite: suite)
            let addCharlie = try await mls.commit(bob, byValue: [description("add") { $0.keyPackage = charliePackage.keyPackage }])
            let bobEpoch2 = try await mls.handlePending(bob)
            #expect(try await mls.handle(alice, commit: addCharlie.commit) == bobEpoch2)
            let (charlie, charlieEpoch2) = try await mls.join(
                "charlie", transaction: charliePackage.transactionID, welcome: addCharlie.welcome, encrypt: encrypt)
            #expect(charlieEpoch2 == bobEpoch2)
            try await mls.expectAgreement([alice, bob, charlie])

            // Alice proposes an Update; Charlie commits it.
            let update = try await mls.updateProposal(.with { $0.stateID = alice.stateID }).proposal
            let updateCommit = try await mls.commit(charlie, byReference: [update])
            let charlieEpoch3 = try await mls.handlePending(charlie)
            #expect(try await mls.handle(alice, commit: updateCommit.commit, proposals: [update]) == charlieEpoch3)
            #expect(try await mls.handle(bob, commit: updateCommit.commit, proposals: [update]) == charlieEpoch3)
            try await mls.expectAgreement([alice, bob, charlie])
            // A commit with a path encrypts to Alice's new leaf key: she must still follow.
            let pathCommit = try await mls.commit(bob, forcePath: true)
            let bobEpoch4 = try await mls.handlePending(bob)
            #expect(try await mls.handle(alice, commit: pathCommit.commit) == bobEpoch4)
            #expect(try await mls.handle(charlie, commit: pathCommit.commit) == bobEpoch4)
            try await mls.send("after the update", from: alice, to: charlie)

            // Alice removes Bob (identity = basic credential bytes).
            let removeBob = try await mls.removeProposal(
                .with {
                    $0.stateID = alice.stateID
                    $0.removedID = bob.identity
                }
            ).proposal
            let removeCommit = try await mls.commit(alice, byReference: [removeBob])
            // Alice handles her own commit as the Delivery Service echoes it: that merges it.
            let aliceEpoch5 = try await mls.handle(alice, commit: removeCommit.commit, proposals: [removeBob])
            #expect(!aliceEpoch5.isEmpty)
            await expectStatus(.failedPrecondition) { try await mls.handlePending(alice) }
            #expect(try await mls.handle(charlie, commit: removeCommit.commit, proposals: [removeBob]) == aliceEpoch5)
            // Bob learns he was removed: no epoch authenticator, and his state is over.
            #expect(try await mls.handle(bob, commit: removeCommit.commit, proposals: [removeBob]).isEmpty)
            await expectStatus(.failedPrecondition) { try await mls.protect(bob, "still here?") }
            try await mls.expectAgreement([alice, charlie])
            try await mls.send("bob is gone", from: charlie, to: alice)

            // The exporter agrees, and depends on label and context.
            let exported = try await mls.export(alice)
            #expect(exported.count == 32)
            #expect(try await mls.export(charlie) == exported)
            #expect(try await mls.export(charlie, label: "other") != exported)
            #expect(try await mls.export(charlie, context: bytes("other")) != exported)

            // Dave joins by external commit from Charlie's GroupInfo.
            let groupInfo = try await mls.groupInfo(.with { $0.stateID = charlie.stateID })
            #expect(groupInfo.ratchetTree.isEmpty)
            let external = try await mls.externalJoin(
                .with {
                    $0.groupInfo = groupInfo.groupInfo
                    $0.encryptHandshake = encrypt
                    $0.identity = bytes("dave")
                })
            let dave = Member(name: "dave", stateID: external.stateID)
            #expect(try await mls.handle(alice, commit: external.commit) == external.epochAuthenticator)
            #expect(try await mls.handle(charlie, commit: external.commit) == external.epochAuthenticator)
            try await mls.expectAgreement([alice, charlie, dave])
            try await mls.send("hi from dave", from: dave, to: alice)
            try await mls.send("welcome dave", from: charlie, to: dave)
            #expect(try await mls.export(dave) == (try await mls.export(alice)))

            // Freeing a state forgets it.
            for member in [alice, bob, charlie, dave] {
                _ = try await mls.free(.with { $0.stateID = member.stateID })
            }
            await expectStatus(.notFound) { try await mls.stateAuth(alice) }
        }
    }

    /// Every kind of by-value proposal, PSKs, an external tree, and a
    /// rejoin that removes the joiner's old leaf.
    @Test func proposalsByValuePSKsAndExternalTree() async throws {
        try await withInteropServer { mls in
            let suite: UInt32 = 1
            let alice = try await mls.createGroup("alice", suite: suite, encrypt: false)

            // Bob joins with the ratchet tree sent beside the Welcome.
            let bobPackage = try await mls.createKeyPackage("bob", suite: suite)
            let addBob = try await mls.commit(
                alice, byValue: [description("add") { $0.keyPackage = bobPackage.keyPackage }], externalTree: true)
            #expect(!addBob.ratchetTree.isEmpty)
            let epoch1 = try await mls.handlePending(alice)
            // The Welcome carries no tree, so joining without it fails...
            await expectStatus(.invalidArgument) {
                try await mls.join("bob", transaction: bobPackage.transactionID, welcome: addBob.welcome, encrypt: false)
            }
            // ...and with it succeeds.
            let (bob, bobEpoch1) = try await mls.join(
                "bob", transaction: bobPackage.transactionID, welcome: addBob.welcome, encrypt: false, ratchetTree: addBob.ratchetTree)
            #expect(bobEpoch1 == epoch1)

            // An external PSK, by reference and by value.
            try await mls.storePSK(alice.stateID, pskID: "psk-1", secret: "secret one")
            try await mls.storePSK(bob.stateID, pskID: "psk-1", secret: "secret one")
            let pskProposal = try await mls.externalPSKProposal(
                .with {
                    $0.stateID = alice.stateID
                    $0.pskID = bytes("psk-1")
                }
            ).proposal
            let pskCommit = try await mls.commit(alice, byReference: [pskProposal])
            #expect(try await mls.handle(bob, commit: pskCommit.commit, proposals: [pskProposal]) == (try await mls.handlePending(alice)))

            // A resumption PSK of epoch 1 and a GroupContextExtensions proposal, by value.
            let byValue = try await mls.commit(
                bob,
                byValue: [
                    description("resumptionPSK") { $0.epochID = 1 },
                    description("externalPSK") { $0.pskID = bytes("psk-1") },
                    description("groupContextExtensions"),
                ])
            #expect(try await mls.handle(alice, commit: byValue.commit) == (try await mls.handlePending(bob)))
            try await mls.expectAgreement([alice, bob])

            // Resumption PSK and GroupContextExtensions proposals by reference.
            let resumption = try await mls.resumptionPSKProposal(
                .with {
                    $0.stateID = bob.stateID
                    $0.epochID = 2
                }
            ).proposal
            let extensions = try await mls.groupContextExtensionsProposal(.with { $0.stateID = bob.stateID }).proposal
            let byReference = try await mls.commit(alice, byReference: [resumption, extensions])
            #expect(
                try await mls.handle(bob, commit: byReference.commit, proposals: [resumption, extensions])
                    == (try await mls.handlePending(alice)))

            // A PSK nobody stored is refused, and the state stays usable.
            await expectStatus(.invalidArgument) {
                try await mls.commit(alice, byValue: [description("externalPSK") { $0.pskID = bytes("unknown") }])
            }

            // Bob rejoins by external commit, removing his old leaf; the group info's tree comes separately.
            let info = try await mls.groupInfo(
                .with {
                    $0.stateID = alice.stateID
                    $0.externalTree = true
                })
            #expect(!info.ratchetTree.isEmpty)
            let rejoin = try await mls.externalJoin(
                .with {
                    $0.groupInfo = info.groupInfo
                    $0.ratchetTree = info.ratchetTree
                    $0.identity = bytes("bob")
                    $0.removePrior = true
                    $0.psks = [
                        .with {
                            $0.pskID = bytes("psk-1")
                            $0.pskSecret = bytes("secret one")
                        }
                    ]
                })
            #expect(try await mls.handle(alice, commit: rejoin.commit) == rejoin.epochAuthenticator)
            let newBob = Member(name: "bob", stateID: rejoin.stateID)
            try await mls.expectAgreement([alice, newBob])
            try await mls.send("bob is back", from: newBob, to: alice)

            // A by-value remove names the member by identity.
            let removeBob = try await mls.commit(alice, byValue: [description("remove") { $0.removedID = bytes("bob") }])
            #expect(!(try await mls.handlePending(alice)).isEmpty)
            #expect(try await mls.handle(newBob, commit: removeBob.commit).isEmpty)
        }
    }

    /// Bad requests answer with an error status and leave the server serving.
    @Test func badRequestsGetErrorStatuses() async throws {
        try await withInteropServer { mls in
            let package = try await mls.createKeyPackage("bob", suite: 1)
            let garbage = Data((0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
            let error = await expectStatus(.invalidArgument) {
                try await mls.join("bob", transaction: package.transactionID, welcome: garbage, encrypt: false)
            }
            #expect(error?.message.hasPrefix("JoinGroup: welcome is not a valid MLSMessage") == true)
            // A KeyPackage is an MLSMessage, but not a Welcome.
            await expectStatus(.invalidArgument) {
                try await mls.join("bob", transaction: package.transactionID, welcome: package.keyPackage, encrypt: false)
            }
            await expectStatus(.invalidArgument) {
                try await mls.join("bob", transaction: package.transactionID, welcome: Data(), encrypt: false)
            }
            await expectStatus(.notFound) { try await mls.join("bob", transaction: 9999, welcome: garbage, encrypt: false) }

            // Unsupported or impossible cipher suites.
            await expectStatus(.invalidArgument) { try await mls.createGroup("alice", suite: 4, encrypt: false) }
            await expectStatus(.invalidArgument) { try await mls.createGroup("alice", suite: 0x1_0001, encrypt: false) }
            await expectStatus(.invalidArgument) { try await mls.createKeyPackage("alice", suite: 0) }

            // Unknown states, malformed inputs to a real state, and a commit that is not a commit.
            await expectStatus(.notFound) { try await mls.stateAuth(Member(name: "nobody", stateID: 424_242)) }
            let alice = try await mls.createGroup("alice", suite: 1, encrypt: true)
            await expectStatus(.invalidArgument) { try await mls.unprotect(alice, garbage) }
            await expectStatus(.invalidArgument) { try await mls.handle(alice, commit: garbage) }
            await expectStatus(.invalidArgument) { try await mls.handle(alice, commit: package.keyPackage) }
            await expectStatus(.invalidArgument) { try await mls.commit(alice, byReference: [garbage]) }
            await expectStatus(.invalidArgument) { try await mls.commit(alice, byValue: [description("reinit")]) }
            await expectStatus(.invalidArgument) {
                try await mls.commit(alice, byValue: [description("remove") { $0.removedID = bytes("nobody") }])
            }
            await expectStatus(.invalidArgument) { try await mls.export(alice, length: 0) }
            await expectStatus(.invalidArgument) { try await mls.export(alice, length: 1 << 20) }
            await expectStatus(.invalidArgument) {
                try await mls.addProposal(
                    .with {
                        $0.stateID = alice.stateID
                        $0.keyPackage = garbage
                    })
            }
            await expectStatus(.invalidArgument) {
                try await mls.externalJoin(
                    .with {
                        $0.groupInfo = garbage
                        $0.identity = bytes("eve")
                    })
            }
            await expectStatus(.invalidArgument) {
                try await mls.groupContextExtensionsProposal(
                    .with {
                        $0.stateID = alice.stateID
                        $0.extensions = [.with { $0.extensionType = 0x1_0000 }]
                    })
            }
            await expectStatus(.failedPrecondition) { try await mls.handlePending(alice) }
            await expectStatus(.notFound) { try await mls.storePSK(31_337, pskID: "id", secret: "secret") }
            await expectStatus(.notFound) { try await mls.free(.with { $0.stateID = 31_337 }) }

            // External proposals from bad input.
            await expectStatus(.invalidArgument) {
                try await mls.newMemberAddProposal(
                    .with {
                        $0.groupInfo = garbage
                        $0.identity = bytes("eve")
                    })
            }
            await expectStatus(.invalidArgument) { try await mls.createExternalSigner(.with { $0.cipherSuite = 4 }) }
            await expectStatus(.invalidArgument) {
                try await mls.addExternalSigner(
                    .with {
                        $0.stateID = alice.stateID
                        $0.externalSender = garbage
                    })
            }
            await expectStatus(.notFound) { try await mls.externalSignerProposal(.with { $0.signerID = 31_337 }) }

            // After all that, the group still works.
            try await mls.expectAgreement([alice])
            #expect(try await mls.export(alice).count == 32)
        }
    }
}
