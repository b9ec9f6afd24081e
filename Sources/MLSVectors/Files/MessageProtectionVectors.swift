import MLS
import MLSCodec

/// message-protection.json: PublicMessage and PrivateMessage protect and
/// unprotect for a proposal, a commit and application data (RFC 9420 §6).
enum MessageProtectionVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16
        let group_id: Hex
        let epoch: UInt64
        let tree_hash: Hex
        let confirmed_transcript_hash: Hex
        let signature_priv: Hex
        let signature_pub: Hex
        let encryption_secret: Hex
        let sender_data_secret: Hex
        let membership_key: Hex
        let proposal: Hex
        let proposal_pub: Hex
        let proposal_priv: Hex
        let commit: Hex
        let commit_pub: Hex
        let commit_priv: Hex
        let application: Hex
        let application_priv: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { CipherSuite(rawValue: entry.cipher_suite) }

    /// The vector's fixed setting: a two-member group, leaf 1 sending.
    struct Setting {
        let provider: CipherSuiteProvider
        let context: GroupContext
        let signer: SignaturePrivateKey
        let signerKey: SignaturePublicKey
        let membershipKey: MembershipKey
        let encryptionSecret: EncryptionSecret
        let senderDataSecret: SenderDataSecret
        let sender = LeafIndex(1)

        var freshTree: SecretTree { SecretTree(provider, encryptionSecret: encryptionSecret, leafCount: 2) }

        func signerKey(_ leaf: LeafIndex) -> SignaturePublicKey? { leaf == sender ? signerKey : nil }

        func framed(_ content: Content) -> FramedContent {
            FramedContent(groupID: context.groupID, epoch: context.epoch, sender: .member(sender), authenticatedData: [], content: content)
        }

        func sign(_ content: Content, wireFormat: WireFormat) throws -> AuthenticatedContent {
            // Any MAC-sized value does for the tag: this vector checks framing, not confirmation.
            let tag: [UInt8]? = content.type == .commit ? [UInt8](repeating: 0xA5, count: provider.hashLength) : nil
            return try AuthenticatedContent.sign(
                provider, wireFormat: wireFormat, content: framed(content), context: context, signer: signer, confirmationTag: tag)
        }

        func unprotectPublic(_ bytes: [UInt8]) throws -> Content {
            guard case .publicMessage(let message) = try MLSMessage(tlsSerialized: bytes).body else {
                throw VectorMismatch("not a PublicMessage")
            }
            let content = try message.unprotect(provider, context: context, membershipKey: membershipKey, signerKey: signerKey)
            return content.content.content
        }

        func unprotectPrivate(_ bytes: [UInt8], tree: inout SecretTree) throws -> Content {
            guard case .privateMessage(let message) = try MLSMessage(tlsSerialized: bytes).body else {
                throw VectorMismatch("not a PrivateMessage")
            }
            let content = try message.unprotect(
                provider, context: context, secretTree: &tree, senderDataSecret: senderDataSecret, signerKey: signerKey)
            return content.content.content
        }

        /// The checks of test-vectors.md for one kind of content.
        func check(_ content: Content, publicBytes: [UInt8]?, privateBytes: [UInt8], name: String) throws {
            if let publicBytes {
                try expect(try unprotectPublic(publicBytes), content, "\(name)_pub content")
                let ours = try PublicMessage.protect(
                    provider, try sign(content, wireFormat: .publicMessage), context: context, membershipKey: membershipKey)
                let wire = MLSMessage(body: .publicMessage(ours)).tlsSerialized
                try expect(try unprotectPublic(wire), content, "\(name) own PublicMessage")
            } else {
                let signed = try sign(content, wireFormat: .publicMessage)
                var refused = false
                do {
                    _ = try PublicMessage.protect(provider, signed, context: context, membershipKey: membershipKey)
                } catch {
                    refused = error.code == .invalidContentType
                }
                try expect(refused, "\(name) was not refused as a PublicMessage")
            }

            var receiverTree = freshTree
            try expect(try unprotectPrivate(privateBytes, tree: &receiverTree), content, "\(name)_priv content")

            var senderTree = freshTree
            let ours = try PrivateMessage.protect(
                provider, try sign(content, wireFormat: .privateMessage), secretTree: &senderTree,
                senderDataSecret: senderDataSecret, random: SystemRandom())
            var ownReceiverTree = freshTree
            let wire = MLSMessage(body: .privateMessage(ours)).tlsSerialized
            try expect(try unprotectPrivate(wire, tree: &ownReceiverTree), content, "\(name) own PrivateMessage")
        }
    }

    static func check(_ entry: Entry) throws {
        let suite = CipherSuite(rawValue: entry.cipher_suite)
        let provider = try CipherSuiteProvider(suite)
        let signer = try provider.signaturePrivateKey(entry.signature_priv.bytes)
        let setting = Setting(
            provider: provider,
            context: GroupContext(
                cipherSuite: suite, groupID: entry.group_id.bytes, epoch: entry.epoch, treeHash: entry.tree_hash.bytes,
                confirmedTranscriptHash: entry.confirmed_transcript_hash.bytes),
            signer: signer, signerKey: SignaturePublicKey(entry.signature_pub.bytes),
            membershipKey: MembershipKey(entry.membership_key.bytes),
            encryptionSecret: EncryptionSecret(entry.encryption_secret.bytes),
            senderDataSecret: SenderDataSecret(entry.sender_data_secret.bytes))

        try setting.check(
            .proposal(try Proposal(tlsSerialized: entry.proposal.bytes)),
            publicBytes: entry.proposal_pub.bytes, privateBytes: entry.proposal_priv.bytes, name: "proposal")
        try setting.check(
            .commit(try Commit(tlsSerialized: entry.commit.bytes)),
            publicBytes: entry.commit_pub.bytes, privateBytes: entry.commit_priv.bytes, name: "commit")
        try setting.check(
            .application(entry.application.bytes), publicBytes: nil, privateBytes: entry.application_priv.bytes, name: "application")
    }
}
