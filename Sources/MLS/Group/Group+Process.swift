import MLSCodec

/// Decrypted application data. Prints only its length.
public struct ApplicationMessage: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    public let data: [UInt8]
    public let sender: LeafIndex
    public let authenticatedData: [UInt8]
    public var description: String { "ApplicationMessage(from: \(sender), <\(data.count) bytes>)" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

/// What a merged commit changed.
public struct CommitSummary: Sendable, Hashable {
    public let sender: Sender
    /// The committer's leaf in the new epoch (an external joiner's new leaf).
    public let committer: LeafIndex
    public let added: [LeafIndex]
    public let removed: [LeafIndex]
    public let updated: [LeafIndex]
    /// A committed ReInit: the group may send nothing more (§11.2).
    public let reinit: ReInit?
    /// This member was removed: the group state is over (§12.4.2).
    public let removedSelf: Bool
    public let epoch: UInt64
}

/// The result of processing one incoming MLSMessage.
public enum ProcessedMessage: Sendable {
    case application(ApplicationMessage)
    /// A proposal, cached for a later commit to refer to.
    case proposal(Proposal, sender: Sender)
    case commit(CommitSummary)
}

extension Group {
    /// Processes one PublicMessage or PrivateMessage of this group (§6, §12).
    /// On any error the group is unchanged.
    public mutating func process(_ message: MLSMessage, psks: PSKStore = .empty, now: ValidationTime) throws(MLSError) -> ProcessedMessage {
        var next = self
        let result = try next.processInPlace(message, psks: psks, now: now)
        self = next
        return result
    }

    private mutating func processInPlace(_ message: MLSMessage, psks: PSKStore, now: ValidationTime) throws(MLSError) -> ProcessedMessage {
        if let own = sentProposals[message.tlsSerialized] {
            // This member's own proposal, echoed back: already cached.
            return .proposal(own, sender: .member(ownLeaf))
        }
        let authenticated = try unprotect(message)
        switch authenticated.content.content {
        case .application(let data):
            guard case .member(let leaf) = authenticated.content.sender else {
                throw MLSError(.invalidSender, "§6", "application data from a non-member")
            }
            return .application(ApplicationMessage(data: data, sender: leaf, authenticatedData: authenticated.content.authenticatedData))
        case .proposal(let proposal):
            try state.cache(authenticated)
            return .proposal(proposal, sender: authenticated.content.sender)
        case .commit:
            if case .member(let leaf) = authenticated.content.sender, leaf == ownLeaf {
                throw MLSError(.invalidSender, "§12.4", "own commit: merge the pending commit instead")
            }
            return .commit(try applyCommit(authenticated, psks: psks, now: now))
        }
    }

    /// Checks framing, epoch and authenticity of a handshake or application
    /// message and returns its verified content (§6).
    mutating func unprotect(_ message: MLSMessage) throws(MLSError) -> AuthenticatedContent {
        guard pendingReInit == nil else {
            throw MLSError(.groupReinitialised, "§11.2", "the group was reinitialised: it takes no more messages")
        }
        switch message.body {
        case .publicMessage(let publicMessage):
            guard publicMessage.content.groupID == groupID else { throw MLSError(.wrongGroup, "§6", "message is for another group") }
            guard publicMessage.content.epoch == epoch else { throw MLSError(.wrongEpoch, "§6", "message is for another epoch") }
            let signerKey = try state.signatureKey(of: publicMessage.content, excluding: ownLeaf)
            return try publicMessage.unprotect(provider, context: context, membershipKey: epochSecrets.membershipKey, signerKey: signerKey)
        case .privateMessage(let privateMessage):
            let tree = self.tree
            let own = ownLeaf
            return try privateMessage.unprotect(
                provider, context: context, secretTree: &secretTree, senderDataSecret: epochSecrets.senderDataSecret,
                signerKey: { leaf in leaf == own ? nil : tree.leaf(leaf)?.signatureKey })
        case .welcome, .groupInfo, .keyPackage:
            throw MLSError(.wrongWireFormat, "§6", "not a group message")
        }
    }
}
