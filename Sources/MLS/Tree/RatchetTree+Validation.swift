/// Checks a joiner runs on a whole tree (RFC 9420 §7.9.2, §12.4.3.1).
extension RatchetTree {
    /// Every non-blank parent node is parent-hash valid: exactly one
    /// descendant chains to it (§7.9.2, the top-down check).
    public func verifyParentHashes() throws(MLSError) {
        for raw in stride(from: UInt32(1), to: UInt32(nodes.count), by: 2) {
            let node = NodeIndex(raw)
            guard let parent = parentNode(node), let left = math.left(node), let right = math.right(node) else { continue }
            var chained = 0
            for (child, sibling) in [(left, right), (right, left)] {
                let expected = parentHash(
                    encryptionKey: parent.encryptionKey, parentHash: parent.parentHash,
                    originalSiblingTreeHash: treeHash(of: sibling, removing: Set(parent.unmergedLeaves)))
                let resolution = resolution(child)
                let unmergedUnderChild = Set(parent.unmergedLeaves.filter { subtree(child, contains: $0) }.map(\.nodeIndex))
                for descendant in resolution where storedParentHash(descendant) == expected {
                    if Set(resolution.filter { $0 != descendant }) == unmergedUnderChild { chained += 1 }
                }
            }
            guard chained == 1 else {
                throw MLSError(.invalidArgument, "§7.9.2", "parent node is not parent-hash valid")
            }
        }
    }

    /// The `parent_hash` a node carries: a parent's field, or a committed leaf's.
    func storedParentHash(_ node: NodeIndex) -> [UInt8]? {
        switch self[node] {
        case .parent(let parent)?: parent.parentHash
        case .leaf(let leaf)?:
            if case .commit(let parentHash) = leaf.source { parentHash } else { nil }
        case nil: nil
        }
    }

    /// Every unmerged leaf is a non-blank descendant, listed at every non-blank
    /// node between it and the parent (§12.4.3.1), in increasing order (§7.1).
    public func verifyUnmergedLeaves() throws(MLSError) {
        for raw in stride(from: UInt32(1), to: UInt32(nodes.count), by: 2) {
            let node = NodeIndex(raw)
            guard let parent = parentNode(node) else { continue }
            guard parent.unmergedLeaves == parent.unmergedLeaves.sorted(), Set(parent.unmergedLeaves).count == parent.unmergedLeaves.count
            else {
                throw MLSError(.invalidArgument, "§7.1", "unmerged leaves are not sorted and unique")
            }
            for unmerged in parent.unmergedLeaves {
                guard unmerged.rawValue < leafCount, leaf(unmerged) != nil, subtree(node, contains: unmerged) else {
                    throw MLSError(.invalidArgument, "§12.4.3.1", "unmerged leaf is blank or not a descendant")
                }
                for between in math.directPath(unmerged.nodeIndex) {
                    if between == node { break }
                    if let intermediate = parentNode(between), !intermediate.unmergedLeaves.contains(unmerged) {
                        throw MLSError(.invalidArgument, "§12.4.3.1", "unmerged leaf missing from an intermediate node")
                    }
                }
            }
        }
    }

    /// Encryption keys are unique across all nodes and signature keys across
    /// leaves (§7.3). O(1): the tree keeps count as it changes.
    public func verifyKeyUniqueness() throws(MLSError) {
        guard !hasDuplicateKeys else { throw MLSError(.invalidArgument, "§7.3", "duplicate key in the ratchet tree") }
    }
}
