import MLSCodec

/// The public ratchet tree of a group (RFC 9420 §4, §7): an array of optional
/// nodes over a full binary tree, with every node's tree hash (§7.8) cached.
///
/// Each change re-hashes only the changed node's path to the root, so one
/// commit costs O(log n) hashes; doubling the tree hashes the new blank half
/// once (amortised O(1) per added member).
public struct RatchetTree: Sendable {
    public let provider: CipherSuiteProvider
    public private(set) var leafCount: UInt32
    private(set) var nodes: ChunkedArray<Node?>
    /// `hashes[i]` is the tree hash of node i; always current.
    private var hashes: ChunkedArray<[UInt8]>
    /// Who holds which key, kept current by every write, so uniqueness and
    /// credential checks cost O(1) rather than a walk over the tree (§7.3).
    private var index = KeyIndex()

    public var math: TreeMath { TreeMath(leafCount: leafCount) }
    public var root: NodeIndex { math.root }
    public var treeHash: [UInt8] { hashes[Int(root.rawValue)] }

    /// A tree with one leaf.
    public init(_ provider: CipherSuiteProvider, firstLeaf: LeafNode) {
        self.provider = provider
        leafCount = 1
        nodes = ChunkedArray(repeating: nil, count: 1)
        hashes = ChunkedArray(repeating: [], count: 1)
        write(NodeIndex(0), .leaf(firstLeaf))
        rehashAll()
    }

    /// A tree from the `ratchet_tree` extension's node list (§12.4.3.3). The
    /// list's shape is checked: leaves at even and parents at odd positions,
    /// a non-blank last node, and at most 2^31 leaves.
    public init(_ provider: CipherSuiteProvider, nodes list: RatchetTreeNodes) throws(MLSError) {
        let count = list.nodes.count
        guard count % 2 == 1 else {
            throw MLSError(.malformed, "§12.4.3.3", "ratchet tree has an even number of nodes")
        }
        guard list.nodes.last.flatMap({ $0 }) != nil else {
            throw MLSError(.malformed, "§12.4.3.3", "ratchet tree does not end with a non-blank node")
        }
        guard count <= Int(Int32.max) else { throw MLSError(.malformed, "§12.4.3.3", "ratchet tree too large") }
        for (index, node) in list.nodes.enumerated() {
            switch node {
            case .leaf where index % 2 == 1, .parent where index % 2 == 0:
                throw MLSError(.malformed, "§12.4.3.3", "node type does not match its position")
            default: break
            }
        }
        var width: UInt32 = 1
        while Int(2 * width - 1) < count { width *= 2 }
        self.provider = provider
        leafCount = width
        nodes = ChunkedArray(repeating: nil, count: Int(2 * width - 1))
        hashes = ChunkedArray(repeating: [], count: Int(2 * width - 1))
        for (position, node) in list.nodes.enumerated() where node != nil { write(NodeIndex(UInt32(position)), node) }
        rehashAll()
    }

    /// The node list for the `ratchet_tree` extension, trailing blanks removed.
    public var exported: RatchetTreeNodes {
        var end = nodes.count
        while end > 0, nodes[end - 1] == nil { end -= 1 }
        return RatchetTreeNodes((0..<end).map { nodes[$0] })
    }

    // MARK: Reading

    public subscript(node: NodeIndex) -> Node? {
        Int(node.rawValue) < nodes.count ? nodes[Int(node.rawValue)] : nil
    }

    public func leaf(_ leaf: LeafIndex) -> LeafNode? {
        guard leaf.rawValue < leafCount, case .leaf(let node)? = nodes[Int(leaf.nodeIndex.rawValue)] else { return nil }
        return node
    }

    public func parentNode(_ node: NodeIndex) -> ParentNode? {
        guard case .parent(let parent)? = self[node] else { return nil }
        return parent
    }

    /// The encryption key of a non-blank node.
    public func encryptionKey(_ node: NodeIndex) -> HPKEPublicKey? {
        switch self[node] {
        case .leaf(let leaf)?: leaf.encryptionKey
        case .parent(let parent)?: parent.encryptionKey
        case nil: nil
        }
    }

