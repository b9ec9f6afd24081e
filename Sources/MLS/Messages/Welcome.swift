import MLSCodec

/// `GroupInfo` (§12.4.3).
public struct GroupInfo: Hashable, Sendable, TLSCodable {
    public var groupContext: GroupContext
    public var extensions: [Extension]
    public var confirmationTag: [UInt8]
    public var signer: LeafIndex
    public var signature: [UInt8]

    public init(groupContext: GroupContext, extensions: [Extension], confirmationTag: [UInt8], signer: LeafIndex, signature: [UInt8]) {
        self.groupContext = groupContext
        self.extensions = extensions
        self.confirmationTag = confirmationTag
        self.signer = signer
        self.signature = signature
    }

    /// `GroupInfoTBS`: every field but the signature.
    public var toBeSigned: [UInt8] {
        var writer = TLSWriter(capacity: 256)
        encodeContent(to: &writer)
        return writer.bytes
    }

    private func encodeContent(to writer: inout TLSWriter) {
        groupContext.encode(to: &writer)
        writer.writeVector(extensions)
        writer.writeOpaque(confirmationTag)
        signer.encode(to: &writer)
    }

    public func encode(to writer: inout TLSWriter) {
        encodeContent(to: &writer)
        writer.writeOpaque(signature)
    }

    public init(from reader: inout TLSReader) throws {
        groupContext = try GroupContext(from: &reader)
        extensions = try reader.readVector(of: Extension.self, "GroupInfo.extensions")
        confirmationTag = try reader.readOpaque("GroupInfo.confirmation_tag")
        signer = try LeafIndex(from: &reader)
        signature = try reader.readOpaque("GroupInfo.signature")
    }

    public func verifySignature(_ provider: CipherSuiteProvider, signerKey: SignaturePublicKey) -> Bool {
        provider.verifyWithLabel(signerKey, label: "GroupInfoTBS", content: toBeSigned, signature: signature)
    }
}

/// `GroupSecrets` (§12.4.3.1).
public struct GroupSecrets: Hashable, Sendable, TLSCodable {
    public var joinerSecret: SecretBytes
    public var pathSecret: SecretBytes?
    public var psks: [PreSharedKeyID]

    public init(joinerSecret: SecretBytes, pathSecret: SecretBytes?, psks: [PreSharedKeyID]) {
        self.joinerSecret = joinerSecret
        self.pathSecret = pathSecret
        self.psks = psks
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(joinerSecret.bytes)
        if let pathSecret {
            writer.write(UInt8(1))
            writer.writeOpaque(pathSecret.bytes)
        } else {
            writer.write(UInt8(0))
        }
        writer.writeVector(psks)
    }

    public init(from reader: inout TLSReader) throws {
        joinerSecret = SecretBytes(try reader.readOpaque("GroupSecrets.joiner_secret"))
        pathSecret = try reader.readOptional(of: OpaqueBytes.self, "GroupSecrets.path_secret").map { SecretBytes($0.bytes) }
        psks = try reader.readVector(of: PreSharedKeyID.self, "GroupSecrets.psks")
    }
}

/// `EncryptedGroupSecrets` (§12.4.3.1).
public struct EncryptedGroupSecrets: Hashable, Sendable, TLSCodable {
    public var newMember: [UInt8]
    public var encryptedGroupSecrets: HPKECiphertext

    public init(newMember: [UInt8], encryptedGroupSecrets: HPKECiphertext) {
        self.newMember = newMember
        self.encryptedGroupSecrets = encryptedGroupSecrets
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeOpaque(newMember)
        encryptedGroupSecrets.encode(to: &writer)
    }

    public init(from reader: inout TLSReader) throws {
        newMember = try reader.readOpaque("EncryptedGroupSecrets.new_member")
        encryptedGroupSecrets = try HPKECiphertext(from: &reader)
    }
}

/// `Welcome` (§12.4.3.1).
public struct Welcome: Hashable, Sendable, TLSCodable {
    public var cipherSuite: CipherSuite
    public var secrets: [EncryptedGroupSecrets]
    public var encryptedGroupInfo: [UInt8]

    public init(cipherSuite: CipherSuite, secrets: [EncryptedGroupSecrets], encryptedGroupInfo: [UInt8]) {
        self.cipherSuite = cipherSuite
        self.secrets = secrets
        self.encryptedGroupInfo = encryptedGroupInfo
    }

    public func encode(to writer: inout TLSWriter) {
        cipherSuite.encode(to: &writer)
        writer.writeVector(secrets)
        writer.writeOpaque(encryptedGroupInfo)
    }

    public init(from reader: inout TLSReader) throws {
        cipherSuite = try CipherSuite(from: &reader)
        secrets = try reader.readVector(of: EncryptedGroupSecrets.self, "Welcome.secrets")
        encryptedGroupInfo = try reader.readOpaque("Welcome.encrypted_group_info")
    }
}
