import MLSCodec

/// `Capabilities` (§7.2).
public struct Capabilities: Hashable, Sendable, TLSCodable {
    public var versions: [ProtocolVersion]
    public var cipherSuites: [CipherSuite]
    public var extensions: [ExtensionType]
    public var proposals: [ProposalType]
    public var credentials: [CredentialType]

    public init(
        versions: [ProtocolVersion], cipherSuites: [CipherSuite], extensions: [ExtensionType],
        proposals: [ProposalType], credentials: [CredentialType]
    ) {
        self.versions = versions
        self.cipherSuites = cipherSuites
        self.extensions = extensions
        self.proposals = proposals
        self.credentials = credentials
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeVector(versions)
        writer.writeVector(cipherSuites)
        writer.writeVector(extensions)
        writer.writeVector(proposals)
        writer.writeVector(credentials)
    }

    public init(from reader: inout TLSReader) throws {
        versions = try reader.readVector(of: ProtocolVersion.self, "Capabilities.versions")
        cipherSuites = try reader.readVector(of: CipherSuite.self, "Capabilities.cipher_suites")
        extensions = try reader.readVector(of: ExtensionType.self, "Capabilities.extensions")
        proposals = try reader.readVector(of: ProposalType.self, "Capabilities.proposals")
        credentials = try reader.readVector(of: CredentialType.self, "Capabilities.credentials")
    }
}

/// `Lifetime` (§7.2): seconds since the Unix epoch.
public struct Lifetime: Hashable, Sendable, TLSCodable {
    public var notBefore: UInt64
    public var notAfter: UInt64

    public init(notBefore: UInt64, notAfter: UInt64) {
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    public func encode(to writer: inout TLSWriter) {
        writer.write(notBefore)
        writer.write(notAfter)
    }

    public init(from reader: inout TLSReader) throws {
        notBefore = try reader.readUInt64("Lifetime.not_before")
        notAfter = try reader.readUInt64("Lifetime.not_after")
    }
}

/// `LeafNode` (§7.2).
public struct LeafNode: Hashable, Sendable, TLSCodable {
    /// The `leaf_node_source` selector and the field it carries.
    public enum Source: Hashable, Sendable {
        case keyPackage(Lifetime)
        case update
        case commit(parentHash: [UInt8])

        public var type: LeafNodeSource {
            switch self {
            case .keyPackage: .keyPackage
            case .update: .update
            case .commit: .commit
            }
        }
    }

    public var encryptionKey: HPKEPublicKey
    public var signatureKey: SignaturePublicKey
    public var credential: Credential
    public var capabilities: Capabilities
    public var source: Source
    public var extensions: [Extension]
    public var signature: [UInt8]

    public init(
        encryptionKey: HPKEPublicKey, signatureKey: SignaturePublicKey, credential: Credential,
        capabilities: Capabilities, source: Source, extensions: [Extension], signature: [UInt8]
    ) {
        self.encryptionKey = encryptionKey
        self.signatureKey = signatureKey
        self.credential = credential
        self.capabilities = capabilities
        self.source = source
        self.extensions = extensions
        self.signature = signature
    }

    private func encodeContent(to writer: inout TLSWriter) {
        encryptionKey.encode(to: &writer)
        signatureKey.encode(to: &writer)
        credential.encode(to: &writer)
        capabilities.encode(to: &writer)
        source.type.encode(to: &writer)
        switch source {
        case .keyPackage(let lifetime): lifetime.encode(to: &writer)
        case .update: break
        case .commit(let parentHash): writer.writeOpaque(parentHash)
        }
        writer.writeVector(extensions)
    }

    public func encode(to writer: inout TLSWriter) {
        encodeContent(to: &writer)
        writer.writeOpaque(signature)
    }

    public init(from reader: inout TLSReader) throws {
        encryptionKey = try HPKEPublicKey(from: &reader)
        signatureKey = try SignaturePublicKey(from: &reader)
        credential = try Credential(from: &reader)
        capabilities = try Capabilities(from: &reader)
        switch try LeafNodeSource(from: &reader) {
        case .keyPackage: source = .keyPackage(try Lifetime(from: &reader))
        case .update: source = .update
        case .commit: source = .commit(parentHash: try reader.readOpaque("LeafNode.parent_hash"))
        }
        extensions = try reader.readVector(of: Extension.self, "LeafNode.extensions")
        signature = try reader.readOpaque("LeafNode.signature")
    }

    /// `LeafNodeTBS` (§7.2): the content, plus the group and leaf for leaves
    /// created by Update or Commit.
    public func toBeSigned(groupID: [UInt8], leafIndex: LeafIndex) -> [UInt8] {
        var writer = TLSWriter(capacity: 256)
        encodeContent(to: &writer)
        switch source {
        case .keyPackage: break
        case .update, .commit:
            writer.writeOpaque(groupID)
            leafIndex.encode(to: &writer)
        }
        return writer.bytes
    }

    /// Verifies the leaf's signature with its own `signature_key` (§7.3).
    public func verifySignature(
        _ provider: CipherSuiteProvider, groupID: [UInt8], leafIndex: LeafIndex
    ) -> Bool {
        provider.verifyWithLabel(
            signatureKey, label: "LeafNodeTBS",
            content: toBeSigned(groupID: groupID, leafIndex: leafIndex), signature: signature)
    }

    /// Signs the leaf in place.
    public mutating func sign(
        _ provider: CipherSuiteProvider, key: SignaturePrivateKey, groupID: [UInt8], leafIndex: LeafIndex
    ) throws(MLSError) {
        signature = try provider.signWithLabel(key, label: "LeafNodeTBS", content: toBeSigned(groupID: groupID, leafIndex: leafIndex))
    }
}
