import MLS
import Testing

@Suite("Secret tree (RFC 9420 §9)")
struct SecretTreeTests {
    let provider: CipherSuiteProvider
    let secret: EncryptionSecret

    init() throws {
        provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        secret = EncryptionSecret(SeededRandom(seed: 3).bytes(count: 32))
    }

    @Test func senderAndReceiverDeriveTheSameKeys() throws {
        var sender = SecretTree(provider, encryptionSecret: secret, leafCount: 8)
        var receiver = SecretTree(provider, encryptionSecret: secret, leafCount: 8)
        for generation in 0..<5 as Range<UInt32> {
            let sent = try sender.nextKey(for: LeafIndex(5), kind: .application)
            #expect(sent.generation == generation)
            #expect(try receiver.key(for: LeafIndex(5), kind: .application, generation: generation) == sent)
        }
    }

    @Test func handshakeAndApplicationRatchetsDiffer() throws {
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 2)
        let handshake = try tree.nextKey(for: LeafIndex(0), kind: .handshake)
        let application = try tree.nextKey(for: LeafIndex(0), kind: .application)
        #expect(handshake.key != application.key)
    }

    @Test func outOfOrderKeysAreKeptThenDeleted() throws {
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 2)
        let later = try tree.key(for: LeafIndex(1), kind: .application, generation: 4)
        #expect(later.generation == 4)
        // Skipped generations 0...3 are still available, once each.
        for generation in [2, 0, 3, 1] as [UInt32] {
            #expect(try tree.key(for: LeafIndex(1), kind: .application, generation: generation).generation == generation)
        }
        #expect(throws: MLSError(.generationTooOld, "", "")) {
            try tree.key(for: LeafIndex(1), kind: .application, generation: 2)
        }
        #expect(throws: MLSError(.generationTooOld, "", "")) {
            try tree.key(for: LeafIndex(1), kind: .application, generation: 4)
        }
    }

    @Test func theOutOfOrderWindowIsBounded() throws {
        let configuration = SecretTreeConfiguration(maxForwardDistance: 1000, outOfOrderTolerance: 4)
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 2, configuration: configuration)
        _ = try tree.key(for: LeafIndex(0), kind: .application, generation: 10)
        // Only the 4 most recent skipped keys (6...9) survive.
        #expect(throws: MLSError(.generationTooOld, "", "")) {
            try tree.key(for: LeafIndex(0), kind: .application, generation: 5)
        }
        #expect(try tree.key(for: LeafIndex(0), kind: .application, generation: 6).generation == 6)
    }

    @Test func generationsTooFarAheadAreRefused() throws {
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 2)
        #expect(throws: MLSError(.generationTooFar, "", "")) {
            try tree.key(for: LeafIndex(0), kind: .application, generation: 1001)
        }
        // The refusal consumed nothing: generation 0 is still there.
        #expect(try tree.key(for: LeafIndex(0), kind: .application, generation: 0).generation == 0)
    }

    @Test func leavesOutsideTheTreeAreRefused() {
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 4)
        #expect(throws: MLSError(.invalidSender, "", "")) { try tree.nextKey(for: LeafIndex(4), kind: .handshake) }
    }

    @Test func readingRatchetsDoesNotChangeTheTree() throws {
        var tree = SecretTree(provider, encryptionSecret: secret, leafCount: 4)
        var peeked = try tree.ratchets(for: LeafIndex(2))
        let first = try peeked.application.next(provider)
        // Not stored: the tree still hands out generation 0.
        #expect(try tree.nextKey(for: LeafIndex(2), kind: .application) == first)
    }
}
