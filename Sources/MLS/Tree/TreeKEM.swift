import MLSCodec

/// The HPKE private keys a member holds in the ratchet tree: its leaf's and
/// those of the ancestors it learnt through UpdatePaths (the tree invariant, §4.2).
public struct TreeSecrets: Sendable, CustomStringConvertible, CustomReflectable {
    public private(set) var leaf: LeafIndex
    private(set) var keys: [NodeIndex: HPKEKeyPair]

    public init(leaf: LeafIndex, leafKey: HPKEKeyPair) {
        self.leaf = leaf
        keys = [leaf.nodeIndex: leafKey]
    }

    public var description: String { "TreeSecrets(\(leaf), \(keys.count) keys, <redacted>)" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    public func key(for node: NodeIndex) -> HPKEKeyPair? { keys[node] }

    mutating func set(_ pair: HPKEKeyPair, for node: NodeIndex) { keys[node] = pair }

    mutating func moveTo(_ newLeaf: LeafIndex) {
        leaf = newLeaf
    }

    /// Drops every key whose node is blank or now holds another public key.
    mutating func prune(against tree: RatchetTree) {
        keys = keys.filter { node, pair in tree.encryptionKey(node) == pair.publicKey }
    }

    /// Sets the key of `node` from its path secret (§7.4) and checks it against the tree.
    public mutating func setPathSecret(
        _ pathSecret: [UInt8], for node: NodeIndex, tree: RatchetTree
    ) throws(MLSError) {
        let pair = try TreeKEM.nodeKeyPair(tree.provider, pathSecret: pathSecret)
        guard tree.encryptionKey(node) == pair.publicKey else {
            throw MLSError(.invalidKey, "§7.4", "path secret does not match the node's public key")
        }
        keys[node] = pair
    }
}

/// TreeKEM (RFC 9420 §7.4–§7.6): creating and processing UpdatePaths.
public enum TreeKEM {
    /// node_secret = DeriveSecret(path_secret, "node"); key pair = DeriveKeyPair(node_secret).
    public static func nodeKeyPair(_ provider: CipherSuiteProvider, pathSecret: [UInt8]) throws(MLSError) -> HPKEKeyPair {
        try provider.deriveKeyPair(ikm: provider.deriveSecret(pathSecret, label: "node"))
    }

    /// path_secret[n+1] = DeriveSecret(path_secret[n], "path").
    public static func nextPathSecret(_ provider: CipherSuiteProvider, _ pathSecret: [UInt8]) -> [UInt8] {
        provider.deriveSecret(pathSecret, label: "path")
    }

    /// What a committer gets from building its UpdatePath.
    public struct CreatedPath: Sendable {
        public let updatePath: UpdatePath
        public let commitSecret: CommitSecret
        /// The path secret of each node on the filtered direct path, for Welcomes.
        public let pathSecrets: [NodeIndex: SecretBytes]
    }

    /// The parent hashes along a freshly set filtered direct path, root first
    /// handled last: element i is the `parent_hash` to store in the node
    /// below path[i] (the leaf for i = 0).
    static func parentHashes(
        _ tree: RatchetTree, path: [(node: NodeIndex, copathChild: NodeIndex)], keys: [HPKEPublicKey]
    ) -> (leafParentHash: [UInt8], nodeParentHashes: [[UInt8]]) {
        var nodeParentHashes = [[UInt8]](repeating: [], count: path.count)
        var below: [UInt8] = []
        // Walk from the root down: each node's parent_hash is its parent's hash.
        for index in stride(from: path.count - 1, through: 0, by: -1) {
            nodeParentHashes[index] = below
            below = tree.parentHash(
                encryptionKey: keys[index], parentHash: below, originalSiblingTreeHash: tree.treeHash(of: path[index].copathChild))
        }
        return (path.isEmpty ? [] : below, nodeParentHashes)
    }

    /// Sets the nodes of a filtered direct path after blanking the direct path.
    static func setPath(
        _ tree: inout RatchetTree, sender: LeafIndex, path: [(node: NodeIndex, copathChild: NodeIndex)], keys: [HPKEPublicKey]
    ) -> [UInt8] {
        tree.blankDirectPath(sender)
        let hashes = parentHashes(tree, path: path, keys: keys)
        for (index, step) in path.enumerated() {
            tree.set(
                step.node, .parent(ParentNode(encryptionKey: keys[index], parentHash: hashes.nodeParentHashes[index], unmergedLeaves: [])))
        }
        return hashes.leafParentHash
    }

