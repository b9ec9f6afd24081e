import MLSCodec

extension Group {
    /// Processes a verified commit from another member or an external joiner
    /// (§12.4.2) and moves this group to the next epoch.
    mutating func applyCommit(_ authenticated: AuthenticatedContent, psks: PSKStore, now: UInt64?) throws(MLSError) -> CommitSummary {
        guard case .commit(let commit) = authenticated.content.content, let confirmationTag = authenticated.auth.confirmationTag else {
            throw MLSError(.invalidContentType, "§12.4", "not a commit")
        }
        let sender = authenticated.content.sender
        let committerLeaf: LeafIndex?
        switch sender {
        case .member(let leaf): committerLeaf = leaf
        case .newMemberCommit: committerLeaf = nil
        default: throw MLSError(.invalidSender, "§12.4", "a commit comes from a member or an external joiner")
        }

        let entries = try resolve(commit, committer: sender)
        try validateProposalList(entries, committer: committerLeaf)
        var applied = try applyProposals(entries, now: now)
        if committerLeaf == nil { applied.pathRequired = true }
        guard commit.path != nil || !applied.pathRequired else {
            throw MLSError(.invalidArgument, "§12.4", "this commit must carry a path")
        }

        var newTree = applied.tree
        var newSecrets = treeSecrets
        var provisional = context
        provisional.epoch += 1
        provisional.extensions = applied.extensions
        let removedSelf = applied.removed.contains(ownLeaf)

        var commitSecret = CommitSecret(KeySchedule.zeroSecret(provider))
        let committer: LeafIndex
        if let path = commit.path {
            if let committerLeaf {
                committer = committerLeaf
                guard newTree.leaf(committer)?.encryptionKey != path.leafNode.encryptionKey else {
                    throw MLSError(.invalidArgument, "§12.4.2", "commit path keeps the committer's encryption key")
                }
            } else {
                committer = newTree.add(path.leafNode)
            }
            try path.leafNode.validate(provider, context: provisional, leafIndex: committer, source: .commit, tree: newTree, now: now)
            let existingKeys = Set(newTree.members.map(\.leaf.encryptionKey))
            guard path.nodes.allSatisfy({ !existingKeys.contains($0.encryptionKey) }) else {
                throw MLSError(.invalidArgument, "§12.4.2", "an UpdatePath key is already in the tree")
            }
            try TreeKEM.mergePath(&newTree, path, sender: committer, groupID: groupID)
            try newTree.verifyKeyUniqueness()
            provisional.treeHash = newTree.treeHash
            if !removedSelf {
                newSecrets.prune(against: newTree)
                commitSecret = try TreeKEM.decryptPath(
                    newTree, path, sender: committer, secrets: &newSecrets, newMembers: Set(applied.added), context: provisional
                ).commitSecret
            }
        } else {
            guard let committerLeaf else { throw MLSError(.invalidArgument, "§12.4.3.2", "an external commit must carry a path") }
            committer = committerLeaf
            provisional.treeHash = newTree.treeHash
        }

        let summary = CommitSummary(
            sender: sender, committer: committer, added: applied.added, removed: applied.removed, updated: applied.updated,
            reinit: applied.reinit, removedSelf: removedSelf, epoch: provisional.epoch)
        if removedSelf {
            // The rest of the group moves on; this member can derive nothing more.
            return summary
        }

        var newContext = provisional
        newContext.confirmedTranscriptHash = try TranscriptHash.confirmed(
            provider, interimBefore: interimTranscriptHash, commit: authenticated)
        let pskSecret = try pskSecret(for: applied.psks, store: psks)
        let initSecret: InitSecret
        if let kemOutput = applied.externalInit {
            let external = try KeySchedule.externalKeyPair(provider, externalSecret: epochSecrets.externalSecret)
            initSecret = InitSecret(
                try provider.hpkeExportReceive(
                    privateKey: external.privateKey, kemOutput: kemOutput, info: [],
                    exporterContext: Array("MLS 1.0 external init secret".utf8), length: provider.hashLength))
        } else {
            initSecret = epochSecrets.initSecret
        }
        let secrets = KeySchedule.epochSecrets(
            provider, initSecret: initSecret, commitSecret: commitSecret, pskSecret: pskSecret, groupContext: newContext)
        let expectedTag = KeySchedule.confirmationTag(
            provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: newContext.confirmedTranscriptHash)
        guard constantTimeEqual(expectedTag, confirmationTag) else {
            throw MLSError(.invalidConfirmationTag, "§12.4.2", "commit confirmation tag does not verify")
        }

        let previous = self
        newSecrets.prune(against: newTree)
        context = newContext
        tree = newTree
        treeSecrets = newSecrets
        interimTranscriptHash = TranscriptHash.interim(
            provider, confirmed: newContext.confirmedTranscriptHash, confirmationTag: confirmationTag)
        self.confirmationTag = confirmationTag
        pendingReInit = applied.reinit
        enterEpoch(secrets, keepingHistoryOf: previous)
        return summary
    }

    /// psk_secret for the PSKs of a commit or Welcome (§8.4).
    func pskSecret(for ids: [PreSharedKeyID], store: PSKStore) throws(MLSError) -> PSKSecret {
        let merged = pskStore(store)
        var inputs: [PreSharedKeyInput] = []
        for id in ids { inputs.append(try merged.secret(for: id)) }
        return try KeySchedule.pskSecret(provider, psks: inputs)
    }
}
