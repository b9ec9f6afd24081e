import MLSCodec

/// A pre-shared key with its identifier, as injected into the key schedule.
public struct PreSharedKeyInput: Sendable {
    public let id: PreSharedKeyID
    public let secret: SecretBytes

    public init(id: PreSharedKeyID, secret: [UInt8]) {
        self.id = id
        self.secret = SecretBytes(secret)
    }
}

extension KeySchedule {
    /// psk_secret over a list of PSKs (§8.4):
    ///
    ///     psk_extracted_[i] = Extract(0, psk_[i])
    ///     psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, Nh)
    ///     psk_secret_[i]    = Extract(psk_input_[i-1], psk_secret_[i-1]),  psk_secret_[0] = 0
    ///
    /// An empty list gives the all-zero secret.
    public static func pskSecret(_ provider: CipherSuiteProvider, psks: [PreSharedKeyInput]) throws(MLSError) -> PSKSecret {
        guard psks.count <= Int(UInt16.max) else {
            throw MLSError(.invalidPreSharedKey, "§8.4", "more PSKs than PSKLabel.count can hold")
        }
        let zero = zeroSecret(provider)
        var secret = zero
        for (index, psk) in psks.enumerated() {
            let extracted = provider.extract(salt: zero, ikm: psk.secret.bytes)
            var label = TLSWriter(capacity: 64)
            psk.id.encode(to: &label)
            label.write(UInt16(index))
            label.write(UInt16(psks.count))
            let input = provider.expandWithLabel(secret: extracted, label: "derived psk", context: label.bytes, length: provider.hashLength)
            secret = provider.extract(salt: input, ikm: secret)
        }
        return PSKSecret(secret)
    }
}
