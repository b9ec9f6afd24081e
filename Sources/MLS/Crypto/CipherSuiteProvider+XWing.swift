import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// HPKE with the X-Wing KEM (draft-connolly-cfrg-xwing-kem-06: ML-KEM-768
/// and X25519, from swift-crypto), for suite 0x004D as OpenMLS defines it.
///
/// The encapsulation is swift-crypto's; the key schedule (RFC 9180 §5.1,
/// base mode) is here, because swift-crypto's HPKE fixes the KEM id of
/// its suite id to 0x647a while OpenMLS's suite 0x004D names its KEM
/// 0x004D. Keys are the 32-byte X-Wing seed (the private key as X-Wing
/// serialises it) and the 1,216-byte public key; DeriveKeyPair is
/// `seed = SHAKE256(ikm, 32)`, as hpke-rs 0.3–0.7 (OpenMLS ≤ 0.9) does.
extension CipherSuiteProvider {
    /// The KEM id in the HPKE key schedule's suite id for suite 0x004D.
    static let xwingHPKEKEMIdentifier: UInt16 = 0x004D

    /// X-Wing's sizes: public key, encapsulation, private key (seed).
    static let xwingPublicKeyLength = 1216
    static let xwingEncapsulationLength = 1120

    /// KEM.DeriveKeyPair for X-Wing: the seed is SHAKE256(ikm, 32).
    func xwingDeriveKeyPair(ikm: [UInt8]) throws(MLSError) -> HPKEKeyPair {
        let privateKey = HPKEPrivateKey(SHAKE256.hash(ikm, outputLength: 32))
        return HPKEKeyPair(privateKey: privateKey, publicKey: try xwingPublicKey(of: privateKey))
    }

    func xwingPublicKey(of privateKey: HPKEPrivateKey) throws(MLSError) -> HPKEPublicKey {
        do {
            return HPKEPublicKey(Array(try xwingPrivateKey(privateKey).publicKey.rawRepresentation))
        } catch {
            throw MLSError(.invalidKey, "§5.1.1", "invalid X-Wing private key")
        }
    }

    func xwingValidate(_ key: HPKEPublicKey) throws(MLSError) {
        guard key.bytes.count == Self.xwingPublicKeyLength, (try? XWingMLKEM768X25519.PublicKey(rawRepresentation: key.bytes)) != nil
        else { throw MLSError(.invalidKey, "§5.1.1", "invalid X-Wing public key") }
    }

    private func xwingPrivateKey(_ privateKey: HPKEPrivateKey) throws -> XWingMLKEM768X25519.PrivateKey {
        guard privateKey.secret.bytes.count == 32 else { throw MLSError(.invalidKey, "§5.1.1", "an X-Wing private key is 32 bytes") }
        return try XWingMLKEM768X25519.PrivateKey(seedRepresentation: privateKey.secret.bytes, publicKey: nil)
    }

    /// Encap(pk): the shared secret and its encapsulation.
    func xwingEncapsulate(_ publicKey: HPKEPublicKey) throws(MLSError) -> (sharedSecret: [UInt8], encapsulation: [UInt8]) {
        guard publicKey.bytes.count == Self.xwingPublicKeyLength else { throw MLSError(.invalidKey, "§5.1.1", "invalid X-Wing public key") }
        do {  // parsing the key checks it (ML-KEM's modulus check)
            let result = try XWingMLKEM768X25519.PublicKey(rawRepresentation: publicKey.bytes).encapsulate()
            return (result.sharedSecret.withUnsafeBytes { Array($0) }, Array(result.encapsulated))
        } catch {
            throw MLSError(.invalidKey, "§5.1.3", "X-Wing encapsulation failed")
        }
    }

    /// Decap(enc, sk). X-Wing decapsulation does not fail on a wrong
    /// encapsulation of the right length (ML-KEM rejects implicitly): the
    /// AEAD that follows does.
    func xwingDecapsulate(_ encapsulation: [UInt8], _ privateKey: HPKEPrivateKey) throws(MLSError) -> [UInt8] {
        guard encapsulation.count == Self.xwingEncapsulationLength else {
            throw MLSError(.decryptionFailed, "§5.1.3", "an X-Wing encapsulation is \(Self.xwingEncapsulationLength) bytes")
        }
        do {
            return try xwingPrivateKey(privateKey).decapsulate(Data(encapsulation)).withUnsafeBytes { Array($0) }
        } catch {
            throw MLSError(.decryptionFailed, "§5.1.3", "X-Wing decapsulation failed")
        }
    }

    /// RFC 9180 §5.1 KeySchedule in base mode (no PSK): the AEAD key, the
    /// base nonce and the exporter secret of a context.
    struct HPKEContextSecrets: Equatable {
        let key: [UInt8]
        let baseNonce: [UInt8]
        let exporterSecret: [UInt8]
    }

    /// `"HPKE" || kem_id || kdf_id || aead_id` (RFC 9180 §5.1).
    private func hpkeSuiteID(kemIdentifier: UInt16) -> [UInt8] {
        Array("HPKE".utf8) + Self.bigEndian(kemIdentifier) + Self.bigEndian(hpkeKDFIdentifier) + Self.bigEndian(hpkeAEADIdentifier)
    }

