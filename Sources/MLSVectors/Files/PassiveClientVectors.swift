import MLS
import MLSCodec

/// passive-client-*.json and interop-passive/*.json: join from a Welcome,
/// then follow commits, checking the epoch authenticator at every epoch.
enum PassiveClientVectors: VectorFile {
    struct Entry: Decodable {
        struct PSK: Decodable {
            let psk_id: Hex
            let psk: Hex
        }
        struct Epoch: Decodable {
            let proposals: [Hex]
            let commit: Hex
            let epoch_authenticator: Hex
        }

        let cipher_suite: UInt16
        let external_psks: [PSK]
        let key_package: Hex
        let signature_priv: Hex
        let encryption_priv: Hex
        let init_priv: Hex
        let welcome: Hex
        let ratchet_tree: Hex?
        let initial_epoch_authenticator: Hex
        let epochs: [Epoch]
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    static func check(_ entry: Entry) throws {
        let provider = try CipherSuiteProvider(CipherSuite(rawValue: entry.cipher_suite))
        guard case .keyPackage(let keyPackage) = try MLSMessage(tlsSerialized: entry.key_package.bytes).body,
            case .welcome(let welcome) = try MLSMessage(tlsSerialized: entry.welcome.bytes).body
        else { throw VectorMismatch("key_package or welcome has the wrong wire format") }

        let signer = try provider.signaturePrivateKey(entry.signature_priv.bytes)
        let encryption = HPKEPrivateKey(entry.encryption_priv.bytes)
        let initKey = HPKEPrivateKey(entry.init_priv.bytes)
        try expect(signer.publicKey, keyPackage.leafNode.signatureKey, "signature_priv")
        try expect(try provider.hpkePublicKey(of: encryption), keyPackage.leafNode.encryptionKey, "encryption_priv")
        try expect(try provider.hpkePublicKey(of: initKey), keyPackage.initKey, "init_priv")

        var store = PSKStore()
        for psk in entry.external_psks { store.external[psk.psk_id.bytes] = SecretBytes(psk.psk.bytes) }
        let bundle = KeyPackageBundle(
            keyPackage: keyPackage, initKey: initKey,
            encryptionKey: HPKEKeyPair(privateKey: encryption, publicKey: keyPackage.leafNode.encryptionKey), signer: signer)
        let tree = try entry.ratchet_tree.map { try RatchetTreeNodes(tlsSerialized: $0.bytes) }
        // The vectors' KeyPackages have real, long-expired lifetimes: no clock here.
        var group = try Group(welcome: welcome, keyPackage: bundle, ratchetTree: tree, psks: store, now: .unchecked)
        try expect(group.epochAuthenticator.bytes, entry.initial_epoch_authenticator.bytes, "initial_epoch_authenticator")

        for (index, epoch) in entry.epochs.enumerated() {
            for proposal in epoch.proposals {
                _ = try group.process(try MLSMessage(tlsSerialized: proposal.bytes), psks: store, now: .unchecked)
            }
            _ = try group.process(try MLSMessage(tlsSerialized: epoch.commit.bytes), psks: store, now: .unchecked)
            try expect(group.epochAuthenticator.bytes, epoch.epoch_authenticator.bytes, "epoch \(index) epoch_authenticator")
        }
    }
}
