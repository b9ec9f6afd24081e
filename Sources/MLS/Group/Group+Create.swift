import MLSCodec

extension KeyPackageBundle {
    /// Creates a KeyPackage and its private keys (§10). `capabilities`
    /// defaults to this version, this suite and the credential's type.
    public static func create(
        _ provider: CipherSuiteProvider, credential: Credential, signer: SignaturePrivateKey, lifetime: Lifetime,
        capabilities: Capabilities? = nil, leafExtensions: [Extension] = [], extensions: [Extension] = [], random: some RandomSource
    ) throws(MLSError) -> KeyPackageBundle {
        let encryptionKey = try provider.generateHPKEKeyPair(random: random)
        let initKey = try provider.generateHPKEKeyPair(random: random)
        var leaf = LeafNode(
            encryptionKey: encryptionKey.publicKey, signatureKey: signer.publicKey, credential: credential,
            capabilities: capabilities
                ?? Capabilities(
                    versions: [.mls10], cipherSuites: [provider.suite], extensions: [], proposals: [], credentials: [credential.type]),
            source: .keyPackage(lifetime), extensions: leafExtensions, signature: [])
        try leaf.sign(provider, key: signer, groupID: [], leafIndex: LeafIndex(0))
        var keyPackage = KeyPackage(
            version: .mls10, cipherSuite: provider.suite, initKey: initKey.publicKey, leafNode: leaf, extensions: extensions, signature: [])
        keyPackage.signature = try provider.signWithLabel(signer, label: "KeyPackageTBS", content: keyPackage.toBeSigned)
        return KeyPackageBundle(keyPackage: keyPackage, initKey: initKey.privateKey, encryptionKey: encryptionKey, signer: signer)
    }
}

/// What sending a commit produces (§12.4).
public struct CommitOutput: Sendable {
    /// The commit to send to the group through the Delivery Service.
    public let commit: MLSMessage
    /// The Welcome for the members it adds, if any.
    public let welcome: Welcome?
}

extension Group {
    /// Creates a one-member group at epoch 0 (§11). The creator's leaf is the
    /// bundle's leaf node.
    public init(
        creating groupID: [UInt8], creator bundle: KeyPackageBundle, extensions: [Extension] = [],
        configuration: GroupConfiguration = .default, random: some RandomSource
    ) throws(MLSError) {
        let provider = try CipherSuiteProvider(bundle.keyPackage.cipherSuite)
        let tree = RatchetTree(provider, firstLeaf: bundle.keyPackage.leafNode)
        let context = GroupContext(
            cipherSuite: provider.suite, groupID: groupID, epoch: 0, treeHash: tree.treeHash, confirmedTranscriptHash: [],
            extensions: extensions)
        try bundle.keyPackage.leafNode.checkCapabilities(requiredBy: context)
        _ = try context.externalSenders()
        let secrets = KeySchedule.epochSecrets(
            provider, initSecret: InitSecret(random.bytes(count: provider.hashLength)),
            commitSecret: CommitSecret(KeySchedule.zeroSecret(provider)), pskSecret: nil, groupContext: context)
        let tag = KeySchedule.confirmationTag(provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: [])
        state = PublicGroup(
            provider: provider, context: context, tree: tree,
            interimTranscriptHash: TranscriptHash.interim(provider, confirmed: [], confirmationTag: tag), confirmationTag: tag)
        treeSecrets = TreeSecrets(leaf: LeafIndex(0), leafKey: bundle.encryptionKey)
        signer = bundle.signer
        epochSecrets = secrets
        secretTree = SecretTree(
            provider, encryptionSecret: secrets.encryptionSecret, leafCount: tree.leafCount, configuration: configuration.secretTree)
        self.configuration = configuration
    }

