import MLSCodec

/// A KeyPackage with the private keys that go with it (§10).
public struct KeyPackageBundle: Sendable {
    public let keyPackage: KeyPackage
    public let initKey: HPKEPrivateKey
    public let encryptionKey: HPKEKeyPair
    public let signer: SignaturePrivateKey

    public init(keyPackage: KeyPackage, initKey: HPKEPrivateKey, encryptionKey: HPKEKeyPair, signer: SignaturePrivateKey) {
        self.keyPackage = keyPackage
        self.initKey = initKey
        self.encryptionKey = encryptionKey
        self.signer = signer
    }
}

extension Group {
    /// Joins a group from a Welcome (§12.4.3.1). `ratchetTree` is needed when
    /// the Welcome's GroupInfo carries no `ratchet_tree` extension. `now`
    /// (seconds since the epoch) enables the lifetime checks of the tree's
    /// leaves; nil skips them.
    public init(
        welcome: Welcome, keyPackage bundle: KeyPackageBundle, ratchetTree: RatchetTreeNodes? = nil, psks: PSKStore = .empty,
        now: ValidationTime, configuration: GroupConfiguration = .default
    ) throws(MLSError) {
        let keyPackage = bundle.keyPackage
        guard welcome.cipherSuite == keyPackage.cipherSuite else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "Welcome suite differs from the KeyPackage's")
        }
        let provider = try CipherSuiteProvider(welcome.cipherSuite)
        let (groupSecrets, groupInfo, pskSecret) = try welcome.open(provider, keyPackage: keyPackage, initKey: bundle.initKey, psks: psks)
        let branching = groupSecrets.psks.filter {
            if case .resumption(let usage, _, _) = $0.kind { return usage != .application }
            return false
        }
        guard branching.count <= 1 else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "more than one reinit or branch PSK")
        }
        let joinerSecret = JoinerSecret(groupSecrets.joinerSecret.bytes)
        let context = groupInfo.groupContext
        guard context.cipherSuite == keyPackage.cipherSuite, context.version == keyPackage.version else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "GroupInfo suite or version differs from the KeyPackage's")
        }

        var treeNodes = ratchetTree
        if treeNodes == nil { treeNodes = try groupInfo.ratchetTreeExtension() }
        guard let treeNodes else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "no ratchet tree: not in the Welcome and none given")
        }
        let tree = try RatchetTree(provider, nodes: treeNodes)
        guard let signerLeaf = tree.leaf(groupInfo.signer), groupInfo.verifySignature(provider, signerKey: signerLeaf.signatureKey) else {
            throw MLSError(.invalidSignature, "§12.4.3.1", "GroupInfo signature does not verify")
        }
        try Self.validateJoinedTree(tree, context: context, now: now)
        guard let ownNode = tree.node(holding: keyPackage.leafNode.encryptionKey), let ownLeaf = ownNode.leafIndex,
            tree.leaf(ownLeaf) == keyPackage.leafNode
        else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "the tree does not hold this KeyPackage's leaf")
        }

        var treeSecrets = TreeSecrets(leaf: ownLeaf, leafKey: bundle.encryptionKey)
        if let pathSecret = groupSecrets.pathSecret {
            let ancestor = TreeMath.commonAncestor(ownLeaf.nodeIndex, groupInfo.signer.nodeIndex)
            let signerPath = tree.filteredDirectPath(groupInfo.signer).map(\.node)
            guard let start = signerPath.firstIndex(of: ancestor) else {
                throw MLSError(.invalidWelcome, "§12.4.3.1", "path secret for a node off the signer's path")
            }
            var secret = pathSecret.bytes
            for node in signerPath[start...] {
                try treeSecrets.setPathSecret(secret, for: node, tree: tree)
                secret = TreeKEM.nextPathSecret(provider, secret)
            }
        }

        let epochSecrets = KeySchedule.epochSecrets(provider, joinerSecret: joinerSecret, pskSecret: pskSecret, groupContext: context)
        let expectedTag = KeySchedule.confirmationTag(
            provider, confirmationKey: epochSecrets.confirmationKey, confirmedTranscriptHash: context.confirmedTranscriptHash)
        guard constantTimeEqual(expectedTag, groupInfo.confirmationTag) else {
            throw MLSError(.invalidConfirmationTag, "§12.4.3.1", "GroupInfo confirmation tag does not verify")
        }
        if !branching.isEmpty, context.epoch != 1 {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "a reinit or branch group must start at epoch 1")
        }

        self.state = PublicGroup(
            provider: provider, context: context, tree: tree,
            interimTranscriptHash: TranscriptHash.interim(
                provider, confirmed: context.confirmedTranscriptHash, confirmationTag: groupInfo.confirmationTag),
            confirmationTag: groupInfo.confirmationTag)
        self.treeSecrets = treeSecrets
        self.signer = bundle.signer
        self.epochSecrets = epochSecrets
        self.secretTree = SecretTree(
            provider, encryptionSecret: epochSecrets.encryptionSecret, leafCount: tree.leafCount, configuration: configuration.secretTree)
        self.configuration = configuration
    }

    /// The checks a joiner runs on the whole tree (§12.4.3.1).
    static func validateJoinedTree(_ tree: RatchetTree, context: GroupContext, now: ValidationTime) throws(MLSError) {
        guard context.epoch < UInt64.max else { throw MLSError(.epochExhausted, "§8.1", "the epoch counter is exhausted") }
        try context.checkExtensionsSupported(by: tree)
        guard constantTimeEqual(tree.treeHash, context.treeHash) else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "ratchet tree hash differs from the GroupContext's")
        }
        // Unmerged lists first: the parent-hash check relies on them being sound.
        try tree.verifyUnmergedLeaves()
        try tree.verifyParentHashes()
        try tree.verifyKeyUniqueness()
        for (index, leaf) in tree.members {
            try leaf.validate(tree.provider, context: context, leafIndex: index, source: nil, tree: tree, now: now)
        }
    }
}

