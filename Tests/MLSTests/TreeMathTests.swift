import MLS
import Testing

@Suite("Array-based tree math (RFC 9420 Appendix C)")
struct TreeMathTests {
    let math = TreeMath(leafCount: 8)

    @Test func leavesAndParentsHaveTheirOwnIndexTypes() {
        #expect(LeafIndex(3).nodeIndex == NodeIndex(6))
        #expect(NodeIndex(6).leafIndex == LeafIndex(3))
        #expect(NodeIndex(5).leafIndex == nil)
        #expect(NodeIndex(5).parentIndex == ParentIndex(rawValue: 2))
        #expect(ParentIndex(rawValue: 2).nodeIndex == NodeIndex(5))
    }

    @Test func directPathAndCopathFollowTheFigure() {
        // Leaf 2 (node 4) in an 8-leaf tree: parents 5, 3, 7; siblings 6, 1, 11.
        #expect(math.directPath(NodeIndex(4)) == [5, 3, 7].map { NodeIndex(UInt32($0)) })
        #expect(math.copath(NodeIndex(4)) == [6, 1, 11].map { NodeIndex(UInt32($0)) })
        #expect(math.directPath(math.root) == [])
        #expect(math.copath(math.root) == [])
    }

    @Test func commonAncestor() {
        #expect(TreeMath.commonAncestor(NodeIndex(0), NodeIndex(2)) == NodeIndex(1))
        #expect(TreeMath.commonAncestor(NodeIndex(0), NodeIndex(14)) == NodeIndex(7))
        #expect(TreeMath.commonAncestor(NodeIndex(8), NodeIndex(12)) == NodeIndex(11))
        #expect(TreeMath.commonAncestor(NodeIndex(5), NodeIndex(4)) == NodeIndex(5))
    }

    @Test func nodesOutsideTheTreeHaveNoParent() {
        #expect(math.parent(NodeIndex(15)) == nil)
        #expect(math.parent(NodeIndex(7)) == nil)
        #expect(math.left(NodeIndex(4)) == nil)
        #expect(TreeMath(leafCount: 0).nodeCount == 0)
    }
}

@Suite("Secrets stay secret")
struct SecretHygieneTests {
    @Test func secretsPrintRedacted() throws {
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let key = try provider.generateSignatureKey(random: SeededRandom(seed: 1))
        let hpke = try provider.generateHPKEKeyPair(random: SeededRandom(seed: 2))
        let secret = EncryptionSecret([1, 2, 3])
        for text in [
            String(describing: key), String(describing: hpke.privateKey), String(describing: secret),
            String(describing: SecretBytes([0xAB])), String(reflecting: SecretBytes([0xAB])),
        ] {
            #expect(text.contains("redacted"))
            #expect(!text.contains("171"))  // 0xAB
        }
    }

    @Test func secretBytesCompareByValue() {
        #expect(SecretBytes([1, 2]) == SecretBytes([1, 2]))
        #expect(SecretBytes([1, 2]) != SecretBytes([1, 3]))
        #expect(SecretBytes([1, 2]) != SecretBytes([1, 2, 3]))
    }

    @Test func keyGenerationReplaysFromTheRandomSource() throws {
        for suite in CipherSuite.implemented {
            let provider = try CipherSuiteProvider(suite)
            let first = try provider.generateSignatureKey(random: SeededRandom(seed: 42))
            let second = try provider.generateSignatureKey(random: SeededRandom(seed: 42))
            #expect(first.publicKey == second.publicKey)
            let firstHPKE = try provider.generateHPKEKeyPair(random: SeededRandom(seed: 42))
            let secondHPKE = try provider.generateHPKEKeyPair(random: SeededRandom(seed: 42))
            #expect(firstHPKE.publicKey == secondHPKE.publicKey)
        }
    }
}
