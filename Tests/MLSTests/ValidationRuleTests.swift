import MLS
import MLSCodec
import Testing

/// Rules of docs/mls.md that need inputs built by hand.
@Suite("Validation rules")
struct ValidationRuleTests {
    static let unknown = CodecError(.unknownValue, "", offset: 0)

    /// V7: unknown values of closed enums and of selectors without a length are refused.
    @Test(
        arguments: [
            ("MLSMessage version 2", [0x00, 0x02, 0x00, 0x01]),
            ("wire_format 0", [0x00, 0x01, 0x00, 0x00]),
            ("wire_format 6", [0x00, 0x01, 0x00, 0x06]),
        ] as [(String, [UInt8])])
    func unknownEnvelopeValuesAreRefused(_ name: String, bytes: [UInt8]) {
        #expect(throws: Self.unknown, "\(name)") { try MLSMessage(tlsSerialized: bytes + [0, 0, 0, 0]) }
    }

    /// FramedContent bytes: group_id 0xAA, epoch 1, then `sender` and `content` as given.
    static func framed(sender: [UInt8], contentType: UInt8) -> [UInt8] {
        [0x01, 0xAA] + [0, 0, 0, 0, 0, 0, 0, 1] + sender + [0x00, contentType, 0x00]
    }

    @Test(arguments: [0, 4] as [UInt8])
    func unknownContentTypesAreRefused(contentType: UInt8) {
        #expect(throws: Self.unknown) { try FramedContent(tlsSerialized: Self.framed(sender: [1, 0, 0, 0, 0], contentType: contentType)) }
    }

    @Test(arguments: [0, 5] as [UInt8])
    func unknownSenderTypesAreRefused(senderType: UInt8) {
        #expect(throws: Self.unknown) { try FramedContent(tlsSerialized: Self.framed(sender: [senderType, 0, 0, 0, 0], contentType: 1)) }
    }

    @Test func unknownCredentialAndProposalTypesAreRefused() {
        #expect(throws: Self.unknown) { try Credential(tlsSerialized: [0x00, 0x03, 0x00]) }
        #expect(throws: Self.unknown) { try Proposal(tlsSerialized: [0x00, 0x08, 0x00]) }
        #expect(throws: Self.unknown) { try Node(tlsSerialized: [0x03, 0x00]) }
        #expect(throws: Self.unknown) { try ProposalOrRef(tlsSerialized: [0x03, 0x00]) }
        #expect(throws: Self.unknown) { try PreSharedKeyID(tlsSerialized: [0x03, 0x00, 0x00]) }
    }

    @Test func oversizedInputIsRefusedBeforeDecoding() {
        let huge = [UInt8](repeating: 0, count: TLSLimits.maxInputLength + 1)
        #expect(throws: CodecError(.tooLarge, "", offset: 0)) { try MLSMessage(tlsSerialized: huge) }
    }

    @Test func vectorsHoldABoundedNumberOfElements() {
        // A ratchet tree of 2^20 + 1 blank nodes (one byte each).
        let count = TLSReader.maxElementCount + 1
        var writer = TLSWriter()
        writer.writeOpaque([UInt8](repeating: 0, count: count))
        #expect(throws: CodecError(.tooLarge, "", offset: 0)) { try RatchetTreeNodes(tlsSerialized: writer.bytes) }
    }

