import MLSCodec

/// A proposal together with who proposed it.
struct ProposalEntry: Sendable {
    let proposal: Proposal
    let sender: Sender
}

/// The result of applying a proposal list to the tree and context (§12.3).
struct AppliedProposals: Sendable {
    var tree: RatchetTree
    var extensions: [Extension]
    var added: [LeafIndex] = []
    var removed: [LeafIndex] = []
    var updated: [LeafIndex] = []
    var psks: [PreSharedKeyID] = []
    var externalInit: [UInt8]?
    var reinit: ReInit?
    var pathRequired: Bool
}

extension PublicGroup {
    /// Checks one proposal on receipt (§12.1), before it is cached.
    func validateReceivedProposal(_ proposal: Proposal, sender: Sender) throws(MLSError) {
        switch proposal {
        case .update:
            guard case .member = sender else { throw MLSError(.invalidSender, "§12.1.2", "an Update comes from a member") }
        case .externalInit:
            throw MLSError(.invalidProposal, "§12.1.6", "an ExternalInit is only sent by value in an external commit")
        default:
            break
        }
    }

    /// Resolves a commit's proposals: by value from the committer, by
    /// reference from this epoch's cache (§12.4).
    func resolve(_ commit: Commit, committer: Sender) throws(MLSError) -> [ProposalEntry] {
        var entries: [ProposalEntry] = []
        for item in commit.proposals {
            switch item {
            case .proposal(let proposal):
                entries.append(ProposalEntry(proposal: proposal, sender: committer))
            case .reference(let reference):
                guard let cached = proposals[reference] else {
                    throw MLSError(.invalidCommit, "§12.4", "commit refers to an unknown proposal")
                }
                entries.append(ProposalEntry(proposal: cached.proposal, sender: cached.sender))
            }
        }
        return entries
    }

    /// Proposal-list validation (§12.2) for a commit by `committer`
    /// (nil for an external commit).
    func validateProposalList(_ entries: [ProposalEntry], committer: LeafIndex?) throws(MLSError) {
        func invalid(_ message: String) -> MLSError { MLSError(.invalidProposal, "§12.2", message) }
        var pskIDs = Set<PreSharedKeyID>()
        for entry in entries {
            if case .preSharedKey(let id) = entry.proposal, !pskIDs.insert(id).inserted { throw invalid("one PSK proposed twice") }
        }
        guard let committer else {
            let types = entries.map(\.proposal.type)
            guard types.filter({ $0 == .externalInit }).count == 1, types.filter({ $0 == .remove }).count <= 1,
                types.allSatisfy({ [.externalInit, .remove, .psk].contains($0) })
            else { throw invalid("external commit proposals are not one ExternalInit, at most one Remove and PSKs") }
            return
        }
        var touched = Set<LeafIndex>()
        var removed = Set<LeafIndex>()
        var addedKeys = Set<SignaturePublicKey>()
        var contextExtensions = 0
        for entry in entries {
            switch entry.proposal {
            case .update:
                guard case .member(let leaf) = entry.sender, leaf != committer else {
                    throw invalid("the committer cannot commit its own Update")
                }
                guard touched.insert(leaf).inserted else { throw invalid("two Updates or Removes for one leaf") }
            case .remove(let leaf):
                guard leaf != committer else { throw invalid("the committer cannot remove itself") }
                guard touched.insert(leaf).inserted else { throw invalid("two Updates or Removes for one leaf") }
                removed.insert(leaf)
            case .add(let keyPackage):
                guard addedKeys.insert(keyPackage.leafNode.signatureKey).inserted else { throw invalid("two Adds for one client") }
            case .preSharedKey:
                break
            case .groupContextExtensions:
                contextExtensions += 1
            case .reinit:
                guard entries.count == 1 else { throw invalid("a ReInit must be committed alone") }
            case .externalInit:
                throw invalid("an ExternalInit in a member's commit")
            }
        }
        guard contextExtensions <= 1 else { throw invalid("more than one GroupContextExtensions") }
        for key in addedKeys {
            if let member = tree.leaf(signingWith: key), !removed.contains(member) { throw invalid("Add of a client already in the group") }
        }
    }

    /// Applies a validated proposal list (§12.3) and checks each proposal
    /// against the state it applies to (§12.1).
    func applyProposals(_ entries: [ProposalEntry], now: ValidationTime) throws(MLSError) -> AppliedProposals {
        var applied = AppliedProposals(tree: tree, extensions: context.extensions, pathRequired: entries.isEmpty)
        var newContext = context

        var extensionsChanged = false
        for entry in entries {
            guard case .groupContextExtensions(let extensions) = entry.proposal else { continue }
            newContext.extensions = extensions
            _ = try newContext.externalSenders()
            applied.extensions = extensions
            applied.pathRequired = true
            extensionsChanged = true
        }
        for entry in entries {
            guard case .update(let leafNode) = entry.proposal, case .member(let leaf) = entry.sender else { continue }
            guard let current = applied.tree.leaf(leaf), current.encryptionKey != leafNode.encryptionKey else {
                throw MLSError(.invalidProposal, "§12.1.2", "Update for a blank leaf, or with an unchanged encryption key")
            }
            try leafNode.validate(provider, context: newContext, leafIndex: leaf, source: .update, tree: applied.tree, now: now)
            applied.tree.update(leaf, with: leafNode)
            applied.updated.append(leaf)
            applied.pathRequired = true
        }
        for entry in entries {
            guard case .remove(let leaf) = entry.proposal else { continue }
            guard applied.tree.leaf(leaf) != nil else { throw MLSError(.invalidProposal, "§12.1.3", "Remove of a blank leaf") }
            applied.tree.remove(leaf)
            applied.removed.append(leaf)
            applied.pathRequired = true
        }
        if extensionsChanged {
            // The members that stay (updated, not removed) must support the new extensions (§12.1.7).
            try newContext.checkExtensionsSupported(by: applied.tree)
            for (_, member) in applied.tree.members { try member.checkCapabilities(requiredBy: newContext) }
        }
        for entry in entries {
            guard case .add(let keyPackage) = entry.proposal else { continue }
            try keyPackage.validate(provider, context: newContext, tree: applied.tree, now: now)
            applied.added.append(applied.tree.add(keyPackage.leafNode))
        }
        for entry in entries {
            switch entry.proposal {
            case .preSharedKey(let id):
                guard id.nonce.count == provider.hashLength else {
                    throw MLSError(.invalidPreSharedKey, "§8.4", "PSK nonce is not Nh bytes")
                }
                // Reinit and branch PSKs belong only to the initial commit of the
                // group they start (§11.2, §11.3).
                if case .resumption(let usage, _, _) = id.kind, usage != .application, context.epoch != 0 {
                    throw MLSError(.invalidPreSharedKey, "§12.1.4", "a reinit or branch PSK outside a new group's first commit")
                }
                applied.psks.append(id)
            case .externalInit(let kemOutput):
                applied.externalInit = kemOutput
                applied.pathRequired = true
            case .reinit(let reinit):
                guard reinit.version.rawValue >= context.version.rawValue else {
                    throw MLSError(.invalidProposal, "§12.1.5", "ReInit to an older protocol version")
                }
                applied.reinit = reinit
            default:
                break
            }
        }
        try applied.tree.verifyKeyUniqueness()
        return applied
    }

    static let defaultExtensionTypes: Set<ExtensionType> = [
        .applicationID, .ratchetTree, .requiredCapabilities, .externalPub, .externalSenders,
    ]
}