    func hpkeKeySchedule(kemIdentifier: UInt16, sharedSecret: [UInt8], info: [UInt8]) -> HPKEContextSecrets {
        let suiteID = hpkeSuiteID(kemIdentifier: kemIdentifier)
        func labeledExtract(salt: [UInt8], _ label: String, _ ikm: [UInt8]) -> [UInt8] {
            extract(salt: salt, ikm: Array("HPKE-v1".utf8) + suiteID + Array(label.utf8) + ikm)
        }
        func labeledExpand(_ prk: [UInt8], _ label: String, _ info: [UInt8], _ length: Int) -> [UInt8] {
            expand(
                prk: prk, info: Self.bigEndian(UInt16(length)) + Array("HPKE-v1".utf8) + suiteID + Array(label.utf8) + info, length: length)
        }
        let context = [UInt8(0)] + labeledExtract(salt: [], "psk_id_hash", []) + labeledExtract(salt: [], "info_hash", info)
        let secret = labeledExtract(salt: sharedSecret, "secret", [])
        return HPKEContextSecrets(
            key: labeledExpand(secret, "key", context, aeadKeyLength),
            baseNonce: labeledExpand(secret, "base_nonce", context, aeadNonceLength),
            exporterSecret: labeledExpand(secret, "exp", context, hashLength))
    }

    /// Context.Export(exporter_context, L) (RFC 9180 §5.3).
    func hpkeExport(_ secrets: HPKEContextSecrets, kemIdentifier: UInt16, context: [UInt8], length: Int) -> [UInt8] {
        let suiteID = hpkeSuiteID(kemIdentifier: kemIdentifier)
        return expand(
            prk: secrets.exporterSecret,
            info: Self.bigEndian(UInt16(length)) + Array("HPKE-v1".utf8) + suiteID + Array("sec".utf8) + context,
            length: length)
    }

    /// SealBase: one message, sequence number 0 (the nonce is the base nonce).
    func xwingSeal(publicKey: HPKEPublicKey, info: [UInt8], aad: [UInt8], plaintext: [UInt8]) throws(MLSError) -> (
        kemOutput: [UInt8], ciphertext: [UInt8]
    ) {
        let (sharedSecret, encapsulation) = try xwingEncapsulate(publicKey)
        let secrets = hpkeKeySchedule(kemIdentifier: Self.xwingHPKEKEMIdentifier, sharedSecret: sharedSecret, info: info)
        return (encapsulation, try seal(key: secrets.key, nonce: secrets.baseNonce, aad: aad, plaintext: plaintext))
    }

    func xwingOpen(privateKey: HPKEPrivateKey, kemOutput: [UInt8], info: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(MLSError)
        -> [UInt8]
    {
        let sharedSecret = try xwingDecapsulate(kemOutput, privateKey)
        let secrets = hpkeKeySchedule(kemIdentifier: Self.xwingHPKEKEMIdentifier, sharedSecret: sharedSecret, info: info)
        do {
            return try open(key: secrets.key, nonce: secrets.baseNonce, aad: aad, ciphertext: ciphertext)
        } catch {
            throw MLSError(.decryptionFailed, "§5.1.3", "HPKE open failed")
        }
    }

    func xwingExportSend(publicKey: HPKEPublicKey, info: [UInt8], exporterContext: [UInt8], length: Int) throws(MLSError) -> (
        kemOutput: [UInt8], secret: [UInt8]
    ) {
        let (sharedSecret, encapsulation) = try xwingEncapsulate(publicKey)
        let secrets = hpkeKeySchedule(kemIdentifier: Self.xwingHPKEKEMIdentifier, sharedSecret: sharedSecret, info: info)
        return (encapsulation, hpkeExport(secrets, kemIdentifier: Self.xwingHPKEKEMIdentifier, context: exporterContext, length: length))
    }

    func xwingExportReceive(privateKey: HPKEPrivateKey, kemOutput: [UInt8], info: [UInt8], exporterContext: [UInt8], length: Int)
        throws(MLSError) -> [UInt8]
    {
        let sharedSecret = try xwingDecapsulate(kemOutput, privateKey)
        let secrets = hpkeKeySchedule(kemIdentifier: Self.xwingHPKEKEMIdentifier, sharedSecret: sharedSecret, info: info)
        return hpkeExport(secrets, kemIdentifier: Self.xwingHPKEKEMIdentifier, context: exporterContext, length: length)
    }

    /// HPKE KDF id (RFC 9180 §7.2) of the suite's hash.
    private var hpkeKDFIdentifier: UInt16 {
        switch hashAlgorithm {
        case .sha256: 0x0001
        case .sha384: 0x0002
        case .sha512: 0x0003
        }
    }

    /// HPKE AEAD id (RFC 9180 §7.3).
    private var hpkeAEADIdentifier: UInt16 {
        switch aeadAlgorithm {
        case .aes128gcm: 0x0001
        case .aes256gcm: 0x0002
        case .chacha20poly1305: 0x0003
        }
    }

    private static func bigEndian(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
}
