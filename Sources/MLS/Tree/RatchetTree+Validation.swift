/// Checks a joiner runs on a whole tree (RFC 9420 §7.9.2, §12.4.3.1).
extension RatchetTree {
    /// Every non-blank parent node is parent-hash valid: exactly one
    /// descendant chains to it (§7.9.2, the top-down check). Run
    /// ``verifyUnmergedLeaves()`` first: this relies on sorted, bounded lists.
    public func verifyParentHashes() throws(MLSError) {
        for raw in stride(from: UInt32(1), to: UInt32(nodes.count), by: 2) {
            let node = NodeIndex(raw)
            guard let parent = parentNode(node), let left = math.left(node), let right = math.right(node) else { continue }
            var chained = 0
            for (child, sibling) in [(left, right), (right, left)] {
                // D chains to P iff resolution(C) is D plus exactly P's unmerged
                // leaves under C, and D's parent hash is P's hash seen from C.
                let resolution = resolution(child)
                let unmergedUnderChild = Set(parent.unmergedLeaves.filter { subtree(child, contains: $0) }.map(\.nodeIndex))
                guard resolution.count == unmergedUnderChild.count + 1 else { continue }
                let candidates = resolution.filter { !unmergedUnderChild.contains($0) }
                guard candidates.count == 1, let descendant = candidates.first else { continue }
                let expected = parentHash(
                    encryptionKey: parent.encryptionKey, parentHash: parent.parentHash,
                    originalSiblingTreeHash: treeHash(of: sibling, removing: parent.unmergedLeaves))
                if storedParentHash(descendant) == expected { chained += 1 }
            }
            guard chained == 1 else {
                throw MLSError(.invalidTree, "§7.9.2", "parent node is not parent-hash valid")
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
            guard zip(parent.unmergedLeaves, parent.unmergedLeaves.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw MLSError(.invalidTree, "§7.1", "unmerged leaves are not strictly increasing")
            }
            for unmerged in parent.unmergedLeaves {
                guard unmerged.rawValue < leafCount, leaf(unmerged) != nil, subtree(node, contains: unmerged) else {
                    throw MLSError(.invalidTree, "§12.4.3.1", "unmerged leaf is blank or not a descendant")
                }
                for between in math.directPath(unmerged.nodeIndex) {
                    if between == node { break }
                    if let intermediate = parentNode(between), !intermediate.unmergedLeaves.sortedContains(unmerged) {
                        throw MLSError(.invalidTree, "§12.4.3.1", "unmerged leaf missing from an intermediate node")
                    }
                }
            }
        }
    }

    /// Encryption keys are unique across all nodes and signature keys across
    /// leaves (§7.3). O(1): the tree keeps count as it changes.
    public func verifyKeyUniqueness() throws(MLSError) {
        guard !hasDuplicateKeys else { throw MLSError(.invalidTree, "§7.3", "duplicate key in the ratchet tree") }
    }
}

extension Array where Element == LeafIndex {
    /// Binary search in a sorted list.
    func sortedContains(_ leaf: LeafIndex) -> Bool {
        let position = sortedInsertionIndex(of: leaf)
        return position < count && self[position] == leaf
    }

    /// The first position whose element is not below `leaf`.
    func sortedInsertionIndex(of leaf: LeafIndex) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < leaf { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Whether a sorted list holds a leaf in `range`.
    func sortedContainsAny(in range: ClosedRange<UInt32>) -> Bool {
        let position = sortedInsertionIndex(of: LeafIndex(range.lowerBound))
        return position < count && self[position].rawValue <= range.upperBound
    }
}
