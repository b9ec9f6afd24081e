import MLSCodec

/// The labelled operations of RFC 9420 §5 and §8. Every label is prefixed with
/// `"MLS 1.0 "` here, so callers pass the bare label from the RFC.
extension CipherSuiteProvider {
    static let labelPrefix = Array("MLS 1.0 ".utf8)

    /// The lengths HKDF-Expand can produce: 1 to 255 × Nh bytes (RFC 5869).
    public var expandLengths: ClosedRange<Int> { 1...(255 * hashLength) }

    /// ExpandWithLabel(Secret, Label, Context, Length) (§8).
    ///
    /// `length` must lie in ``expandLengths``: every caller in this library
    /// passes a suite constant, and ``KeySchedule/export(_:exporterSecret:label:context:length:)``
    /// checks the one length that comes from outside.
    public func expandWithLabel(secret: [UInt8], label: String, context: [UInt8], length: Int) -> [UInt8] {
        precondition(expandLengths.contains(length), "ExpandWithLabel length outside 1...255*Nh")
        var kdfLabel = TLSWriter(capacity: 16 + label.utf8.count + context.count)
        kdfLabel.write(UInt16(truncatingIfNeeded: length))
        kdfLabel.writeOpaque(Self.labelPrefix + Array(label.utf8))
        kdfLabel.writeOpaque(context)
        return expand(prk: secret, info: kdfLabel.bytes, length: length)
    }

    /// DeriveSecret(Secret, Label) = ExpandWithLabel(Secret, Label, "", Nh) (§8).
    public func deriveSecret(_ secret: [UInt8], label: String) -> [UInt8] {
        expandWithLabel(secret: secret, label: label, context: [], length: hashLength)
    }

    /// DeriveTreeSecret(Secret, Label, Generation, Length) (§9).
    public func deriveTreeSecret(_ secret: [UInt8], label: String, generation: UInt32, length: Int) -> [UInt8] {
        var context = TLSWriter(capacity: 4)
        context.write(generation)
        return expandWithLabel(secret: secret, label: label, context: context.bytes, length: length)
    }

    /// RefHash(label, value) (§5.2). `label` is used as given (it already
    /// carries the "MLS 1.0 " prefix in the RFC's reference labels).
    public func refHash(label: [UInt8], value: [UInt8]) -> [UInt8] {
        var input = TLSWriter(capacity: label.count + value.count + 8)
        input.writeOpaque(label)
        input.writeOpaque(value)
        return hash(input.bytes)
    }

    /// SignWithLabel(SignatureKey, Label, Content) (§5.1.2).
    public func signWithLabel(_ key: SignaturePrivateKey, label: String, content: [UInt8]) throws(MLSError) -> [UInt8] {
        try sign(signContent(label: label, content: content), with: key)
    }

    /// VerifyWithLabel(VerificationKey, Label, Content, SignatureValue) (§5.1.2).
    public func verifyWithLabel(
        _ publicKey: SignaturePublicKey, label: String, content: [UInt8], signature: [UInt8]
    ) -> Bool {
        verify(signature, for: signContent(label: label, content: content), publicKey: publicKey)
    }

    private func signContent(label: String, content: [UInt8]) -> [UInt8] {
        var writer = TLSWriter(capacity: content.count + 40)
        writer.writeOpaque(Self.labelPrefix + Array(label.utf8))
        writer.writeOpaque(content)
        return writer.bytes
    }

    /// EncryptWithLabel(PublicKey, Label, Context, Plaintext) (§5.1.3).
    public func encryptWithLabel(
        _ publicKey: HPKEPublicKey, label: String, context: [UInt8], plaintext: [UInt8]
    ) throws(MLSError) -> HPKECiphertext {
        let sealed = try hpkeSeal(
            publicKey: publicKey, info: encryptContext(label: label, context: context), aad: [], plaintext: plaintext)
        return HPKECiphertext(kemOutput: sealed.kemOutput, ciphertext: sealed.ciphertext)
    }

    /// DecryptWithLabel(PrivateKey, Label, Context, KEMOutput, Ciphertext) (§5.1.3).
    public func decryptWithLabel(
        _ privateKey: HPKEPrivateKey, label: String, context: [UInt8], ciphertext: HPKECiphertext
    ) throws(MLSError) -> [UInt8] {
        try hpkeOpen(
            privateKey: privateKey, kemOutput: ciphertext.kemOutput,
            info: encryptContext(label: label, context: context), aad: [], ciphertext: ciphertext.ciphertext)
    }

    private func encryptContext(label: String, context: [UInt8]) -> [UInt8] {
        var writer = TLSWriter(capacity: context.count + 40)
        writer.writeOpaque(Self.labelPrefix + Array(label.utf8))
        writer.writeOpaque(context)
        return writer.bytes
    }
}

/// `HPKECiphertext` (§5.1.3).
public struct HPKECiphertext: Hashable, Sendable, TLSCodable {
    public var kemOutput: [UInt8]
    public var ciphertext: [UInt8]

    public init(kemOutput: [UInt8], ciphertext: [UInt8]) {
        self.kemOutput = kemOutput
        self.ciphertext = ciphertext
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(kemOutput)
        writer.writeOpaque(ciphertext)
    }

    public init(from reader: inout TLSReader) throws {
        kemOutput = try reader.readOpaque("HPKECiphertext.kem_output")
        ciphertext = try reader.readOpaque("HPKECiphertext.ciphertext")
    }
}
