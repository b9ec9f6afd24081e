import MLSCodec

/// The public view of a group (RFC 9420 §12): its GroupContext, ratchet tree
/// and transcript, with no private key. It verifies and applies
/// PublicMessage proposals and commits, so a Delivery Service can track
/// membership and check policy; members build on it for their own state.
public struct PublicGroup: Sendable {
    public let provider: CipherSuiteProvider
    public internal(set) var context: GroupContext
    public internal(set) var tree: RatchetTree
    public internal(set) var interimTranscriptHash: [UInt8]
    public internal(set) var confirmationTag: [UInt8]
    /// Proposals received in this epoch, by ProposalRef (§12.4).
    var proposals: [[UInt8]: CachedProposal] = [:]

    struct CachedProposal: Sendable, Hashable {
        let proposal: Proposal
        let sender: Sender
    }

    init(provider: CipherSuiteProvider, context: GroupContext, tree: RatchetTree, interimTranscriptHash: [UInt8], confirmationTag: [UInt8])
    {
        self.provider = provider
        self.context = context
        self.tree = tree
        self.interimTranscriptHash = interimTranscriptHash
        self.confirmationTag = confirmationTag
    }

    /// Starts following a group from its GroupInfo (§12.4.3): checks the
    /// signature and the whole tree (§12.4.3.1).
    public init(groupInfo: GroupInfo, ratchetTree: RatchetTreeNodes? = nil, now: ValidationTime) throws(MLSError) {
        let provider = try CipherSuiteProvider(groupInfo.groupContext.cipherSuite)
        var nodes = ratchetTree
        if nodes == nil { nodes = try groupInfo.ratchetTreeExtension() }
        guard let nodes else { throw MLSError(.invalidGroupInfo, "§12.4.3", "no ratchet tree: not in the GroupInfo and none given") }
        let tree = try RatchetTree(provider, nodes: nodes)
        guard let signer = tree.leaf(groupInfo.signer), groupInfo.verifySignature(provider, signerKey: signer.signatureKey) else {
            throw MLSError(.invalidSignature, "§12.4.3", "GroupInfo signature does not verify")
        }
        try Group.validateJoinedTree(tree, context: groupInfo.groupContext, now: now)
        self.init(
            provider: provider, context: groupInfo.groupContext, tree: tree,
            interimTranscriptHash: TranscriptHash.interim(
                provider, confirmed: groupInfo.groupContext.confirmedTranscriptHash, confirmationTag: groupInfo.confirmationTag),
            confirmationTag: groupInfo.confirmationTag)
    }

    public var groupID: [UInt8] { context.groupID }
    public var epoch: UInt64 { context.epoch }
    public var members: [(index: LeafIndex, leaf: LeafNode)] { tree.members }

    /// Proposals received this epoch and not yet committed.
    public var pendingProposals: [Proposal] { proposals.values.map(\.proposal) }

    /// The key that must have signed content from this sender (§6.1).
    func signatureKey(of content: FramedContent, excluding ownLeaf: LeafIndex? = nil) throws(MLSError) -> SignaturePublicKey {
        switch content.sender {
        case .member(let leaf):
            guard leaf != ownLeaf, let node = tree.leaf(leaf) else {
                throw MLSError(.invalidSender, "§6.1", "sender is not another member of the group")
            }
            return node.signatureKey
        case .external(let index):
            let senders = try context.externalSenders()
            guard Int(index) < senders.count else { throw MLSError(.invalidSender, "§12.1.8.1", "unknown external sender") }
            return senders[Int(index)].signatureKey
        case .newMemberProposal:
            guard case .proposal(.add(let keyPackage)) = content.content else {
                throw MLSError(.invalidSender, "§6.1", "a new member may only propose to add itself")
            }
            return keyPackage.leafNode.signatureKey
        case .newMemberCommit:
            guard case .commit(let commit) = content.content, let path = commit.path else {
                throw MLSError(.invalidSender, "§12.4.3.2", "an external commit must carry a path")
            }
            return path.leafNode.signatureKey
        }
    }

    /// Caches a verified proposal for later commits (§12.4).
    mutating func cache(_ authenticated: AuthenticatedContent) throws(MLSError) {
        guard case .proposal(let proposal) = authenticated.content.content else { return }
        try validateReceivedProposal(proposal, sender: authenticated.content.sender)
        proposals[authenticated.proposalReference(provider)] = CachedProposal(proposal: proposal, sender: authenticated.content.sender)
    }

    /// What the public part of a commit produces (§12.4.2), before any
    /// private key or the confirmation tag is involved.
    struct StagedCommit: Sendable {
        /// The group after the commit, with the new context and transcript.
        let next: PublicGroup
        let applied: AppliedProposals
        let committer: LeafIndex
        /// The context the UpdatePath was encrypted to (§12.4.2).
        let provisionalContext: GroupContext
    }

