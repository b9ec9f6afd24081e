import MLS
import MLSCodec
import Testing

@Suite("Reinitialisation and branching (RFC 9420 §11.2, §11.3)")
struct ReInitTests {
    let alice: Client
    let bob: Client
    let carol: Client

    init() throws {
        alice = try Client("alice", seed: 31)
        bob = try Client("bob", seed: 32)
        carol = try Client("carol", seed: 33)
    }

    func threeMembers() throws -> [Group] {
        var creator = try Group(creating: [3, 1], creator: try alice.keyPackage(), random: alice.random)
        let bobPackage = try bob.keyPackage()
        let carolPackage = try carol.keyPackage()
        let output = try creator.commit(adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow, random: alice.random)
        try creator.mergePendingCommit()
        let welcome = try #require(output.welcome)
        return [
            creator, try Group(welcome: welcome, keyPackage: bobPackage, now: testNow),
            try Group(welcome: welcome, keyPackage: carolPackage, now: testNow),
        ]
    }

    @Test func aCommittedReInitStartsTheNewGroup() throws {
        var groups = try threeMembers()
        let reinit = ReInit(groupID: [9, 9, 9], version: .mls10, cipherSuite: .x25519Aes128Sha256Ed25519, extensions: [])
        let output = try groups[1].commit(proposals: [.reinit(reinit)], now: testNow, random: bob.random)
        try groups[1].mergePendingCommit()
        _ = try groups[0].process(output.commit, now: testNow)
        _ = try groups[2].process(output.commit, now: testNow)
        #expect(groups.allSatisfy { $0.pendingReInit == reinit })
        // The old group sends nothing more.
        #expect(throws: MLSError.self) { try groups[0].encrypt([1], random: alice.random) }

        let bobPackage = try bob.keyPackage()
        let carolPackage = try carol.keyPackage()
        let (successor, welcome) = try groups[0].reinitialize(
            creator: try alice.keyPackage(), adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow, random: alice.random)
        let bobNew = try Group(welcome: try #require(welcome), keyPackage: bobPackage, psks: groups[1].pskStore(), now: testNow)
        let carolNew = try Group(welcome: try #require(welcome), keyPackage: carolPackage, psks: groups[2].pskStore(), now: testNow)
        #expect(successor.groupID == [9, 9, 9])
        #expect(successor.epoch == 1)
        #expect(bobNew.epochAuthenticator == successor.epochAuthenticator)
        #expect(carolNew.epochAuthenticator == successor.epochAuthenticator)
        // Without the old group's resumption PSK, the Welcome cannot be opened.
        #expect(throws: MLSError.self) { try Group(welcome: try #require(welcome), keyPackage: carolPackage, now: testNow) }
    }

    @Test("A ReInit moves a classical group to the hybrid post-quantum suite 0x004D, every member following")
    func aReInitMovesTheGroupToThePostQuantumSuite() throws {
        var groups = try threeMembers()
        let reinit = ReInit(groupID: [7, 7, 7], version: .mls10, cipherSuite: .xwingChacha20Sha256Ed25519, extensions: [])
        let output = try groups[2].commit(proposals: [.reinit(reinit)], now: testNow, random: carol.random)
        try groups[2].mergePendingCommit()
        _ = try groups[0].process(output.commit, now: testNow)
        _ = try groups[1].process(output.commit, now: testNow)
        #expect(groups.allSatisfy { $0.pendingReInit == reinit })

        // Each member's device makes key packages of the new suite.
        let (pqAlice, pqBob, pqCarol) = (
            try Client("alice", suite: .xwingChacha20Sha256Ed25519, seed: 41),
            try Client("bob", suite: .xwingChacha20Sha256Ed25519, seed: 42),
            try Client("carol", suite: .xwingChacha20Sha256Ed25519, seed: 43)
        )
        let bobPackage = try pqBob.keyPackage()
        let carolPackage = try pqCarol.keyPackage()
        // A creator's key package of the old suite does not start the new group.
        #expect(throws: MLSError.self) {
            _ = try groups[0].reinitialize(
                creator: try alice.keyPackage(), adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow,
                random: alice.random)
        }
        var (successor, welcome) = try groups[0].reinitialize(
            creator: try pqAlice.keyPackage(), adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow,
            random: pqAlice.random)
        var bobNew = try Group(welcome: try #require(welcome), keyPackage: bobPackage, psks: groups[1].pskStore(), now: testNow)
        let carolNew = try Group(welcome: try #require(welcome), keyPackage: carolPackage, psks: groups[2].pskStore(), now: testNow)
        #expect(successor.cipherSuite == .xwingChacha20Sha256Ed25519 && bobNew.cipherSuite == .xwingChacha20Sha256Ed25519)
        #expect(bobNew.epochAuthenticator == successor.epochAuthenticator)
        #expect(carolNew.epochAuthenticator == successor.epochAuthenticator)
        // The new group speaks, and its next commit (an UpdatePath encrypted with X-Wing) is followed.
        let message = try successor.encrypt(Array("after the move".utf8), random: pqAlice.random)
        guard case .application(let received) = try bobNew.process(message, now: testNow) else {
            Issue.record("not an application message")
            return
        }
        #expect(received.data == Array("after the move".utf8))
        let update = try bobNew.commit(proposals: [], now: testNow, random: pqBob.random)
        try bobNew.mergePendingCommit()
        _ = try successor.process(update.commit, now: testNow)
        #expect(successor.epochAuthenticator == bobNew.epochAuthenticator)
    }

    @Test("A member joins the successor only from a Welcome that carries the old group's reinit PSK, of the group the ReInit named")
    func joinSuccessorChecksContinuity() throws {
        var groups = try threeMembers()
        let reinit = ReInit(groupID: [3, 1], version: .mls10, cipherSuite: .xwingChacha20Sha256Ed25519, extensions: [])
        let output = try groups[0].commit(proposals: [.reinit(reinit)], now: testNow, random: alice.random)
        try groups[0].mergePendingCommit()
        _ = try groups[1].process(output.commit, now: testNow)
        let pqAlice = try Client("alice", suite: .xwingChacha20Sha256Ed25519, seed: 51)
        let pqBob = try Client("bob", suite: .xwingChacha20Sha256Ed25519, seed: 52)

        let bobPackage = try pqBob.keyPackage()
        let (successor, welcome) = try groups[0].reinitialize(
            creator: try pqAlice.keyPackage(), adding: [bobPackage.keyPackage], now: testNow, random: pqAlice.random)
        let joined = try groups[1].joinSuccessor(welcome: try #require(welcome), keyPackage: bobPackage, now: testNow)
        #expect(joined.epochAuthenticator == successor.epochAuthenticator)

        // A group of the same id and suite started by someone without the old group's secret (no reinit PSK): refused.
        let forgedPackage = try pqBob.keyPackage()
        var forged = try Group(creating: [3, 1], creator: try pqAlice.keyPackage(), random: pqAlice.random)
        let fake = try forged.commit(adding: [forgedPackage.keyPackage], forcePath: true, now: testNow, random: pqAlice.random)
        #expect(throws: MLSError(.invalidReInit, "", "")) {
            try groups[1].joinSuccessor(welcome: try #require(fake.welcome), keyPackage: forgedPackage, now: testNow)
        }
        // A group that has committed no ReInit joins no successor.
        #expect(throws: MLSError(.invalidReInit, "", "")) {
            try groups[2].joinSuccessor(welcome: try #require(welcome), keyPackage: bobPackage, now: testNow)
        }
    }

    @Test func aBranchHoldsASubsetOfTheMembers() throws {
        let groups = try threeMembers()
        let bobPackage = try bob.keyPackage()
        let (branch, welcome) = try groups[0].branch(
            groupID: [4, 2], creator: try alice.keyPackage(), adding: [bobPackage.keyPackage], now: testNow, random: alice.random)
        let bobBranch = try Group(welcome: try #require(welcome), keyPackage: bobPackage, psks: groups[1].pskStore(), now: testNow)
        #expect(bobBranch.epochAuthenticator == branch.epochAuthenticator)
        #expect(branch.members.count == 2)

        let stranger = try Client("stranger", seed: 35).keyPackage()
        #expect(throws: MLSError(.invalidReInit, "", "")) {
            try groups[0].branch(
                groupID: [4, 3], creator: try alice.keyPackage(), adding: [stranger.keyPackage], now: testNow, random: alice.random)
        }
    }

    @Test func reinitAndBranchPSKsAreRefusedInOrdinaryCommits() throws {
        var groups = try threeMembers()
        let psk = PreSharedKeyID(
            kind: .resumption(usage: .branch, groupID: groups[0].groupID, epoch: 0), nonce: [UInt8](repeating: 1, count: 32))
        #expect(throws: MLSError(.invalidPreSharedKey, "", "")) {
            try groups[0].commit(proposals: [.preSharedKey(psk)], psks: groups[0].pskStore(), now: testNow, random: alice.random)
        }
    }
}