    /// This epoch's GroupInfo, signed by this member (§12.4.3), with the tree
    /// and the `external_pub` that external joiners need.
    public func groupInfo(includeTree: Bool = true, includeExternalPub: Bool = true) throws(MLSError) -> GroupInfo {
        var extensions: [Extension] = []
        if includeTree { extensions.append(Extension(type: .ratchetTree, data: tree.exported.tlsSerialized)) }
        if includeExternalPub {
            extensions.append(Extension(type: .externalPub, data: ExternalPub(externalPub: try externalPublicKey()).tlsSerialized))
        }
        var info = GroupInfo(
            groupContext: context, extensions: extensions, confirmationTag: confirmationTag, signer: ownLeaf, signature: [])
        info.signature = try provider.signWithLabel(signer, label: "GroupInfoTBS", content: info.toBeSigned)
        return info
    }

    /// Encrypts application data as a PrivateMessage (§6.3).
    public mutating func encrypt(_ data: [UInt8], authenticatedData: [UInt8] = [], random: some RandomSource) throws(MLSError) -> MLSMessage
    {
        guard pendingReInit == nil else { throw MLSError(.groupReinitialised, "§11.2", "the group was reinitialised") }
        let content = FramedContent(
            groupID: groupID, epoch: epoch, sender: .member(ownLeaf), authenticatedData: authenticatedData, content: .application(data))
        let signed = try AuthenticatedContent.sign(
            provider, wireFormat: .privateMessage, content: content, context: context, signer: signer)
        return MLSMessage(
            body: .privateMessage(
                try PrivateMessage.protect(
                    provider, signed, secretTree: &secretTree, senderDataSecret: epochSecrets.senderDataSecret,
                    padding: configuration.padding,
                    random: random)))
    }

    /// Sends a proposal (§12.1) and caches it, so that this member's commits
    /// can refer to it: Add, Remove, PreSharedKey, ReInit, GroupContextExtensions.
    /// For an Update use ``proposeUpdate(random:)``.
    public mutating func propose(_ proposal: Proposal, random: some RandomSource) throws(MLSError) -> MLSMessage {
        switch proposal {
        case .update: throw MLSError(.invalidUse, "§12.1.2", "use proposeUpdate for an Update")
        case .externalInit: throw MLSError(.invalidUse, "§12.1.6", "an ExternalInit goes only in an external commit")
        default: break
        }
        let content = FramedContent(
            groupID: groupID, epoch: epoch, sender: .member(ownLeaf), authenticatedData: [], content: .proposal(proposal))
        let (authenticated, message) = try frameHandshake(content, confirmationTag: nil, random: random)
        try state.cache(authenticated)
        sentProposals[message.tlsSerialized] = proposal
        return message
    }

    /// Proposes to replace this member's leaf with a fresh encryption key
    /// (§12.1.2). Another member must commit it; this member's own commits
    /// leave it out (a committer updates through its path instead).
    public mutating func proposeUpdate(random: some RandomSource) throws(MLSError) -> MLSMessage {
        guard var leaf = ownLeafNode else { throw MLSError(.invalidUse, "§12.1.2", "own leaf is blank") }
        let key = try provider.generateHPKEKeyPair(random: random)
        leaf.encryptionKey = key.publicKey
        leaf.source = .update
        try leaf.sign(provider, key: signer, groupID: groupID, leafIndex: ownLeaf)
        let content = FramedContent(
            groupID: groupID, epoch: epoch, sender: .member(ownLeaf), authenticatedData: [], content: .proposal(.update(leaf)))
        let (authenticated, message) = try frameHandshake(content, confirmationTag: nil, random: random)
        try state.cache(authenticated)
        pendingLeafKeys[key.publicKey] = key
        sentProposals[message.tlsSerialized] = .update(leaf)
        return message
    }

