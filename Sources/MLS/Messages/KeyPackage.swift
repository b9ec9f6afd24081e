import MLSCodec

/// `KeyPackage` (§10).
public struct KeyPackage: Hashable, Sendable, TLSCodable {
    public var version: ProtocolVersion
    public var cipherSuite: CipherSuite
    public var initKey: HPKEPublicKey
    public var leafNode: LeafNode
    public var extensions: [Extension]
    public var signature: [UInt8]

    public init(
        version: ProtocolVersion, cipherSuite: CipherSuite, initKey: HPKEPublicKey, leafNode: LeafNode,
        extensions: [Extension], signature: [UInt8]
    ) {
        self.version = version
        self.cipherSuite = cipherSuite
        self.initKey = initKey
        self.leafNode = leafNode
        self.extensions = extensions
        self.signature = signature
    }

    /// `KeyPackageTBS`: every field but the signature.
    public var toBeSigned: [UInt8] {
        var writer = TLSWriter(capacity: 512)
        encodeContent(to: &writer)
        return writer.bytes
    }

    private func encodeContent(to writer: inout TLSWriter) {
        version.encode(to: &writer)
        cipherSuite.encode(to: &writer)
        initKey.encode(to: &writer)
        leafNode.encode(to: &writer)
        writer.writeVector(extensions)
    }

    public func encode(to writer: inout TLSWriter) {
        encodeContent(to: &writer)
        writer.writeOpaque(signature)
    }

    public init(from reader: inout TLSReader) throws {
        version = try ProtocolVersion(from: &reader)
        cipherSuite = try CipherSuite(from: &reader)
        initKey = try HPKEPublicKey(from: &reader)
        leafNode = try LeafNode(from: &reader)
        extensions = try reader.readVector(of: Extension.self, "KeyPackage.extensions")
        signature = try reader.readOpaque("KeyPackage.signature")
    }

    /// `KeyPackageRef` = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) (§5.2).
    public func reference(_ provider: CipherSuiteProvider) -> [UInt8] {
        provider.refHash(label: Array("MLS 1.0 KeyPackage Reference".utf8), value: tlsSerialized)
    }

    /// Verifies the KeyPackage's own signature with its leaf's key (§10.1).
    public func verifySignature(_ provider: CipherSuiteProvider) -> Bool {
        provider.verifyWithLabel(leafNode.signatureKey, label: "KeyPackageTBS", content: toBeSigned, signature: signature)
    }
}
