import MLSCodec

/// `Sender` (§6).
public enum Sender: Hashable, Sendable, TLSCodable {
    case member(LeafIndex)
    /// An index into the group's `external_senders` extension.
    case external(UInt32)
    case newMemberProposal
    case newMemberCommit

    public var type: SenderType {
        switch self {
        case .member: .member
        case .external: .external
        case .newMemberProposal: .newMemberProposal
        case .newMemberCommit: .newMemberCommit
        }
    }

    public func encode(to writer: inout TLSWriter) {
        type.encode(to: &writer)
        switch self {
        case .member(let leaf): leaf.encode(to: &writer)
        case .external(let index): writer.write(index)
        case .newMemberProposal, .newMemberCommit: break
        }
    }

    public init(from reader: inout TLSReader) throws {
        switch try SenderType(from: &reader) {
        case .member: self = .member(try LeafIndex(from: &reader))
        case .external: self = .external(try reader.readUInt32("Sender.sender_index"))
        case .newMemberProposal: self = .newMemberProposal
        case .newMemberCommit: self = .newMemberCommit
        }
    }
}

/// The `select (content_type)` body of FramedContent and PrivateMessageContent.
///
/// Prints without application data: decrypted text must never reach a log.
public enum Content: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    case application([UInt8])
    case proposal(Proposal)
    case commit(Commit)

    public var type: ContentType {
        switch self {
        case .application: .application
        case .proposal: .proposal
        case .commit: .commit
        }
    }

    public var description: String {
        switch self {
        case .application(let data): "application(<\(data.count) bytes>)"
        case .proposal(let proposal): "proposal(\(proposal.type.rawValue))"
        case .commit(let commit): "commit(\(commit.proposals.count) proposals, path: \(commit.path != nil))"
        }
    }

    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    func encodeBody(to writer: inout TLSWriter) {
        switch self {
        case .application(let data): writer.writeOpaque(data)
        case .proposal(let proposal): proposal.encode(to: &writer)
        case .commit(let commit): commit.encode(to: &writer)
        }
    }

    static func decodeBody(_ type: ContentType, from reader: inout TLSReader) throws -> Content {
        switch type {
        case .application: .application(try reader.readOpaque("application_data"))
        case .proposal: .proposal(try Proposal(from: &reader))
        case .commit: .commit(try Commit(from: &reader))
        }
    }
}

/// `FramedContent` (§6).
public struct FramedContent: Hashable, Sendable, TLSCodable {
    public var groupID: [UInt8]
    public var epoch: UInt64
    public var sender: Sender
    public var authenticatedData: [UInt8]
    public var content: Content

    public init(groupID: [UInt8], epoch: UInt64, sender: Sender, authenticatedData: [UInt8], content: Content) {
        self.groupID = groupID
        self.epoch = epoch
        self.sender = sender
        self.authenticatedData = authenticatedData
        self.content = content
    }

    public var contentType: ContentType { content.type }

    /// An upper bound on the encoded size of the caller-chosen parts.
    var encodedLengthBound: Int {
        let body: Int
        switch content {
        case .application(let data): body = data.count
        case .proposal, .commit: body = 0  // built by this library from decoded or bounded values
        }
        return body + authenticatedData.count + groupID.count
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(groupID)
        writer.write(epoch)
        sender.encode(to: &writer)
        writer.writeOpaque(authenticatedData)
        content.type.encode(to: &writer)
        content.encodeBody(to: &writer)
    }

    public init(from reader: inout TLSReader) throws {
        groupID = try reader.readOpaque("FramedContent.group_id")
        epoch = try reader.readUInt64("FramedContent.epoch")
        sender = try Sender(from: &reader)
        authenticatedData = try reader.readOpaque("FramedContent.authenticated_data")
        content = try Content.decodeBody(try ContentType(from: &reader), from: &reader)
    }
}

/// `FramedContentAuthData` (§6.1): the signature, and for commits the confirmation tag.
public struct FramedContentAuthData: Hashable, Sendable {
    public var signature: [UInt8]
    /// Present exactly when the content is a commit.
    public var confirmationTag: [UInt8]?

    public init(signature: [UInt8], confirmationTag: [UInt8]?) {
        self.signature = signature
        self.confirmationTag = confirmationTag
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(signature)
        if let confirmationTag { writer.writeOpaque(confirmationTag) }
    }

    public init(from reader: inout TLSReader, contentType: ContentType) throws {
        signature = try reader.readOpaque("FramedContentAuthData.signature")
        confirmationTag = contentType == .commit ? try reader.readOpaque("FramedContentAuthData.confirmation_tag") : nil
    }
}

/// `AuthenticatedContent` (§6.1).
public struct AuthenticatedContent: Hashable, Sendable, TLSCodable {
    public var wireFormat: WireFormat
    public var content: FramedContent
    public var auth: FramedContentAuthData

    public init(wireFormat: WireFormat, content: FramedContent, auth: FramedContentAuthData) {
        self.wireFormat = wireFormat
        self.content = content
        self.auth = auth
    }

    public func encode(to writer: inout TLSWriter) {
        wireFormat.encode(to: &writer)
        content.encode(to: &writer)
        auth.encode(to: &writer)
    }

    public init(from reader: inout TLSReader) throws {
        wireFormat = try WireFormat(from: &reader)
        content = try FramedContent(from: &reader)
        auth = try FramedContentAuthData(from: &reader, contentType: content.contentType)
    }

    /// `ProposalRef` = RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent) (§5.2).
    public func proposalReference(_ provider: CipherSuiteProvider) -> [UInt8] {
        provider.refHash(label: Array("MLS 1.0 Proposal Reference".utf8), value: tlsSerialized)
    }
}
