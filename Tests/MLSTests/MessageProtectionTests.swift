import MLS
import MLSCodec
import Testing

@Suite("Message protection (RFC 9420 §6)")
struct MessageProtectionTests {
    @Test(arguments: CipherSuite.implemented)
    func privateMessagesRoundTripOnEverySuite(suite: CipherSuite) throws {
        let fixture = try EpochFixture(suite: suite)
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        for text in ["hello", "", String(repeating: "x", count: 1024)] {
            let message = try fixture.encrypt(text, tree: &senderTree)
            let wire = try PrivateMessage(tlsSerialized: message.tlsSerialized)
            #expect(try fixture.decrypt(wire, tree: &receiverTree) == text)
        }
    }

    @Test func paddingRoundsThePlaintextUp() throws {
        let fixture = try EpochFixture()
        var tree = fixture.tree()
        let short = try fixture.encrypt("a", tree: &tree, padding: PaddingPolicy(blockSize: 64))
        let longer = try fixture.encrypt("abcdefghij", tree: &tree, padding: PaddingPolicy(blockSize: 64))
        #expect(short.ciphertext.count == longer.ciphertext.count)
        #expect((short.ciphertext.count - 16) % 64 == 0)
    }

    @Test func messagesArriveOutOfOrder() throws {
        let fixture = try EpochFixture()
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let messages = try (0..<5).map { try fixture.encrypt("m\($0)", tree: &senderTree) }
        for index in [3, 0, 4, 1, 2] {
            #expect(try fixture.decrypt(messages[index], tree: &receiverTree) == "m\(index)")
        }
    }

    @Test func aReplayedMessageIsRefused() throws {
        let fixture = try EpochFixture()
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("once", tree: &senderTree)
        #expect(try fixture.decrypt(message, tree: &receiverTree) == "once")
        #expect(throws: MLSError(.generationTooOld, "", "")) { try fixture.decrypt(message, tree: &receiverTree) }
    }

    /// Every single-byte change to the ciphertext or sender data is refused,
    /// and the refusal leaves the receiver able to read the genuine message.
    @Test func tamperingIsRefusedWithoutChangingState() throws {
        let fixture = try EpochFixture()
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("do not alter", tree: &senderTree)

        var tampered: [PrivateMessage] = []
        for index in message.ciphertext.indices {
            var copy = message
            copy.ciphertext[index] ^= 0x01
            tampered.append(copy)
        }
        for index in message.encryptedSenderData.indices {
            var copy = message
            copy.encryptedSenderData[index] ^= 0x80
            tampered.append(copy)
        }
        var otherData = message
        otherData.authenticatedData = [1]
        tampered.append(otherData)

        for copy in tampered {
            #expect(throws: MLSError.self) { try fixture.decrypt(copy, tree: &receiverTree) }
        }
        #expect(try fixture.decrypt(message, tree: &receiverTree) == "do not alter")
    }

    @Test func wrongEpochAndGroupAreRefused() throws {
        let fixture = try EpochFixture()
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("x", tree: &senderTree)
        var laterEpoch = message
        laterEpoch.epoch += 1
        #expect(throws: MLSError(.wrongEpoch, "", "")) { try fixture.decrypt(laterEpoch, tree: &receiverTree) }
        var otherGroup = message
        otherGroup.groupID = [0]
        #expect(throws: MLSError(.wrongGroup, "", "")) { try fixture.decrypt(otherGroup, tree: &receiverTree) }
    }

