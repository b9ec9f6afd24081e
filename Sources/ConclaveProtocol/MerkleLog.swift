import Crypto

/// The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2) over
/// SHA-256, for the key-transparency log (issue 18): leaf and node hashing
/// with domain separation, the tree head of any size, inclusion and
/// consistency proofs, and their verification. Written from the RFC's
/// algorithms and checked against the Certificate Transparency reference
/// vectors (`MerkleLogTests`).
///
/// A ``MerkleLog`` keeps the hash of every complete subtree, so appending
/// is O(1) amortised and a head or a proof of any size up to the current
/// one costs O(log² n) hashes at most.
public struct MerkleLog: Sendable {
    /// The hash length, and the length of every proof element.
    public static let hashLength = 32
    /// The longest proof a tree of up to 2⁶⁴ entries needs.
    public static let maximumProofLength = 64

    /// `levels[h][i]`: the hash of the complete subtree of the 2^h leaves
    /// from i·2^h.
    private var levels: [[[UInt8]]] = [[]]

    public init() {}

    /// A log of these leaf hashes (``leafHash(_:)`` of each entry).
    public init(leafHashes: some Sequence<[UInt8]>) {
        for hash in leafHashes { append(leafHash: hash) }
    }

    /// How many entries the log holds.
    public var size: Int { levels[0].count }

    /// MTH of the empty tree: SHA-256 of nothing.
    public static let emptyRoot = Array(SHA256.hash(data: [UInt8]()))

