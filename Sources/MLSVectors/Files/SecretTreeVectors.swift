import MLS

/// secret-tree.json: sender-data keys and per-leaf ratchets (RFC 9420 §6.3.2, §9).
enum SecretTreeVectors: VectorFile {
    struct Entry: Decodable {
        struct SenderData: Decodable {
            let sender_data_secret: Hex
            let ciphertext: Hex
            let key: Hex
            let nonce: Hex
        }
        struct Generation: Decodable {
            let generation: UInt32
            let handshake_key: Hex
            let handshake_nonce: Hex
            let application_key: Hex
            let application_nonce: Hex
        }

        let cipher_suite: UInt16
        let sender_data: SenderData
        let encryption_secret: Hex
        let leaves: [[Generation]]
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))

        let senderData = entry.sender_data
        let sample = Array(senderData.ciphertext.bytes.prefix(provider.hashLength))
        try expect(
            provider.expandWithLabel(
                secret: senderData.sender_data_secret.bytes, label: "key", context: sample, length: provider.aeadKeyLength),
            senderData.key.bytes, "sender_data.key")
        try expect(
            provider.expandWithLabel(
                secret: senderData.sender_data_secret.bytes, label: "nonce", context: sample, length: provider.aeadNonceLength),
            senderData.nonce.bytes, "sender_data.nonce")

        var tree = SecretTree(
            provider, encryptionSecret: EncryptionSecret(entry.encryption_secret.bytes), leafCount: UInt32(entry.leaves.count))
        for (leaf, generations) in entry.leaves.enumerated() {
            let leafIndex = LeafIndex(UInt32(leaf))
            for expected in generations {
                let handshake = try tree.key(for: leafIndex, kind: .handshake, generation: expected.generation)
                let application = try tree.key(for: leafIndex, kind: .application, generation: expected.generation)
                let at = "leaf \(leaf) generation \(expected.generation)"
                try expect(handshake.key.bytes, expected.handshake_key.bytes, "handshake_key \(at)")
                try expect(handshake.nonce.bytes, expected.handshake_nonce.bytes, "handshake_nonce \(at)")
                try expect(application.key.bytes, expected.application_key.bytes, "application_key \(at)")
                try expect(application.nonce.bytes, expected.application_nonce.bytes, "application_nonce \(at)")
            }
        }
    }
}
