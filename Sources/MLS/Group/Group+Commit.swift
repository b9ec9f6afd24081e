import MLSCodec

extension Group {
    /// Processes a verified commit from another member or an external joiner
    /// (§12.4.2) and moves this group to the next epoch.
    mutating func applyCommit(_ authenticated: AuthenticatedContent, psks: PSKStore, now: ValidationTime) throws(MLSError) -> CommitSummary
    {
        let staged = try state.stageCommit(authenticated, now: now)
        let applied = staged.applied
        let removedSelf = applied.removed.contains(ownLeaf)
        let summary = CommitSummary(
            sender: authenticated.content.sender, committer: staged.committer, added: applied.added, removed: applied.removed,
            updated: applied.updated, reinit: applied.reinit, removedSelf: removedSelf, epoch: staged.next.epoch)
        if removedSelf {
            // The rest of the group moves on; this member can derive nothing more.
            return summary
        }

        var newSecrets = treeSecrets
        if let leafKey = staged.next.tree.leaf(ownLeaf).flatMap({ pendingLeafKeys[$0.encryptionKey] }) {
            // Another member committed this member's Update proposal.
            newSecrets.set(leafKey, for: ownLeaf.nodeIndex)
        }
        newSecrets.prune(against: staged.next.tree)
        var commitSecret = CommitSecret(KeySchedule.zeroSecret(provider))
        if case .commit(let commit) = authenticated.content.content, let path = commit.path {
            commitSecret = try TreeKEM.decryptPath(
                staged.next.tree, path, sender: staged.committer, secrets: &newSecrets, newMembers: Set(applied.added),
                context: staged.provisionalContext
            ).commitSecret
        }

        let initSecret: InitSecret
        if let kemOutput = applied.externalInit {
            let external = try KeySchedule.externalKeyPair(provider, externalSecret: epochSecrets.externalSecret)
            initSecret = InitSecret(
                try provider.hpkeExportReceive(
                    privateKey: external.privateKey, kemOutput: kemOutput, info: [], exporterContext: Self.externalInitLabel,
                    length: provider.hashLength))
        } else {
            initSecret = epochSecrets.initSecret
        }
        let secrets = KeySchedule.epochSecrets(
            provider, initSecret: initSecret, commitSecret: commitSecret, pskSecret: try pskSecret(for: applied.psks, store: psks),
            groupContext: staged.next.context)
        let expectedTag = KeySchedule.confirmationTag(
            provider, confirmationKey: secrets.confirmationKey, confirmedTranscriptHash: staged.next.context.confirmedTranscriptHash)
        guard constantTimeEqual(expectedTag, staged.next.confirmationTag) else {
            throw MLSError(.invalidConfirmationTag, "§12.4.2", "commit confirmation tag does not verify")
        }

        treeSecrets = newSecrets
        pendingReInit = applied.reinit
        enterEpoch(staged.next, secrets: secrets)
        return summary
    }

    static let externalInitLabel = Array("MLS 1.0 external init secret".utf8)
}
