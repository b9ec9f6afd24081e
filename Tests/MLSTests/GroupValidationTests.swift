import MLS
import MLSCodec
import Testing

/// The groups rules of docs/mls.md (V26 onwards) that need hand-made input.
@Suite("Group validation rules")
struct GroupValidationTests {
    let alice: Client
    let bob: Client
    let carol: Client

    init() throws {
        alice = try Client("alice", seed: 11)
        bob = try Client("bob", seed: 12)
        carol = try Client("carol", seed: 13)
    }

    /// A three-member group, all members having committed (a tree with parents).
    func threeMembers() throws -> (groups: [Group], info: GroupInfo) {
        var creator = try Group(creating: [7, 7], creator: try alice.keyPackage(), random: alice.random)
        let bobPackage = try bob.keyPackage()
        let carolPackage = try carol.keyPackage()
        let output = try creator.commit(adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow, random: alice.random)
        try creator.mergePendingCommit()
        let welcome = try #require(output.welcome)
        var groups = [
            creator, try Group(welcome: welcome, keyPackage: bobPackage, now: testNow),
            try Group(welcome: welcome, keyPackage: carolPackage, now: testNow),
        ]
        let update = try groups[2].commit(forcePath: true, now: testNow, random: carol.random)
        try groups[2].mergePendingCommit()
        _ = try groups[0].process(update.commit, now: testNow)
        _ = try groups[1].process(update.commit, now: testNow)
        return (groups, try groups[0].groupInfo())
    }

    /// V26: the tree's shape.
    @Test func malformedTreesAreRefused() throws {
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let leaf = try #require(try threeMembers().groups[0].ownLeafNode)
        let parent = ParentNode(encryptionKey: HPKEPublicKey([1]), parentHash: [], unmergedLeaves: [])
        let shapes: [[Node?]] = [
            [.leaf(leaf), nil],  // even count
            [.leaf(leaf), nil, nil],  // ends blank
            [.parent(parent), nil, .leaf(leaf)],  // parent at a leaf position
            [.leaf(leaf), .leaf(leaf), .leaf(leaf)],  // leaf at a parent position
        ]
        for shape in shapes {
            #expect(throws: MLSError.self) { try RatchetTree(provider, nodes: RatchetTreeNodes(shape)) }
        }
    }

    /// V27–V30: a joiner's checks of the tree.
    @Test func aTamperedTreeIsRefusedByAJoiner() throws {
        let (_, info) = try threeMembers()
        var nodes = try #require(try info.ratchetTreeExtension()).nodes
        // Change a parent's parent hash: the tree hash and the parent-hash chain break.
        guard let parentPosition = nodes.indices.first(where: { if case .parent = nodes[$0] { true } else { false } }),
            case .parent(var parent) = nodes[parentPosition]
        else {
            Issue.record("no parent node")
            return
        }
        parent.parentHash = [UInt8](repeating: 9, count: 32)
        nodes[parentPosition] = .parent(parent)
        #expect(throws: MLSError.self) { try PublicGroup(groupInfo: info, ratchetTree: RatchetTreeNodes(nodes), now: testNow) }

        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let tree = try RatchetTree(provider, nodes: RatchetTreeNodes(nodes))
        #expect(throws: MLSError.self) { try tree.verifyParentHashes() }
    }

    @Test func duplicateKeysAndBadUnmergedLeavesAreFound() throws {
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let (groups, _) = try threeMembers()
        let leaves = groups.compactMap(\.ownLeafNode)
        var twin = leaves[1]
        twin.encryptionKey = leaves[0].encryptionKey
        let duplicate = try RatchetTree(provider, nodes: RatchetTreeNodes([.leaf(leaves[0]), nil, .leaf(twin)]))
        #expect(throws: MLSError(.invalidTree, "", "")) { try duplicate.verifyKeyUniqueness() }

        // A list with repeats (a cheap way to make validation quadratic) is refused first.
        let repeated = ParentNode(
            encryptionKey: HPKEPublicKey([4, 5, 6]), parentHash: [], unmergedLeaves: [LeafIndex](repeating: LeafIndex(0), count: 10_000))
        let flooded = try RatchetTree(provider, nodes: RatchetTreeNodes([.leaf(leaves[0]), .parent(repeated), .leaf(leaves[1])]))
        #expect(throws: MLSError(.invalidTree, "", "")) { try flooded.verifyUnmergedLeaves() }

        let unmerged = ParentNode(encryptionKey: HPKEPublicKey([1, 2, 3]), parentHash: [], unmergedLeaves: [LeafIndex(3)])
        let outside = try RatchetTree(provider, nodes: RatchetTreeNodes([.leaf(leaves[0]), .parent(unmerged), .leaf(leaves[1])]))
        #expect(throws: MLSError(.invalidTree, "", "")) { try outside.verifyUnmergedLeaves() }
    }