    /// Applies a verified commit's public effects: proposals, path, new
    /// tree hash and transcript hashes (§12.4.2).
    func stageCommit(_ authenticated: AuthenticatedContent, now: ValidationTime) throws(MLSError) -> StagedCommit {
        guard case .commit(let commit) = authenticated.content.content, let tag = authenticated.auth.confirmationTag else {
            throw MLSError(.invalidContentType, "§12.4", "not a commit")
        }
        let sender = authenticated.content.sender
        let committerLeaf: LeafIndex?
        switch sender {
        case .member(let leaf): committerLeaf = leaf
        case .newMemberCommit: committerLeaf = nil
        default: throw MLSError(.invalidSender, "§12.4", "a commit comes from a member or an external joiner")
        }

        if committerLeaf == nil, commit.proposals.contains(where: { if case .reference = $0 { true } else { false } }) {
            throw MLSError(.invalidCommit, "§12.4.3.2", "an external commit refers to proposals")
        }
        let entries = try resolve(commit, committer: sender)
        try validateProposalList(entries, committer: committerLeaf)
        var applied = try applyProposals(entries, now: now)
        if committerLeaf == nil { applied.pathRequired = true }
        guard commit.path != nil || !applied.pathRequired else {
            throw MLSError(.invalidCommit, "§12.4", "this commit must carry a path")
        }

        guard context.epoch < UInt64.max else { throw MLSError(.epochExhausted, "§8.1", "the epoch counter is exhausted") }
        var provisional = context
        provisional.epoch += 1
        provisional.extensions = applied.extensions
        let committer: LeafIndex
        if let path = commit.path {
            // No key of the path may already be in the tree, nor appear twice in it (§12.4.2).
            let pathKeys = [path.leafNode.encryptionKey] + path.nodes.map(\.encryptionKey)
            guard Set(pathKeys).count == pathKeys.count, pathKeys.allSatisfy({ applied.tree.node(holding: $0) == nil }) else {
                throw MLSError(.invalidUpdatePath, "§12.4.2", "an UpdatePath key is already in the tree")
            }
            if let committerLeaf {
                committer = committerLeaf  // its old leaf key is in the tree, so the check above refuses a kept key
            } else {
                committer = applied.tree.add(path.leafNode)
            }
            try path.leafNode.validate(provider, context: provisional, leafIndex: committer, source: .commit, tree: applied.tree, now: now)
            try TreeKEM.mergePath(&applied.tree, path, sender: committer, groupID: groupID, newMembers: Set(applied.added))
            try applied.tree.verifyKeyUniqueness()
        } else {
            guard let committerLeaf else { throw MLSError(.invalidCommit, "§12.4.3.2", "an external commit must carry a path") }
            committer = committerLeaf
        }
        provisional.treeHash = applied.tree.treeHash

        var newContext = provisional
        newContext.confirmedTranscriptHash = try TranscriptHash.confirmed(
            provider, interimBefore: interimTranscriptHash, commit: authenticated)
        let next = advanced(tree: applied.tree, context: newContext, confirmationTag: tag)
        return StagedCommit(next: next, applied: applied, committer: committer, provisionalContext: provisional)
    }

    /// The view in the next epoch: new tree and context (with its confirmed
    /// transcript hash), the interim hash from the commit's confirmation tag
    /// (§8.2), and no proposals yet.
    func advanced(tree newTree: RatchetTree, context newContext: GroupContext, confirmationTag tag: [UInt8]) -> PublicGroup {
        var next = self
        next.tree = newTree
        next.context = newContext
        next.interimTranscriptHash = TranscriptHash.interim(provider, confirmed: newContext.confirmedTranscriptHash, confirmationTag: tag)
        next.confirmationTag = tag
        next.proposals = [:]
        return next
    }

    /// Verifies and applies a PublicMessage proposal or commit, as a
    /// Delivery Service does (§6.2, §12). The membership tag needs the
    /// epoch's membership key, which only members hold, so it is not checked
    /// here; the sender's signature is. Returns what the message changed;
    /// on any error the view is unchanged.
    public mutating func process(_ message: PublicMessage, now: ValidationTime) throws(MLSError) -> PublicProcessed {
        guard message.content.groupID == groupID else { throw MLSError(.wrongGroup, "§6", "message is for another group") }
        guard message.content.epoch == epoch else { throw MLSError(.wrongEpoch, "§6", "message is for another epoch") }
        let authenticated = AuthenticatedContent(wireFormat: .publicMessage, content: message.content, auth: message.auth)
        try authenticated.validateFraming(provider)
        try authenticated.verifySignature(provider, context: context, signerKey: try signatureKey(of: message.content))
        switch message.content.content {
        case .application:
            throw MLSError(.invalidContentType, "§6.2", "application data arrived as PublicMessage")
        case .proposal(let proposal):
            var next = self
            try next.cache(authenticated)
            self = next
            return .proposal(proposal, sender: message.content.sender)
        case .commit:
            let staged = try stageCommit(authenticated, now: now)
            self = staged.next
            return .commit(
                CommitSummary(
                    sender: message.content.sender, committer: staged.committer, added: staged.applied.added,
                    removed: staged.applied.removed, updated: staged.applied.updated, reinit: staged.applied.reinit,
                    removedSelf: false, epoch: staged.next.epoch))
        }
    }
}

/// What a PublicMessage did to a public view.
public enum PublicProcessed: Sendable {
    case proposal(Proposal, sender: Sender)
    case commit(CommitSummary)
}
