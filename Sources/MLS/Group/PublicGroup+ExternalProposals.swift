import MLSCodec

extension PublicGroup {
    /// A proposal from one of the group's `external_senders` (§12.1.8.1),
    /// e.g. a network's server removing a de-provisioned device: a
    /// PublicMessage signed by that sender, with no membership tag. The
    /// proposal type must be one an external sender may send.
    public func externalProposal(
        _ proposal: Proposal, senderIndex: UInt32, signer: SignaturePrivateKey, authenticatedData: [UInt8] = []
    ) throws(MLSError) -> MLSMessage {
        let senders = try context.externalSenders()
        guard Int(senderIndex) < senders.count, senders[Int(senderIndex)].signatureKey == signer.publicKey else {
            throw MLSError(.invalidSender, "§12.1.8.1", "the signer is not that external sender of the group")
        }
        return try sign(proposal, as: .external(senderIndex), signer: signer, authenticatedData: authenticatedData)
    }

    /// A would-be member's proposal to add itself (§12.1.8, `new_member_proposal`),
    /// signed with its KeyPackage's key.
    public func newMemberAddProposal(_ bundle: KeyPackageBundle) throws(MLSError) -> MLSMessage {
        try sign(.add(bundle.keyPackage), as: .newMemberProposal, signer: bundle.signer, authenticatedData: [])
    }

    private func sign(_ proposal: Proposal, as sender: Sender, signer: SignaturePrivateKey, authenticatedData: [UInt8]) throws(MLSError)
        -> MLSMessage
    {
        let content = FramedContent(
            groupID: groupID, epoch: epoch, sender: sender, authenticatedData: authenticatedData, content: .proposal(proposal))
        let signed = try AuthenticatedContent.sign(provider, wireFormat: .publicMessage, content: content, context: context, signer: signer)
        return MLSMessage(body: .publicMessage(try PublicMessage.protect(provider, signed, context: context, membershipKey: nil)))
    }
}

extension PublicMessage {
    /// The ProposalRef of a proposal sent as this PublicMessage (§5.2), by
    /// which a commit refers to it.
    public func proposalReference(_ provider: CipherSuiteProvider) -> [UInt8] {
        AuthenticatedContent(wireFormat: .publicMessage, content: content, auth: auth).proposalReference(provider)
    }
}
