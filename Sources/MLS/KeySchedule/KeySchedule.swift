import MLSCodec

/// The secrets of one epoch (RFC 9420 §8, Table 4), derived from the joiner
/// secret, the PSK secret and the epoch's GroupContext.
public struct EpochSecrets: Sendable {
    public let joinerSecret: JoinerSecret
    public let welcomeSecret: WelcomeSecret
    public let senderDataSecret: SenderDataSecret
    public let encryptionSecret: EncryptionSecret
    public let exporterSecret: ExporterSecret
    public let externalSecret: ExternalSecret
    public let confirmationKey: ConfirmationKey
    public let membershipKey: MembershipKey
    public let resumptionPSK: ResumptionPSK
    public let epochAuthenticator: EpochAuthenticator
    /// The next epoch's `init_secret`.
    public let initSecret: InitSecret
}

/// The key schedule (RFC 9420 §8).
public enum KeySchedule {
    /// joiner_secret = ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh).
    public static func joinerSecret(
        _ provider: CipherSuiteProvider, initSecret: InitSecret, commitSecret: CommitSecret, groupContext: GroupContext
    ) -> JoinerSecret {
        let prk = provider.extract(salt: initSecret.bytes, ikm: commitSecret.bytes)
        return JoinerSecret(
            provider.expandWithLabel(secret: prk, label: "joiner", context: groupContext.tlsSerialized, length: provider.hashLength))
    }

    /// Derives every secret of the epoch from the joiner secret (§8).
    public static func epochSecrets(
        _ provider: CipherSuiteProvider, joinerSecret: JoinerSecret, pskSecret: PSKSecret?, groupContext: GroupContext
    ) -> EpochSecrets {
        let psk = pskSecret?.bytes ?? zeroSecret(provider)
        let memberPRK = provider.extract(salt: joinerSecret.bytes, ikm: psk)
        let epochSecret = provider.expandWithLabel(
            secret: memberPRK, label: "epoch", context: groupContext.tlsSerialized, length: provider.hashLength)
        func derive(_ label: String) -> [UInt8] { provider.deriveSecret(epochSecret, label: label) }
        return EpochSecrets(
            joinerSecret: joinerSecret,
            welcomeSecret: WelcomeSecret(provider.deriveSecret(memberPRK, label: "welcome")),
            senderDataSecret: SenderDataSecret(derive("sender data")),
            encryptionSecret: EncryptionSecret(derive("encryption")),
            exporterSecret: ExporterSecret(derive("exporter")),
            externalSecret: ExternalSecret(derive("external")),
            confirmationKey: ConfirmationKey(derive("confirm")),
            membershipKey: MembershipKey(derive("membership")),
            resumptionPSK: ResumptionPSK(derive("resumption")),
            epochAuthenticator: EpochAuthenticator(derive("authentication")),
            initSecret: InitSecret(derive("init")))
    }

    /// One full step: previous init secret and this epoch's commit and PSK secrets in, epoch secrets out.
    public static func epochSecrets(
        _ provider: CipherSuiteProvider, initSecret: InitSecret, commitSecret: CommitSecret, pskSecret: PSKSecret?,
        groupContext: GroupContext
    ) -> EpochSecrets {
        let joiner = joinerSecret(provider, initSecret: initSecret, commitSecret: commitSecret, groupContext: groupContext)
        return epochSecrets(provider, joinerSecret: joiner, pskSecret: pskSecret, groupContext: groupContext)
    }

    /// The all-zero vector of length Nh, used for an absent commit or PSK secret.
    public static func zeroSecret(_ provider: CipherSuiteProvider) -> [UInt8] {
        [UInt8](repeating: 0, count: provider.hashLength)
    }

    /// MLS-Exporter(Label, Context, Length) (§8.5). `length` must be 1 to 255 × Nh.
    public static func export(
        _ provider: CipherSuiteProvider, exporterSecret: ExporterSecret, label: String, context: [UInt8], length: Int
    ) throws(MLSError) -> [UInt8] {
        guard provider.expandLengths.contains(length) else {
            throw MLSError(.invalidUse, "§8.5", "exporter length must be 1 to 255 × Nh")
        }
        let derived = provider.deriveSecret(exporterSecret.bytes, label: label)
        return provider.expandWithLabel(secret: derived, label: "exported", context: provider.hash(context), length: length)
    }

    /// The `external_pub` of an epoch: KEM.DeriveKeyPair(external_secret).public (§8.3).
    public static func externalKeyPair(_ provider: CipherSuiteProvider, externalSecret: ExternalSecret) throws(MLSError) -> HPKEKeyPair {
        try provider.deriveKeyPair(ikm: externalSecret.bytes)
    }

    /// The key and nonce that protect a Welcome's GroupInfo (§12.4.3.1).
    public static func welcomeKeyAndNonce(_ provider: CipherSuiteProvider, welcomeSecret: WelcomeSecret) -> (key: [UInt8], nonce: [UInt8]) {
        (
            provider.expandWithLabel(secret: welcomeSecret.bytes, label: "key", context: [], length: provider.aeadKeyLength),
            provider.expandWithLabel(secret: welcomeSecret.bytes, label: "nonce", context: [], length: provider.aeadNonceLength)
        )
    }

    /// The confirmation tag: MAC(confirmation_key, confirmed_transcript_hash) (§8.1, §6.1).
    public static func confirmationTag(
        _ provider: CipherSuiteProvider, confirmationKey: ConfirmationKey, confirmedTranscriptHash: [UInt8]
    ) -> [UInt8] {
        provider.mac(key: confirmationKey.bytes, data: confirmedTranscriptHash)
    }
}
