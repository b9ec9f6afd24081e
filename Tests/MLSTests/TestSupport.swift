import Foundation
import MLS
import MLSCodec
import Synchronization

/// A deterministic random source (SplitMix64) so that failures replay.
final class SeededRandom: RandomSource {
    private let state: Mutex<UInt64>

    init(seed: UInt64) { state = Mutex(seed) }

    func next() -> UInt64 {
        state.withLock { state in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func bytes(count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 8)
        while out.count < count {
            withUnsafeBytes(of: next().littleEndian) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(count))
    }
}

/// A two-member epoch with every secret the framing layer needs.
struct EpochFixture {
    let provider: CipherSuiteProvider
    let context: GroupContext
    let senderKey: SignaturePrivateKey
    let secrets: EpochSecrets
    let random: SeededRandom
    let sender: LeafIndex
    let leafCount: UInt32

    init(
        suite: CipherSuite = .x25519Aes128Sha256Ed25519, seed: UInt64 = 1, epoch: UInt64 = 7,
        sender: LeafIndex = LeafIndex(1), leafCount: UInt32 = 2
    ) throws {
        self.sender = sender
        self.leafCount = leafCount
        provider = try CipherSuiteProvider(suite)
        random = SeededRandom(seed: seed)
        senderKey = try provider.generateSignatureKey(random: random)
        context = GroupContext(
            cipherSuite: suite, groupID: random.bytes(count: 16), epoch: epoch,
            treeHash: random.bytes(count: provider.hashLength), confirmedTranscriptHash: random.bytes(count: provider.hashLength))
        secrets = KeySchedule.epochSecrets(
            provider, initSecret: InitSecret(random.bytes(count: provider.hashLength)),
            commitSecret: CommitSecret(random.bytes(count: provider.hashLength)), pskSecret: nil, groupContext: context)
    }

    func tree() -> SecretTree {
        SecretTree(provider, encryptionSecret: secrets.encryptionSecret, leafCount: leafCount)
    }

    func signerKey(_ leaf: LeafIndex) -> SignaturePublicKey? { leaf == sender ? senderKey.publicKey : nil }

    func signed(
        _ content: Content, wireFormat: WireFormat, authenticatedData: [UInt8] = [], as sender: Sender? = nil
    ) throws -> AuthenticatedContent {
        let framed = FramedContent(
            groupID: context.groupID, epoch: context.epoch, sender: sender ?? .member(self.sender),
            authenticatedData: authenticatedData, content: content)
        let tag: [UInt8]? = content.type == .commit ? [UInt8](repeating: 1, count: provider.hashLength) : nil
        return try AuthenticatedContent.sign(
            provider, wireFormat: wireFormat, content: framed, context: context, signer: senderKey, confirmationTag: tag)
    }

    func encrypt(_ text: String, tree: inout SecretTree, padding: PaddingPolicy = .default) throws -> PrivateMessage {
        try PrivateMessage.protect(
            provider, signed(.application(Array(text.utf8)), wireFormat: .privateMessage), secretTree: &tree,
            senderDataSecret: secrets.senderDataSecret, padding: padding, random: random)
    }

    func decrypt(_ message: PrivateMessage, tree: inout SecretTree) throws -> String {
        let content = try message.unprotect(
            provider, context: context, secretTree: &tree, senderDataSecret: secrets.senderDataSecret, signerKey: signerKey)
        guard case .application(let bytes) = content.content.content else { return "<not application>" }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The time the group tests check lifetimes against: now.
let testNow = ValidationTime.at(UInt64(Date().timeIntervalSince1970))
