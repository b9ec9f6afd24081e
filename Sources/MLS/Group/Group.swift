import MLSCodec

/// One member's state of an MLS group in one epoch (RFC 9420 §8–§12).
///
/// A value type: every operation that can fail works on a copy and replaces
/// `self` only on success, so a rejected message changes nothing. Time and
/// randomness are parameters.
public struct Group: Sendable {
    /// The public part: context, tree, transcript, proposals of this epoch.
    public internal(set) var state: PublicGroup
    var treeSecrets: TreeSecrets
    var signer: SignaturePrivateKey
    var epochSecrets: EpochSecrets
    var secretTree: SecretTree
    /// Resumption PSKs of recent epochs of this group (§8.6).
    var resumptionPSKs: [UInt64: ResumptionPSK] = [:]
    /// A ReInit committed in this group: it may send nothing more (§11.2).
    public internal(set) var pendingReInit: ReInit?
    /// This member's own commit, sent and awaiting the Delivery Service.
    var pendingCommit: PendingCommit?
    /// Leaf keys of this member's Update proposals of this epoch, by public key.
    var pendingLeafKeys: [HPKEPublicKey: HPKEKeyPair] = [:]
    /// This member's own proposals of this epoch, by their wire bytes, so that
    /// seeing one again (the Delivery Service echoes it) is not an error.
    var sentProposals: [[UInt8]: Proposal] = [:]
    public var configuration: GroupConfiguration

    public var provider: CipherSuiteProvider { state.provider }
    public var context: GroupContext { state.context }
    public var tree: RatchetTree { state.tree }
    public var groupID: [UInt8] { state.groupID }
    public var epoch: UInt64 { state.epoch }
    public var ownLeaf: LeafIndex { treeSecrets.leaf }
    public var epochAuthenticator: EpochAuthenticator { epochSecrets.epochAuthenticator }
    public var cipherSuite: CipherSuite { context.cipherSuite }
    public var interimTranscriptHash: [UInt8] { state.interimTranscriptHash }
    public var confirmationTag: [UInt8] { state.confirmationTag }
    /// This member's credential and keys as the group sees them.
    public var ownLeafNode: LeafNode? { tree.leaf(ownLeaf) }

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

    /// Moves to a new epoch: new public state, secrets and secret tree; keeps
    /// the resumption PSK of the epoch being left.
    mutating func enterEpoch(_ next: PublicGroup, secrets: EpochSecrets) {
        resumptionPSKs[epoch] = epochSecrets.resumptionPSK
        let window = UInt64(max(0, configuration.resumptionPSKWindow))
        resumptionPSKs = resumptionPSKs.filter { $0.key < next.epoch && next.epoch - $0.key <= window }
        state = next
        epochSecrets = secrets
        secretTree = SecretTree(
            provider, encryptionSecret: secrets.encryptionSecret, leafCount: tree.leafCount, configuration: configuration.secretTree)
        treeSecrets.prune(against: tree)
        pendingCommit = nil
        pendingLeafKeys = [:]
        sentProposals = [:]
    }

    /// `store` with this group's own recent resumption PSKs added: what a
    /// member passes when joining a group reinitialised or branched from
    /// this one (§11.2, §11.3).
    public func pskStore(_ store: PSKStore = .empty) -> PSKStore {
        var merged = store
        for (epoch, psk) in resumptionPSKs {
            merged.resumption[PSKStore.ResumptionKey(groupID: groupID, epoch: epoch)] = psk.value
        }
        merged.resumption[PSKStore.ResumptionKey(groupID: groupID, epoch: epoch)] = epochSecrets.resumptionPSK.value
        return merged
    }

    /// psk_secret for the PSKs of a commit (§8.4).
    func pskSecret(for ids: [PreSharedKeyID], store: PSKStore) throws(MLSError) -> PSKSecret {
        let merged = pskStore(store)
        var inputs: [PreSharedKeyInput] = []
        for id in ids { inputs.append(try merged.secret(for: id)) }
        return try KeySchedule.pskSecret(provider, psks: inputs)
    }
}

/// A commit this member sent, with the group as it will be once the commit
/// is accepted (§12.4: merge on acceptance, or discard).
final class PendingCommit: Sendable {
    let message: MLSMessage
    let next: Group

    init(message: MLSMessage, next: Group) {
        self.message = message
        self.next = next
    }
}
