import MLS
import MLSCodec

/// tree-validation.json: resolutions, tree hashes, parent hashes and leaf
/// signatures of assorted trees (RFC 9420 §4.1.1, §7.8, §7.9, §7.3).
enum TreeValidationVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16
        let tree: Hex
        let group_id: Hex
        let resolutions: [[UInt32]]
        let tree_hashes: [Hex]
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        let tree = try RatchetTree(provider, nodes: RatchetTreeNodes(tlsSerialized: entry.tree.bytes))
        for (index, expected) in entry.resolutions.enumerated() {
            try expect(tree.resolution(NodeIndex(UInt32(index))).map(\.rawValue), expected, "resolution[\(index)]")
        }
        for (index, expected) in entry.tree_hashes.enumerated() {
            try expect(tree.treeHash(of: NodeIndex(UInt32(index))), expected.bytes, "tree_hash[\(index)]")
        }
        try tree.verifyUnmergedLeaves()
        try tree.verifyParentHashes()
        for (index, leaf) in tree.members {
            try expect(leaf.verifySignature(provider, groupID: entry.group_id.bytes, leafIndex: index), "leaf \(index.rawValue) signature")
        }
    }
}

/// tree-operations.json: one Add, Update or Remove applied to a tree (RFC 9420 §12.1).
enum TreeOperationsVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16
        let tree_before: Hex
        let proposal: Hex
        let proposal_sender: UInt32
        let tree_hash_before: Hex
        let tree_after: Hex
        let tree_hash_after: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        var tree = try RatchetTree(provider, nodes: RatchetTreeNodes(tlsSerialized: entry.tree_before.bytes))
        try expect(tree.treeHash, entry.tree_hash_before.bytes, "tree_hash_before")
        switch try Proposal(tlsSerialized: entry.proposal.bytes) {
        case .add(let keyPackage): tree.add(keyPackage.leafNode)
        case .update(let leafNode): tree.update(LeafIndex(entry.proposal_sender), with: leafNode)
        case .remove(let removed): tree.remove(removed)
        default: throw VectorMismatch("unexpected proposal type")
        }
        try expect(tree.exported.tlsSerialized, entry.tree_after.bytes, "tree_after")
        try expect(tree.treeHash, entry.tree_hash_after.bytes, "tree_hash_after")
    }
}
