import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension CipherSuiteProvider {
    var hpkeCiphersuite: HPKE.Ciphersuite {
        let aead: HPKE.AEAD
        switch aeadAlgorithm {
        case .aes128gcm: aead = .AES_GCM_128
        case .aes256gcm: aead = .AES_GCM_256
        case .chacha20poly1305: aead = .chaChaPoly
        }
        switch kemAlgorithm {
        case .x25519: return HPKE.Ciphersuite(kem: .Curve25519_HKDF_SHA256, kdf: .HKDF_SHA256, aead: aead)
        case .p256: return HPKE.Ciphersuite(kem: .P256_HKDF_SHA256, kdf: .HKDF_SHA256, aead: aead)
        case .p384: return HPKE.Ciphersuite(kem: .P384_HKDF_SHA384, kdf: .HKDF_SHA384, aead: aead)
        case .p521: return HPKE.Ciphersuite(kem: .P521_HKDF_SHA512, kdf: .HKDF_SHA512, aead: aead)
        // Not used: X-Wing's key schedule is ours (CipherSuiteProvider+XWing.swift).
        case .xwing: return HPKE.Ciphersuite(kem: .XWingMLKEM768X25519, kdf: .HKDF_SHA256, aead: aead)
        }
    }

    /// SetupBaseS(pk, info) (RFC 9180 §5.1.1). The ephemeral key comes from
    /// swift-crypto's CSPRNG; nothing in MLS requires it to be replayable.
    private func hpkeSender(publicKey: HPKEPublicKey, info: [UInt8]) throws -> HPKE.Sender {
        switch kemAlgorithm {
        case .x25519:
            try HPKE.Sender(
                recipientKey: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey.bytes), ciphersuite: hpkeCiphersuite,
                info: Data(info))
        case .p256:
            try HPKE.Sender(
                recipientKey: try P256.KeyAgreement.PublicKey(x963Representation: publicKey.bytes), ciphersuite: hpkeCiphersuite,
                info: Data(info))
        case .p384:
            try HPKE.Sender(
                recipientKey: try P384.KeyAgreement.PublicKey(x963Representation: publicKey.bytes), ciphersuite: hpkeCiphersuite,
                info: Data(info))
        case .p521:
            try HPKE.Sender(
                recipientKey: try P521.KeyAgreement.PublicKey(x963Representation: publicKey.bytes), ciphersuite: hpkeCiphersuite,
                info: Data(info))
        case .xwing: throw MLSError(.invalidKey, "§5.1.3", "X-Wing uses its own HPKE key schedule")
        }
    }

    /// SetupBaseR(enc, sk, info) (RFC 9180 §5.1.1).
    private func hpkeRecipient(privateKey: HPKEPrivateKey, kemOutput: [UInt8], info: [UInt8]) throws -> HPKE.Recipient {
        let raw = kemScalar(privateKey)
        switch kemAlgorithm {
        case .x25519:
            return try HPKE.Recipient(
                privateKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw), ciphersuite: hpkeCiphersuite, info: Data(info),
                encapsulatedKey: Data(kemOutput))
        case .p256:
            return try HPKE.Recipient(
                privateKey: try P256.KeyAgreement.PrivateKey(rawRepresentation: raw), ciphersuite: hpkeCiphersuite, info: Data(info),
                encapsulatedKey: Data(kemOutput))
        case .p384:
            return try HPKE.Recipient(
                privateKey: try P384.KeyAgreement.PrivateKey(rawRepresentation: raw), ciphersuite: hpkeCiphersuite, info: Data(info),
                encapsulatedKey: Data(kemOutput))
        case .p521:
            return try HPKE.Recipient(
                privateKey: try P521.KeyAgreement.PrivateKey(rawRepresentation: raw), ciphersuite: hpkeCiphersuite, info: Data(info),
                encapsulatedKey: Data(kemOutput))
        case .xwing: throw MLSError(.invalidKey, "§5.1.3", "X-Wing uses its own HPKE key schedule")
        }
    }

    /// HPKE SealBase (RFC 9180 §6.1).
    func hpkeSeal(
        publicKey: HPKEPublicKey, info: [UInt8], aad: [UInt8], plaintext: [UInt8]
    ) throws(MLSError) -> (kemOutput: [UInt8], ciphertext: [UInt8]) {
        if kemAlgorithm == .xwing { return try xwingSeal(publicKey: publicKey, info: info, aad: aad, plaintext: plaintext) }
        do {
            var sender = try hpkeSender(publicKey: publicKey, info: info)
            let ciphertext = try sender.seal(plaintext, authenticating: aad)
            return (Array(sender.encapsulatedKey), Array(ciphertext))
        } catch {
            throw MLSError(.invalidKey, "§5.1.3", "HPKE seal failed: invalid public key")
        }
    }

    /// HPKE OpenBase (RFC 9180 §6.1).
    func hpkeOpen(
        privateKey: HPKEPrivateKey, kemOutput: [UInt8], info: [UInt8], aad: [UInt8], ciphertext: [UInt8]
    ) throws(MLSError) -> [UInt8] {
        if kemAlgorithm == .xwing {
            return try xwingOpen(privateKey: privateKey, kemOutput: kemOutput, info: info, aad: aad, ciphertext: ciphertext)
        }
        do {
            var recipient = try hpkeRecipient(privateKey: privateKey, kemOutput: kemOutput, info: info)
            return Array(try recipient.open(ciphertext, authenticating: aad))
        } catch {
            throw MLSError(.decryptionFailed, "§5.1.3", "HPKE open failed")
        }
    }

    /// SetupBaseS(pk, info) then Export(context, length) (RFC 9180 §5.3),
    /// as an external joiner derives its init secret (RFC 9420 §8.3).
    func hpkeExportSend(
        publicKey: HPKEPublicKey, info: [UInt8], exporterContext: [UInt8], length: Int
    ) throws(MLSError) -> (kemOutput: [UInt8], secret: [UInt8]) {
        if kemAlgorithm == .xwing {
            return try xwingExportSend(publicKey: publicKey, info: info, exporterContext: exporterContext, length: length)
        }
        do {
            let sender = try hpkeSender(publicKey: publicKey, info: info)
            let secret = try sender.exportSecret(context: exporterContext, outputByteCount: length)
            return (Array(sender.encapsulatedKey), secret.withUnsafeBytes { Array($0) })
        } catch {
            throw MLSError(.invalidKey, "§8.3", "HPKE export failed: invalid public key")
        }
    }

    /// SetupBaseR(enc, sk, info) then Export(context, length) (RFC 9180 §5.3).
    func hpkeExportReceive(
        privateKey: HPKEPrivateKey, kemOutput: [UInt8], info: [UInt8], exporterContext: [UInt8], length: Int
    ) throws(MLSError) -> [UInt8] {
        if kemAlgorithm == .xwing {
            return try xwingExportReceive(
                privateKey: privateKey, kemOutput: kemOutput, info: info, exporterContext: exporterContext, length: length)
        }
        do {
            let recipient = try hpkeRecipient(privateKey: privateKey, kemOutput: kemOutput, info: info)
            return try recipient.exportSecret(context: exporterContext, outputByteCount: length).withUnsafeBytes { Array($0) }
        } catch {
            throw MLSError(.decryptionFailed, "§8.3", "HPKE export failed")
        }
    }

    /// A NIST-curve private key left-padded to the field length: some
    /// encoders strip leading zero bytes (the P-521 vectors do).
    func kemScalar(_ privateKey: HPKEPrivateKey) -> [UInt8] {
        let raw = privateKey.secret.bytes
        guard kemAlgorithm != .x25519, kemAlgorithm != .xwing, raw.count < kemPrivateKeyLength else { return raw }
        return [UInt8](repeating: 0, count: kemPrivateKeyLength - raw.count) + raw
    }

    /// Checks that bytes are a valid public key of this suite's KEM, so a
    /// member with an unusable key is refused on entry rather than breaking
    /// every later commit that encrypts to it.
    public func validateHPKEPublicKey(_ key: HPKEPublicKey) throws(MLSError) {
        if kemAlgorithm == .xwing { return try xwingValidate(key) }
        do {
            switch kemAlgorithm {
            case .x25519: _ = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: key.bytes)
            case .p256: _ = try P256.KeyAgreement.PublicKey(x963Representation: key.bytes)
            case .p384: _ = try P384.KeyAgreement.PublicKey(x963Representation: key.bytes)
            case .p521: _ = try P521.KeyAgreement.PublicKey(x963Representation: key.bytes)
            case .xwing: break
            }
        } catch {
            throw MLSError(.invalidKey, "§5.1.1", "invalid HPKE public key")
        }
    }

    /// The public key of a serialised HPKE private key.
    public func hpkePublicKey(of privateKey: HPKEPrivateKey) throws(MLSError) -> HPKEPublicKey {
        if kemAlgorithm == .xwing { return try xwingPublicKey(of: privateKey) }
        let raw = kemScalar(privateKey)
        do {
            switch kemAlgorithm {
            case .x25519:
                return HPKEPublicKey(Array(try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw).publicKey.rawRepresentation))
            case .p256: return HPKEPublicKey(Array(try P256.KeyAgreement.PrivateKey(rawRepresentation: raw).publicKey.x963Representation))
            case .p384: return HPKEPublicKey(Array(try P384.KeyAgreement.PrivateKey(rawRepresentation: raw).publicKey.x963Representation))
            case .p521: return HPKEPublicKey(Array(try P521.KeyAgreement.PrivateKey(rawRepresentation: raw).publicKey.x963Representation))
            case .xwing: throw MLSError(.invalidKey, "§5.1.1", "unreachable")
            }
        } catch {
            throw MLSError(.invalidKey, "§5.1.1", "invalid HPKE private key")
        }
    }

    /// KEM.DeriveKeyPair(ikm) (RFC 9180 §7.1.3), used for path secrets,
    /// `external_pub` and key generation from injected randomness.
    public func deriveKeyPair(ikm: [UInt8]) throws(MLSError) -> HPKEKeyPair {
        if kemAlgorithm == .xwing { return try xwingDeriveKeyPair(ikm: ikm) }
        let suiteID: [UInt8] = Array("KEM".utf8) + [UInt8(kemIdentifier >> 8), UInt8(kemIdentifier & 0xFF)]
        let prk = kemLabeledExtract(salt: [], label: "dkp_prk", ikm: ikm, suiteID: suiteID)
        switch kemAlgorithm {
        case .x25519:
            let sk = kemLabeledExpand(prk: prk, label: "sk", info: [], length: kemPrivateKeyLength, suiteID: suiteID)
            let privateKey = HPKEPrivateKey(sk)
            return HPKEKeyPair(privateKey: privateKey, publicKey: try hpkePublicKey(of: privateKey))
        case .p256, .p384, .p521:
            let bitmask: UInt8 = kemAlgorithm == .p521 ? 0x01 : 0xFF
            for counter in 0...255 {
                var candidate = kemLabeledExpand(
                    prk: prk, label: "candidate", info: [UInt8(counter)], length: kemPrivateKeyLength, suiteID: suiteID)
                candidate[0] &= bitmask
                // swift-crypto refuses a zero scalar or one not below the group order.
                let privateKey = HPKEPrivateKey(candidate)
                if let publicKey = try? hpkePublicKey(of: privateKey) {
                    return HPKEKeyPair(privateKey: privateKey, publicKey: publicKey)
                }
            }
            throw MLSError(.invalidKey, "§5.1.1", "DeriveKeyPair found no valid scalar")
        case .xwing: throw MLSError(.invalidKey, "§5.1.1", "unreachable")
        }
    }

    /// A fresh HPKE key pair from `random`.
    public func generateHPKEKeyPair(random: some RandomSource) throws(MLSError) -> HPKEKeyPair {
        try deriveKeyPair(ikm: random.bytes(count: kemPrivateKeyLength))
    }

    private var kemIdentifier: UInt16 {
        switch kemAlgorithm {
        case .x25519: 0x0020
        case .p256: 0x0010
        case .p384: 0x0011
        case .p521: 0x0012
        case .xwing: Self.xwingHPKEKEMIdentifier
        }
    }

    private func kemLabeledExtract(salt: [UInt8], label: String, ikm: [UInt8], suiteID: [UInt8]) -> [UInt8] {
        let labeled = Array("HPKE-v1".utf8) + suiteID + Array(label.utf8) + ikm
        let key = SymmetricKey(data: labeled)
        switch kemAlgorithm {
        case .x25519, .p256, .xwing: return Array(HKDF<SHA256>.extract(inputKeyMaterial: key, salt: salt))
        case .p384: return Array(HKDF<SHA384>.extract(inputKeyMaterial: key, salt: salt))
        case .p521: return Array(HKDF<SHA512>.extract(inputKeyMaterial: key, salt: salt))
        }
    }

    private func kemLabeledExpand(prk: [UInt8], label: String, info: [UInt8], length: Int, suiteID: [UInt8]) -> [UInt8] {
        let labeled = [UInt8(length >> 8), UInt8(length & 0xFF)] + Array("HPKE-v1".utf8) + suiteID + Array(label.utf8) + info
        let key: SymmetricKey
        switch kemAlgorithm {
        case .x25519, .p256, .xwing: key = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: labeled, outputByteCount: length)
        case .p384: key = HKDF<SHA384>.expand(pseudoRandomKey: prk, info: labeled, outputByteCount: length)
        case .p521: key = HKDF<SHA512>.expand(pseudoRandomKey: prk, info: labeled, outputByteCount: length)
        }
        return key.withUnsafeBytes { Array($0) }
    }
}
