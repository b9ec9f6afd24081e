import MLSCodec

/// A group's complete state as bytes, so a device can persist and resume
/// (format version 1). It holds private keys and epoch secrets: store it
/// encrypted. A pending commit is not kept: after a restart, the device
/// waits for the Delivery Service's verdict and, if its commit was taken,
/// rejoins by external commit.
///
///     struct {
///         uint16 format_version = 1;
///         Configuration configuration;       // padding, ratchet limits, window, flags
///         GroupContext context;
///         optional<Node> ratchet_tree<V>;
///         opaque interim_transcript_hash<V>;
///         opaque confirmation_tag<V>;
///         CachedProposal proposals<V>;       // opaque ref<V>; Proposal; Sender
///         uint32 own_leaf;
///         NodeKey tree_keys<V>;              // uint32 node; opaque private<V>; opaque public<V>
///         opaque signature_private_key<V>;
///         opaque epoch_secrets<V>[11];       // joiner … init, in EpochSecrets order
///         SecretTreeState secret_tree;
///         ResumptionPSK resumption_psks<V>;  // uint64 epoch; opaque psk<V>
///         optional<ReInit> pending_reinit;
///         LeafKey pending_leaf_keys<V>;      // own Update proposals' keys: opaque private<V>; opaque public<V>
///     } GroupSnapshot;
extension Group {
    public static let snapshotFormatVersion: UInt16 = 1