    /// Every occupied leaf, in order.
    public var members: [(index: LeafIndex, leaf: LeafNode)] {
        (0..<leafCount).compactMap { raw in leaf(LeafIndex(raw)).map { (LeafIndex(raw), $0) } }
    }

    public var memberCount: Int { index.occupiedLeaves }

    /// Whether two nodes share an encryption key or two leaves a signature key (§7.3).
    public var hasDuplicateKeys: Bool { index.duplicates > 0 }

    /// The node holding an encryption key, if exactly one does.
    public func node(holding key: HPKEPublicKey) -> NodeIndex? { index.encryptionOwner(key) }

    /// The leaf holding a signature key, if exactly one does.
    public func leaf(signingWith key: SignaturePublicKey) -> LeafIndex? { index.signatureOwner(key) }

    /// The credential rules of §7.3 for `leaf` placed at `position` (nil:
    /// a leaf not yet in the tree): every other member supports its
    /// credential type, and it supports every credential type the other
    /// members use.
    public func credentialsCompatible(_ leaf: LeafNode, at position: LeafIndex?) -> Bool {
        index.credentialsCompatible(leaf, replacing: position.flatMap { self.leaf($0) })
    }

    public func treeHash(of node: NodeIndex) -> [UInt8] { hashes[Int(node.rawValue)] }

    /// The resolution of a node (§4.1.1): itself and its unmerged leaves if
    /// non-blank, else the resolutions of its children. Leaves in `excluding`
    /// are left out (new members of the commit being built, §7.6).
    public func resolution(_ node: NodeIndex, excluding: Set<LeafIndex> = []) -> [NodeIndex] {
        switch self[node] {
        case .leaf?:
            return node.leafIndex.map { excluding.contains($0) } == true ? [] : [node]
        case .parent(let parent)?:
            return [node] + parent.unmergedLeaves.filter { !excluding.contains($0) }.map(\.nodeIndex)
        case nil:
            // In a valid tree a parent is blank unless some leaf below it is
            // occupied, so an empty subtree has an empty resolution: skip it
            // rather than walk it (the right edge of a growing tree is blank).
            guard hasOccupiedLeaf(under: node), let left = math.left(node), let right = math.right(node) else { return [] }
            return resolution(left, excluding: excluding) + resolution(right, excluding: excluding)
        }
    }

    /// Whether any leaf under `node` is occupied, from per-block leaf counts.
    func hasOccupiedLeaf(under node: NodeIndex) -> Bool {
        let span = UInt32(1) << node.level  // leaves under the node
        let first = (node.rawValue + 1 - span) / 2
        let end = min(first + span, leafCount)
        guard first < end else { return false }
        return index.occupiedLeaves(from: Int(first), to: Int(end))
    }

    /// The filtered direct path of a leaf (§4.1.2), with the copath child of each node.
    public func filteredDirectPath(_ leaf: LeafIndex) -> [(node: NodeIndex, copathChild: NodeIndex)] {
        let path = math.directPath(leaf.nodeIndex)
        let copath = math.copath(leaf.nodeIndex)
        return zip(path, copath).filter { !resolution($0.1).isEmpty }.map { (node: $0.0, copathChild: $0.1) }
    }

    /// Whether `leaf` lies in the subtree under `node`.
    public func subtree(_ node: NodeIndex, contains leaf: LeafIndex) -> Bool {
        let span = (UInt32(1) << node.level) - 1
        let position = leaf.nodeIndex.rawValue
        return position >= node.rawValue - span && position <= node.rawValue + span
    }

    /// The leftmost blank leaf, if any: the first block of 64 leaves with
    /// room, then a scan inside it.
    public var firstBlankLeaf: LeafIndex? {
        guard memberCount < Int(leafCount) else { return nil }
        let start = UInt32(index.firstBlockWithRoom(leafCount: Int(leafCount)) << 6)
        return (start..<leafCount).lazy.map(LeafIndex.init(rawValue:)).first { leaf($0) == nil }
    }

    // MARK: Changing

    /// Sets a node and re-hashes its path to the root.
    mutating func set(_ node: NodeIndex, _ value: Node?) {
        write(node, value)
        rehashPath(from: node)
    }

