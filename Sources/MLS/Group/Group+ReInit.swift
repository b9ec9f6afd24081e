extension Group {
    /// Starts the group that this group's committed ReInit asks for (§11.2):
    /// same id, version, suite and extensions as the ReInit, linked to this
    /// group's last epoch by a `reinit` resumption PSK, with the given
    /// members added in its first commit. Send the Welcome; the others join
    /// with `Group(welcome:keyPackage:psks: oldGroup.pskStore())`.
    public func reinitialize(
        creator bundle: KeyPackageBundle, adding keyPackages: [KeyPackage], configuration: GroupConfiguration? = nil,
        now: ValidationTime, random: some RandomSource
    ) throws(MLSError) -> (group: Group, welcome: Welcome?) {
        guard let reinit = pendingReInit else { throw MLSError(.invalidReInit, "§11.2", "no ReInit was committed in this group") }
        guard bundle.keyPackage.cipherSuite == reinit.cipherSuite, bundle.keyPackage.version == reinit.version else {
            throw MLSError(.invalidReInit, "§11.2", "the creator's KeyPackage does not match the ReInit")
        }
        return try startSuccessor(
            groupID: reinit.groupID, usage: .reinit, creator: bundle, adding: keyPackages, extensions: reinit.extensions,
            configuration: configuration ?? self.configuration, now: now, random: random)
    }

    /// Joins the group that this group's committed ReInit asks for (§11.2)
    /// from its Welcome. The Welcome must carry a `reinit` resumption PSK of
    /// this group's last epoch, so that whoever started the new group was a
    /// member of this one; and the new group must have the ReInit's id,
    /// version, suite and extensions.
    public func joinSuccessor(welcome: Welcome, keyPackage bundle: KeyPackageBundle, now: ValidationTime) throws(MLSError) -> Group {
        guard let reinit = pendingReInit else { throw MLSError(.invalidReInit, "§11.2", "no ReInit was committed in this group") }
        let provider = try CipherSuiteProvider(welcome.cipherSuite)
        let psks = pskStore()
        let secrets = try welcome.open(provider, keyPackage: bundle.keyPackage, initKey: bundle.initKey, psks: psks).groupSecrets
        let continues = secrets.psks.contains {
            if case .resumption(.reinit, let groupID, let epoch) = $0.kind { groupID == self.groupID && epoch == self.epoch } else { false }
        }
        guard continues else {
            throw MLSError(.invalidReInit, "§11.2", "the new group's Welcome does not carry this group's reinit resumption PSK")
        }
        let successor = try Group(welcome: welcome, keyPackage: bundle, psks: psks, now: now, configuration: configuration)
        let context = successor.context
        guard context.groupID == reinit.groupID, context.version == reinit.version, context.cipherSuite == reinit.cipherSuite,
            context.extensions == reinit.extensions
        else { throw MLSError(.invalidReInit, "§11.2", "the new group is not the one the ReInit asks for") }
        return successor
    }

    /// Creates a subgroup of this group's members (§11.3): a new group id,
    /// the same suite, linked by a `branch` resumption PSK of this epoch.
    public func branch(
        groupID: [UInt8], creator bundle: KeyPackageBundle, adding keyPackages: [KeyPackage], extensions: [Extension] = [],
        now: ValidationTime, random: some RandomSource
    ) throws(MLSError) -> (group: Group, welcome: Welcome?) {
        guard bundle.keyPackage.cipherSuite == cipherSuite else {
            throw MLSError(.invalidReInit, "§11.3", "a branch keeps the group's cipher suite")
        }
        let members = Set(tree.members.map(\.leaf.credential))
        guard keyPackages.allSatisfy({ members.contains($0.leafNode.credential) }), members.contains(bundle.keyPackage.leafNode.credential)
        else {
            throw MLSError(.invalidReInit, "§11.3", "a branch holds only members of this group")
        }
        return try startSuccessor(
            groupID: groupID, usage: .branch, creator: bundle, adding: keyPackages, extensions: extensions, configuration: configuration,
            now: now, random: random)
    }

    /// A new group at epoch 0 whose first commit adds `keyPackages` and the
    /// resumption PSK of this group's current epoch.
    private func startSuccessor(
        groupID: [UInt8], usage: ResumptionPSKUsage, creator bundle: KeyPackageBundle, adding keyPackages: [KeyPackage],
        extensions: [Extension], configuration: GroupConfiguration, now: ValidationTime,
        random: some RandomSource
    ) throws(MLSError) -> (group: Group, welcome: Welcome?) {
        var successor = try Group(creating: groupID, creator: bundle, extensions: extensions, configuration: configuration, random: random)
        let psk = PreSharedKeyID(
            kind: .resumption(usage: usage, groupID: self.groupID, epoch: epoch), nonce: random.bytes(count: successor.provider.hashLength))
        let output = try successor.commit(
            adding: keyPackages, proposals: [.preSharedKey(psk)], forcePath: true, psks: pskStore(), now: now, random: random)
        try successor.mergePendingCommit()
        return (successor, output.welcome)
    }
}