    /// Signs and frames handshake content as this member, as PublicMessage
    /// or PrivateMessage per the configuration.
    private mutating func frameHandshake(
        _ content: FramedContent, confirmationTag: [UInt8]?, random: some RandomSource
    ) throws(MLSError) -> (AuthenticatedContent, MLSMessage) {
        let wireFormat: WireFormat = configuration.handshakeAsPublicMessage ? .publicMessage : .privateMessage
        let signed = try AuthenticatedContent.sign(
            provider, wireFormat: wireFormat, content: content, context: context, signer: signer, confirmationTag: confirmationTag)
        return (signed, try frame(signed, random: random))
    }

    private mutating func frame(_ signed: AuthenticatedContent, random: some RandomSource) throws(MLSError) -> MLSMessage {
        switch signed.wireFormat {
        case .publicMessage:
            return MLSMessage(
                body: .publicMessage(
                    try PublicMessage.protect(provider, signed, context: context, membershipKey: epochSecrets.membershipKey)))
        default:
            return MLSMessage(
                body: .privateMessage(
                    try PrivateMessage.protect(
                        provider, signed, secretTree: &secretTree, senderDataSecret: epochSecrets.senderDataSecret,
                        padding: configuration.padding, random: random)))
        }
    }

    /// Builds a commit (§12.4.1) of the given proposals by value plus, with
    /// `includePending`, every proposal received this epoch by reference
    /// (leaving out any that removes this member). A removal asked for here
    /// of a leaf that a pending proposal removes already is left to that
    /// proposal (§12.2 allows one Remove per leaf). The group does not
    /// change until ``mergePendingCommit()``; ``discardPendingCommit()``
    /// drops it.
    public mutating func commit(
        adding keyPackages: [KeyPackage] = [], removing removals: [LeafIndex] = [], proposals extra: [Proposal] = [],
        includePending: Bool = true, forcePath: Bool = false, authenticatedData: [UInt8] = [], psks: PSKStore = .empty,
        now: ValidationTime, random: some RandomSource
    ) throws(MLSError) -> CommitOutput {
        guard pendingReInit == nil else { throw MLSError(.groupReinitialised, "§11.2", "the group was reinitialised") }
        guard epoch < UInt64.max else { throw MLSError(.epochExhausted, "§8.1", "the epoch counter is exhausted") }
        let me = Sender.member(ownLeaf)
        let removedByPending: Set<LeafIndex> =
            includePending ? Set(state.proposals.values.compactMap { if case .remove(let leaf) = $0.proposal { leaf } else { nil } }) : []
        let byValue = keyPackages.map(Proposal.add) + removals.filter { !removedByPending.contains($0) }.map(Proposal.remove) + extra
        var entries = byValue.map { ProposalEntry(proposal: $0, sender: me) }
        var items = byValue.map(ProposalOrRef.proposal)
        if includePending {
            for (reference, cached) in state.proposals.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                if case .remove(let leaf) = cached.proposal, leaf == ownLeaf { continue }
                if case .update = cached.proposal, cached.sender == me { continue }
                entries.append(ProposalEntry(proposal: cached.proposal, sender: cached.sender))
                items.append(.reference(reference))
            }
        }
        try state.validateProposalList(entries, committer: ownLeaf)
        let applied = try state.applyProposals(entries, now: now)

        var provisional = context
        provisional.epoch += 1
        provisional.extensions = applied.extensions
        var newTree = applied.tree
        var newSecrets = treeSecrets
        newSecrets.prune(against: newTree)
        var commitSecret = CommitSecret(KeySchedule.zeroSecret(provider))
        var pathSecrets: [NodeIndex: SecretBytes] = [:]
        var path: UpdatePath?
        if applied.pathRequired || forcePath {
            guard let template = newTree.leaf(ownLeaf) else { throw MLSError(.invalidUse, "§12.4", "own leaf is blank") }
            let base = provisional
            let (created, withTreeHash) = try TreeKEM.createPath(
                &newTree, secrets: &newSecrets, leafTemplate: template, signer: signer, groupID: groupID, newMembers: Set(applied.added),
                random: random
            ) { treeHash in
                var context = base
                context.treeHash = treeHash
                return context
            }
            provisional = withTreeHash
            commitSecret = created.commitSecret
            pathSecrets = created.pathSecrets
            path = created.updatePath
        } else {
            provisional.treeHash = newTree.treeHash
        }