    /// The one place nodes change: keeps the key index current. Callers re-hash.
    private mutating func write(_ node: NodeIndex, _ value: Node?) {
        index.remove(nodes[Int(node.rawValue)], at: node)
        nodes[Int(node.rawValue)] = value
        index.insert(value, at: node)
    }

    /// Adds a leaf at the leftmost blank position, extending the tree if
    /// there is none, and lists it as unmerged at every non-blank parent on
    /// its direct path (§7.7, §12.1.1).
    @discardableResult
    public mutating func add(_ leafNode: LeafNode) -> LeafIndex {
        let index: LeafIndex
        if let blank = firstBlankLeaf {
            index = blank
        } else {
            index = LeafIndex(leafCount)
            extend()
        }
        write(index.nodeIndex, .leaf(leafNode))
        for parentIndex in math.directPath(index.nodeIndex) {
            if case .parent(var parent)? = nodes[Int(parentIndex.rawValue)] {
                parent.unmergedLeaves.insert(index, at: parent.unmergedLeaves.sortedInsertionIndex(of: index))
                write(parentIndex, .parent(parent))
            }
        }
        rehashPath(from: index.nodeIndex)
        return index
    }

    /// Replaces a member's leaf and blanks its direct path (Update, §12.1.2).
    public mutating func update(_ leaf: LeafIndex, with leafNode: LeafNode) {
        write(leaf.nodeIndex, .leaf(leafNode))
        blankDirectPath(leaf)
    }

    /// Blanks a member's leaf and its direct path, then truncates the tree
    /// while its right half is blank (Remove, §12.1.3).
    public mutating func remove(_ leaf: LeafIndex) {
        write(leaf.nodeIndex, nil)
        blankDirectPath(leaf)
        truncate()
    }

    /// Blanks every node on the direct path of `leaf` (without re-hashing the leaf).
    mutating func blankDirectPath(_ leaf: LeafIndex) {
        for node in math.directPath(leaf.nodeIndex) { write(node, nil) }
        rehashPath(from: leaf.nodeIndex)
    }

    /// Doubles the tree: the old tree becomes the left subtree of a new blank root.
    private mutating func extend() {
        let oldCount = nodes.count
        leafCount = leafCount == 0 ? 1 : leafCount * 2
        nodes.resize(to: Int(math.nodeCount))
        hashes.resize(to: Int(math.nodeCount))
        // Hash the new right half bottom-up, then the new root.
        for level in 0...math.root.level {
            for raw in stride(from: (UInt32(1) << level) - 1, to: UInt32(nodes.count), by: Int(UInt32(1) << (level + 1)))
            where raw >= UInt32(oldCount) || raw == math.root.rawValue {
                hashes[Int(raw)] = computeHash(NodeIndex(raw))
            }
        }
    }

    /// Halves the tree while its right half holds no non-blank node.
    private mutating func truncate() {
        while leafCount > 1 {
            let half = Int(leafCount) - 1
            // Parents in the right half are blank once its leaves are (removal
            // blanks a leaf's whole path), so the leaves decide; scan from the end.
            guard stride(from: nodes.count - 1, through: half + 1, by: -2).allSatisfy({ nodes[$0] == nil }) else { break }
            leafCount /= 2
            nodes.resize(to: half)
            hashes.resize(to: half)
        }
    }

    // MARK: Hashes

    private mutating func rehashAll() {
        guard leafCount > 0 else { return }
        for level in 0...math.root.level {
            for raw in stride(from: (UInt32(1) << level) - 1, to: UInt32(nodes.count), by: Int(UInt32(1) << (level + 1))) {
                hashes[Int(raw)] = computeHash(NodeIndex(raw))
            }
        }
    }

    private mutating func rehashPath(from node: NodeIndex) {
        hashes[Int(node.rawValue)] = computeHash(node)
        for ancestor in math.directPath(node) { hashes[Int(ancestor.rawValue)] = computeHash(ancestor) }
    }

    /// TreeHashInput for one node (§7.8), from its children's cached hashes.
    private func computeHash(_ node: NodeIndex) -> [UInt8] {
        treeHashInput(node, value: self[node], leftHash: math.left(node).map(treeHash(of:)), rightHash: math.right(node).map(treeHash(of:)))
    }

