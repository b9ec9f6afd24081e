import MLS
import MLSCodec

/// key-schedule.json: several epochs of the key schedule (RFC 9420 §8).
enum KeyScheduleVectors: VectorFile {
    struct Entry: Decodable {
        struct Exporter: Decodable {
            let label: String
            let context: Hex
            let length: Int
            let secret: Hex
        }
        struct Epoch: Decodable {
            let tree_hash: Hex
            let commit_secret: Hex
            let psk_secret: Hex
            let confirmed_transcript_hash: Hex
            let group_context: Hex
            let joiner_secret: Hex
            let welcome_secret: Hex
            let init_secret: Hex
            let sender_data_secret: Hex
            let encryption_secret: Hex
            let exporter_secret: Hex
            let epoch_authenticator: Hex
            let external_secret: Hex
            let confirmation_key: Hex
            let membership_key: Hex
            let resumption_psk: Hex
            let external_pub: Hex
            let exporter: Exporter
        }

        let cipher_suite: UInt16
        let group_id: Hex
        let initial_init_secret: Hex
        let epochs: [Epoch]
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let suite = CipherSuite(rawValue: entry.cipher_suite)
        let provider = try CipherSuiteProvider(suite)
        var initSecret = InitSecret(entry.initial_init_secret.bytes)
        for (index, epoch) in entry.epochs.enumerated() {
            let context = GroupContext(
                cipherSuite: suite, groupID: entry.group_id.bytes, epoch: UInt64(index),
                treeHash: epoch.tree_hash.bytes, confirmedTranscriptHash: epoch.confirmed_transcript_hash.bytes)
            try expect(context.tlsSerialized, epoch.group_context.bytes, "epoch \(index) group_context")
            let secrets = KeySchedule.epochSecrets(
                provider, initSecret: initSecret, commitSecret: CommitSecret(epoch.commit_secret.bytes),
                pskSecret: PSKSecret(epoch.psk_secret.bytes), groupContext: context)
            let checks: [(String, [UInt8], Hex)] = [
                ("joiner_secret", secrets.joinerSecret.bytes, epoch.joiner_secret),
                ("welcome_secret", secrets.welcomeSecret.bytes, epoch.welcome_secret),
                ("init_secret", secrets.initSecret.bytes, epoch.init_secret),
                ("sender_data_secret", secrets.senderDataSecret.bytes, epoch.sender_data_secret),
                ("encryption_secret", secrets.encryptionSecret.bytes, epoch.encryption_secret),
                ("exporter_secret", secrets.exporterSecret.bytes, epoch.exporter_secret),
                ("epoch_authenticator", secrets.epochAuthenticator.bytes, epoch.epoch_authenticator),
                ("external_secret", secrets.externalSecret.bytes, epoch.external_secret),
                ("confirmation_key", secrets.confirmationKey.bytes, epoch.confirmation_key),
                ("membership_key", secrets.membershipKey.bytes, epoch.membership_key),
                ("resumption_psk", secrets.resumptionPSK.bytes, epoch.resumption_psk),
            ]
            for (name, actual, expected) in checks {
                try expect(actual, expected.bytes, "epoch \(index) \(name)")
            }
            let external = try KeySchedule.externalKeyPair(provider, externalSecret: secrets.externalSecret)
            try expect(external.publicKey.bytes, epoch.external_pub.bytes, "epoch \(index) external_pub")
            // The exporter label is used as its UTF-8 bytes, although it looks like hex.
            let exported = try KeySchedule.export(
                provider, exporterSecret: secrets.exporterSecret, label: epoch.exporter.label,
                context: epoch.exporter.context.bytes, length: epoch.exporter.length)
            try expect(exported, epoch.exporter.secret.bytes, "epoch \(index) exporter.secret")
            initSecret = secrets.initSecret
        }
    }
}

/// psk_secret.json: chaining external PSKs into psk_secret (RFC 9420 §8.4).
enum PSKSecretVectors: VectorFile {
    struct Entry: Decodable {
        struct PSK: Decodable {
            let psk_id: Hex
            let psk: Hex
            let psk_nonce: Hex
        }
        let cipher_suite: UInt16
        let psks: [PSK]
        let psk_secret: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        let inputs = entry.psks.map {
            PreSharedKeyInput(id: PreSharedKeyID(kind: .external(pskID: $0.psk_id.bytes), nonce: $0.psk_nonce.bytes), secret: $0.psk.bytes)
        }
        try expect(try KeySchedule.pskSecret(provider, psks: inputs).bytes, entry.psk_secret.bytes, "psk_secret")
    }
}

/// transcript-hashes.json: confirmed and interim transcript hashes (RFC 9420 §8.2).
enum TranscriptHashVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16
        let confirmation_key: Hex
        let authenticated_content: Hex
        let interim_transcript_hash_before: Hex
        let confirmed_transcript_hash_after: Hex
        let interim_transcript_hash_after: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        let content = try AuthenticatedContent(tlsSerialized: entry.authenticated_content.bytes)
        try expect(content.content.contentType == .commit, "authenticated_content is not a commit")
        guard let tag = content.auth.confirmationTag else { throw VectorMismatch("commit without confirmation tag") }
        try expect(
            tag,
            KeySchedule.confirmationTag(
                provider, confirmationKey: ConfirmationKey(entry.confirmation_key.bytes),
                confirmedTranscriptHash: entry.confirmed_transcript_hash_after.bytes),
            "confirmation_tag")
        let confirmed = try TranscriptHash.confirmed(provider, interimBefore: entry.interim_transcript_hash_before.bytes, commit: content)
        try expect(confirmed, entry.confirmed_transcript_hash_after.bytes, "confirmed_transcript_hash_after")
        try expect(
            TranscriptHash.interim(provider, confirmed: confirmed, confirmationTag: tag),
            entry.interim_transcript_hash_after.bytes, "interim_transcript_hash_after")
    }
}
