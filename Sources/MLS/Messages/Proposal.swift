import MLSCodec

/// `PreSharedKeyID` (§8.4).
public struct PreSharedKeyID: Hashable, Sendable, TLSCodable {
    public enum Kind: Hashable, Sendable {
        case external(pskID: [UInt8])
        case resumption(usage: ResumptionPSKUsage, groupID: [UInt8], epoch: UInt64)
    }

    public var kind: Kind
    public var nonce: [UInt8]

    public init(kind: Kind, nonce: [UInt8]) {
        self.kind = kind
        self.nonce = nonce
    }

    public func encode(to writer: inout TLSWriter) {
        switch kind {
        case .external(let pskID):
            PSKType.external.encode(to: &writer)
            writer.writeOpaque(pskID)
        case .resumption(let usage, let groupID, let epoch):
            PSKType.resumption.encode(to: &writer)
            usage.encode(to: &writer)
            writer.writeOpaque(groupID)
            writer.write(epoch)
        }
        writer.writeOpaque(nonce)
    }

    public init(from reader: inout TLSReader) throws {
        switch try PSKType(from: &reader) {
        case .external:
            kind = .external(pskID: try reader.readOpaque("PreSharedKeyID.psk_id"))
        case .resumption:
            let usage = try ResumptionPSKUsage(from: &reader)
            let groupID = try reader.readOpaque("PreSharedKeyID.psk_group_id")
            let epoch = try reader.readUInt64("PreSharedKeyID.psk_epoch")
            kind = .resumption(usage: usage, groupID: groupID, epoch: epoch)
        }
        nonce = try reader.readOpaque("PreSharedKeyID.psk_nonce")
    }
}

/// `ReInit` (§12.1.5).
public struct ReInit: Hashable, Sendable, TLSCodable {
    public var groupID: [UInt8]
    public var version: ProtocolVersion
    public var cipherSuite: CipherSuite
    public var extensions: [Extension]

    public init(groupID: [UInt8], version: ProtocolVersion, cipherSuite: CipherSuite, extensions: [Extension]) {
        self.groupID = groupID
        self.version = version
        self.cipherSuite = cipherSuite
        self.extensions = extensions
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(groupID)
        version.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        writer.writeVector(extensions)
    }

    public init(from reader: inout TLSReader) throws {
        groupID = try reader.readOpaque("ReInit.group_id")
        version = try ProtocolVersion(from: &reader)
        cipherSuite = try CipherSuite(from: &reader)
        extensions = try reader.readVector(of: Extension.self, "ReInit.extensions")
    }
}

/// `Proposal` (§12.1). The payload of each case is the RFC's struct of the
/// same name (Add, Update, Remove, PreSharedKey, ReInit, ExternalInit,
/// GroupContextExtensions).
public enum Proposal: Hashable, Sendable, TLSCodable {
    case add(KeyPackage)
    case update(LeafNode)
    case remove(LeafIndex)
    case preSharedKey(PreSharedKeyID)
    case reinit(ReInit)
    case externalInit(kemOutput: [UInt8])
    case groupContextExtensions([Extension])

    public var type: ProposalType {
        switch self {
        case .add: .add
        case .update: .update
        case .remove: .remove
        case .preSharedKey: .psk
        case .reinit: .reinit
        case .externalInit: .externalInit
        case .groupContextExtensions: .groupContextExtensions
        }
    }

    public func encode(to writer: inout TLSWriter) {
        type.encode(to: &writer)
        encodeBody(to: &writer)
    }

    /// The proposal's own struct (without the type), as in messages.json.
    public func encodeBody(to writer: inout TLSWriter) {
        switch self {
        case .add(let keyPackage): keyPackage.encode(to: &writer)
        case .update(let leafNode): leafNode.encode(to: &writer)
        case .remove(let removed): removed.encode(to: &writer)
        case .preSharedKey(let psk): psk.encode(to: &writer)
        case .reinit(let reinit): reinit.encode(to: &writer)
        case .externalInit(let kemOutput): writer.writeOpaque(kemOutput)
        case .groupContextExtensions(let extensions): writer.writeVector(extensions)
        }
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        let type = try ProposalType(from: &reader)
        self = try Self.decodeBody(type, from: &reader, offset: offset)
    }

    /// Decodes the struct for a proposal of `type` (without the type field).
    public static func decodeBody(_ type: ProposalType, from reader: inout TLSReader, offset: Int = 0) throws -> Proposal {
        switch type {
        case .add: return .add(try KeyPackage(from: &reader))
        case .update: return .update(try LeafNode(from: &reader))
        case .remove: return .remove(try LeafIndex(from: &reader))
        case .psk: return .preSharedKey(try PreSharedKeyID(from: &reader))
        case .reinit: return .reinit(try ReInit(from: &reader))
        case .externalInit: return .externalInit(kemOutput: try reader.readOpaque("ExternalInit.kem_output"))
        case .groupContextExtensions:
            return .groupContextExtensions(try reader.readVector(of: Extension.self, "GroupContextExtensions.extensions"))
        default:
            // A proposal of an unregistered type has no length prefix to skip it by.
            throw CodecError(.unknownValue, "Proposal.proposal_type", offset: offset)
        }
    }
}