    /// V31: leaf lifetimes are checked when a clock is given.
    @Test func expiredKeyPackagesAreRefusedWithAClock() throws {
        var (groups, _) = try threeMembers()
        let expired = try KeyPackageBundle.create(
            bob.provider, credential: .basic(identity: Array("dave".utf8)),
            signer: try bob.provider.generateSignatureKey(random: bob.random),
            lifetime: Lifetime(notBefore: 0, notAfter: 1000), random: bob.random)
        #expect(throws: MLSError(.invalidLeafNode, "", "")) {
            try groups[0].commit(adding: [expired.keyPackage], now: .at(2000), random: alice.random)
        }
        #expect(!groups[0].hasPendingCommit)
        _ = try groups[0].commit(adding: [expired.keyPackage], now: .at(500), random: alice.random)
    }

    /// V32: the GroupInfo signature and confirmation tag.
    @Test func aForgedGroupInfoIsRefused() throws {
        let (_, info) = try threeMembers()
        var forged = info
        forged.groupContext.epoch += 1
        #expect(throws: MLSError(.invalidSignature, "", "")) { try PublicGroup(groupInfo: forged, now: testNow) }
        #expect(throws: MLSError.self) {
            try Group.joinExternally(
                groupInfo: forged, credential: .basic(identity: [1]), signer: alice.signer, now: testNow, random: alice.random)
        }
    }

    /// V33: proposal-list rules for a member's commit.
    @Test func invalidProposalListsAreRefused() throws {
        var (groups, _) = try threeMembers()
        let own = groups[0].ownLeaf
        #expect(throws: MLSError(.invalidProposal, "", "")) { try groups[0].commit(removing: [own], now: testNow, random: alice.random) }
        let dave = try Client("dave", seed: 14).keyPackage()
        #expect(throws: MLSError(.invalidProposal, "", "")) {
            try groups[0].commit(adding: [dave.keyPackage, dave.keyPackage], now: testNow, random: alice.random)
        }
        let bobAgain = try bob.keyPackage()
        #expect(throws: MLSError(.invalidProposal, "", "")) {
            try groups[0].commit(adding: [bobAgain.keyPackage], now: testNow, random: alice.random)
        }
        let other = groups[1].ownLeaf
        #expect(throws: MLSError(.invalidProposal, "", "")) {
            try groups[0].commit(removing: [other, other], now: testNow, random: alice.random)
        }
        #expect(throws: MLSError(.invalidProposal, "", "")) {
            try groups[0].commit(proposals: [.groupContextExtensions([]), .groupContextExtensions([])], now: testNow, random: alice.random)
        }
        #expect(!groups[0].hasPendingCommit)
    }

    /// V35: an UpdatePath whose keys were altered no longer matches its leaf's parent hash.
    @Test func anAlteredUpdatePathIsRefused() throws {
        var (groups, _) = try threeMembers()
        let output = try groups[0].commit(forcePath: true, now: testNow, random: alice.random)
        guard case .publicMessage(let message) = output.commit.body, case .commit(var commit) = message.content.content,
            var path = commit.path, !path.nodes.isEmpty
        else {
            Issue.record("no path")
            return
        }
        path.nodes[0].encryptionKey = groups[2].ownLeafNode?.encryptionKey ?? HPKEPublicKey([])
        commit.path = path
        var staged = message
        staged.content.content = .commit(commit)
        var view = try PublicGroup(groupInfo: try groups[1].groupInfo(), now: testNow)
        #expect(throws: MLSError.self) { try view.process(staged, now: testNow) }
        #expect(view.epoch == groups[1].epoch)
    }

    /// V37: own commits are merged, not processed; unknown proposal references are refused.
    @Test func ownCommitsAndUnknownReferences() throws {
        var (groups, _) = try threeMembers()
        let output = try groups[0].commit(forcePath: true, now: testNow, random: alice.random)
        #expect(throws: MLSError(.invalidSender, "", "")) { try groups[0].process(output.commit, now: testNow) }
        try groups[0].mergePendingCommit()

        // Bob commits a proposal Carol never saw.
        _ = try groups[1].process(output.commit, now: testNow)
        _ = try groups[2].process(output.commit, now: testNow)
        let dave = try Client("dave", seed: 15).keyPackage()
        _ = try groups[1].propose(.add(dave.keyPackage), random: bob.random)
        let byReference = try groups[1].commit(now: testNow, random: bob.random)
        #expect(throws: MLSError(.invalidCommit, "", "")) { try groups[2].process(byReference.commit, now: testNow) }
    }
}