    /// A leaf's hash: SHA-256(0x00 ‖ entry).
    public static func leafHash(_ entry: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: Array(entry))
        return Array(hasher.finalize())
    }

    /// An interior node's hash: SHA-256(0x01 ‖ left ‖ right).
    static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: [0x01])
        hasher.update(data: left)
        hasher.update(data: right)
        return Array(hasher.finalize())
    }

    /// Appends an entry by its leaf hash; returns its index.
    @discardableResult
    public mutating func append(leafHash: [UInt8]) -> Int {
        let index = levels[0].count
        levels[0].append(leafHash)
        // Each level whose last pair is now complete gets its parent.
        var level = 0
        while levels[level].count.isMultiple(of: 2) {
            let count = levels[level].count
            let parent = Self.nodeHash(levels[level][count - 2], levels[level][count - 1])
            if levels.count == level + 1 { levels.append([]) }
            levels[level + 1].append(parent)
            level += 1
        }
        return index
    }

    /// The leaf hash of entry `index`.
    public func leafHash(at index: Int) -> [UInt8]? { levels[0].indices.contains(index) ? levels[0][index] : nil }

    /// MTH(D[0:size]), the head of the log when it held `size` entries;
    /// nil past the current size.
    public func root(size: Int) -> [UInt8]? {
        guard (0...self.size).contains(size) else { return nil }
        return size == 0 ? Self.emptyRoot : hash(from: 0, count: size)
    }

    /// The head now.
    public var root: [UInt8] { root(size: size) ?? Self.emptyRoot }

    /// PATH(index, D[0:size]) (RFC 9162 §2.1.3.1): the hashes that lead
    /// from entry `index` to the head of the log at `size`.
    public func inclusionProof(index: Int, size: Int) -> [[UInt8]]? {
        guard size <= self.size, (0..<size).contains(index) else { return nil }
        return path(index, from: 0, count: size)
    }

    /// PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1): the hashes that show the
    /// head at `new` extends the head at `old`.
    public func consistencyProof(old: Int, new: Int) -> [[UInt8]]? {
        guard new <= size, (0...new).contains(old) else { return nil }
        guard old > 0, old < new else { return [] }
        return subproof(old, from: 0, count: new, complete: true)
    }

    // MARK: Verification (RFC 9162 §2.1.3.2, §2.1.4.2)

    /// Whether `proof` shows the entry of `leafHash` at `index` in the log
    /// whose head at `size` is `root`.
    public static func verifyInclusion(leafHash: [UInt8], index: Int, size: Int, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index >= 0, index < size, proof.count <= maximumProofLength, proof.allSatisfy({ $0.count == hashLength }) else {
            return false
        }
        var (fn, sn) = (index, size - 1)
        var hash = leafHash
        for element in proof {
            guard sn > 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                hash = nodeHash(element, hash)
                shiftToOddOrZero(&fn, &sn)
            } else {
                hash = nodeHash(hash, element)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && hash == root
    }

    /// Whether `proof` shows that the head `newRoot` at `newSize` extends
    /// the head `oldRoot` at `oldSize`: the log only grew.
    public static func verifyConsistency(oldSize: Int, newSize: Int, oldRoot: [UInt8], newRoot: [UInt8], proof: [[UInt8]]) -> Bool {
        guard oldSize >= 0, oldSize <= newSize, proof.count <= maximumProofLength, proof.allSatisfy({ $0.count == hashLength }) else {
            return false
        }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        if oldSize == 0 { return proof.isEmpty && oldRoot == emptyRoot }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        guard let first = path.first else { return false }
        var (fn, sn) = (oldSize - 1, newSize - 1)
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var (oldHash, newHash) = (first, first)
        for element in path.dropFirst() {
            guard sn > 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                oldHash = nodeHash(element, oldHash)
                newHash = nodeHash(element, newHash)
                shiftToOddOrZero(&fn, &sn)
            } else {
                newHash = nodeHash(newHash, element)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && oldHash == oldRoot && newHash == newRoot
    }

    /// RFC 9162's "if LSB(fn) is not set, right-shift both fn and sn equally
    /// until either LSB(fn) is set or fn is 0".
    private static func shiftToOddOrZero(_ fn: inout Int, _ sn: inout Int) {
        while fn & 1 == 0 && fn != 0 {
            fn >>= 1
            sn >>= 1
        }
    }

    // MARK: The recursion of RFC 9162 §2.1.1

    /// The largest power of two smaller than `count` (count ≥ 2).
    private static func split(_ count: Int) -> Int {
        var k = 1
        while k << 1 < count { k <<= 1 }
        return k
    }

    /// MTH(D[start:start+count]), count ≥ 1. A range the recursion reaches
    /// that is a power of two long starts at a multiple of its length, so
    /// it is a complete subtree whose hash is kept.
    private func hash(from start: Int, count: Int) -> [UInt8] {
        if count & (count - 1) == 0 {
            let level = count.trailingZeroBitCount
            return levels[level][start >> level]
        }
        let k = Self.split(count)
        return Self.nodeHash(hash(from: start, count: k), hash(from: start + k, count: count - k))
    }

    private func path(_ index: Int, from start: Int, count: Int) -> [[UInt8]] {
        guard count > 1 else { return [] }
        let k = Self.split(count)
        if index < k { return path(index, from: start, count: k) + [hash(from: start + k, count: count - k)] }
        return path(index - k, from: start + k, count: count - k) + [hash(from: start, count: k)]
    }

    private func subproof(_ old: Int, from start: Int, count: Int, complete: Bool) -> [[UInt8]] {
        if old == count { return complete ? [] : [hash(from: start, count: count)] }
        let k = Self.split(count)
        if old <= k { return subproof(old, from: start, count: k, complete: complete) + [hash(from: start + k, count: count - k)] }
        return subproof(old - k, from: start + k, count: count - k, complete: false) + [hash(from: start, count: k)]
    }
}

/// The right edge of a log (RFC 9162's tree as its complete subtrees,
/// largest first): enough to extend it leaf by leaf and compute its head,
/// without the leaves. A device that keeps the frontier of the log at the
/// last head it checked reads only the entries appended since, and knows
/// they are the log's when the extended frontier gives the new head's root.
public struct MerkleFrontier: Hashable, Sendable, Codable {
    public private(set) var size: UInt64 = 0
    /// The roots of the complete subtrees, one per set bit of `size`, largest first.
    private var subtrees: [[UInt8]] = []

    public init() {}

    public mutating func append(leafHash: [UInt8]) {
        var hash = leafHash
        var count = size
        while count & 1 == 1, let left = subtrees.popLast() {
            hash = MerkleLog.nodeHash(left, hash)
            count >>= 1
        }
        subtrees.append(hash)
        size += 1
    }

    /// MTH of the leaves appended so far.
    public var root: [UInt8] {
        guard var hash = subtrees.last else { return MerkleLog.emptyRoot }
        for left in subtrees.dropLast().reversed() { hash = MerkleLog.nodeHash(left, hash) }
        return hash
    }

    enum CodingKeys: String, CodingKey { case size, subtrees }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        size = try container.decode(UInt64.self, forKey: .size)
        subtrees = try container.decode([Base64Bytes].self, forKey: .subtrees).map(\.bytes)
        guard subtrees.count == size.nonzeroBitCount, subtrees.allSatisfy({ $0.count == MerkleLog.hashLength }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a Merkle frontier"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(size, forKey: .size)
        try container.encode(subtrees.map(Base64Bytes.init), forKey: .subtrees)
    }
}
