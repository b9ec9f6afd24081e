import MLS
import MLSCodec

/// welcome.json: decrypting a Welcome and checking its GroupInfo (RFC 9420 §12.4.3.1).
enum WelcomeVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16
        let init_priv: Hex
        let signer_pub: Hex
        let key_package: Hex
        let welcome: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        guard case .keyPackage(let keyPackage) = try MLSMessage(tlsSerialized: entry.key_package.bytes).body,
            case .welcome(let welcome) = try MLSMessage(tlsSerialized: entry.welcome.bytes).body
        else { throw VectorMismatch("key_package or welcome has the wrong wire format") }
        let (groupSecrets, groupInfo, _) = try welcome.open(
            provider, keyPackage: keyPackage, initKey: HPKEPrivateKey(entry.init_priv.bytes), psks: .empty)
        try expect(groupInfo.verifySignature(provider, signerKey: SignaturePublicKey(entry.signer_pub.bytes)), "GroupInfo signature")
        let secrets = KeySchedule.epochSecrets(
            provider, joinerSecret: JoinerSecret(groupSecrets.joinerSecret.bytes), pskSecret: nil, groupContext: groupInfo.groupContext)
        try expect(
            KeySchedule.confirmationTag(
                provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: groupInfo.groupContext.confirmedTranscriptHash),
            groupInfo.confirmationTag, "confirmation_tag")
    }
}
