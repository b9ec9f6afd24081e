import MLSCodec

/// `SenderData` (§6.3.2).
struct SenderData: TLSCodable {
    var leafIndex: LeafIndex
    var generation: UInt32
    var reuseGuard: [UInt8]

    func encode(to writer: inout TLSWriter) {
        leafIndex.encode(to: &writer)
        writer.write(generation)
        writer.writeRaw(reuseGuard)
    }

    init(leafIndex: LeafIndex, generation: UInt32, reuseGuard: [UInt8]) {
        self.leafIndex = leafIndex
        self.generation = generation
        self.reuseGuard = reuseGuard
    }

    init(from reader: inout TLSReader) throws {
        leafIndex = try LeafIndex(from: &reader)
        generation = try reader.readUInt32("SenderData.generation")
        reuseGuard = try reader.readRaw(count: 4, "SenderData.reuse_guard")
    }
}

/// How a sender pads PrivateMessageContent (§6.3.1, §16.4). Padding hides
/// the exact length of short messages; it is all zero bytes.
public struct PaddingPolicy: Sendable, Hashable {
    /// The plaintext is padded up to a multiple of this many bytes (0 or 1: none).
    public var blockSize: Int
    public init(blockSize: Int) { self.blockSize = blockSize }
    public static let none = PaddingPolicy(blockSize: 0)
    public static let `default` = PaddingPolicy(blockSize: 32)

    func paddingLength(for length: Int) -> Int {
        guard blockSize > 1 else { return 0 }
        let remainder = length % blockSize
        return remainder == 0 ? 0 : blockSize - remainder
    }
}

/// The most application data plus authenticated data this library frames in
/// one message: 16 MiB, far inside the 2^28-byte decoding limit
/// (``TLSLimits/maxInputLength``) so that every receiver can decode it.
public let maxContentLength = 1 << 24

extension PrivateMessage {
    private static func senderDataAAD(groupID: [UInt8], epoch: UInt64, contentType: ContentType) -> [UInt8] {
        var writer = TLSWriter(capacity: groupID.count + 16)
        writer.writeOpaque(groupID)
        writer.write(epoch)
        contentType.encode(to: &writer)
        return writer.bytes
    }

    private static func contentAAD(groupID: [UInt8], epoch: UInt64, contentType: ContentType, authenticatedData: [UInt8]) -> [UInt8] {
        var writer = TLSWriter(capacity: groupID.count + authenticatedData.count + 16)
        writer.writeOpaque(groupID)
        writer.write(epoch)
        contentType.encode(to: &writer)
        writer.writeOpaque(authenticatedData)
        return writer.bytes
    }

    /// sender_data_key / sender_data_nonce from the first Nh bytes of the ciphertext (§6.3.2).
    private static func senderDataKey(
        _ provider: CipherSuiteProvider, senderDataSecret: SenderDataSecret, ciphertext: [UInt8]
    ) -> (key: [UInt8], nonce: [UInt8]) {
        let sample = Array(ciphertext.prefix(provider.hashLength))
        return (
            provider.expandWithLabel(secret: senderDataSecret.bytes, label: "key", context: sample, length: provider.aeadKeyLength),
            provider.expandWithLabel(secret: senderDataSecret.bytes, label: "nonce", context: sample, length: provider.aeadNonceLength)
        )
    }

    private static func ratchetKind(_ contentType: ContentType) -> RatchetKind {
        contentType == .application ? .application : .handshake
    }

    /// Encrypts signed content as a PrivateMessage (§6.3), consuming the
    /// sender's next key from `secretTree`.
    public static func protect(
        _ provider: CipherSuiteProvider, _ authenticated: AuthenticatedContent, secretTree: inout SecretTree,
        senderDataSecret: SenderDataSecret, padding: PaddingPolicy = .default, random: some RandomSource
    ) throws(MLSError) -> PrivateMessage {
        let content = authenticated.content
        guard authenticated.wireFormat == .privateMessage else {
            throw MLSError(.wrongWireFormat, "§6.1", "content was signed for another wire format")
        }
        guard case .member(let leaf) = content.sender else {
            throw MLSError(.invalidSender, "§6.3.2", "only members send PrivateMessages")
        }
        guard content.encodedLengthBound <= maxContentLength else {
            throw MLSError(.messageTooLarge, "§6.3", "message too large")
        }
        try authenticated.validateFraming(provider)

        var plaintext = TLSWriter(capacity: 128)
        content.content.encodeBody(to: &plaintext)
        authenticated.auth.encode(to: &plaintext)
        plaintext.writeRaw(repeatElement(0, count: padding.paddingLength(for: plaintext.bytes.count)))

        let keyAndNonce = try secretTree.nextKey(for: leaf, kind: ratchetKind(content.contentType))
        let reuseGuard = random.bytes(count: 4)
        guard reuseGuard.count == 4 else {
            throw MLSError(.invalidUse, "§6.3.1", "random source returned a short reuse guard")
        }
        let ciphertext = try provider.seal(
            key: keyAndNonce.key.bytes, nonce: xor(keyAndNonce.nonce.bytes, reuseGuard),
            aad: contentAAD(
                groupID: content.groupID, epoch: content.epoch, contentType: content.contentType,
                authenticatedData: content.authenticatedData),
            plaintext: plaintext.bytes)

        let senderData = SenderData(leafIndex: leaf, generation: keyAndNonce.generation, reuseGuard: reuseGuard)
        let senderKey = senderDataKey(provider, senderDataSecret: senderDataSecret, ciphertext: ciphertext)
        let encryptedSenderData = try provider.seal(
            key: senderKey.key, nonce: senderKey.nonce,
            aad: senderDataAAD(groupID: content.groupID, epoch: content.epoch, contentType: content.contentType),
            plaintext: senderData.tlsSerialized)

        return PrivateMessage(
            groupID: content.groupID, epoch: content.epoch, contentType: content.contentType,
            authenticatedData: content.authenticatedData, encryptedSenderData: encryptedSenderData, ciphertext: ciphertext)
    }

