import MLSCodec

/// `Extension` (§13): a type and opaque data. Known payloads are parsed on
/// demand by the typed accessors, so unknown extensions round-trip untouched.
public struct Extension: Hashable, Sendable, TLSCodable {
    public var type: ExtensionType
    public var data: [UInt8]

    public init(type: ExtensionType, data: [UInt8]) {
        self.type = type
        self.data = data
    }

    public func encode(to writer: inout TLSWriter) {
        type.encode(to: &writer)
        writer.writeOpaque(data)
    }

    public init(from reader: inout TLSReader) throws {
        type = try ExtensionType(from: &reader)
        data = try reader.readOpaque("Extension.extension_data")
    }
}

extension Array where Element == Extension {
    public func first(ofType type: ExtensionType) -> Extension? { first { $0.type == type } }
}

/// `RequiredCapabilities` (§11.1).
public struct RequiredCapabilities: Hashable, Sendable, TLSCodable {
    public var extensionTypes: [ExtensionType]
    public var proposalTypes: [ProposalType]
    public var credentialTypes: [CredentialType]

    public init(extensionTypes: [ExtensionType] = [], proposalTypes: [ProposalType] = [], credentialTypes: [CredentialType] = []) {
        self.extensionTypes = extensionTypes
        self.proposalTypes = proposalTypes
        self.credentialTypes = credentialTypes
    }

    public func encode(to writer: inout TLSWriter) {
        writer.writeVector(extensionTypes)
        writer.writeVector(proposalTypes)
        writer.writeVector(credentialTypes)
    }

    public init(from reader: inout TLSReader) throws {
        extensionTypes = try reader.readVector(of: ExtensionType.self, "RequiredCapabilities.extension_types")
        proposalTypes = try reader.readVector(of: ProposalType.self, "RequiredCapabilities.proposal_types")
        credentialTypes = try reader.readVector(of: CredentialType.self, "RequiredCapabilities.credential_types")
    }
}

/// `ExternalPub` (§12.4.3.2).
public struct ExternalPub: Hashable, Sendable, TLSCodable {
    public var externalPub: HPKEPublicKey
    public init(externalPub: HPKEPublicKey) { self.externalPub = externalPub }
    public func encode(to writer: inout TLSWriter) { externalPub.encode(to: &writer) }
    public init(from reader: inout TLSReader) throws { externalPub = try HPKEPublicKey(from: &reader) }
}

/// `ExternalSender` (§12.1.8.1); the extension holds `ExternalSender external_senders<V>`.
public struct ExternalSender: Hashable, Sendable, TLSCodable {
    public var signatureKey: SignaturePublicKey
    public var credential: Credential

    public init(signatureKey: SignaturePublicKey, credential: Credential) {
        self.signatureKey = signatureKey
        self.credential = credential
    }

    public func encode(to writer: inout TLSWriter) {
        signatureKey.encode(to: &writer)
        credential.encode(to: &writer)
    }

    public init(from reader: inout TLSReader) throws {
        signatureKey = try SignaturePublicKey(from: &reader)
        credential = try Credential(from: &reader)
    }
}