    private func treeHashInput(_ node: NodeIndex, value: Node?, leftHash: [UInt8]?, rightHash: [UInt8]?) -> [UInt8] {
        var writer = TLSWriter(capacity: 256)
        if let leaf = node.leafIndex {
            NodeType.leaf.encode(to: &writer)
            leaf.encode(to: &writer)
            if case .leaf(let leafNode)? = value {
                writer.write(UInt8(1))
                leafNode.encode(to: &writer)
            } else {
                writer.write(UInt8(0))
            }
        } else {
            NodeType.parent.encode(to: &writer)
            if case .parent(let parent)? = value {
                writer.write(UInt8(1))
                parent.encode(to: &writer)
            } else {
                writer.write(UInt8(0))
            }
            writer.writeOpaque(leftHash ?? [])
            writer.writeOpaque(rightHash ?? [])
        }
        return provider.hash(writer.bytes)
    }

    /// The tree hash of `node`'s subtree with `removed` leaves (sorted, as
    /// unmerged leaves are) blanked and dropped from every unmerged list
    /// (the "original sibling tree hash", §7.9). Subtrees holding none of
    /// them use the cached hash.
    public func treeHash(of node: NodeIndex, removing removed: [LeafIndex]) -> [UInt8] {
        let span = (UInt32(1) << node.level) - 1
        let leaves = (node.rawValue - span) / 2...(node.rawValue + span) / 2
        guard removed.sortedContainsAny(in: leaves) else { return treeHash(of: node) }
        var value = self[node]
        switch value {
        case .leaf?:
            if let leaf = node.leafIndex, removed.sortedContains(leaf) { value = nil }
        case .parent(var parent)?:
            parent.unmergedLeaves.removeAll { removed.sortedContains($0) }
            value = .parent(parent)
        case nil:
            break
        }
        let left = math.left(node).map { treeHash(of: $0, removing: removed) }
        let right = math.right(node).map { treeHash(of: $0, removing: removed) }
        return treeHashInput(node, value: value, leftHash: left, rightHash: right)
    }

    /// The parent hash of `parent` seen from the child whose sibling is
    /// `sibling` (§7.9): Hash(ParentHashInput).
    public func parentHash(of parent: NodeIndex, sibling: NodeIndex) -> [UInt8]? {
        guard let node = parentNode(parent) else { return nil }
        return parentHash(
            encryptionKey: node.encryptionKey, parentHash: node.parentHash,
            originalSiblingTreeHash: treeHash(of: sibling, removing: node.unmergedLeaves))
    }

    func parentHash(encryptionKey: HPKEPublicKey, parentHash: [UInt8], originalSiblingTreeHash: [UInt8]) -> [UInt8] {
        var writer = TLSWriter(capacity: 128)
        encryptionKey.encode(to: &writer)
        writer.writeOpaque(parentHash)
        writer.writeOpaque(originalSiblingTreeHash)
        return provider.hash(writer.bytes)
    }
}

/// Counts of keys and credential types over a tree's nodes.
struct KeyIndex: Sendable {
    private var encryptionKeys = ShardedDictionary<HPKEPublicKey, KeyCount<NodeIndex>>()
    private var signatureKeys = ShardedDictionary<SignaturePublicKey, KeyCount<LeafIndex>>()
    /// Members using each credential type.
    private var credentialTypes: [CredentialType: Int] = [:]
    /// Members listing each credential type in their capabilities.
    private var credentialSupport: [CredentialType: Int] = [:]
    private(set) var occupiedLeaves = 0
    /// Occupied leaves per block of 64 leaf positions.
    private var blockCounts: [UInt32] = []
    /// How many keys are held by more than one node.
    private(set) var duplicates = 0

    func encryptionOwner(_ key: HPKEPublicKey) -> NodeIndex? {
        encryptionKeys[key].flatMap { $0.count == 1 ? $0.holder : nil }
    }

    func signatureOwner(_ key: SignaturePublicKey) -> LeafIndex? {
        signatureKeys[key].flatMap { $0.count == 1 ? $0.holder : nil }
    }

