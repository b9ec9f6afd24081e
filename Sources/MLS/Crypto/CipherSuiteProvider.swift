import Crypto
import MLSCodec

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The primitives of one cipher suite (RFC 9420 §5.1), all from swift-crypto.
///
/// Build one with ``init(_:)``; it refuses suites that swift-crypto cannot run.
public struct CipherSuiteProvider: Sendable {
    enum HashAlgorithm: Sendable { case sha256, sha384, sha512 }
    enum AEADAlgorithm: Sendable { case aes128gcm, aes256gcm, chacha20poly1305 }
    enum KEMAlgorithm: Sendable { case x25519, p256, p384, p521, xwing }
    enum SignatureAlgorithm: Sendable { case ed25519, p256, p384, p521 }

    public let suite: CipherSuite
    let hashAlgorithm: HashAlgorithm
    let aeadAlgorithm: AEADAlgorithm
    let kemAlgorithm: KEMAlgorithm
    let signatureAlgorithm: SignatureAlgorithm

    public init(_ suite: CipherSuite) throws(MLSError) {
        self.suite = suite
        switch suite.rawValue {
        case 0x0001:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha256, .aes128gcm, .x25519, .ed25519)
        case 0x0002:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha256, .aes128gcm, .p256, .p256)
        case 0x0003:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha256, .chacha20poly1305, .x25519, .ed25519)
        case 0x0005:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha512, .aes256gcm, .p521, .p521)
        case 0x0007:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha384, .aes256gcm, .p384, .p384)
        case 0x004D:
            (hashAlgorithm, aeadAlgorithm, kemAlgorithm, signatureAlgorithm) = (.sha256, .chacha20poly1305, .xwing, .ed25519)
        default:
            throw MLSError(.unsupportedCipherSuite, "§5.1", "cipher suite \(suite) is not supported")
        }
    }

    /// Whether a signature key of this suite is one of `other`'s too (the
    /// same signature scheme), so one credential serves groups of both.
    public func signsLike(_ other: CipherSuiteProvider) -> Bool { signatureAlgorithm == other.signatureAlgorithm }

    // MARK: Sizes

    /// KDF.Nh: the hash (and KDF extract) output length.
    public var hashLength: Int {
        switch hashAlgorithm {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    /// AEAD.Nk.
    public var aeadKeyLength: Int {
        switch aeadAlgorithm {
        case .aes128gcm: 16
        case .aes256gcm, .chacha20poly1305: 32
        }
    }

    /// AEAD.Nn.
    public var aeadNonceLength: Int { 12 }

    /// HPKE Nsk: the length of a serialised KEM private key.
    var kemPrivateKeyLength: Int {
        switch kemAlgorithm {
        case .x25519, .p256, .xwing: 32
        case .p384: 48
        case .p521: 66
        }
    }

    // MARK: Hash, MAC, KDF

    public func hash(_ data: [UInt8]) -> [UInt8] {
        switch hashAlgorithm {
        case .sha256: Array(SHA256.hash(data: data))
        case .sha384: Array(SHA384.hash(data: data))
        case .sha512: Array(SHA512.hash(data: data))
        }
    }

    /// MAC(key, data): HMAC with the suite's hash (RFC 9420 §5.1).
    public func mac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        let key = SymmetricKey(data: key)
        switch hashAlgorithm {
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
        case .sha384: return Array(HMAC<SHA384>.authenticationCode(for: data, using: key))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
        }
    }

    /// Verifies a MAC in constant time.
    public func verifyMAC(key: [UInt8], data: [UInt8], tag: [UInt8]) -> Bool {
        constantTimeEqual(mac(key: key, data: data), tag)
    }

    /// KDF.Extract(salt, ikm).
    public func extract(salt: [UInt8], ikm: [UInt8]) -> [UInt8] {
        let ikm = SymmetricKey(data: ikm)
        switch hashAlgorithm {
        case .sha256: return Array(HKDF<SHA256>.extract(inputKeyMaterial: ikm, salt: salt))
        case .sha384: return Array(HKDF<SHA384>.extract(inputKeyMaterial: ikm, salt: salt))
        case .sha512: return Array(HKDF<SHA512>.extract(inputKeyMaterial: ikm, salt: salt))
        }
    }

    /// KDF.Expand(prk, info, length).
    public func expand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        let key: SymmetricKey
        switch hashAlgorithm {
        case .sha256: key = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: info, outputByteCount: length)
        case .sha384: key = HKDF<SHA384>.expand(pseudoRandomKey: prk, info: info, outputByteCount: length)
        case .sha512: key = HKDF<SHA512>.expand(pseudoRandomKey: prk, info: info, outputByteCount: length)
        }
        return key.withUnsafeBytes { Array($0) }
    }

    // MARK: AEAD

    public func seal(key: [UInt8], nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]) throws(MLSError) -> [UInt8] {
        do {
            let symmetricKey = SymmetricKey(data: key)
            switch aeadAlgorithm {
            case .aes128gcm, .aes256gcm:
                let box = try AES.GCM.seal(plaintext, using: symmetricKey, nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
                return Array(box.ciphertext) + Array(box.tag)
            case .chacha20poly1305:
                let box = try ChaChaPoly.seal(plaintext, using: symmetricKey, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: aad)
                return Array(box.ciphertext) + Array(box.tag)
            }
        } catch {
            throw MLSError(.invalidKey, "§5.1", "AEAD seal failed")
        }
    }

    public func open(key: [UInt8], nonce: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws(MLSError) -> [UInt8] {
        let tagLength = 16
        guard ciphertext.count >= tagLength else {
            throw MLSError(.decryptionFailed, "§5.1", "ciphertext shorter than the AEAD tag")
        }
        let body = ciphertext[..<(ciphertext.count - tagLength)]
        let tag = ciphertext[(ciphertext.count - tagLength)...]
        do {
            let symmetricKey = SymmetricKey(data: key)
            switch aeadAlgorithm {
            case .aes128gcm, .aes256gcm:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: body, tag: tag)
                return Array(try AES.GCM.open(box, using: symmetricKey, authenticating: aad))
            case .chacha20poly1305:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: body, tag: tag)
                return Array(try ChaChaPoly.open(box, using: symmetricKey, authenticating: aad))
            }
        } catch {
            throw MLSError(.decryptionFailed, "§5.1", "AEAD open failed")
        }
    }
}