        let content = FramedContent(
            groupID: groupID, epoch: epoch, sender: me, authenticatedData: authenticatedData,
            content: .commit(Commit(proposals: items, path: path)))
        let wireFormat: WireFormat = configuration.handshakeAsPublicMessage ? .publicMessage : .privateMessage
        // The signature does not cover the confirmation tag, which depends on it.
        var signed = try AuthenticatedContent.sign(
            provider, wireFormat: wireFormat, content: content, context: context, signer: signer,
            confirmationTag: KeySchedule.zeroSecret(provider))
        var newContext = provisional
        newContext.confirmedTranscriptHash = try TranscriptHash.confirmed(provider, interimBefore: interimTranscriptHash, commit: signed)
        let secrets = KeySchedule.epochSecrets(
            provider, initSecret: epochSecrets.initSecret, commitSecret: commitSecret,
            pskSecret: try pskSecret(for: applied.psks, store: psks), groupContext: newContext)
        let tag = KeySchedule.confirmationTag(
            provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: newContext.confirmedTranscriptHash)
        signed.auth.confirmationTag = tag

        let nextState = state.advanced(tree: newTree, context: newContext, confirmationTag: tag)
        var next = self
        next.treeSecrets = newSecrets
        next.pendingReInit = applied.reinit
        next.enterEpoch(nextState, secrets: secrets)

        var welcome: Welcome?
        let addedKeyPackages = entries.compactMap { entry -> KeyPackage? in
            if case .add(let keyPackage) = entry.proposal { return keyPackage }
            return nil
        }
        if !addedKeyPackages.isEmpty {
            let groupInfo = try next.groupInfo(includeTree: configuration.ratchetTreeExtension, includeExternalPub: false)
            let welcomeKey = KeySchedule.welcomeKeyAndNonce(provider, welcomeSecret: secrets.welcomeSecret)
            let encryptedGroupInfo = try provider.seal(
                key: welcomeKey.key, nonce: welcomeKey.nonce, aad: [], plaintext: groupInfo.tlsSerialized)
            var encrypted: [EncryptedGroupSecrets] = []
            for (leaf, keyPackage) in zip(applied.added, addedKeyPackages) {
                let ancestor = TreeMath.commonAncestor(leaf.nodeIndex, ownLeaf.nodeIndex)
                let groupSecrets = GroupSecrets(
                    joinerSecret: secrets.joinerSecret.value, pathSecret: pathSecrets[ancestor], psks: applied.psks)
                encrypted.append(
                    EncryptedGroupSecrets(
                        newMember: keyPackage.reference(provider),
                        encryptedGroupSecrets: try provider.encryptWithLabel(
                            keyPackage.initKey, label: "Welcome", context: encryptedGroupInfo, plaintext: groupSecrets.tlsSerialized)))
            }
            welcome = Welcome(cipherSuite: provider.suite, secrets: encrypted, encryptedGroupInfo: encryptedGroupInfo)
        }
        // Framing last: for a PrivateMessage it consumes a ratchet key, and
        // nothing may change in this group if an earlier step failed.
        let message = try frame(signed, random: random)
        pendingCommit = PendingCommit(message: message, next: next)
        return CommitOutput(commit: message, welcome: welcome)
    }

    /// Whether a commit of this member awaits the Delivery Service's verdict.
    public var hasPendingCommit: Bool { pendingCommit != nil }

    /// Moves to the epoch of this member's pending commit, once accepted.
    public mutating func mergePendingCommit() throws(MLSError) {
        guard let pending = pendingCommit else { throw MLSError(.invalidUse, "§12.4", "no pending commit") }
        self = pending.next
    }

    /// Drops the pending commit (the Delivery Service took another).
    public mutating func discardPendingCommit() { pendingCommit = nil }
}
