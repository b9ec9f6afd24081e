import MLSCodec

/// `ProposalOrRef` (§12.4).
public enum ProposalOrRef: Hashable, Sendable, TLSCodable {
    case proposal(Proposal)
    case reference([UInt8])

    public func encode(to writer: inout TLSWriter) {
        switch self {
        case .proposal(let proposal):
            ProposalOrRefType.proposal.encode(to: &writer)
            proposal.encode(to: &writer)
        case .reference(let reference):
            ProposalOrRefType.reference.encode(to: &writer)
            writer.writeOpaque(reference)
        }
    }

    public init(from reader: inout TLSReader) throws {
        switch try ProposalOrRefType(from: &reader) {
        case .proposal: self = .proposal(try Proposal(from: &reader))
        case .reference: self = .reference(try reader.readOpaque("ProposalOrRef.reference"))
        }
    }
}

/// `UpdatePathNode` (§7.6).
public struct UpdatePathNode: Hashable, Sendable, TLSCodable {
    public var encryptionKey: HPKEPublicKey
    public var encryptedPathSecret: [HPKECiphertext]

    public init(encryptionKey: HPKEPublicKey, encryptedPathSecret: [HPKECiphertext]) {
        self.encryptionKey = encryptionKey
        self.encryptedPathSecret = encryptedPathSecret
    }

    public func encode(to writer: inout TLSWriter) {
        encryptionKey.encode(to: &writer)
        writer.writeVector(encryptedPathSecret)
    }

    public init(from reader: inout TLSReader) throws {
        encryptionKey = try HPKEPublicKey(from: &reader)
        encryptedPathSecret = try reader.readVector(of: HPKECiphertext.self, "UpdatePathNode.encrypted_path_secret")
    }
}

/// `UpdatePath` (§7.6).
public struct UpdatePath: Hashable, Sendable, TLSCodable {
    public var leafNode: LeafNode
    public var nodes: [UpdatePathNode]

    public init(leafNode: LeafNode, nodes: [UpdatePathNode]) {
        self.leafNode = leafNode
        self.nodes = nodes
    }

    public func encode(to writer: inout TLSWriter) {
        leafNode.encode(to: &writer)
        writer.writeVector(nodes)
    }

    public init(from reader: inout TLSReader) throws {
        leafNode = try LeafNode(from: &reader)
        nodes = try reader.readVector(of: UpdatePathNode.self, "UpdatePath.nodes")
    }
}

/// `Commit` (§12.4).
public struct Commit: Hashable, Sendable, TLSCodable {
    public var proposals: [ProposalOrRef]
    public var path: UpdatePath?

    public init(proposals: [ProposalOrRef], path: UpdatePath?) {
        self.proposals = proposals
        self.path = path
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeVector(proposals)
        writer.writeOptional(path)
    }

    public init(from reader: inout TLSReader) throws {
        proposals = try reader.readVector(of: ProposalOrRef.self, "Commit.proposals")
        path = try reader.readOptional(of: UpdatePath.self, "Commit.path")
    }
}
