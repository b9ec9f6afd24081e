/// Support for benchmarks of large groups, behind `@_spi(Benchmarks)`.
///
/// Building a 10,000-member group in which every member has committed once
/// costs O(n²) through the protocol (each member must process every other
/// member's commit). These helpers fill the tree directly instead.
extension Group {
    /// A member whose commit ``simulateCommits(by:random:)`` imitates.
    @_spi(Benchmarks) public struct SimulatedMember: Sendable {
        public let leaf: LeafIndex
        public let signer: SignaturePrivateKey
        public let encryptionKey: HPKEKeyPair
        public init(leaf: LeafIndex, signer: SignaturePrivateKey, encryptionKey: HPKEKeyPair) {
            self.leaf = leaf
            self.signer = signer
            self.encryptionKey = encryptionKey
        }
    }

    /// Rewrites the public tree as if each member had sent a commit with a
    /// path, in order: real path keys, parent hashes and leaf signatures, but
    /// no ciphertexts and no key schedule. The group's secrets no longer match
    /// the tree until this member's next real commit, which repairs them for
    /// everyone it welcomes; nobody else can follow. Benchmarks only.
    @_spi(Benchmarks) public mutating func simulateCommits(by members: [SimulatedMember], random: some RandomSource) throws(MLSError) {
        var tree = state.tree
        for member in members {
            guard let template = tree.leaf(member.leaf) else { throw MLSError(.invalidUse, "benchmark", "blank leaf") }
            var secrets = TreeSecrets(leaf: member.leaf, leafKey: member.encryptionKey)
            let base = context
            _ = try TreeKEM.createPath(
                &tree, secrets: &secrets, leafTemplate: template, signer: member.signer, groupID: groupID, newMembers: [], random: random,
                encryptPathSecrets: false
            ) { treeHash in
                var context = base
                context.treeHash = treeHash
                return context
            }
        }
        state.tree = tree
        state.context.treeHash = tree.treeHash
        treeSecrets.prune(against: tree)
    }
}