extension Welcome {
    /// Decrypts the GroupSecrets meant for `keyPackage` and, with them and
    /// the PSKs they name, the GroupInfo (§12.4.3.1). Checks nothing else.
    public func open(
        _ provider: CipherSuiteProvider, keyPackage: KeyPackage, initKey: HPKEPrivateKey, psks: PSKStore
    ) throws(MLSError) -> (groupSecrets: GroupSecrets, groupInfo: GroupInfo, pskSecret: PSKSecret) {
        let reference = keyPackage.reference(provider)
        guard let entry = secrets.first(where: { constantTimeEqual($0.newMember, reference) }) else {
            throw MLSError(.invalidWelcome, "§12.4.3.1", "Welcome holds no secrets for this KeyPackage")
        }
        let groupSecretsBytes = try provider.decryptWithLabel(
            initKey, label: "Welcome", context: encryptedGroupInfo, ciphertext: entry.encryptedGroupSecrets)
        let groupSecrets = try decodeMLS(GroupSecrets.self, from: groupSecretsBytes)
        var pskInputs: [PreSharedKeyInput] = []
        for id in groupSecrets.psks { pskInputs.append(try psks.secret(for: id)) }
        let pskSecret = try KeySchedule.pskSecret(provider, psks: pskInputs)
        let memberPRK = provider.extract(salt: groupSecrets.joinerSecret.bytes, ikm: pskSecret.bytes)
        let welcomeSecret = WelcomeSecret(provider.deriveSecret(memberPRK, label: "welcome"))
        let welcomeKey = KeySchedule.welcomeKeyAndNonce(provider, welcomeSecret: welcomeSecret)
        let groupInfoBytes = try provider.open(key: welcomeKey.key, nonce: welcomeKey.nonce, aad: [], ciphertext: encryptedGroupInfo)
        return (groupSecrets, try decodeMLS(GroupInfo.self, from: groupInfoBytes), pskSecret)
    }
}

extension GroupInfo {
    /// The `ratchet_tree` extension's node list, if present.
    public func ratchetTreeExtension() throws(MLSError) -> RatchetTreeNodes? {
        guard let ext = extensions.first(ofType: .ratchetTree) else { return nil }
        return try decodeMLS(RatchetTreeNodes.self, from: ext.data)
    }
}
