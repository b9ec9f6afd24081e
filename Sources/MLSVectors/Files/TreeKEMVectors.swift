import MLS
import MLSCodec

/// treekem.json: processing and creating UpdatePaths (RFC 9420 §7.4–§7.6).
enum TreeKEMVectors: VectorFile {
    struct Entry: Decodable {
        struct PathSecret: Decodable {
            let node: UInt32
            let path_secret: Hex
        }
        struct LeafPrivate: Decodable {
            let index: UInt32
            let encryption_priv: Hex
            let signature_priv: Hex
            let path_secrets: [PathSecret]
        }
        struct Path: Decodable {
            let sender: UInt32
            let update_path: Hex
            let path_secrets: [Hex?]
            let commit_secret: Hex
            let tree_hash_after: Hex
        }

        let cipher_suite: UInt16
        let group_id: Hex
        let epoch: UInt64
        let confirmed_transcript_hash: Hex
        let ratchet_tree: Hex
        let leaves_private: [LeafPrivate]
        let update_paths: [Path]
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let suite = CipherSuite(rawValue: entry.cipher_suite)
        let provider = try CipherSuiteProvider(suite)
        let tree = try RatchetTree(provider, nodes: RatchetTreeNodes(tlsSerialized: entry.ratchet_tree.bytes))
        let groupID = entry.group_id.bytes

        func context(_ treeHash: [UInt8]) -> GroupContext {
            GroupContext(
                cipherSuite: suite, groupID: groupID, epoch: entry.epoch, treeHash: treeHash,
                confirmedTranscriptHash: entry.confirmed_transcript_hash.bytes)
        }

        var secrets: [UInt32: TreeSecrets] = [:]
        var signers: [UInt32: SignaturePrivateKey] = [:]
        for leaf in entry.leaves_private {
            let leafIndex = LeafIndex(leaf.index)
            let privateKey = HPKEPrivateKey(leaf.encryption_priv.bytes)
            let pair = HPKEKeyPair(privateKey: privateKey, publicKey: try provider.hpkePublicKey(of: privateKey))
            try expect(tree.leaf(leafIndex)?.encryptionKey, pair.publicKey, "leaf \(leaf.index) encryption key")
            var state = TreeSecrets(leaf: leafIndex, leafKey: pair)
            for secret in leaf.path_secrets {
                try state.setPathSecret(secret.path_secret.bytes, for: NodeIndex(secret.node), tree: tree)
            }
            secrets[leaf.index] = state
            signers[leaf.index] = try provider.signaturePrivateKey(leaf.signature_priv.bytes)
        }

        for (pathIndex, vector) in entry.update_paths.enumerated() {
            let sender = LeafIndex(vector.sender)
            let updatePath = try UpdatePath(tlsSerialized: vector.update_path.bytes)
            var merged = tree
            try TreeKEM.mergePath(&merged, updatePath, sender: sender, groupID: groupID)
            try expect(merged.treeHash, vector.tree_hash_after.bytes, "path \(pathIndex) tree_hash_after")
            let mergedContext = context(merged.treeHash)

            for (receiver, state) in secrets where receiver != vector.sender {
                var receiverState = state
                let result = try TreeKEM.decryptPath(
                    merged, updatePath, sender: sender, secrets: &receiverState, newMembers: [], context: mergedContext)
                try expect(result.commitSecret.bytes, vector.commit_secret.bytes, "path \(pathIndex) commit_secret at \(receiver)")
                if Int(receiver) < vector.path_secrets.count, let expected = vector.path_secrets[Int(receiver)] {
                    try expect(result.pathSecret.bytes, expected.bytes, "path \(pathIndex) path_secret at \(receiver)")
                }
            }

            guard var senderState = secrets[vector.sender], let signer = signers[vector.sender], let template = tree.leaf(sender) else {
                throw VectorMismatch("no private state for sender \(vector.sender)")
            }
            var created = tree
            let (ours, ourContext) = try TreeKEM.createPath(
                &created, secrets: &senderState, leafTemplate: template, signer: signer, groupID: groupID, newMembers: [],
                random: SystemRandom(), context: context)
            for (receiver, state) in secrets where receiver != vector.sender {
                var replay = tree
                try TreeKEM.mergePath(&replay, ours.updatePath, sender: sender, groupID: groupID)
                try expect(replay.treeHash, created.treeHash, "own path \(pathIndex) tree hash at \(receiver)")
                var receiverState = state
                let result = try TreeKEM.decryptPath(
                    replay, ours.updatePath, sender: sender, secrets: &receiverState, newMembers: [], context: ourContext)
                try expect(result.commitSecret, ours.commitSecret, "own path \(pathIndex) commit secret at \(receiver)")
            }
        }
    }
}