    /// Builds an UpdatePath for `sender` (§7.5, §7.6) in `tree`, which must
    /// already hold the commit's proposals. `leafTemplate` supplies the new
    /// leaf's credential, capabilities and extensions; its key, source,
    /// parent hash and signature are set here. `context` gives the
    /// provisional GroupContext for the new tree hash. Leaves in `newMembers`
    /// get no ciphertexts (they learn the path secret from the Welcome).
    public static func createPath(
        _ tree: inout RatchetTree, secrets: inout TreeSecrets, leafTemplate: LeafNode, signer: SignaturePrivateKey,
        groupID: [UInt8], newMembers: Set<LeafIndex>, random: some RandomSource, encryptPathSecrets: Bool = true,
        context: (_ treeHash: [UInt8]) -> GroupContext
    ) throws(MLSError) -> (CreatedPath, GroupContext) {
        let provider = tree.provider
        let sender = secrets.leaf
        let path = tree.filteredDirectPath(sender)

        let leafKey = try provider.generateHPKEKeyPair(random: random)
        var pathSecret = random.bytes(count: provider.hashLength)
        var pathSecrets: [NodeIndex: SecretBytes] = [:]
        var pairs: [HPKEKeyPair] = []
        for step in path {
            pathSecrets[step.node] = SecretBytes(pathSecret)
            pairs.append(try nodeKeyPair(provider, pathSecret: pathSecret))
            pathSecret = nextPathSecret(provider, pathSecret)
        }
        let commitSecret = CommitSecret(pathSecret)

        let leafParentHash = setPath(&tree, sender: sender, path: path, keys: pairs.map(\.publicKey))
        var leaf = leafTemplate
        leaf.encryptionKey = leafKey.publicKey
        leaf.source = .commit(parentHash: leafParentHash)
        try leaf.sign(provider, key: signer, groupID: groupID, leafIndex: sender)
        tree.set(sender.nodeIndex, .leaf(leaf))

        let groupContext = context(tree.treeHash)
        let serializedContext = groupContext.tlsSerialized
        var nodes: [UpdatePathNode] = []
        for (index, step) in path.enumerated() {
            let secret = pathSecrets[step.node]?.bytes ?? []
            var ciphertexts: [HPKECiphertext] = []
            for recipient in tree.resolution(step.copathChild, excluding: newMembers) where encryptPathSecrets {
                guard let key = tree.encryptionKey(recipient) else { continue }
                ciphertexts.append(
                    try provider.encryptWithLabel(key, label: "UpdatePathNode", context: serializedContext, plaintext: secret))
            }
            nodes.append(UpdatePathNode(encryptionKey: pairs[index].publicKey, encryptedPathSecret: ciphertexts))
        }

        secrets.set(leafKey, for: sender.nodeIndex)
        for (index, step) in path.enumerated() { secrets.set(pairs[index], for: step.node) }
        secrets.prune(against: tree)
        return (
            CreatedPath(updatePath: UpdatePath(leafNode: leaf, nodes: nodes), commitSecret: commitSecret, pathSecrets: pathSecrets),
            groupContext
        )
    }

    /// Merges a received UpdatePath into the public tree (§7.5): checks its
    /// shape and the leaf's parent hash and signature, then sets the path.
    /// The leaf node's other properties (§7.3) are checked by the caller.
    public static func mergePath(
        _ tree: inout RatchetTree, _ updatePath: UpdatePath, sender: LeafIndex, groupID: [UInt8], newMembers: Set<LeafIndex> = []
    ) throws(MLSError) {
        let provider = tree.provider
        let path = tree.filteredDirectPath(sender)
        guard updatePath.nodes.count == path.count else {
            throw MLSError(.invalidUpdatePath, "§7.6", "UpdatePath length differs from the filtered direct path")
        }
        for (node, step) in zip(updatePath.nodes, path) {
            guard node.encryptedPathSecret.count == tree.resolution(step.copathChild, excluding: newMembers).count else {
                throw MLSError(.invalidUpdatePath, "§7.6", "wrong number of encrypted path secrets")
            }
            try provider.validateHPKEPublicKey(node.encryptionKey)
        }
        guard case .commit(let claimedParentHash) = updatePath.leafNode.source else {
            throw MLSError(.invalidUpdatePath, "§7.3", "UpdatePath leaf node source is not commit")
        }
        guard updatePath.leafNode.verifySignature(provider, groupID: groupID, leafIndex: sender) else {
            throw MLSError(.invalidSignature, "§7.3", "UpdatePath leaf node signature does not verify")
        }
        var staged = tree
        let leafParentHash = setPath(&staged, sender: sender, path: path, keys: updatePath.nodes.map(\.encryptionKey))
        guard constantTimeEqual(leafParentHash, claimedParentHash) else {
            throw MLSError(.invalidUpdatePath, "§7.9.2", "UpdatePath leaf parent hash does not match")
        }
        staged.set(sender.nodeIndex, .leaf(updatePath.leafNode))
        tree = staged
    }

    /// Decrypts the path secret meant for this member from an UpdatePath that
    /// is already merged into `tree` (§7.5), derives the keys up to the root,
    /// checks them against the tree and stores them. Returns the commit
    /// secret and the path secret first learnt.
    public static func decryptPath(
        _ tree: RatchetTree, _ updatePath: UpdatePath, sender: LeafIndex, secrets: inout TreeSecrets,
        newMembers: Set<LeafIndex>, context: GroupContext
    ) throws(MLSError) -> (commitSecret: CommitSecret, pathSecret: SecretBytes) {
        let provider = tree.provider
        let path = tree.filteredDirectPath(sender)
        guard updatePath.nodes.count == path.count,
            let start = path.firstIndex(where: { tree.subtree($0.copathChild, contains: secrets.leaf) })
        else {
            throw MLSError(.invalidUpdatePath, "§7.5", "no node of the UpdatePath is meant for this member")
        }
        let resolution = tree.resolution(path[start].copathChild, excluding: newMembers)
        let ciphertexts = updatePath.nodes[start].encryptedPathSecret
        guard ciphertexts.count == resolution.count else {
            throw MLSError(.invalidUpdatePath, "§7.6", "wrong number of encrypted path secrets")
        }
        guard let position = resolution.firstIndex(where: { secrets.key(for: $0) != nil }),
            let key = secrets.key(for: resolution[position])
        else {
            throw MLSError(.invalidKey, "§7.5", "no private key for any node of the copath resolution")
        }
        let first = try provider.decryptWithLabel(
            key.privateKey, label: "UpdatePathNode", context: context.tlsSerialized, ciphertext: ciphertexts[position])

        var staged = secrets
        var pathSecret = first
        for step in path[start...] {
            try staged.setPathSecret(pathSecret, for: step.node, tree: tree)
            pathSecret = nextPathSecret(provider, pathSecret)
        }
        staged.prune(against: tree)
        secrets = staged
        return (CommitSecret(pathSecret), SecretBytes(first))
    }
}
