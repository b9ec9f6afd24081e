import ConclaveProtocol
import Crypto
import Foundation
import Testing

/// The RFC 9162 Merkle tree against the Certificate Transparency reference
/// vectors (the eight entries, heads of sizes 0–8, and the published
/// inclusion and consistency proofs), then every proof of trees up to 40
/// entries against a plain recursive MTH, and hostile proofs.
@Suite struct MerkleLogTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return result
    }

    static let entries = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(bytes)
    static let heads = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ].map(bytes)
    static var reference: MerkleLog { MerkleLog(leafHashes: entries.map(MerkleLog.leafHash)) }

    @Test("The heads of the reference log, sizes 0 to 8")
    func referenceHeads() {
        let log = Self.reference
        #expect(MerkleLog.emptyRoot == Self.heads[0])
        for size in 0...8 { #expect(log.root(size: size) == Self.heads[size], "size \(size)") }
        #expect(log.root(size: 9) == nil)
    }

    @Test("The published inclusion proofs: produced and verified")
    func referenceInclusion() {
        let log = Self.reference
        let vectors: [(index: Int, size: Int, proof: [String])] = [
            (
                0, 8,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]
            ),
            (
                5, 8,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]
            ),
            (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (
                1, 5,
                [
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]
            ),
        ]
        for vector in vectors {
            let proof = vector.proof.map(Self.bytes)
            #expect(log.inclusionProof(index: vector.index, size: vector.size) == proof, "\(vector.index) in \(vector.size)")
            let leaf = MerkleLog.leafHash(Self.entries[vector.index])
            #expect(
                MerkleLog.verifyInclusion(
                    leafHash: leaf, index: vector.index, size: vector.size, proof: proof, root: Self.heads[vector.size]))
            #expect(!MerkleLog.verifyInclusion(leafHash: leaf, index: vector.index, size: vector.size, proof: proof, root: Self.heads[0]))
        }
    }

    @Test("The published consistency proofs: produced and verified")
    func referenceConsistency() {
        let log = Self.reference
        let vectors: [(old: Int, new: Int, proof: [String])] = [
            (1, 1, []),
            (
                1, 8,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]
            ),
            (
                6, 8,
                [
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]
            ),
            (
                2, 5,
                [
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]
            ),
        ]
        for vector in vectors {
            let proof = vector.proof.map(Self.bytes)
            #expect(log.consistencyProof(old: vector.old, new: vector.new) == proof, "\(vector.old) → \(vector.new)")
            #expect(
                MerkleLog.verifyConsistency(
                    oldSize: vector.old, newSize: vector.new, oldRoot: Self.heads[vector.old], newRoot: Self.heads[vector.new],
                    proof: proof))
        }
    }

    /// MTH as RFC 9162 §2.1.1 writes it, to check the stored-subtree version.
    static func plainRoot(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        guard leaves.count > 1 else { return leaves.first ?? MerkleLog.emptyRoot }
        var k = 1
        while k << 1 < leaves.count { k <<= 1 }
        return Array(SHA256.hash(data: [0x01] + plainRoot(leaves.prefix(k)) + plainRoot(leaves.dropFirst(k))))
    }

    @Test("Every head, inclusion and consistency proof of logs of 1 to 40 entries; changed proofs, entries and heads fail")
    func everyProof() {
        var random = SystemRandomNumberGenerator()
        for total in 1...40 {
            // Distinct entries (their index first), of random lengths and contents.
            let leaves = (0..<total).map { index in
                MerkleLog.leafHash(
                    [UInt8(index)] + (0..<Int.random(in: 0...12, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
            }
            let log = MerkleLog(leafHashes: leaves)
            for size in 1...total {
                let root = Self.plainRoot(leaves.prefix(size)[...])
                #expect(log.root(size: size) == root)
                for index in 0..<size {
                    guard let proof = log.inclusionProof(index: index, size: size) else {
                        Issue.record("no proof for \(index) in \(size)")
                        continue
                    }
                    #expect(MerkleLog.verifyInclusion(leafHash: leaves[index], index: index, size: size, proof: proof, root: root))
                    #expect(
                        !MerkleLog.verifyInclusion(
                            leafHash: leaves[(index + 1) % total], index: index, size: size, proof: proof, root: root) || total == 1)
                    if size > 1 {
                        #expect(
                            !MerkleLog.verifyInclusion(
                                leafHash: leaves[index], index: (index + 1) % size, size: size, proof: proof, root: root))
                        // (A head binds its size: the signed tree head carries both, so a proof is checked against that pair.)
                    }
                }
            }
            for old in 1...total {
                for new in old...total {
                    guard let proof = log.consistencyProof(old: old, new: new), let oldRoot = log.root(size: old),
                        let newRoot = log.root(size: new)
                    else {
                        Issue.record("no consistency proof \(old) → \(new)")
                        continue
                    }
                    #expect(MerkleLog.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: newRoot, proof: proof))
                    if old < new {
                        var forked = oldRoot
                        forked[0] ^= 1
                        #expect(!MerkleLog.verifyConsistency(oldSize: old, newSize: new, oldRoot: forked, newRoot: newRoot, proof: proof))
                        #expect(!MerkleLog.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: forked, proof: proof))
                    }
                }
            }
        }
    }

    @Test("A log whose earlier entry was altered is not consistent with the head seen before")
    func alteredEntry() throws {
        let leaves = (0..<23).map { MerkleLog.leafHash([UInt8($0)]) }
        let seen = try #require(MerkleLog(leafHashes: leaves.prefix(11)).root(size: 11))
        var altered = leaves
        altered[4] = MerkleLog.leafHash([0xff])
        let log = MerkleLog(leafHashes: altered)
        let proof = try #require(log.consistencyProof(old: 11, new: 23))
        #expect(!MerkleLog.verifyConsistency(oldSize: 11, newSize: 23, oldRoot: seen, newRoot: log.root, proof: proof))
        // A truncated log: its head at 11 is not the head seen at 11 either way.
        let truncated = MerkleLog(leafHashes: altered.prefix(11))
        #expect(truncated.root(size: 11) != seen)
    }

    @Test("Hostile proofs fail: too long, elements of the wrong length, indices and sizes out of range")
    func hostileProofs() {
        let log = Self.reference
        let leaf = MerkleLog.leafHash(Self.entries[0])
        let proof = log.inclusionProof(index: 0, size: 8) ?? []
        let root = Self.heads[8]
        #expect(
            !MerkleLog.verifyInclusion(leafHash: leaf, index: 0, size: 8, proof: proof + [[UInt8](repeating: 0, count: 32)], root: root))
        #expect(!MerkleLog.verifyInclusion(leafHash: leaf, index: 0, size: 8, proof: proof.map { $0 + [0] }, root: root))
        #expect(!MerkleLog.verifyInclusion(leafHash: leaf, index: 8, size: 8, proof: proof, root: root))
        #expect(!MerkleLog.verifyInclusion(leafHash: leaf, index: -1, size: 8, proof: proof, root: root))
        #expect(
            !MerkleLog.verifyInclusion(
                leafHash: leaf, index: 0, size: 8, proof: Array(repeating: [UInt8](repeating: 0, count: 32), count: 65), root: root))
        #expect(!MerkleLog.verifyConsistency(oldSize: 9, newSize: 8, oldRoot: root, newRoot: root, proof: []))
        #expect(!MerkleLog.verifyConsistency(oldSize: 3, newSize: 8, oldRoot: Self.heads[3], newRoot: root, proof: []))
        #expect(MerkleLog.verifyConsistency(oldSize: 0, newSize: 8, oldRoot: MerkleLog.emptyRoot, newRoot: root, proof: []))
        #expect(log.inclusionProof(index: 3, size: 9) == nil)
        #expect(log.consistencyProof(old: 5, new: 4) == nil)
    }

    @Test(
        "A compact range (the self-check's frontier) gives the full log's head at every size, survives encoding; a forged one does not decode"
    )
    func frontier() throws {
        var log = MerkleLog()
        var frontier = MerkleFrontier()
        #expect(frontier.root == MerkleLog.emptyRoot)
        for index in 0..<70 {
            let leaf = MerkleLog.leafHash(Array("entry \(index)".utf8))
            log.append(leafHash: leaf)
            frontier.append(leafHash: leaf)
            #expect(frontier.size == UInt64(log.size))
            #expect(frontier.root == log.root)
            let decoded = try ConclaveJSON.decoder().decode(MerkleFrontier.self, from: try ConclaveJSON.encoder().encode(frontier))
            #expect(decoded == frontier)
        }
        // Against the reference vectors too.
        var reference = MerkleFrontier()
        for (size, entry) in Self.entries.enumerated() {
            reference.append(leafHash: MerkleLog.leafHash(entry))
            #expect(reference.root == Self.heads[size + 1])
        }
        // A size that does not match its subtrees, or a hash of the wrong length, is refused.
        for forged in [#"{"size":3,"subtrees":[]}"#, #"{"size":1,"subtrees":["AAAA"]}"#] {
            #expect(throws: DecodingError.self) { _ = try ConclaveJSON.decoder().decode(MerkleFrontier.self, from: Data(forged.utf8)) }
        }
    }
}
