import MLSCodec

/// `ParentNode` (§7.1).
public struct ParentNode: Hashable, Sendable, TLSCodable {
    public var encryptionKey: HPKEPublicKey
    public var parentHash: [UInt8]
    public var unmergedLeaves: [LeafIndex]

    public init(encryptionKey: HPKEPublicKey, parentHash: [UInt8], unmergedLeaves: [LeafIndex]) {
        self.encryptionKey = encryptionKey
        self.parentHash = parentHash
        self.unmergedLeaves = unmergedLeaves
    }

    public func encode(to writer: inout TLSWriter) {
        encryptionKey.encode(to: &writer)
        writer.writeOpaque(parentHash)
        writer.writeVector(unmergedLeaves)
    }

    public init(from reader: inout TLSReader) throws {
        encryptionKey = try HPKEPublicKey(from: &reader)
        parentHash = try reader.readOpaque("ParentNode.parent_hash")
        unmergedLeaves = try reader.readVector(of: LeafIndex.self, "ParentNode.unmerged_leaves")
    }
}

/// `Node` (§12.4.3.3): a leaf or a parent.
public enum Node: Hashable, Sendable, TLSCodable {
    case leaf(LeafNode)
    case parent(ParentNode)

    public func encode(to writer: inout TLSWriter) {
        switch self {
        case .leaf(let leaf):
            NodeType.leaf.encode(to: &writer)
            leaf.encode(to: &writer)
        case .parent(let parent):
            NodeType.parent.encode(to: &writer)
            parent.encode(to: &writer)
        }
    }

    public init(from reader: inout TLSReader) throws {
        switch try NodeType(from: &reader) {
        case .leaf: self = .leaf(try LeafNode(from: &reader))
        case .parent: self = .parent(try ParentNode(from: &reader))
        }
    }
}

/// The `ratchet_tree` extension's payload: `optional<Node> ratchet_tree<V>`
/// (§12.4.3.3), in array order with trailing blanks truncated.
public struct RatchetTreeNodes: Hashable, Sendable, TLSCodable {
    public var nodes: [Node?]

    public init(_ nodes: [Node?]) { self.nodes = nodes }

    public func encode(to writer: inout TLSWriter) {
        writer.writeVector { inner in
            for node in nodes { inner.writeOptional(node) }
        }
    }

    public init(from reader: inout TLSReader) throws {
        nodes = try reader.readVector("ratchet_tree") { inner in
            var nodes: [Node?] = []
            while !inner.isAtEnd {
                guard nodes.count < TLSReader.maxElementCount else {
                    throw CodecError(.tooLarge, "ratchet_tree", offset: inner.position)
                }
                nodes.append(try inner.readOptional(of: Node.self, "ratchet_tree.node"))
            }
            return nodes
        }
    }
}