    /// The snapshot bytes (see the format above).
    public func snapshot() -> [UInt8] {
        var writer = TLSWriter(capacity: 4096)
        writer.write(Self.snapshotFormatVersion)
        writer.write(UInt32(clamping: configuration.padding.blockSize))
        writer.write(configuration.secretTree.maxForwardDistance)
        writer.write(UInt32(clamping: configuration.secretTree.outOfOrderTolerance))
        writer.write(UInt32(clamping: configuration.resumptionPSKWindow))
        writer.write(UInt8(configuration.handshakeAsPublicMessage ? 1 : 0))
        writer.write(UInt8(configuration.ratchetTreeExtension ? 1 : 0))
        context.encode(to: &writer)
        tree.exported.encode(to: &writer)
        writer.writeOpaque(interimTranscriptHash)
        writer.writeOpaque(confirmationTag)
        writer.writeVector { inner in
            for (reference, cached) in state.proposals.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                inner.writeOpaque(reference)
                cached.proposal.encode(to: &inner)
                cached.sender.encode(to: &inner)
            }
        }
        ownLeaf.encode(to: &writer)
        writer.writeVector { inner in
            for (node, pair) in treeSecrets.allKeys.sorted(by: { $0.key < $1.key }) {
                inner.write(node.rawValue)
                inner.writeOpaque(pair.privateKey.secret.bytes)
                pair.publicKey.encode(to: &inner)
            }
        }
        writer.writeOpaque(signer.serialized.bytes)
        for secret in epochSecrets.allBytes { writer.writeOpaque(secret) }
        secretTree.encode(to: &writer)
        writer.writeVector { inner in
            for (epoch, psk) in resumptionPSKs.sorted(by: { $0.key < $1.key }) {
                inner.write(epoch)
                inner.writeOpaque(psk.bytes)
            }
        }
        writer.writeOptional(pendingReInit)
        writer.writeVector { inner in
            for (publicKey, pair) in pendingLeafKeys.sorted(by: { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }) {
                inner.writeOpaque(pair.privateKey.secret.bytes)
                publicKey.encode(to: &inner)
            }
        }
        return writer.bytes
    }

    /// Restores a group from ``snapshot()`` bytes. The tree must hash to the
    /// context's tree hash and every private key must match its node.
    public init(snapshot bytes: [UInt8]) throws(MLSError) {
        do {
            var reader = TLSReader(bytes)
            guard try reader.readUInt16("GroupSnapshot.format_version") == Self.snapshotFormatVersion else {
                throw MLSError(.malformed, "snapshot", "unknown snapshot format version")
            }
            let configuration = GroupConfiguration(
                padding: PaddingPolicy(blockSize: Int(try reader.readUInt32("padding"))),
                secretTree: SecretTreeConfiguration(
                    maxForwardDistance: try reader.readUInt32("max_forward_distance"),
                    outOfOrderTolerance: Int(try reader.readUInt32("out_of_order_tolerance"))),
                resumptionPSKWindow: Int(try reader.readUInt32("resumption_window")),
                handshakeAsPublicMessage: try Self.readFlag(&reader, "public_handshake"),
                ratchetTreeExtension: try Self.readFlag(&reader, "ratchet_tree_extension"))
            guard configuration.isWithinLimits else { throw MLSError(.malformed, "snapshot", "snapshot configuration out of range") }
            let context = try GroupContext(from: &reader)
            guard context.epoch < UInt64.max else { throw MLSError(.malformed, "snapshot", "snapshot epoch exhausted") }
            let provider = try CipherSuiteProvider(context.cipherSuite)
            let tree = try RatchetTree(provider, nodes: try RatchetTreeNodes(from: &reader))
            guard constantTimeEqual(tree.treeHash, context.treeHash) else {
                throw MLSError(.malformed, "snapshot", "snapshot tree does not match its context")
            }
            // Structural checks only: the snapshot is this device's own state, whose
            // integrity comes from its encryption at rest; a full join-time check
            // (every signature and parent hash) would make resuming O(n) signatures.
            try tree.verifyUnmergedLeaves()
            try tree.verifyKeyUniqueness()
            let interim = try reader.readOpaque("interim_transcript_hash")
            let tag = try reader.readOpaque("confirmation_tag")
            var publicState = PublicGroup(
                provider: provider, context: context, tree: tree, interimTranscriptHash: interim, confirmationTag: tag)
            publicState.proposals = try reader.readVector("proposals") { inner in
                var proposals: [[UInt8]: PublicGroup.CachedProposal] = [:]
                while !inner.isAtEnd {
                    let reference = try inner.readOpaque("ref")
                    proposals[reference] = PublicGroup.CachedProposal(
                        proposal: try Proposal(from: &inner), sender: try Sender(from: &inner))
                }
                return proposals
            }
            let ownLeaf = try LeafIndex(from: &reader)
            let keys = try reader.readVector("tree_keys") { inner in
                var keys: [NodeIndex: HPKEKeyPair] = [:]
                while !inner.isAtEnd {
                    let node = NodeIndex(try inner.readUInt32("node"))
                    let privateKey = HPKEPrivateKey(try inner.readOpaque("private"))
                    keys[node] = HPKEKeyPair(privateKey: privateKey, publicKey: try HPKEPublicKey(from: &inner))
                }
                return keys
            }
            guard let leafKey = keys[ownLeaf.nodeIndex], tree.leaf(ownLeaf) != nil else {
                throw MLSError(.malformed, "snapshot", "snapshot has no key for its own leaf")
            }
            var treeSecrets = TreeSecrets(leaf: ownLeaf, leafKey: leafKey)
            for (node, pair) in keys {
                guard tree.encryptionKey(node) == pair.publicKey, try provider.hpkePublicKey(of: pair.privateKey) == pair.publicKey else {
                    throw MLSError(.malformed, "snapshot", "snapshot key does not match its node")
                }
                treeSecrets.set(pair, for: node)
            }
            let signer = try provider.signaturePrivateKey(try reader.readOpaque("signature_private_key"))
            guard tree.leaf(ownLeaf)?.signatureKey == signer.publicKey else {
                throw MLSError(.malformed, "snapshot", "snapshot signature key is not its leaf's")
            }
            var secrets: [[UInt8]] = []
            for _ in 0..<EpochSecrets.count { secrets.append(try reader.readOpaque("epoch_secret")) }
            let epochSecrets = EpochSecrets(allBytes: secrets)
            let secretTree = try SecretTree(from: &reader, provider: provider, configuration: configuration.secretTree)
            guard secretTree.leafCount == tree.leafCount else {
                throw MLSError(.malformed, "snapshot", "snapshot secret tree does not match the ratchet tree")
            }
            let resumption = try reader.readVector("resumption_psks") { inner in
                var psks: [UInt64: ResumptionPSK] = [:]
                while !inner.isAtEnd { psks[try inner.readUInt64("epoch")] = ResumptionPSK(try inner.readOpaque("psk")) }
                return psks
            }
            let reinit = try reader.readOptional(of: ReInit.self, "pending_reinit")
            let leafKeys = try reader.readVector("pending_leaf_keys") { inner in
                var keys: [HPKEPublicKey: HPKEKeyPair] = [:]
                while !inner.isAtEnd {
                    let privateKey = HPKEPrivateKey(try inner.readOpaque("private"))
                    let publicKey = try HPKEPublicKey(from: &inner)
                    keys[publicKey] = HPKEKeyPair(privateKey: privateKey, publicKey: publicKey)
                }
                return keys
            }
            for (publicKey, pair) in leafKeys where try provider.hpkePublicKey(of: pair.privateKey) != publicKey {
                throw MLSError(.malformed, "snapshot", "snapshot Update key does not match its public key")
            }
            guard resumption.keys.allSatisfy({ $0 < context.epoch }) else {
                throw MLSError(.malformed, "snapshot", "snapshot resumption PSK from a future epoch")
            }
            guard reader.isAtEnd else { throw CodecError(.trailingBytes, "GroupSnapshot", offset: reader.position) }
            self.init(
                state: publicState, treeSecrets: treeSecrets, signer: signer, epochSecrets: epochSecrets, secretTree: secretTree,
                resumptionPSKs: resumption, pendingReInit: reinit, configuration: configuration)
            pendingLeafKeys = leafKeys
        } catch let error as MLSError {
            throw error
        } catch let error as CodecError {
            throw MLSError(error)
        } catch {
            throw MLSError(.malformed, "snapshot", "undecodable snapshot")
        }
    }
}