    @Test func aSignatureByAnotherKeyIsRefused() throws {
        let fixture = try EpochFixture()
        let impostor = try EpochFixture(seed: 99)
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("x", tree: &senderTree)
        #expect(throws: MLSError(.invalidSignature, "", "")) {
            try message.unprotect(
                fixture.provider, context: fixture.context, secretTree: &receiverTree,
                senderDataSecret: fixture.secrets.senderDataSecret, signerKey: { _ in impostor.senderKey.publicKey })
        }
    }

    @Test func anUnknownSenderLeafIsRefused() throws {
        let fixture = try EpochFixture()
        var senderTree = fixture.tree()
        var receiverTree = fixture.tree()
        let message = try fixture.encrypt("x", tree: &senderTree)
        #expect(throws: MLSError(.invalidSender, "", "")) {
            try message.unprotect(
                fixture.provider, context: fixture.context, secretTree: &receiverTree,
                senderDataSecret: fixture.secrets.senderDataSecret, signerKey: { _ in nil })
        }
    }

    @Test func applicationDataIsNeverAPublicMessage() throws {
        let fixture = try EpochFixture()
        let content = try fixture.signed(.application([1, 2, 3]), wireFormat: .publicMessage)
        #expect(throws: MLSError(.invalidContentType, "", "")) {
            try PublicMessage.protect(fixture.provider, content, context: fixture.context, membershipKey: fixture.secrets.membershipKey)
        }
    }

    @Test func publicMessagesCheckTheMembershipTagAndSignature() throws {
        let fixture = try EpochFixture()
        let content = try fixture.signed(.proposal(.remove(LeafIndex(0))), wireFormat: .publicMessage)
        let message = try PublicMessage.protect(
            fixture.provider, content, context: fixture.context, membershipKey: fixture.secrets.membershipKey)
        let verified = try message.unprotect(
            fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey, signerKey: fixture.senderKey.publicKey
        )
        #expect(verified == content)

        var badTag = message
        badTag.membershipTag?[0] ^= 1
        #expect(throws: MLSError(.invalidMembershipTag, "", "")) {
            try badTag.unprotect(
                fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey,
                signerKey: fixture.senderKey.publicKey)
        }
        let outsider = MembershipKey([UInt8](repeating: 0, count: 32))
        #expect(throws: MLSError(.invalidMembershipTag, "", "")) {
            try message.unprotect(
                fixture.provider, context: fixture.context, membershipKey: outsider, signerKey: fixture.senderKey.publicKey)
        }
        var badSignature = message
        badSignature.auth.signature[0] ^= 1
        let retagged = try PublicMessage.protect(
            fixture.provider, AuthenticatedContent(wireFormat: .publicMessage, content: badSignature.content, auth: badSignature.auth),
            context: fixture.context, membershipKey: fixture.secrets.membershipKey)
        #expect(throws: MLSError(.invalidSignature, "", "")) {
            try retagged.unprotect(
                fixture.provider, context: fixture.context, membershipKey: fixture.secrets.membershipKey,
                signerKey: fixture.senderKey.publicKey)
        }
    }

    /// Builds by hand a PrivateMessage whose padding holds a non-zero byte,
    /// encrypted under the genuine keys, and checks that it is refused (§6.3.1).
    @Test func nonZeroPaddingIsRefused() throws {
        let fixture = try EpochFixture()
        let provider = fixture.provider
        let authenticated = try fixture.signed(.application(Array("pad".utf8)), wireFormat: .privateMessage)
        var plaintext = TLSWriter()
        plaintext.writeOpaque(Array("pad".utf8))
        authenticated.auth.encode(to: &plaintext)
        plaintext.writeRaw([0, 0, 1, 0])

        var senderTree = fixture.tree()
        let key = try senderTree.nextKey(for: fixture.sender, kind: .application)
        var aad = TLSWriter()
        aad.writeOpaque(fixture.context.groupID)
        aad.write(fixture.context.epoch)
        ContentType.application.encode(to: &aad)
        aad.writeOpaque([])
        let ciphertext = try provider.seal(key: key.key.bytes, nonce: key.nonce.bytes, aad: aad.bytes, plaintext: plaintext.bytes)

        var senderData = TLSWriter()
        fixture.sender.encode(to: &senderData)
        senderData.write(key.generation)
        senderData.writeRaw([0, 0, 0, 0])
        var senderAAD = TLSWriter()
        senderAAD.writeOpaque(fixture.context.groupID)
        senderAAD.write(fixture.context.epoch)
        ContentType.application.encode(to: &senderAAD)
        let sample = Array(ciphertext.prefix(provider.hashLength))
        let senderKey = provider.expandWithLabel(
            secret: fixture.secrets.senderDataSecret.bytes, label: "key", context: sample, length: provider.aeadKeyLength)
        let senderNonce = provider.expandWithLabel(
            secret: fixture.secrets.senderDataSecret.bytes, label: "nonce", context: sample, length: provider.aeadNonceLength)
        let encryptedSenderData = try provider.seal(key: senderKey, nonce: senderNonce, aad: senderAAD.bytes, plaintext: senderData.bytes)

        let message = PrivateMessage(
            groupID: fixture.context.groupID, epoch: fixture.context.epoch, contentType: .application, authenticatedData: [],
            encryptedSenderData: encryptedSenderData, ciphertext: ciphertext)
        var receiverTree = fixture.tree()
        #expect(throws: MLSError(.invalidPadding, "", "")) { try fixture.decrypt(message, tree: &receiverTree) }
    }
}
