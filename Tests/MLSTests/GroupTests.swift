import MLS
import MLSCodec
import Testing

/// A test client: identity, signature key and a KeyPackage source.
struct Client {
    let name: String
    let provider: CipherSuiteProvider
    let signer: SignaturePrivateKey
    let random: SeededRandom

    init(_ name: String, suite: CipherSuite = .x25519Aes128Sha256Ed25519, seed: UInt64) throws {
        self.name = name
        provider = try CipherSuiteProvider(suite)
        random = SeededRandom(seed: seed)
        signer = try provider.generateSignatureKey(random: random)
    }

    var credential: Credential { .basic(identity: Array(name.utf8)) }

    func keyPackage() throws -> KeyPackageBundle {
        try KeyPackageBundle.create(
            provider, credential: credential, signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: UInt64.max), random: random)
    }
}

/// Delivers `message` to every group in `groups` (all but the sender).
func deliver(_ message: MLSMessage, to groups: inout [Group], except sender: Int) throws -> [ProcessedMessage] {
    var results: [ProcessedMessage] = []
    for index in groups.indices where index != sender {
        results.append(try groups[index].process(message, now: testNow))
    }
    return results
}

@Suite("Groups (RFC 9420 §11–§12)")
struct GroupTests {
    let alice: Client
    let bob: Client
    let carol: Client

    init() throws {
        alice = try Client("alice", seed: 1)
        bob = try Client("bob", seed: 2)
        carol = try Client("carol", seed: 3)
    }

    func twoMemberGroup(configuration: GroupConfiguration = .default) throws -> [Group] {
        var creator = try Group(creating: [1, 2, 3], creator: try alice.keyPackage(), configuration: configuration, random: alice.random)
        let bobPackage = try bob.keyPackage()
        let output = try creator.commit(adding: [bobPackage.keyPackage], now: testNow, random: alice.random)
        try creator.mergePendingCommit()
        guard let welcome = output.welcome else { throw MLSError(.invalidUse, "test", "no welcome") }
        let joined = try Group(welcome: welcome, keyPackage: bobPackage, now: testNow, configuration: configuration)
        return [creator, joined]
    }

    @Test(arguments: [true, false])
    func membersAgreeAndTalk(publicHandshakes: Bool) throws {
        var groups = try twoMemberGroup(configuration: GroupConfiguration(handshakeAsPublicMessage: publicHandshakes))
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
        #expect(groups[1].epoch == 1)
        #expect(groups[1].members.count == 2)

        let hello = try groups[0].encrypt(Array("hello bob".utf8), random: alice.random)
        guard case .application(let received) = try groups[1].process(hello, now: testNow) else {
            Issue.record("not application")
            return
        }
        #expect(received.data == Array("hello bob".utf8))
        #expect(received.sender == groups[0].ownLeaf)

        // Bob adds Carol; Alice follows.
        let carolPackage = try carol.keyPackage()
        let output = try groups[1].commit(adding: [carolPackage.keyPackage], now: testNow, random: bob.random)
        _ = try deliver(output.commit, to: &groups, except: 1)
        try groups[1].mergePendingCommit()
        guard let welcome = output.welcome else {
            Issue.record("no welcome")
            return
        }
        groups.append(try Group(welcome: welcome, keyPackage: carolPackage, now: testNow))
        #expect(Set(groups.map(\.epochAuthenticator)).count == 1)
        #expect(groups.allSatisfy { $0.epoch == 2 })

        let fromCarol = try groups[2].encrypt(Array("hi all".utf8), random: carol.random)
        for index in 0..<2 {
            guard case .application(let message) = try groups[index].process(fromCarol, now: testNow) else {
                Issue.record("not application")
                return
            }
            #expect(message.data == Array("hi all".utf8))
        }
    }

