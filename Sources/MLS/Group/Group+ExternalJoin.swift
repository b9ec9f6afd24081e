import MLSCodec

extension Group {
    /// Joins a group by external commit (§12.4.3.2), from a GroupInfo with
    /// an `external_pub` extension. `removing` names this client's own old
    /// leaf when it rejoins (resynchronisation). The returned group is in the
    /// new epoch; send `commit` to the group, and if the Delivery Service
    /// refuses it, join again from a newer GroupInfo.
    public static func joinExternally(
        groupInfo: GroupInfo, ratchetTree: RatchetTreeNodes? = nil, credential: Credential, signer: SignaturePrivateKey,
        capabilities: Capabilities? = nil, leafExtensions: [Extension] = [], removing oldLeaf: LeafIndex? = nil,
        psks: [PreSharedKeyID] = [],
        pskStore: PSKStore = .empty,
        configuration: GroupConfiguration = .default, now: ValidationTime, random: some RandomSource
    ) throws(MLSError) -> (group: Group, commit: MLSMessage) {
        let state = try PublicGroup(groupInfo: groupInfo, ratchetTree: ratchetTree, now: now)
        let provider = state.provider
        guard let ext = groupInfo.extensions.first(ofType: .externalPub) else {
            throw MLSError(.invalidGroupInfo, "§12.4.3.2", "GroupInfo has no external_pub")
        }
        let externalPub = try decodeMLS(ExternalPub.self, from: ext.data).externalPub
        let (kemOutput, initSecret) = try provider.hpkeExportSend(
            publicKey: externalPub, info: [], exporterContext: externalInitLabel, length: provider.hashLength)

        let proposals =
            [Proposal.externalInit(kemOutput: kemOutput)] + (oldLeaf.map { [Proposal.remove($0)] } ?? [])
            + psks.map(Proposal.preSharedKey)
        let entries = proposals.map { ProposalEntry(proposal: $0, sender: .newMemberCommit) }
        try state.validateProposalList(entries, committer: nil)
        var applied = try state.applyProposals(entries, now: now)

        let leafKey = try provider.generateHPKEKeyPair(random: random)
        let template = LeafNode(
            encryptionKey: leafKey.publicKey, signatureKey: signer.publicKey, credential: credential,
            capabilities: capabilities
                ?? Capabilities(
                    versions: [.mls10], cipherSuites: [provider.suite], extensions: [], proposals: [], credentials: [credential.type]),
            source: .update, extensions: leafExtensions, signature: [])
        let ownLeaf = applied.tree.add(template)
        var treeSecrets = TreeSecrets(leaf: ownLeaf, leafKey: leafKey)
        var provisional = state.context
        provisional.epoch += 1
        provisional.extensions = applied.extensions
        let base = provisional
        let (created, withTreeHash) = try TreeKEM.createPath(
            &applied.tree, secrets: &treeSecrets, leafTemplate: template, signer: signer, groupID: state.groupID, newMembers: [],
            random: random
        ) { treeHash in
            var context = base
            context.treeHash = treeHash
            return context
        }
        provisional = withTreeHash

        let content = FramedContent(
            groupID: state.groupID, epoch: state.epoch, sender: .newMemberCommit, authenticatedData: [],
            content: .commit(Commit(proposals: proposals.map(ProposalOrRef.proposal), path: created.updatePath)))
        var signed = try AuthenticatedContent.sign(
            provider, wireFormat: .publicMessage, content: content, context: state.context, signer: signer,
            confirmationTag: KeySchedule.zeroSecret(provider))
        var newContext = provisional
        newContext.confirmedTranscriptHash = try TranscriptHash.confirmed(
            provider, interimBefore: state.interimTranscriptHash, commit: signed)
        var pskInputs: [PreSharedKeyInput] = []
        for id in psks { pskInputs.append(try pskStore.secret(for: id)) }
        let secrets = KeySchedule.epochSecrets(
            provider, initSecret: InitSecret(initSecret), commitSecret: created.commitSecret,
            pskSecret: try KeySchedule.pskSecret(provider, psks: pskInputs), groupContext: newContext)
        let tag = KeySchedule.confirmationTag(
            provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: newContext.confirmedTranscriptHash)
        signed.auth.confirmationTag = tag
        let message = MLSMessage(
            body: .publicMessage(try PublicMessage.protect(provider, signed, context: state.context, membershipKey: nil)))

        let next = state.advanced(tree: applied.tree, context: newContext, confirmationTag: tag)
        let group = Group(
            state: next, treeSecrets: treeSecrets, signer: signer, epochSecrets: secrets,
            secretTree: SecretTree(
                provider, encryptionSecret: secrets.encryptionSecret, leafCount: next.tree.leafCount,
                configuration: configuration.secretTree),
            configuration: configuration)
        return (group, message)
    }
}
