import MLSCodec

/// Leaf node validation (RFC 9420 §7.3).
extension LeafNode {
    /// Checks a leaf node as it enters or sits in a group's tree.
    ///
    /// - `source`: the `leaf_node_source` the context requires (nil: any).
    /// - `now`: the time for the lifetime check; `.unchecked` skips it
    ///   (RECOMMENDED only for received leaves, §7.3).
    /// - `tree`: when given, the credential type must be supported by every
    ///   member, and this leaf must support every credential type in use.
    public func validate(
        _ provider: CipherSuiteProvider, context: GroupContext, leafIndex: LeafIndex, source expected: LeafNodeSource?,
        tree: RatchetTree?, now: ValidationTime
    ) throws(MLSError) {
        if let expected, source.type != expected {
            throw MLSError(.invalidLeafNode, "§7.3", "leaf node source does not fit where the leaf appears")
        }
        guard verifySignature(provider, groupID: context.groupID, leafIndex: leafIndex) else {
            throw MLSError(.invalidSignature, "§7.3", "leaf node signature does not verify")
        }
        try provider.validateHPKEPublicKey(encryptionKey)
        try checkCapabilities(requiredBy: context)
        // A KeyPackage's leaf is not in the tree yet; any other leaf replaces the one at its index.
        if let tree, !tree.credentialsCompatible(self, at: source.type == .keyPackage && tree.leaf(leafIndex) != self ? nil : leafIndex) {
            throw MLSError(.invalidLeafNode, "§7.3", "credential type not supported by every member")
        }
        if let now = now.seconds, case .keyPackage(let lifetime) = source {
            guard lifetime.notBefore <= now, now <= lifetime.notAfter else {
                throw MLSError(.invalidLeafNode, "§7.3", "leaf node lifetime does not cover the current time")
            }
        }
    }

    /// The capability checks of §7.3 and §11.1: own credential and
    /// extensions listed, and the group's required capabilities met.
    func checkCapabilities(requiredBy context: GroupContext) throws(MLSError) {
        guard capabilities.credentials.contains(credential.type) else {
            throw MLSError(.invalidLeafNode, "§7.3", "leaf node does not list its own credential type")
        }
        for ext in extensions where !capabilities.extensions.contains(ext.type) {
            throw MLSError(.invalidLeafNode, "§7.3", "leaf node carries an extension it does not list")
        }
        if let required = try context.requiredCapabilities() {
            let defaultExtensions: Set<ExtensionType> = [
                .applicationID, .ratchetTree, .requiredCapabilities, .externalPub, .externalSenders,
            ]
            let defaultProposals: Set<ProposalType> = [.add, .update, .remove, .psk, .reinit, .externalInit, .groupContextExtensions]
            guard required.extensionTypes.allSatisfy({ defaultExtensions.contains($0) || capabilities.extensions.contains($0) }),
                required.proposalTypes.allSatisfy({ defaultProposals.contains($0) || capabilities.proposals.contains($0) }),
                required.credentialTypes.allSatisfy({ capabilities.credentials.contains($0) })
            else {
                throw MLSError(.invalidLeafNode, "§11.1", "leaf node lacks a required capability")
            }
        }
    }
}

extension GroupContext {
    /// The `required_capabilities` extension, if present.
    public func requiredCapabilities() throws(MLSError) -> RequiredCapabilities? {
        guard let ext = extensions.first(ofType: .requiredCapabilities) else { return nil }
        return try decodeMLS(RequiredCapabilities.self, from: ext.data)
    }

    /// The `external_senders` extension's list, if present.
    public func externalSenders() throws(MLSError) -> [ExternalSender] {
        guard let ext = extensions.first(ofType: .externalSenders) else { return [] }
        return try decodeMLS(ExternalSendersList.self, from: ext.data).senders
    }
}

/// `ExternalSender external_senders<V>` (§12.1.8.1).
public struct ExternalSendersList: Hashable, Sendable, TLSCodable {
    public var senders: [ExternalSender]
    public init(_ senders: [ExternalSender]) { self.senders = senders }
    public func encode(to writer: inout TLSWriter) { writer.writeVector(senders) }
    public init(from reader: inout TLSReader) throws { senders = try reader.readVector(of: ExternalSender.self, "external_senders") }
}

extension KeyPackage {
    /// KeyPackage validation (§10.1): suite and version, signature, leaf node
    /// (source `key_package`), and an init key distinct from the leaf's key.
    public func validate(_ provider: CipherSuiteProvider, context: GroupContext, tree: RatchetTree?, now: ValidationTime) throws(MLSError) {
        guard cipherSuite == context.cipherSuite, version == context.version else {
            throw MLSError(.invalidKeyPackage, "§10.1", "KeyPackage suite or version differs from the group's")
        }
        guard verifySignature(provider) else {
            throw MLSError(.invalidSignature, "§10.1", "KeyPackage signature does not verify")
        }
        guard initKey != leafNode.encryptionKey else {
            throw MLSError(.invalidKeyPackage, "§10.1", "KeyPackage init key equals its encryption key")
        }
        try provider.validateHPKEPublicKey(initKey)
        try leafNode.validate(provider, context: context, leafIndex: LeafIndex(0), source: .keyPackage, tree: tree, now: now)
    }
}

extension GroupContext {
    /// Every member supports every non-default extension of the group (§12.1.7, §12.4.3).
    func checkExtensionsSupported(by tree: RatchetTree) throws(MLSError) {
        let custom = extensions.map(\.type).filter { !PublicGroup.defaultExtensionTypes.contains($0) }
        guard !custom.isEmpty else { return }
        for (_, member) in tree.members where !custom.allSatisfy(member.capabilities.extensions.contains) {
            throw MLSError(.invalidLeafNode, "§12.1.7", "a member does not support a group extension")
        }
    }
}
