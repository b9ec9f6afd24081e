import MLSCodec

/// `PublicMessage` (§6.2).
public struct PublicMessage: Hashable, Sendable, TLSCodable {
    public var content: FramedContent
    public var auth: FramedContentAuthData
    /// Present exactly when the sender is a member.
    public var membershipTag: [UInt8]?

    public init(content: FramedContent, auth: FramedContentAuthData, membershipTag: [UInt8]?) {
        self.content = content
        self.auth = auth
        self.membershipTag = membershipTag
    }

    public func encode(to writer: inout TLSWriter) {
        content.encode(to: &writer)
        auth.encode(to: &writer)
        if let membershipTag { writer.writeOpaque(membershipTag) }
    }

    public init(from reader: inout TLSReader) throws {
        content = try FramedContent(from: &reader)
        auth = try FramedContentAuthData(from: &reader, contentType: content.contentType)
        if case .member = content.sender {
            membershipTag = try reader.readOpaque("PublicMessage.membership_tag")
        } else {
            membershipTag = nil
        }
    }
}

/// `PrivateMessage` (§6.3).
public struct PrivateMessage: Hashable, Sendable, TLSCodable {
    public var groupID: [UInt8]
    public var epoch: UInt64
    public var contentType: ContentType
    public var authenticatedData: [UInt8]
    public var encryptedSenderData: [UInt8]
    public var ciphertext: [UInt8]

    public init(
        groupID: [UInt8], epoch: UInt64, contentType: ContentType, authenticatedData: [UInt8],
        encryptedSenderData: [UInt8], ciphertext: [UInt8]
    ) {
        self.groupID = groupID
        self.epoch = epoch
        self.contentType = contentType
        self.authenticatedData = authenticatedData
        self.encryptedSenderData = encryptedSenderData
        self.ciphertext = ciphertext
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(groupID)
        writer.write(epoch)
        contentType.encode(to: &writer)
        writer.writeOpaque(authenticatedData)
        writer.writeOpaque(encryptedSenderData)
        writer.writeOpaque(ciphertext)
    }

    public init(from reader: inout TLSReader) throws {
        groupID = try reader.readOpaque("PrivateMessage.group_id")
        epoch = try reader.readUInt64("PrivateMessage.epoch")
        contentType = try ContentType(from: &reader)
        authenticatedData = try reader.readOpaque("PrivateMessage.authenticated_data")
        encryptedSenderData = try reader.readOpaque("PrivateMessage.encrypted_sender_data")
        ciphertext = try reader.readOpaque("PrivateMessage.ciphertext")
    }
}

/// `MLSMessage` (§6): the envelope of everything that travels.
public struct MLSMessage: Hashable, Sendable, TLSCodable {
    public enum Body: Hashable, Sendable {
        case publicMessage(PublicMessage)
        case privateMessage(PrivateMessage)
        case welcome(Welcome)
        case groupInfo(GroupInfo)
        case keyPackage(KeyPackage)

        public var wireFormat: WireFormat {
            switch self {
            case .publicMessage: .publicMessage
            case .privateMessage: .privateMessage
            case .welcome: .welcome
            case .groupInfo: .groupInfo
            case .keyPackage: .keyPackage
            }
        }
    }

    public var version: ProtocolVersion
    public var body: Body

    public init(version: ProtocolVersion = .mls10, body: Body) {
        self.version = version
        self.body = body
    }

    public var wireFormat: WireFormat { body.wireFormat }

    public func encode(to writer: inout TLSWriter) {
        version.encode(to: &writer)
        body.wireFormat.encode(to: &writer)
        switch body {
        case .publicMessage(let message): message.encode(to: &writer)
        case .privateMessage(let message): message.encode(to: &writer)
        case .welcome(let welcome): welcome.encode(to: &writer)
        case .groupInfo(let groupInfo): groupInfo.encode(to: &writer)
        case .keyPackage(let keyPackage): keyPackage.encode(to: &writer)
        }
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        version = try ProtocolVersion(from: &reader)
        guard version == .mls10 else {
            throw CodecError(.unknownValue, "MLSMessage.version", offset: offset)
        }
        switch try WireFormat(from: &reader) {
        case .publicMessage: body = .publicMessage(try PublicMessage(from: &reader))
        case .privateMessage: body = .privateMessage(try PrivateMessage(from: &reader))
        case .welcome: body = .welcome(try Welcome(from: &reader))
        case .groupInfo: body = .groupInfo(try GroupInfo(from: &reader))
        case .keyPackage: body = .keyPackage(try KeyPackage(from: &reader))
        }
    }
}
