import MLSCodec

/// `GroupContext` (§8.1): the group's shared summary, mixed into every epoch's keys.
public struct GroupContext: Hashable, Sendable, TLSCodable {
    public var version: ProtocolVersion
    public var cipherSuite: CipherSuite
    public var groupID: [UInt8]
    public var epoch: UInt64
    public var treeHash: [UInt8]
    public var confirmedTranscriptHash: [UInt8]
    public var extensions: [Extension]

    public init(
        version: ProtocolVersion = .mls10, cipherSuite: CipherSuite, groupID: [UInt8], epoch: UInt64,
        treeHash: [UInt8], confirmedTranscriptHash: [UInt8], extensions: [Extension] = []
    ) {
        self.version = version
        self.cipherSuite = cipherSuite
        self.groupID = groupID
        self.epoch = epoch
        self.treeHash = treeHash
        self.confirmedTranscriptHash = confirmedTranscriptHash
        self.extensions = extensions
    }

    public func encode(to writer: inout TLSWriter) {
        version.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        writer.writeOpaque(groupID)
        writer.write(epoch)
        writer.writeOpaque(treeHash)
        writer.writeOpaque(confirmedTranscriptHash)
        writer.writeVector(extensions)
    }

    public init(from reader: inout TLSReader) throws {
        version = try ProtocolVersion(from: &reader)
        cipherSuite = try CipherSuite(from: &reader)
        groupID = try reader.readOpaque("GroupContext.group_id")
        epoch = try reader.readUInt64("GroupContext.epoch")
        treeHash = try reader.readOpaque("GroupContext.tree_hash")
        confirmedTranscriptHash = try reader.readOpaque("GroupContext.confirmed_transcript_hash")
        extensions = try reader.readVector(of: Extension.self, "GroupContext.extensions")
    }
}
