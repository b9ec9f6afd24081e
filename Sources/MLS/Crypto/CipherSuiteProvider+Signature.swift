import Crypto

extension CipherSuiteProvider {
    /// Loads a serialised signature private key of this suite's scheme.
    /// ECDSA scalars shorter than the field (some encoders strip a leading
    /// zero; the P-521 vectors do) are left-padded to the field length.
    public func signaturePrivateKey(_ bytes: [UInt8]) throws(MLSError) -> SignaturePrivateKey {
        var bytes = bytes
        if signatureAlgorithm != .ed25519, bytes.count < signaturePrivateKeyLength {
            bytes = [UInt8](repeating: 0, count: signaturePrivateKeyLength - bytes.count) + bytes
        }
        do {
            switch signatureAlgorithm {
            case .ed25519: return SignaturePrivateKey(.ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: bytes)))
            case .p256: return SignaturePrivateKey(.p256(try P256.Signing.PrivateKey(rawRepresentation: bytes)))
            case .p384: return SignaturePrivateKey(.p384(try P384.Signing.PrivateKey(rawRepresentation: bytes)))
            case .p521: return SignaturePrivateKey(.p521(try P521.Signing.PrivateKey(rawRepresentation: bytes)))
            }
        } catch {
            throw MLSError(.invalidKey, "§5.1.1", "invalid signature private key")
        }
    }

    /// A fresh signature key pair from `random`.
    public func generateSignatureKey(random: some RandomSource) throws(MLSError) -> SignaturePrivateKey {
        // ECDSA: draw scalars until one is in range; the chance of a retry is
        // negligible for every supported curve, the bound only guards the loop.
        for _ in 0..<64 {
            var candidate = random.bytes(count: signaturePrivateKeyLength)
            if signatureAlgorithm == .p521, !candidate.isEmpty { candidate[0] &= 0x01 }
            if let key = try? signaturePrivateKey(candidate) { return key }
        }
        throw MLSError(.invalidKey, "§5.1.1", "random source produced no valid signature key")
    }

    var signaturePrivateKeyLength: Int {
        switch signatureAlgorithm {
        case .ed25519, .p256: 32
        case .p384: 48
        case .p521: 66
        }
    }

    /// Signs `message` (already the full `SignContent`).
    func sign(_ message: [UInt8], with key: SignaturePrivateKey) throws(MLSError) -> [UInt8] {
        do {
            switch key.storage {
            case .ed25519(let key): return Array(try key.signature(for: message))
            case .p256(let key): return Array(try key.signature(for: message).derRepresentation)
            case .p384(let key): return Array(try key.signature(for: message).derRepresentation)
            case .p521(let key): return Array(try key.signature(for: message).derRepresentation)
            }
        } catch {
            throw MLSError(.invalidKey, "§5.1.2", "signing failed")
        }
    }

    /// Verifies `signature` over `message` with a serialised public key. A
    /// malformed key or signature is simply invalid.
    func verify(_ signature: [UInt8], for message: [UInt8], publicKey: SignaturePublicKey) -> Bool {
        switch signatureAlgorithm {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey.bytes) else { return false }
            return key.isValidSignature(signature, for: message)
        case .p256:
            guard let key = try? P256.Signing.PublicKey(x963Representation: publicKey.bytes),
                let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        case .p384:
            guard let key = try? P384.Signing.PublicKey(x963Representation: publicKey.bytes),
                let parsed = try? P384.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        case .p521:
            guard let key = try? P521.Signing.PublicKey(x963Representation: publicKey.bytes),
                let parsed = try? P521.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        }
    }
}