    /// Decrypts and authenticates a received PrivateMessage (§6.3): sender
    /// data, content, zero padding, then the sender's signature with the key
    /// `signerKey` returns for its leaf. The secret tree changes only if every
    /// check passes, and then the key used is deleted. A commit's confirmation
    /// tag is checked by commit processing, as for PublicMessage.
    public func unprotect(
        _ provider: CipherSuiteProvider, context: GroupContext, secretTree: inout SecretTree,
        senderDataSecret: SenderDataSecret, signerKey: (LeafIndex) -> SignaturePublicKey?
    ) throws(MLSError) -> AuthenticatedContent {
        guard groupID == context.groupID else { throw MLSError(.wrongGroup, "§6", "message is for another group") }
        guard epoch == context.epoch else { throw MLSError(.wrongEpoch, "§6", "message is for another epoch") }

        let senderKey = Self.senderDataKey(provider, senderDataSecret: senderDataSecret, ciphertext: ciphertext)
        let senderDataBytes = try provider.open(
            key: senderKey.key, nonce: senderKey.nonce,
            aad: Self.senderDataAAD(groupID: groupID, epoch: epoch, contentType: contentType), ciphertext: encryptedSenderData)
        let senderData = try decodeMLS(SenderData.self, from: senderDataBytes)
        guard let verificationKey = signerKey(senderData.leafIndex) else {
            throw MLSError(.invalidSender, "§6.3.2", "sender data names a blank or unknown leaf")
        }

        var ratchets = try secretTree.ratchets(for: senderData.leafIndex)
        let kind = Self.ratchetKind(contentType)
        let keyAndNonce = try ratchets[kind].key(at: senderData.generation, provider, configuration: secretTree.configuration)
        let plaintext = try provider.open(
            key: keyAndNonce.key.bytes, nonce: xor(keyAndNonce.nonce.bytes, senderData.reuseGuard),
            aad: Self.contentAAD(groupID: groupID, epoch: epoch, contentType: contentType, authenticatedData: authenticatedData),
            ciphertext: ciphertext)

        let (body, auth) = try Self.decodeContent(plaintext, contentType: contentType)
        let framed = FramedContent(
            groupID: groupID, epoch: epoch, sender: .member(senderData.leafIndex), authenticatedData: authenticatedData, content: body)
        let authenticated = AuthenticatedContent(wireFormat: .privateMessage, content: framed, auth: auth)
        try authenticated.validateFraming(provider)
        try authenticated.verifySignature(provider, context: context, signerKey: verificationKey)

        secretTree.store(ratchets, for: senderData.leafIndex)
        return authenticated
    }

    /// Parses PrivateMessageContent: the body, the auth data, then padding
    /// that must be all zeros (§6.3.1).
    private static func decodeContent(
        _ plaintext: [UInt8], contentType: ContentType
    ) throws(MLSError) -> (Content, FramedContentAuthData) {
        var reader = TLSReader(plaintext)
        let body: Content
        let auth: FramedContentAuthData
        do {
            body = try Content.decodeBody(contentType, from: &reader)
            auth = try FramedContentAuthData(from: &reader, contentType: contentType)
        } catch let error as CodecError {
            throw MLSError(error)
        } catch let error as MLSError {
            throw error
        } catch {
            throw MLSError(.malformed, "§6.3.1", "undecodable PrivateMessageContent")
        }
        guard reader.readRemaining().allSatisfy({ $0 == 0 }) else {
            throw MLSError(.invalidPadding, "§6.3.1", "padding contains non-zero bytes")
        }
        return (body, auth)
    }
}