    mutating func insert(_ value: Node?, at node: NodeIndex) {
        switch value {
        case .leaf(let leaf)?:
            count(leaf.encryptionKey, at: node, by: 1)
            let leafIndex = node.leafIndex ?? LeafIndex(0)
            let previous = signatureKeys[leaf.signatureKey]?.count ?? 0
            if previous >= 1 { duplicates += 1 }
            signatureKeys[leaf.signatureKey] = KeyCount(count: previous + 1, holder: leafIndex)
            credentialTypes[leaf.credential.type, default: 0] += 1
            for type in Set(leaf.capabilities.credentials) { credentialSupport[type, default: 0] += 1 }
            occupiedLeaves += 1
            let block = Int(leafIndex.rawValue >> 6)
            if block >= blockCounts.count { blockCounts += [UInt32](repeating: 0, count: block + 1 - blockCounts.count) }
            blockCounts[block] += 1
        case .parent(let parent)?:
            count(parent.encryptionKey, at: node, by: 1)
        case nil:
            break
        }
    }

    mutating func remove(_ value: Node?, at node: NodeIndex) {
        switch value {
        case .leaf(let leaf)?:
            count(leaf.encryptionKey, at: node, by: -1)
            if let entry = signatureKeys[leaf.signatureKey] {
                if entry.count > 1 { duplicates -= 1 }
                signatureKeys[leaf.signatureKey] = entry.count > 1 ? KeyCount(count: entry.count - 1, holder: entry.holder) : nil
            }
            credentialTypes[leaf.credential.type, default: 1] -= 1
            for type in Set(leaf.capabilities.credentials) { credentialSupport[type, default: 1] -= 1 }
            occupiedLeaves -= 1
            if let leafIndex = node.leafIndex, Int(leafIndex.rawValue >> 6) < blockCounts.count {
                blockCounts[Int(leafIndex.rawValue >> 6)] -= 1
            }
        case .parent(let parent)?:
            count(parent.encryptionKey, at: node, by: -1)
        case nil:
            break
        }
    }

    private mutating func count(_ key: HPKEPublicKey, at node: NodeIndex, by delta: Int) {
        let previous = encryptionKeys[key]?.count ?? 0
        let next = previous + delta
        if delta > 0, previous >= 1 { duplicates += 1 }
        if delta < 0, previous > 1 { duplicates -= 1 }
        if next <= 0 {
            encryptionKeys[key] = nil
        } else {
            // The owner is only meaningful while a single node holds the key.
            encryptionKeys[key] = KeyCount(count: next, holder: delta > 0 ? node : (encryptionKeys[key]?.holder ?? node))
        }
    }

    /// The first block of 64 leaf positions that is not full.
    func firstBlockWithRoom(leafCount: Int) -> Int {
        for (block, count) in blockCounts.enumerated() where Int(count) < min(64, leafCount - block * 64) { return block }
        return blockCounts.count
    }

    /// Whether a leaf in positions `first ..< end` is occupied. Subtrees are
    /// aligned: below 64 leaves they lie inside one block.
    func occupiedLeaves(from first: Int, to end: Int) -> Bool {
        let firstBlock = first >> 6
        let lastBlock = (end - 1) >> 6
        guard firstBlock < blockCounts.count else { return false }
        if firstBlock == lastBlock, end - first < 64 {
            // A subtree inside one block: an empty block proves it empty;
            // otherwise answer "maybe" and let the caller look.
            return blockCounts[firstBlock] > 0
        }
        return blockCounts[firstBlock...min(lastBlock, blockCounts.count - 1)].contains { $0 > 0 }
    }

    func credentialsCompatible(_ leaf: LeafNode, replacing current: LeafNode?) -> Bool {
        var others = occupiedLeaves
        var support = credentialSupport
        var inUse = credentialTypes
        if let current {
            others -= 1
            for type in Set(current.capabilities.credentials) { support[type, default: 1] -= 1 }
            inUse[current.credential.type, default: 1] -= 1
        }
        guard support[leaf.credential.type, default: 0] == others else { return false }
        return inUse.allSatisfy { type, count in count <= 0 || leaf.capabilities.credentials.contains(type) }
    }
}

/// How many nodes hold a key, and one of them.
struct KeyCount<Holder: Sendable>: Sendable {
    var count: Int
    var holder: Holder
}