    /// V9 for PublicMessage.
    @Test func publicMessagesForAnotherGroupOrEpochAreRefused() throws {
        let fixture = try EpochFixture()
        let content = try fixture.signed(.proposal(.remove(LeafIndex(0))), wireFormat: .publicMessage)
        let message = try PublicMessage.protect(
            fixture.provider, content, context: fixture.context, membershipKey: fixture.secrets.membershipKey)
        var otherEpoch = message
        otherEpoch.content.epoch += 1
        var otherGroup = message
        otherGroup.content.groupID = [1, 2, 3]
        for (altered, code) in [(otherEpoch, MLSError.Code.wrongEpoch), (otherGroup, .wrongGroup)] {
            #expect(throws: MLSError(code, "", "")) {
                try altered.unprotect(
                    fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey,
                    signerKey: fixture.senderKey.publicKey)
            }
        }
    }

    /// V10, receiving side: an application PublicMessage is refused even when well signed and tagged.
    @Test func applicationPublicMessagesAreRefusedOnReceipt() throws {
        let fixture = try EpochFixture()
        let content = try fixture.signed(.application([7]), wireFormat: .publicMessage)
        let message = PublicMessage(
            content: content.content, auth: content.auth,
            membershipTag: content.membershipTag(fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey))
        #expect(throws: MLSError(.invalidContentType, "", "")) {
            try message.unprotect(
                fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey,
                signerKey: fixture.senderKey.publicKey)
        }
    }

    /// V13: a confirmation tag goes with a commit and nothing else, and is Nh bytes long.
    @Test func confirmationTagsGoWithCommitsOnly() throws {
        let fixture = try EpochFixture()
        let framedCommit = FramedContent(
            groupID: fixture.context.groupID, epoch: fixture.context.epoch, sender: .member(fixture.sender), authenticatedData: [],
            content: .commit(Commit(proposals: [], path: nil)))
        #expect(throws: MLSError(.invalidFraming, "", "")) {
            try AuthenticatedContent.sign(
                fixture.provider, wireFormat: .publicMessage, content: framedCommit, context: fixture.context, signer: fixture.senderKey)
        }
        var framedProposal = framedCommit
        framedProposal.content = .proposal(.remove(LeafIndex(0)))
        #expect(throws: MLSError(.invalidFraming, "", "")) {
            try AuthenticatedContent.sign(
                fixture.provider, wireFormat: .publicMessage, content: framedProposal, context: fixture.context, signer: fixture.senderKey,
                confirmationTag: [1])
        }
        let shortTag = try AuthenticatedContent.sign(
            fixture.provider, wireFormat: .publicMessage, content: framedCommit, context: fixture.context, signer: fixture.senderKey,
            confirmationTag: [1, 2, 3])
        #expect(throws: MLSError(.malformed, "", "")) { try shortTag.validateFraming(fixture.provider) }
    }

    /// V23: the sender-type rules of §6.1 and §12.1.8.1.
    @Test func sendersMaySendOnlyWhatTheirTypeAllows() throws {
        let fixture = try EpochFixture()
        let refused: [(Sender, Content)] = [
            (.external(0), .commit(Commit(proposals: [], path: nil))),
            (.external(0), .proposal(.externalInit(kemOutput: [1]))),
            (.newMemberProposal, .proposal(.remove(LeafIndex(0)))),
            (.newMemberCommit, .proposal(.remove(LeafIndex(0)))),
            (.external(0), .application([1])),
        ]
        for (sender, content) in refused {
            let tag: [UInt8]? = content.type == .commit ? [UInt8](repeating: 0, count: fixture.provider.hashLength) : nil
            let framed = FramedContent(
                groupID: fixture.context.groupID, epoch: fixture.context.epoch, sender: sender, authenticatedData: [], content: content)
            let signed = try AuthenticatedContent.sign(
                fixture.provider, wireFormat: .publicMessage, content: framed, context: fixture.context, signer: fixture.senderKey,
                confirmationTag: tag)
            #expect(throws: MLSError.self, "\(sender) sending \(content)") {
                try PublicMessage(content: signed.content, auth: signed.auth, membershipTag: nil)
                    .unprotect(
                        fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey,
                        signerKey: fixture.senderKey.publicKey)
            }
        }
        // An external Remove is fine, with no membership tag.
        let remove = try fixture.signed(.proposal(.remove(LeafIndex(0))), wireFormat: .publicMessage, as: .external(0))
        let message = try PublicMessage.protect(fixture.provider, remove, context: fixture.context, membershipKey: nil)
        #expect(message.membershipTag == nil)
        _ = try message.unprotect(
            fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey, signerKey: fixture.senderKey.publicKey
        )
    }

    /// V21 after the ratchet advanced: a signature failure leaves the key in place.
    @Test func aSignatureFailureKeepsTheKey() throws {
        let fixture = try EpochFixture()
        let impostor = try EpochFixture(seed: 99)
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("genuine", tree: &senderTree)
        #expect(throws: MLSError(.invalidSignature, "", "")) {
            try message.unprotect(
                fixture.provider, context: fixture.context, secretTree: &receiverTree,
                senderDataSecret: fixture.secrets.senderDataSecret, signerKey: { _ in impostor.senderKey.publicKey })
        }
        #expect(try fixture.decrypt(message, tree: &receiverTree) == "genuine")
    }

    /// V20 on receipt: sender data naming a leaf beyond the tree is refused,
    /// even when the caller would hand out a key for it.
    @Test func senderDataBeyondTheTreeIsRefused() throws {
        let wide = try EpochFixture(sender: LeafIndex(5), leafCount: 8)
        var senderTree = wide.tree()
        let message = try wide.encrypt("x", tree: &senderTree)
        var narrowTree = SecretTree(wide.provider, encryptionSecret: wide.secrets.encryptionSecret, leafCount: 2)
        #expect(throws: MLSError(.invalidSender, "", "")) {
            try message.unprotect(
                wide.provider, context: wide.context, secretTree: &narrowTree, senderDataSecret: wide.secrets.senderDataSecret,
                signerKey: { _ in wide.senderKey.publicKey })
        }
    }

    @Test func decryptedContentAndSecretTreesPrintNothingSecret() throws {
        let fixture = try EpochFixture()
        let tree = fixture.tree()
        let secretHex = fixture.secrets.encryptionSecret.bytes.map { String($0) }.joined(separator: ", ")
        var dumped = ""
        dump(tree, to: &dumped)
        for text in [
            String(describing: tree), String(reflecting: tree), dumped, String(describing: try tree.ratchets(for: fixture.sender)),
        ] {
            #expect(!text.contains(secretHex))
            #expect(text.contains("redacted"))
        }
        let content = try fixture.signed(.application(Array("top secret words".utf8)), wireFormat: .privateMessage)
        var dumpedContent = ""
        dump(content, to: &dumpedContent)
        for text in [String(describing: content), String(reflecting: content), dumpedContent] {
            #expect(!text.contains("116, 111, 112"))  // "top"
            #expect(!text.contains("top secret"))
        }
    }
}
