import MLSCodec

extension PublicMessage {
    /// Frames signed content as a PublicMessage (§6.2). Application data is
    /// never sent in the clear, and a member's message carries a membership tag.
    public static func protect(
        _ provider: CipherSuiteProvider, _ authenticated: AuthenticatedContent, context: GroupContext,
        membershipKey: MembershipKey?
    ) throws(MLSError) -> PublicMessage {
        guard authenticated.wireFormat == .publicMessage else {
            throw MLSError(.wrongWireFormat, "§6.1", "content was signed for another wire format")
        }
        guard authenticated.content.contentType != .application else {
            throw MLSError(.invalidContentType, "§6.2", "application data must not be sent as PublicMessage")
        }
        try authenticated.validateFraming(provider)
        var tag: [UInt8]?
        if case .member = authenticated.content.sender {
            guard let membershipKey else {
                throw MLSError(.invalidFraming, "§6.2", "a member's PublicMessage needs the membership key")
            }
            tag = authenticated.membershipTag(provider, context: context, membershipKey: membershipKey)
        }
        return PublicMessage(content: authenticated.content, auth: authenticated.auth, membershipTag: tag)
    }

    /// Checks a received PublicMessage against the group's current epoch
    /// (§6.2): group, epoch, content type, the sender-type rules, the
    /// membership tag for members, then the sender's signature (made with
    /// `signerKey`, which the caller looks up by sender type, §6.1). Returns
    /// the authenticated content and changes nothing. A commit's confirmation
    /// tag is checked by commit processing, which alone knows the next epoch's
    /// confirmation key.
    public func unprotect(
        _ provider: CipherSuiteProvider, context: GroupContext, membershipKey: MembershipKey,
        signerKey: SignaturePublicKey
    ) throws(MLSError) -> AuthenticatedContent {
        guard content.groupID == context.groupID else {
            throw MLSError(.wrongGroup, "§6", "message is for another group")
        }
        guard content.epoch == context.epoch else {
            throw MLSError(.wrongEpoch, "§6", "message is for another epoch")
        }
        guard content.contentType != .application else {
            throw MLSError(.invalidContentType, "§6.2", "application data arrived as PublicMessage")
        }
        let authenticated = AuthenticatedContent(wireFormat: .publicMessage, content: content, auth: auth)
        try authenticated.validateFraming(provider)
        if case .member = content.sender {
            guard let membershipTag,
                provider.verifyMAC(key: membershipKey.bytes, data: authenticated.toBeMACed(context: context), tag: membershipTag)
            else {
                throw MLSError(.invalidMembershipTag, "§6.2", "membership tag does not verify")
            }
        }
        try authenticated.verifySignature(provider, context: context, signerKey: signerKey)
        return authenticated
    }
}