    @Test func aRemovedMemberDerivesNothingLater() throws {
        var groups = try twoMemberGroup()
        let carolPackage = try carol.keyPackage()
        let added = try groups[0].commit(adding: [carolPackage.keyPackage], now: testNow, random: alice.random)
        _ = try deliver(added.commit, to: &groups, except: 0)
        try groups[0].mergePendingCommit()
        groups.append(try Group(welcome: try #require(added.welcome), keyPackage: carolPackage, now: testNow))

        // Alice removes Bob.
        let removal = try groups[0].commit(removing: [groups[1].ownLeaf], now: testNow, random: alice.random)
        try groups[0].mergePendingCommit()
        var bobState = groups[1]
        guard case .commit(let summary) = try bobState.process(removal.commit, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        #expect(summary.removedSelf)
        guard case .commit = try groups[2].process(removal.commit, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        #expect(groups[0].epochAuthenticator == groups[2].epochAuthenticator)
        #expect(groups[0].members.count == 2)

        // Bob, with the state he had, can read nothing of the new epoch.
        let secret = try groups[0].encrypt(Array("after bob".utf8), random: alice.random)
        #expect(throws: MLSError.self) { try bobState.process(secret, now: testNow) }
        #expect(bobState.epochAuthenticator != groups[0].epochAuthenticator)
    }

    @Test func externalJoinAndResync() throws {
        var groups = try twoMemberGroup()
        let info = try groups[0].groupInfo()
        let (joined, commit) = try Group.joinExternally(
            groupInfo: info, credential: carol.credential, signer: carol.signer, now: testNow, random: carol.random)
        _ = try deliver(commit, to: &groups, except: -1)
        groups.append(joined)
        #expect(Set(groups.map(\.epochAuthenticator)).count == 1)
        #expect(groups.allSatisfy { $0.members.count == 3 })

        // Carol loses her state and rejoins, removing her old leaf.
        let rejoinInfo = try groups[1].groupInfo()
        let (rejoined, resync) = try Group.joinExternally(
            groupInfo: rejoinInfo, credential: carol.credential, signer: carol.signer, removing: joined.ownLeaf, now: testNow,
            random: carol.random)
        groups.removeLast()
        _ = try deliver(resync, to: &groups, except: -1)
        groups.append(rejoined)
        #expect(Set(groups.map(\.epochAuthenticator)).count == 1)
        #expect(groups.allSatisfy { $0.members.count == 3 })
    }

    @Test func proposalsByReferenceAndConcurrentCommits() throws {
        var groups = try twoMemberGroup()
        let carolPackage = try carol.keyPackage()
        // Bob proposes Carol; Alice commits the proposal by reference.
        let proposal = try groups[1].propose(.add(carolPackage.keyPackage), random: bob.random)
        _ = try groups[0].process(proposal, now: testNow)
        let output = try groups[0].commit(now: testNow, random: alice.random)
        // Meanwhile Bob commits too; the Delivery Service takes Alice's.
        _ = try groups[1].commit(forcePath: true, now: testNow, random: bob.random)
        #expect(groups[1].hasPendingCommit)
        guard case .commit(let summary) = try groups[1].process(output.commit, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        #expect(!groups[1].hasPendingCommit)
        #expect(summary.added.count == 1)
        try groups[0].mergePendingCommit()
        let carolGroup = try Group(welcome: try #require(output.welcome), keyPackage: carolPackage, now: testNow)
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
        #expect(carolGroup.epochAuthenticator == groups[0].epochAuthenticator)
    }

    @Test func anUpdateProposalCommittedByAnother() throws {
        var groups = try twoMemberGroup()
        let oldKey = try #require(groups[1].ownLeafNode).encryptionKey
        let update = try groups[1].proposeUpdate(random: bob.random)
        // Seeing its own proposal again is not an error.
        _ = try groups[1].process(update, now: testNow)
        _ = try groups[0].process(update, now: testNow)
        let output = try groups[0].commit(now: testNow, random: alice.random)
        guard case .commit(let summary) = try groups[1].process(output.commit, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        try groups[0].mergePendingCommit()
        #expect(summary.updated == [groups[1].ownLeaf])
        #expect(try #require(groups[1].ownLeafNode).encryptionKey != oldKey)
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
        // Bob can still decrypt a later path commit that encrypts to his new leaf key.
        let next = try groups[0].commit(forcePath: true, now: testNow, random: alice.random)
        _ = try groups[1].process(next.commit, now: testNow)
        try groups[0].mergePendingCommit()
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
    }

    @Test func aTamperedCommitChangesNothing() throws {
        var groups = try twoMemberGroup()
        let output = try groups[0].commit(forcePath: true, now: testNow, random: alice.random)
        guard case .publicMessage(var message) = output.commit.body else {
            Issue.record("not public")
            return
        }
        message.auth.confirmationTag?[0] ^= 1
        let before = groups[1].epochAuthenticator
        // The membership tag covers the confirmation tag, so this fails there.
        #expect(throws: MLSError.self) { try groups[1].process(MLSMessage(body: .publicMessage(message)), now: testNow) }
        #expect(groups[1].epochAuthenticator == before)
        _ = try groups[1].process(output.commit, now: testNow)
        try groups[0].mergePendingCommit()
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
    }

    @Test func thePublicViewFollowsTheGroup() throws {
        var groups = try twoMemberGroup()
        var view = try PublicGroup(groupInfo: try groups[0].groupInfo(), now: testNow)
        let carolPackage = try carol.keyPackage()
        let output = try groups[0].commit(adding: [carolPackage.keyPackage], now: testNow, random: alice.random)
        guard case .publicMessage(let message) = output.commit.body else {
            Issue.record("not public")
            return
        }
        guard case .commit(let summary) = try view.process(message, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        #expect(summary.added.count == 1)
        try groups[0].mergePendingCommit()
        #expect(view.context == groups[0].context)
        #expect(view.tree.treeHash == groups[0].tree.treeHash)
        #expect(view.members.count == 3)
    }

    @Test func exporterAgrees() throws {
        let groups = try twoMemberGroup()
        let first = try groups[0].export(label: "conclave test", context: [1], length: 32)
        #expect(first == (try groups[1].export(label: "conclave test", context: [1], length: 32)))
        #expect(throws: MLSError(.invalidUse, "", "")) { try groups[0].export(label: "x", context: [], length: 0) }
    }
}
