import MLSCodec

/// The index of a leaf: `LeafIndex` in RFC 9420 (the n-th leaf sits at node 2n).
public struct LeafIndex: RawRepresentable, Hashable, Comparable, Sendable, TLSCodable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { rawValue = value }

    /// The node that holds this leaf. Leaf indices from input are checked
    /// against the tree's width (at most 2^31 leaves) before use.
    public var nodeIndex: NodeIndex { NodeIndex(rawValue: rawValue &* 2) }

    public static func < (lhs: LeafIndex, rhs: LeafIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "leaf \(rawValue)" }
    public func encode(to writer: inout TLSWriter) { writer.write(rawValue) }
    public init(from reader: inout TLSReader) throws { rawValue = try reader.readUInt32("LeafIndex") }
}

/// The index of an intermediate (parent) node: the n-th parent sits at node 2n + 1.
public struct ParentIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public var nodeIndex: NodeIndex { NodeIndex(rawValue: rawValue &* 2 &+ 1) }
    public static func < (lhs: ParentIndex, rhs: ParentIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "parent \(rawValue)" }
}

/// A position in the array representation of a tree (RFC 9420 Appendix C).
public struct NodeIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { rawValue = value }

    public var isLeaf: Bool { rawValue & 1 == 0 }
    /// The leaf this node holds, if it is a leaf.
    public var leafIndex: LeafIndex? { isLeaf ? LeafIndex(rawValue: rawValue >> 1) : nil }
    /// The parent slot this node holds, if it is an intermediate node.
    public var parentIndex: ParentIndex? { isLeaf ? nil : ParentIndex(rawValue: rawValue >> 1) }

    /// The node's level: leaves are 0, their parents 1, and so on.
    public var level: UInt32 {
        var k: UInt32 = 0
        while (rawValue >> k) & 1 == 1 { k += 1 }
        return k
    }

    public static func < (lhs: NodeIndex, rhs: NodeIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "node \(rawValue)" }
}

/// Array-based tree math (RFC 9420 Appendix C) for a tree of `leafCount` leaves.
///
/// MLS trees are always full binary trees: `leafCount` is a power of two (or 0).
/// The functions also answer for other counts exactly as Appendix C does.
public struct TreeMath: Sendable, Hashable {
    public let leafCount: UInt32

    /// The largest tree: 2^31 leaves, whose 2^32 - 1 nodes still have UInt32 indices.
    public static let maxLeafCount: UInt32 = 1 << 31

    /// A tree of `leafCount` leaves; counts above ``maxLeafCount`` are clamped to it.
    public init(leafCount: UInt32) { self.leafCount = min(leafCount, Self.maxLeafCount) }

    /// node_width(n): the number of nodes in the array.
    public var nodeCount: UInt32 { leafCount == 0 ? 0 : 2 * (leafCount - 1) + 1 }

    public var root: NodeIndex {
        let width = nodeCount
        return NodeIndex(rawValue: width == 0 ? 0 : (UInt32(1) << Self.log2(width)) - 1)
    }

    /// Whether `node` lies inside this tree.
    public func contains(_ node: NodeIndex) -> Bool { node.rawValue < nodeCount }

    /// The left child of an intermediate node; nil for a leaf.
    public func left(_ node: NodeIndex) -> NodeIndex? {
        let k = node.level
        guard k > 0 else { return nil }
        return NodeIndex(rawValue: node.rawValue ^ (1 << (k - 1)))
    }

    /// The right child of an intermediate node; nil for a leaf.
    public func right(_ node: NodeIndex) -> NodeIndex? {
        let k = node.level
        guard k > 0 else { return nil }
        return NodeIndex(rawValue: node.rawValue ^ (3 << (k - 1)))
    }

    /// The parent of a node; nil for the root or a node outside the tree.
    public func parent(_ node: NodeIndex) -> NodeIndex? {
        guard contains(node), node != root else { return nil }
        let k = node.level
        let b = (node.rawValue >> (k + 1)) & 1
        return NodeIndex(rawValue: (node.rawValue | (1 << k)) ^ (b << (k + 1)))
    }

    /// The other child of the node's parent; nil for the root.
    public func sibling(_ node: NodeIndex) -> NodeIndex? {
        guard let parent = parent(node) else { return nil }
        return node < parent ? right(parent) : left(parent)
    }

    /// The direct path of a node, from its parent up to the root.
    public func directPath(_ node: NodeIndex) -> [NodeIndex] {
        var path: [NodeIndex] = []
        var current = node
        while let next = parent(current) {
            path.append(next)
            current = next
        }
        return path
    }

    /// The copath of a node: the sibling of each node on the path from the node
    /// (inclusive) to the root (exclusive).
    public func copath(_ node: NodeIndex) -> [NodeIndex] {
        var result: [NodeIndex] = []
        var current = node
        while let sibling = sibling(current), let parent = parent(current) {
            result.append(sibling)
            current = parent
        }
        return result
    }

    /// The lowest node whose subtree holds both nodes.
    public static func commonAncestor(_ x: NodeIndex, _ y: NodeIndex) -> NodeIndex {
        let lx = x.level + 1
        let ly = y.level + 1
        if lx <= ly, x.rawValue >> ly == y.rawValue >> ly { return y }
        if ly <= lx, x.rawValue >> lx == y.rawValue >> lx { return x }
        var xn = x.rawValue
        var yn = y.rawValue
        var k: UInt32 = 0
        while xn != yn {
            xn >>= 1
            yn >>= 1
            k += 1
        }
        return NodeIndex(rawValue: (xn << k) + (1 << (k - 1)) - 1)
    }

    /// The exponent of the largest power of 2 not above x (0 for 0).
    static func log2(_ x: UInt32) -> UInt32 {
        x == 0 ? 0 : UInt32(31 - x.leadingZeroBitCount)
    }
}