extension Group {
    /// A boolean octet: 0 or 1, nothing else (the encoding stays canonical).
    fileprivate static func readFlag(_ reader: inout TLSReader, _ context: String) throws(CodecError) -> Bool {
        switch try reader.readUInt8(context) {
        case 0: return false
        case 1: return true
        default: throw CodecError(.invalidValue, context, offset: reader.position - 1)
        }
    }
}

extension TreeSecrets {
    var allKeys: [NodeIndex: HPKEKeyPair] { keys }
}

extension EpochSecrets {
    static let count = 11

    /// The secrets in a fixed order, for the snapshot.
    var allBytes: [[UInt8]] {
        [
            joinerSecret.bytes, welcomeSecret.bytes, senderDataSecret.bytes, encryptionSecret.bytes, exporterSecret.bytes,
            externalSecret.bytes, confirmationKey.bytes, membershipKey.bytes, resumptionPSK.bytes, epochAuthenticator.bytes,
            initSecret.bytes,
        ]
    }

    init(allBytes secrets: [[UInt8]]) {
        self.init(
            joinerSecret: JoinerSecret(secrets[0]), welcomeSecret: WelcomeSecret(secrets[1]),
            senderDataSecret: SenderDataSecret(secrets[2]),
            encryptionSecret: EncryptionSecret(secrets[3]), exporterSecret: ExporterSecret(secrets[4]),
            externalSecret: ExternalSecret(secrets[5]), confirmationKey: ConfirmationKey(secrets[6]),
            membershipKey: MembershipKey(secrets[7]),
            resumptionPSK: ResumptionPSK(secrets[8]), epochAuthenticator: EpochAuthenticator(secrets[9]),
            initSecret: InitSecret(secrets[10]))
    }
}
