import MLSCodec

extension FramedContent {
    /// `FramedContentTBS` (§6.1): what the sender signs. Member and
    /// new-member-commit senders also sign the GroupContext.
    public func toBeSigned(wireFormat: WireFormat, context: GroupContext?) -> [UInt8] {
        var writer = TLSWriter(capacity: 128)
        encodeToBeSigned(wireFormat: wireFormat, context: context, to: &writer)
        return writer.bytes
    }

    func encodeToBeSigned(wireFormat: WireFormat, context: GroupContext?, to writer: inout TLSWriter) {
        ProtocolVersion.mls10.encode(to: &writer)
        wireFormat.encode(to: &writer)
        encode(to: &writer)
        switch sender {
        case .member, .newMemberCommit:
            // The caller supplies the context for these senders; see `requiresContext`.
            context?.encode(to: &writer)
        case .external, .newMemberProposal:
            break
        }
    }

    /// Whether FramedContentTBS includes the GroupContext for this sender.
    var requiresContext: Bool {
        switch sender {
        case .member, .newMemberCommit: true
        case .external, .newMemberProposal: false
        }
    }
}

extension AuthenticatedContent {
    /// The sender-type rules of §6.1 and §12.1.8.1: an external sender only
    /// proposes Add, Remove, PreSharedKey, ReInit or GroupContextExtensions; a
    /// new member only proposes its own Add or commits; a confirmation tag
    /// comes with a commit and nothing else, and is Nh bytes long.
    public func validateFraming(_ provider: CipherSuiteProvider) throws(MLSError) {
        let content = content.content
        switch (self.content.sender, content) {
        case (.member, _):
            break
        case (.external, .proposal(let proposal)):
            guard [.add, .remove, .psk, .reinit, .groupContextExtensions].contains(proposal.type) else {
                throw MLSError(.invalidSender, "§12.1.8.1", "proposal type not allowed for an external sender")
            }
        case (.newMemberProposal, .proposal(.add)), (.newMemberCommit, .commit):
            break
        default:
            throw MLSError(.invalidSender, "§6.1", "content type not allowed for this sender type")
        }
        switch (content.type, auth.confirmationTag) {
        case (.commit, let tag?):
            guard tag.count == provider.hashLength else {
                throw MLSError(.malformed, "§6.1", "confirmation tag is not Nh bytes")
            }
        case (.commit, nil), (.application, _?), (.proposal, _?):
            throw MLSError(.invalidFraming, "§6.1", "a confirmation tag goes with a commit and nothing else")
        default:
            break
        }
    }

    /// Signs `content` as its sender (§6.1). A commit also needs its confirmation tag.
    public static func sign(
        _ provider: CipherSuiteProvider, wireFormat: WireFormat, content: FramedContent, context: GroupContext?,
        signer: SignaturePrivateKey, confirmationTag: [UInt8]? = nil
    ) throws(MLSError) -> AuthenticatedContent {
        guard content.contentType == .commit ? confirmationTag != nil : confirmationTag == nil else {
            throw MLSError(.invalidFraming, "§6.1", "a confirmation tag goes with a commit and nothing else")
        }
        guard !content.requiresContext || context != nil else {
            throw MLSError(.invalidFraming, "§6.1", "member content is signed together with the GroupContext")
        }
        let signature = try provider.signWithLabel(
            signer, label: "FramedContentTBS", content: content.toBeSigned(wireFormat: wireFormat, context: context))
        return AuthenticatedContent(
            wireFormat: wireFormat, content: content,
            auth: FramedContentAuthData(signature: signature, confirmationTag: confirmationTag))
    }

    /// Checks the sender's signature (§6.1).
    public func verifySignature(
        _ provider: CipherSuiteProvider, context: GroupContext?, signerKey: SignaturePublicKey
    ) throws(MLSError) {
        guard !content.requiresContext || context != nil,
            provider.verifyWithLabel(
                signerKey, label: "FramedContentTBS",
                content: content.toBeSigned(wireFormat: wireFormat, context: context), signature: auth.signature)
        else {
            throw MLSError(.invalidSignature, "§6.1", "content signature does not verify")
        }
    }

    /// `AuthenticatedContentTBM` (§6.2): what the membership tag covers.
    func toBeMACed(context: GroupContext) -> [UInt8] {
        var writer = TLSWriter(capacity: 256)
        content.encodeToBeSigned(wireFormat: wireFormat, context: context, to: &writer)
        auth.encode(to: &writer)
        return writer.bytes
    }

    /// membership_tag = MAC(membership_key, AuthenticatedContentTBM) (§6.2).
    public func membershipTag(_ provider: CipherSuiteProvider, context: GroupContext, membershipKey: MembershipKey) -> [UInt8] {
        provider.mac(key: membershipKey.bytes, data: toBeMACed(context: context))
    }
}
