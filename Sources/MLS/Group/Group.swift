import MLSCodec

/// One member's state of an MLS group in one epoch (RFC 9420 §8–§12).
///
/// A value type: every operation that can fail works on a copy and replaces
/// `self` only on success, so a rejected message changes nothing. Time and
/// randomness are parameters.
public struct Group: Sendable {
    public let provider: CipherSuiteProvider
    public internal(set) var context: GroupContext
    public internal(set) var tree: RatchetTree
    var treeSecrets: TreeSecrets
    var signer: SignaturePrivateKey
    var epochSecrets: EpochSecrets
    var secretTree: SecretTree
    public internal(set) var interimTranscriptHash: [UInt8]
    public internal(set) var confirmationTag: [UInt8]
    /// Proposals received in this epoch, by ProposalRef (§12.4).
    var proposals: [[UInt8]: CachedProposal] = [:]
    /// Resumption PSKs of recent epochs of this group (§8.6).
    var resumptionPSKs: [UInt64: ResumptionPSK] = [:]
    /// A ReInit committed in this group: it may send nothing more (§11.2).
    public internal(set) var pendingReInit: ReInit?
    public var configuration: GroupConfiguration

    struct CachedProposal: Sendable {
        let proposal: Proposal
        let sender: Sender
    }

    public var groupID: [UInt8] { context.groupID }
    public var epoch: UInt64 { context.epoch }
    public var ownLeaf: LeafIndex { treeSecrets.leaf }
    public var epochAuthenticator: EpochAuthenticator { epochSecrets.epochAuthenticator }
    public var cipherSuite: CipherSuite { context.cipherSuite }

    /// The members, by leaf, with their credentials and signature keys.
    public var members: [(index: LeafIndex, leaf: LeafNode)] { tree.members }

    /// MLS-Exporter (§8.5).
    public func export(label: String, context exportContext: [UInt8], length: Int) throws(MLSError) -> [UInt8] {
        try KeySchedule.export(provider, exporterSecret: epochSecrets.exporterSecret, label: label, context: exportContext, length: length)
    }

    /// The resumption PSK of this epoch or a recent one (§8.6).
    public func resumptionPSK(epoch: UInt64) -> ResumptionPSK? {
        epoch == context.epoch ? epochSecrets.resumptionPSK : resumptionPSKs[epoch]
    }

    /// The `external_pub` of this epoch, for GroupInfo (§12.4.3.2).
    public func externalPublicKey() throws(MLSError) -> HPKEPublicKey {
        try KeySchedule.externalKeyPair(provider, externalSecret: epochSecrets.externalSecret).publicKey
    }

    /// Starts the secret tree and the resumption history of a new epoch.
    mutating func enterEpoch(_ secrets: EpochSecrets, keepingHistoryOf previous: Group?) {
        if let previous {
            resumptionPSKs = previous.resumptionPSKs
            resumptionPSKs[previous.epoch] = previous.epochSecrets.resumptionPSK
            let window = UInt64(max(0, configuration.resumptionPSKWindow))
            resumptionPSKs = resumptionPSKs.filter { context.epoch - $0.key <= window }
        }
        epochSecrets = secrets
        secretTree = SecretTree(
            provider, encryptionSecret: secrets.encryptionSecret, leafCount: tree.leafCount, configuration: configuration.secretTree)
        proposals = [:]
    }

    /// The PSK store with this group's own recent resumption PSKs added.
    func pskStore(_ store: PSKStore) -> PSKStore {
        var merged = store
        for (epoch, psk) in resumptionPSKs {
            merged.resumption[PSKStore.ResumptionKey(groupID: groupID, epoch: epoch)] = psk.value
        }
        merged.resumption[PSKStore.ResumptionKey(groupID: groupID, epoch: epoch)] = epochSecrets.resumptionPSK.value
        return merged
    }
}
