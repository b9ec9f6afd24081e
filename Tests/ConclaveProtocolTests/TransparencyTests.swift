import ConclaveProtocol
import Foundation
import MLSCodec
import Testing

/// The key-transparency log's entries, user indices and signed tree heads
/// (issue 18, docs/transparency.md): encodings, commitments and signatures,
/// and what must fail.
@Suite struct TransparencyTests {
    static let domain = NetworkDomain("acme.example")!  // a literal of the test
    static let alice = UserName("alice")!
    static let bob = UserName("bob")!

    @Test("An entry round-trips; fields of the wrong length are refused; its leaf hash binds every field")
    func entries() throws {
        let index = TransparencyIndex(secret: Array(repeating: 7, count: 32)).index(of: Self.alice)
        let devices = TransparencyEntry.deviceCommitment([(DeviceID.random(), Array(repeating: 1, count: 32))])
        let entry = TransparencyEntry(
            index: index, identityKey: Array(repeating: 9, count: 32), devices: devices, version: 1, time: 1_764_547_200)
        #expect(try TransparencyEntry(tlsSerialized: entry.tlsSerialized) == entry)
        var none = entry
        none.identityKey = []
        #expect(try TransparencyEntry(tlsSerialized: none.tlsSerialized) == none)
        for broken in [
            TransparencyEntry(index: [1], identityKey: entry.identityKey, devices: devices, version: 1, time: 0),
            TransparencyEntry(index: index, identityKey: [1, 2], devices: devices, version: 1, time: 0),
            TransparencyEntry(index: index, identityKey: entry.identityKey, devices: [], version: 1, time: 0),
        ] {
            #expect(throws: (any Error).self) { try TransparencyEntry(tlsSerialized: broken.tlsSerialized) }
        }
        #expect(throws: (any Error).self) { try TransparencyEntry(tlsSerialized: entry.tlsSerialized + [0]) }
        var changed = entry
        changed.version = 2
        #expect(changed.leafHash != entry.leafHash)
        changed = entry
        changed.identityKey[0] ^= 1
        #expect(changed.leafHash != entry.leafHash)
    }

    @Test("A device-set commitment ignores order and changes with any device or key")
    func deviceCommitment() {
        let (first, second) = (DeviceID.random(), DeviceID.random())
        let (keyA, keyB) = ([UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 32))
        let both = TransparencyEntry.deviceCommitment([(first, keyA), (second, keyB)])
        #expect(both == TransparencyEntry.deviceCommitment([(second, keyB), (first, keyA)]))
        #expect(both != TransparencyEntry.deviceCommitment([(first, keyA)]))
        #expect(both != TransparencyEntry.deviceCommitment([(first, keyB), (second, keyA)]))
        #expect(both.count == 32)
    }

    @Test("User indices: the same for a name under one secret, different across names and secrets")
    func indices() {
        let index = TransparencyIndex(secret: Array(repeating: 3, count: 32))
        let other = TransparencyIndex(secret: Array(repeating: 4, count: 32))
        #expect(index.index(of: Self.alice) == index.index(of: Self.alice))
        #expect(index.index(of: Self.alice) != index.index(of: Self.bob))
        #expect(index.index(of: Self.alice) != other.index(of: Self.alice))
        #expect(index.index(of: Self.alice).count == 32)
    }

    @Test("A signed head verifies with its network's key only; any change to it fails; two roots of one size contradict")
    func signedHeads() throws {
        let key = NetworkSigningKey.generate(domain: Self.domain)
        let log = MerkleLog(leafHashes: (0..<5).map { MerkleLog.leafHash([UInt8($0)]) })
        let head = TreeHead(domain: Self.domain, size: 5, root: log.root, time: 1_764_547_200)
        let signed = try SignedTreeHead.sign(head, by: key)
        #expect(signed.isValid(for: key.publicKey))
        #expect(try TreeHead(tlsSerialized: head.tlsSerialized) == head)
        #expect(!signed.isValid(for: NetworkSigningKey.generate(domain: Self.domain).publicKey))
        var altered = signed
        altered.head.size = 6
        #expect(!altered.isValid(for: key.publicKey))
        altered = signed
        altered.head.root[0] ^= 1
        #expect(!altered.isValid(for: key.publicKey))
        altered = signed
        altered.head.time += 1
        #expect(!altered.isValid(for: key.publicKey))
        let elsewhere = try #require(NetworkDomain("globex.example"))
        #expect(throws: TransparencyError.wrongNetwork) {
            try SignedTreeHead.sign(TreeHead(domain: elsewhere, size: 5, root: log.root, time: 0), by: key)
        }
        // A split view: the same size, another root, both signed.
        var fork = head
        fork.root = MerkleLog(leafHashes: (0..<5).map { MerkleLog.leafHash([UInt8($0 + 1)]) }).root
        #expect(head.contradicts(fork) && !head.contradicts(head))
        #expect(try SignedTreeHead.sign(fork, by: key).isValid(for: key.publicKey))
        var shortRoot = head
        shortRoot.root = [1, 2, 3]
        #expect(throws: (any Error).self) { try TreeHead(tlsSerialized: shortRoot.tlsSerialized) }
    }

    @Test("A witness's cosignature verifies for that head at its time only, under the witness's key; a network does not witness itself")
    func cosignatures() throws {
        let witness = NetworkSigningKey.generate(domain: try #require(NetworkDomain("globex.example")))
        let head = TreeHead(domain: Self.domain, size: 5, root: Array(repeating: 9, count: 32), time: 1_764_547_200)
        let when = Date(timeIntervalSince1970: 1_764_550_800.25)
        let cosignature = try WitnessCosignature.sign(head, at: when, by: witness)
        #expect(cosignature.witness == witness.domain && cosignature.time == 1_764_550_800_250)
        #expect(abs(cosignature.date.timeIntervalSince(when)) < 0.001)
        #expect(cosignature.isValid(for: head, key: witness.publicKey))
        var later = cosignature
        later.time += 1  // a fresher time than the witness signed
        #expect(!later.isValid(for: head, key: witness.publicKey))
        var other = head
        other.size = 6
        #expect(!cosignature.isValid(for: other, key: witness.publicKey))
        #expect(!cosignature.isValid(for: head, key: NetworkSigningKey.generate(domain: witness.domain).publicKey))
        var renamed = cosignature
        renamed.witness = try #require(NetworkDomain("initech.example"))
        #expect(!renamed.isValid(for: head, key: witness.publicKey))
        #expect(throws: TransparencyError.wrongNetwork) {
            try WitnessCosignature.sign(head, at: when, by: NetworkSigningKey.generate(domain: Self.domain))
        }
        let decoded = try JSONDecoder().decode(WitnessCosignature.self, from: try JSONEncoder().encode(cosignature))
        #expect(decoded == cosignature)
        // One of the first format (no time) still reads, as signed at 0, and verifies no more.
        let first = #"{"witness":"globex.example","signature":"\#(Data(cosignature.signature.bytes).base64EncodedString())"}"#
        let old = try JSONDecoder().decode(WitnessCosignature.self, from: Data(first.utf8))
        #expect(old.time == 0 && old.witness == witness.domain && !old.isValid(for: head, key: witness.publicKey))
    }
}
