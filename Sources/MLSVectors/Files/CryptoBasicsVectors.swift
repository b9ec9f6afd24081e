import MLS

/// crypto-basics.json: the labelled primitives of RFC 9420 §5 and §8.
enum CryptoBasicsVectors: VectorFile {
    struct Entry: Decodable {
        struct RefHash: Decodable {
            let label: String
            let value: Hex
            let out: Hex
        }
        struct ExpandWithLabel: Decodable {
            let secret: Hex
            let label: String
            let context: Hex
            let length: Int
            let out: Hex
        }
        struct DeriveSecret: Decodable {
            let secret: Hex
            let label: String
            let out: Hex
        }
        struct DeriveTreeSecret: Decodable {
            let secret: Hex
            let label: String
            let generation: UInt32
            let length: Int
            let out: Hex
        }
        struct SignWithLabel: Decodable {
            let priv: Hex
            let pub: Hex
            let content: Hex
            let label: String
            let signature: Hex
        }
        struct EncryptWithLabel: Decodable {
            let priv: Hex
            let pub: Hex
            let label: String
            let context: Hex
            let plaintext: Hex
            let kem_output: Hex
            let ciphertext: Hex
        }

        let cipher_suite: UInt16
        let ref_hash: RefHash
        let expand_with_label: ExpandWithLabel
        let derive_secret: DeriveSecret
        let derive_tree_secret: DeriveTreeSecret
        let sign_with_label: SignWithLabel
        let encrypt_with_label: EncryptWithLabel
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))

        let ref = entry.ref_hash
        try expect(provider.refHash(label: Array(ref.label.utf8), value: ref.value.bytes), ref.out.bytes, "ref_hash")

        let expand = entry.expand_with_label
        try expect(provider.expandLengths.contains(expand.length), "expand_with_label.length out of range")
        try expect(provider.expandLengths.contains(entry.derive_tree_secret.length), "derive_tree_secret.length out of range")
        try expect(
            provider.expandWithLabel(
                secret: expand.secret.bytes, label: expand.label, context: expand.context.bytes, length: expand.length),
            expand.out.bytes, "expand_with_label")

        let derive = entry.derive_secret
        try expect(provider.deriveSecret(derive.secret.bytes, label: derive.label), derive.out.bytes, "derive_secret")

        let tree = entry.derive_tree_secret
        try expect(
            provider.deriveTreeSecret(tree.secret.bytes, label: tree.label, generation: tree.generation, length: tree.length),
            tree.out.bytes, "derive_tree_secret")

        let sign = entry.sign_with_label
        let publicKey = SignaturePublicKey(sign.pub.bytes)
        try expect(
            provider.verifyWithLabel(publicKey, label: sign.label, content: sign.content.bytes, signature: sign.signature.bytes),
            "sign_with_label: vector signature does not verify")
        let privateKey = try provider.signaturePrivateKey(sign.priv.bytes)
        try expect(privateKey.publicKey, publicKey, "sign_with_label: public key of priv")
        let ours = try provider.signWithLabel(privateKey, label: sign.label, content: sign.content.bytes)
        try expect(
            provider.verifyWithLabel(publicKey, label: sign.label, content: sign.content.bytes, signature: ours),
            "sign_with_label: own signature does not verify")

        let encrypt = entry.encrypt_with_label
        let hpkePrivate = HPKEPrivateKey(encrypt.priv.bytes)
        try expect(try provider.hpkePublicKey(of: hpkePrivate), HPKEPublicKey(encrypt.pub.bytes), "encrypt_with_label: public key of priv")
        let given = HPKECiphertext(kemOutput: encrypt.kem_output.bytes, ciphertext: encrypt.ciphertext.bytes)
        try expect(
            try provider.decryptWithLabel(hpkePrivate, label: encrypt.label, context: encrypt.context.bytes, ciphertext: given),
            encrypt.plaintext.bytes, "encrypt_with_label: decrypt vector")
        let sealed = try provider.encryptWithLabel(
            HPKEPublicKey(encrypt.pub.bytes), label: encrypt.label, context: encrypt.context.bytes, plaintext: encrypt.plaintext.bytes)
        try expect(
            try provider.decryptWithLabel(hpkePrivate, label: encrypt.label, context: encrypt.context.bytes, ciphertext: sealed),
            encrypt.plaintext.bytes, "encrypt_with_label: decrypt own")
    }
}
