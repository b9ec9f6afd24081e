import Foundation
import MLS
import MLSCodec

/// The state behind the MLSClient service: group states by state id,
/// KeyPackages awaiting a Welcome by transaction id, and reinitialisations
/// awaiting their new group by reinit id. All ids come from one counter, so
/// that `StorePSK`'s `state_or_transaction_id` is never ambiguous.
///
/// Every operation works on a copy of a group and stores it back only on
/// success, so a refused request changes nothing.
public actor InteropClient {
    /// One member's view of one group.
    struct Member {
        var group: Group
        /// External PSKs stored for this state (resumption PSKs of the
        /// group's own recent epochs come from the group itself).
        var psks: PSKStore
        /// This member's signature key in the group, kept for the KeyPackages
        /// of groups that follow this one (reinitialisation, branches).
        let signer: SignaturePrivateKey
        /// Handshake messages go out as PrivateMessage.
        let encryptHandshake: Bool
        /// The member was removed by a commit it handled: the state is over.
        var removed = false
        /// The wire bytes of this member's pending commit, so that handling
        /// it like anyone else's commit merges it.
        var pendingCommit: Data?
    }

    /// A KeyPackage created for a join, with its private keys.
    struct PendingJoin {
        let bundle: KeyPackageBundle
        var psks: PSKStore
    }

    /// A group in which a ReInit was committed, with this member's KeyPackage
    /// for the group that replaces it (§11.2), awaiting `ReInitWelcome` or
    /// `HandleReInitWelcome`.
    struct PendingReInit {
        /// The old group in its last epoch: its resumption PSK links the new group.
        let oldGroup: Group
        let bundle: KeyPackageBundle
        let psks: PSKStore
        let encryptHandshake: Bool
    }

    /// A signer created by `CreateExternalSigner`: a key and credential that
    /// groups can list in their `external_senders` extension (§12.1.8.1).
    struct ExternalSigner {
        let signer: SignaturePrivateKey
        let sender: ExternalSender
    }

    public static let name = "Conclave"

    private var members: [UInt32: Member] = [:]
    private var joins: [UInt32: PendingJoin] = [:]
    private var reinits: [UInt32: PendingReInit] = [:]
    private var externalSigners: [UInt32: ExternalSigner] = [:]
    private var lastID: UInt32 = 0
    private let random = SystemRandom()

    public init() {}

    // MARK: - Stack information

    /// The cipher suites this client can run (RFC 9420 §5.1): those of the MLS library.
    public static var supportedCipherSuites: [UInt32] {
        CipherSuite.implemented.map { UInt32($0.rawValue) }
    }

    // MARK: - Becoming a member

    public func createGroup(_ request: MlsClient_CreateGroupRequest) throws -> MlsClient_CreateGroupResponse {
        let provider = try Self.provider(request.cipherSuite)
        let bundle = try makeBundle(provider, identity: Array(request.identity))
        let group = try Group(
            creating: Array(request.groupID), creator: bundle,
            configuration: Self.configuration(encryptHandshake: request.encryptHandshake),
            random: random)
        let id = try nextID()
        members[id] = Member(group: group, psks: .empty, signer: bundle.signer, encryptHandshake: request.encryptHandshake)
        return .with { $0.stateID = id }
    }

    public func createKeyPackage(_ request: MlsClient_CreateKeyPackageRequest) throws -> MlsClient_CreateKeyPackageResponse {
        let provider = try Self.provider(request.cipherSuite)
        let bundle = try makeBundle(provider, identity: Array(request.identity))
        let id = try nextID()
        joins[id] = PendingJoin(bundle: bundle, psks: .empty)
        return .with {
            $0.transactionID = id
            $0.keyPackage = Data(MLSMessage(body: .keyPackage(bundle.keyPackage)).tlsSerialized)
            $0.initPriv = Data(bundle.initKey.secret.bytes)
            $0.encryptionPriv = Data(bundle.encryptionKey.privateKey.secret.bytes)
            $0.signaturePriv = Data(bundle.signer.serialized.bytes)
        }
    }

    public func joinGroup(_ request: MlsClient_JoinGroupRequest) throws -> MlsClient_JoinGroupResponse {
        guard let join = joins[request.transactionID] else {
            throw InteropFailure(.notFound, "no transaction \(request.transactionID)")
        }
        let welcome = try Self.decodeWelcome(request.welcome)
        let tree = try Self.decodeTree(request.ratchetTree)
        let group = try Group(
            welcome: welcome, keyPackage: join.bundle, ratchetTree: tree, psks: join.psks, now: Self.lifetimes,
            configuration: Self.configuration(encryptHandshake: request.encryptHandshake))
        let id = try nextID()
        members[id] = Member(group: group, psks: join.psks, signer: join.bundle.signer, encryptHandshake: request.encryptHandshake)
        // A KeyPackage is used once (RFC 9420 §16.8).
        joins[request.transactionID] = nil
        return .with {
            $0.stateID = id
            $0.epochAuthenticator = Data(group.epochAuthenticator.bytes)
        }
    }

    public func externalJoin(_ request: MlsClient_ExternalJoinRequest) throws -> MlsClient_ExternalJoinResponse {
        let groupInfo: GroupInfo
        switch try Self.decodeMessage(request.groupInfo, "group_info").body {
        case .groupInfo(let decoded): groupInfo = decoded
        default: throw InteropFailure.invalid("group_info is not an MLSMessage carrying a GroupInfo")
        }
        let tree = try Self.decodeTree(request.ratchetTree)
        let provider = try CipherSuiteProvider(groupInfo.groupContext.cipherSuite)
        let identity = Array(request.identity)

        var oldLeaf: LeafIndex?
        if request.removePrior {
            let view = try PublicGroup(groupInfo: groupInfo, ratchetTree: tree, now: Self.lifetimes)
            guard let prior = Self.leaf(of: identity, in: view.members) else {
                throw InteropFailure.invalid("remove_prior: no member of the group has this identity")
            }
            oldLeaf = prior
        }

        var store = PSKStore.empty
        var pskIDs: [PreSharedKeyID] = []
        for psk in request.psks {
            let pskID = Array(psk.pskID)
            store.external[pskID] = SecretBytes(Array(psk.pskSecret))
            pskIDs.append(PreSharedKeyID(kind: .external(pskID: pskID), nonce: random.bytes(count: provider.hashLength)))
        }

        let signer = try provider.generateSignatureKey(random: random)
        let (group, commit) = try Group.joinExternally(
            groupInfo: groupInfo, ratchetTree: tree, credential: .basic(identity: identity), signer: signer, removing: oldLeaf,
            psks: pskIDs, pskStore: store, configuration: Self.configuration(encryptHandshake: request.encryptHandshake),
            now: Self.lifetimes, random: random)
        let id = try nextID()
        members[id] = Member(group: group, psks: store, signer: signer, encryptHandshake: request.encryptHandshake)
        return .with {
            $0.stateID = id
            $0.commit = Data(commit.tlsSerialized)
            $0.epochAuthenticator = Data(group.epochAuthenticator.bytes)
        }
    }

    // MARK: - Operations on a group state

    public func groupInfo(_ request: MlsClient_GroupInfoRequest) throws -> MlsClient_GroupInfoResponse {
        let group = try member(request.stateID).group
        let info = try group.groupInfo(includeTree: !request.externalTree, includeExternalPub: true)
        return .with {
            $0.groupInfo = Data(MLSMessage(body: .groupInfo(info)).tlsSerialized)
            if request.externalTree { $0.ratchetTree = Data(group.tree.exported.tlsSerialized) }
        }
    }

    public func stateAuth(_ request: MlsClient_StateAuthRequest) throws -> MlsClient_StateAuthResponse {
        let group = try member(request.stateID).group
        return .with { $0.stateAuthSecret = Data(group.epochAuthenticator.bytes) }
    }

    public func export(_ request: MlsClient_ExportRequest) throws -> MlsClient_ExportResponse {
        let group = try member(request.stateID).group
        let secret = try group.export(label: request.label, context: Array(request.context), length: Int(request.keyLength))
        return .with { $0.exportedSecret = Data(secret) }
    }

    public func protect(_ request: MlsClient_ProtectRequest) throws -> MlsClient_ProtectResponse {
        var state = try member(request.stateID)
        let message = try state.group.encrypt(Array(request.plaintext), authenticatedData: Array(request.authenticatedData), random: random)
        members[request.stateID] = state
        return .with { $0.ciphertext = Data(message.tlsSerialized) }
    }

    public func unprotect(_ request: MlsClient_UnprotectRequest) throws -> MlsClient_UnprotectResponse {
        var state = try member(request.stateID)
        let message = try Self.decodeMessage(request.ciphertext, "ciphertext")
        guard case .privateMessage(let privateMessage) = message.body, privateMessage.contentType == .application else {
            throw InteropFailure.invalid("ciphertext is not a PrivateMessage carrying application data")
        }
        guard case .application(let application) = try state.group.process(message, psks: state.psks, now: Self.lifetimes) else {
            throw InteropFailure.invalid("ciphertext did not hold application data")
        }
        members[request.stateID] = state
        return .with {
            $0.authenticatedData = Data(application.authenticatedData)
            $0.plaintext = Data(application.data)
        }
    }

    public func storePSK(_ request: MlsClient_StorePSKRequest) throws -> MlsClient_StorePSKResponse {
        let id = request.stateOrTransactionID
        let pskID = Array(request.pskID)
        let secret = SecretBytes(Array(request.pskSecret))
        if var state = members[id] {
            state.psks.external[pskID] = secret
            members[id] = state
        } else if var join = joins[id] {
            join.psks.external[pskID] = secret
            joins[id] = join
        } else {
            throw InteropFailure(.notFound, "no state or transaction \(id)")
        }
        return MlsClient_StorePSKResponse()
    }

    // MARK: - Proposals

    public func addProposal(_ request: MlsClient_AddProposalRequest) throws -> MlsClient_ProposalResponse {
        try propose(request.stateID) { _ in .add(try Self.decodeKeyPackage(request.keyPackage)) }
    }

    public func updateProposal(_ request: MlsClient_UpdateProposalRequest) throws -> MlsClient_ProposalResponse {
        var state = try member(request.stateID)
        let message = try state.group.proposeUpdate(random: random)
        members[request.stateID] = state
        return .with { $0.proposal = Data(message.tlsSerialized) }
    }

    public func removeProposal(_ request: MlsClient_RemoveProposalRequest) throws -> MlsClient_ProposalResponse {
        try propose(request.stateID) { group in try Self.removal(of: Array(request.removedID), in: group) }
    }

    public func externalPSKProposal(_ request: MlsClient_ExternalPSKProposalRequest) throws -> MlsClient_ProposalResponse {
        try propose(request.stateID) { group in self.externalPSK(Array(request.pskID), in: group) }
    }

    public func resumptionPSKProposal(_ request: MlsClient_ResumptionPSKProposalRequest) throws -> MlsClient_ProposalResponse {
        try propose(request.stateID) { group in self.resumptionPSK(epoch: request.epochID, in: group) }
    }

    public func groupContextExtensionsProposal(
        _ request: MlsClient_GroupContextExtensionsProposalRequest
    ) throws -> MlsClient_ProposalResponse {
        try propose(request.stateID) { _ in .groupContextExtensions(try Self.extensions(request.extensions)) }
    }

    /// Sends one proposal built from the group (Add, Remove, PreSharedKey,
    /// GroupContextExtensions) and caches it for this member's commits.
    private func propose(_ stateID: UInt32, _ build: (Group) throws -> Proposal) throws -> MlsClient_ProposalResponse {
        var state = try member(stateID)
        let proposal = try build(state.group)
        let message = try state.group.propose(proposal, random: random)
        members[stateID] = state
        return .with { $0.proposal = Data(message.tlsSerialized) }
    }

    // MARK: - Commits

    public func commit(_ request: MlsClient_CommitRequest) throws -> MlsClient_CommitResponse {
        try commit(request, reinit: false)
    }

    /// A commit (`Commit`), or one that must carry a ReInit (`ReInitCommit`).
    private func commit(_ request: MlsClient_CommitRequest, reinit: Bool) throws -> MlsClient_CommitResponse {
        var state = try member(request.stateID)
        for (index, bytes) in request.byReference.enumerated() {
            let message = try Self.decodeMessage(bytes, "by_reference[\(index)]")
            guard case .proposal = try state.group.process(message, psks: state.psks, now: Self.lifetimes) else {
                throw InteropFailure.invalid("by_reference[\(index)] is not a proposal")
            }
        }
        var proposals: [Proposal] = []
        for (index, description) in request.byValue.enumerated() {
            proposals.append(try proposal(from: description, index: index, in: state.group))
        }
        state.group.configuration.ratchetTreeExtension = !request.externalTree
        let output = try state.group.commit(
            proposals: proposals, includePending: true, forcePath: request.forcePath, psks: state.psks, now: Self.lifetimes, random: random)
        var ratchetTree: [UInt8] = []
        if request.externalTree || reinit {
            // The epoch the commit leads to: its tree for the joiners, and
            // whether it was reinitialised.
            var next = state.group
            try next.mergePendingCommit()
            if request.externalTree { ratchetTree = next.tree.exported.tlsSerialized }
            if reinit, next.pendingReInit == nil {
                throw InteropFailure.invalid("the commit carries no ReInit proposal")
            }
        }
        let commitBytes = Data(output.commit.tlsSerialized)
        state.pendingCommit = commitBytes
        members[request.stateID] = state
        return .with {
            $0.commit = commitBytes
            if let welcome = output.welcome { $0.welcome = Data(MLSMessage(body: .welcome(welcome)).tlsSerialized) }
            $0.ratchetTree = Data(ratchetTree)
        }
    }

    public func handleCommit(_ request: MlsClient_HandleCommitRequest) throws -> MlsClient_HandleCommitResponse {
        let state = try handled(request)
        members[request.stateID] = state
        return .with {
            $0.stateID = request.stateID
            // A removed member's state is over: no epoch authenticator.
            if !state.removed { $0.epochAuthenticator = Data(state.group.epochAuthenticator.bytes) }
        }
    }

    public func handlePendingCommit(_ request: MlsClient_HandlePendingCommitRequest) throws -> MlsClient_HandleCommitResponse {
        let state = try merged(request.stateID)
        members[request.stateID] = state
        return .with {
            $0.stateID = request.stateID
            $0.epochAuthenticator = Data(state.group.epochAuthenticator.bytes)
        }
    }

    /// The state after handling a commit (not stored).
    private func handled(_ request: MlsClient_HandleCommitRequest) throws -> Member {
        var state = try member(request.stateID)
        if request.commit == state.pendingCommit, state.group.hasPendingCommit {
            // This member's own commit, echoed back by the Delivery Service:
            // it was accepted (the proposals it covers were handled when it was made).
            try state.group.mergePendingCommit()
            state.pendingCommit = nil
            return state
        }
        for (index, bytes) in request.proposal.enumerated() {
            let message = try Self.decodeMessage(bytes, "proposal[\(index)]")
            guard case .proposal = try state.group.process(message, psks: state.psks, now: Self.lifetimes) else {
                throw InteropFailure.invalid("proposal[\(index)] is not a proposal")
            }
        }
        let commit = try Self.decodeMessage(request.commit, "commit")
        guard case .commit(let summary) = try state.group.process(commit, psks: state.psks, now: Self.lifetimes) else {
            throw InteropFailure.invalid("commit is not a commit")
        }
        // Another member's commit won: any commit of this member's is void.
        state.pendingCommit = nil
        // If it removed this member, the group moves on without it; its state is over.
        if summary.removedSelf { state.removed = true }
        return state
    }

    /// The state after merging its pending commit (not stored).
    private func merged(_ stateID: UInt32) throws -> Member {
        var state = try member(stateID)
        guard state.group.hasPendingCommit else {
            throw InteropFailure(.failedPrecondition, "state \(stateID) has no pending commit")
        }
        try state.group.mergePendingCommit()
        state.pendingCommit = nil
        return state
    }

    // MARK: - Reinitialisation (§11.2)

    public func reInitProposal(_ request: MlsClient_ReInitProposalRequest) throws -> MlsClient_ProposalResponse {
        let provider = try Self.provider(request.cipherSuite)
        let extensions = try Self.extensions(request.extensions)
        return try propose(request.stateID) { _ in
            .reinit(ReInit(groupID: Array(request.groupID), version: .mls10, cipherSuite: provider.suite, extensions: extensions))
        }
    }

    public func reInitCommit(_ request: MlsClient_CommitRequest) throws -> MlsClient_CommitResponse {
        try commit(request, reinit: true)
    }

    public func handleReInitCommit(_ request: MlsClient_HandleCommitRequest) throws -> MlsClient_HandleReInitCommitResponse {
        try startReInit(request.stateID, try handled(request))
    }

    public func handlePendingReInitCommit(_ request: MlsClient_HandlePendingCommitRequest) throws -> MlsClient_HandleReInitCommitResponse {
        try startReInit(request.stateID, try merged(request.stateID))
    }

    /// Stores a state whose commit carried a ReInit, and a KeyPackage of this
    /// member for the new group under a new reinit id.
    private func startReInit(_ stateID: UInt32, _ state: Member) throws -> MlsClient_HandleReInitCommitResponse {
        guard !state.removed, let reinit = state.group.pendingReInit else {
            throw InteropFailure.invalid("the commit carries no ReInit proposal")
        }
        let bundle = try successorBundle(of: state, suite: reinit.cipherSuite)
        let id = try nextID()
        members[stateID] = state
        reinits[id] = PendingReInit(oldGroup: state.group, bundle: bundle, psks: state.psks, encryptHandshake: state.encryptHandshake)
        return .with {
            $0.reinitID = id
            $0.keyPackage = Data(MLSMessage(body: .keyPackage(bundle.keyPackage)).tlsSerialized)
            $0.epochAuthenticator = Data(state.group.epochAuthenticator.bytes)
        }
    }

    public func reInitWelcome(_ request: MlsClient_ReInitWelcomeRequest) throws -> MlsClient_CreateSubgroupResponse {
        guard let pending = reinits[request.reinitID] else { throw InteropFailure(.notFound, "no reinit \(request.reinitID)") }
        let keyPackages = try Self.decodeKeyPackages(request.keyPackage, "key_package")
        var configuration = pending.oldGroup.configuration
        configuration.ratchetTreeExtension = !request.externalTree
        let (group, welcome) = try pending.oldGroup.reinitialize(
            creator: pending.bundle, adding: keyPackages, configuration: configuration, now: Self.lifetimes, random: random)
        let id = try nextID()
        members[id] = Member(group: group, psks: pending.psks, signer: pending.bundle.signer, encryptHandshake: pending.encryptHandshake)
        // The KeyPackage is used once (RFC 9420 §16.8).
        reinits[request.reinitID] = nil
        return Self.subgroupResponse(id, group, welcome, externalTree: request.externalTree)
    }

    public func handleReInitWelcome(_ request: MlsClient_HandleReInitWelcomeRequest) throws -> MlsClient_JoinGroupResponse {
        guard let pending = reinits[request.reinitID] else { throw InteropFailure(.notFound, "no reinit \(request.reinitID)") }
        let welcome = try Self.decodeWelcome(request.welcome)
        let tree = try Self.decodeTree(request.ratchetTree)
        let group = try Group(
            welcome: welcome, keyPackage: pending.bundle, ratchetTree: tree, psks: pending.oldGroup.pskStore(pending.psks),
            now: Self.lifetimes,
            configuration: Self.configuration(encryptHandshake: pending.encryptHandshake))
        guard let reinit = pending.oldGroup.pendingReInit, group.groupID == reinit.groupID, group.cipherSuite == reinit.cipherSuite,
            group.context.extensions == reinit.extensions
        else {
            throw InteropFailure.invalid("the Welcome is not for the group the ReInit asked for")
        }
        let id = try nextID()
        members[id] = Member(group: group, psks: pending.psks, signer: pending.bundle.signer, encryptHandshake: pending.encryptHandshake)
        reinits[request.reinitID] = nil
        return .with {
            $0.stateID = id
            $0.epochAuthenticator = Data(group.epochAuthenticator.bytes)
        }
    }

    // MARK: - Branches (§11.3)

    public func createBranch(_ request: MlsClient_CreateBranchRequest) throws -> MlsClient_CreateSubgroupResponse {
        let state = try member(request.stateID)
        let keyPackages = try Self.decodeKeyPackages(request.keyPackages, "key_packages")
        let extensions = try Self.extensions(request.extensions)
        let bundle = try successorBundle(of: state, suite: state.group.cipherSuite)
        var source = state.group
        source.configuration.ratchetTreeExtension = !request.externalTree
        let (group, welcome) = try source.branch(
            groupID: Array(request.groupID), creator: bundle, adding: keyPackages, extensions: extensions, now: Self.lifetimes,
            random: random)
        let id = try nextID()
        members[id] = Member(group: group, psks: state.psks, signer: bundle.signer, encryptHandshake: state.encryptHandshake)
        return Self.subgroupResponse(id, group, welcome, externalTree: request.externalTree)
    }

    public func handleBranch(_ request: MlsClient_HandleBranchRequest) throws -> MlsClient_HandleBranchResponse {
        let state = try member(request.stateID)
        guard let join = joins[request.transactionID] else {
            throw InteropFailure(.notFound, "no transaction \(request.transactionID)")
        }
        let welcome = try Self.decodeWelcome(request.welcome)
        let tree = try Self.decodeTree(request.ratchetTree)
        var store = state.psks
        store.external.merge(join.psks.external) { _, new in new }
        let group = try Group(
            welcome: welcome, keyPackage: join.bundle, ratchetTree: tree, psks: state.group.pskStore(store), now: Self.lifetimes,
            configuration: Self.configuration(encryptHandshake: state.encryptHandshake))
        let id = try nextID()
        members[id] = Member(group: group, psks: store, signer: join.bundle.signer, encryptHandshake: state.encryptHandshake)
        joins[request.transactionID] = nil
        return .with {
            $0.stateID = id
            $0.epochAuthenticator = Data(group.epochAuthenticator.bytes)
        }
    }

    /// A KeyPackage for a group that follows this member's group, with the
    /// same credential; the same signature key if the suite is the same.
    private func successorBundle(of state: Member, suite: CipherSuite) throws -> KeyPackageBundle {
        guard let credential = state.group.ownLeafNode?.credential else {
            throw InteropFailure.invalid("this member has no leaf in its group")
        }
        let provider = try CipherSuiteProvider(suite)
        let signer = suite == state.group.cipherSuite ? state.signer : try provider.generateSignatureKey(random: random)
        return try KeyPackageBundle.create(
            provider, credential: credential, signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: UInt64.max), random: random)
    }

    private static func subgroupResponse(
        _ id: UInt32, _ group: Group, _ welcome: Welcome?, externalTree: Bool
    ) -> MlsClient_CreateSubgroupResponse {
        .with {
            $0.stateID = id
            if let welcome { $0.welcome = Data(MLSMessage(body: .welcome(welcome)).tlsSerialized) }
            if externalTree { $0.ratchetTree = Data(group.tree.exported.tlsSerialized) }
            $0.epochAuthenticator = Data(group.epochAuthenticator.bytes)
        }
    }

    // MARK: - External proposals (§12.1.8)

    public func newMemberAddProposal(_ request: MlsClient_NewMemberAddProposalRequest) throws -> MlsClient_NewMemberAddProposalResponse {
        let view = try PublicGroup(groupInfo: try Self.decodeGroupInfo(request.groupInfo), now: Self.lifetimes)
        let bundle = try makeBundle(view.provider, identity: Array(request.identity))
        let message = try view.newMemberAddProposal(bundle)
        let id = try nextID()
        // Kept like CreateKeyPackage's, for the JoinGroup that follows the commit.
        joins[id] = PendingJoin(bundle: bundle, psks: .empty)
        return .with {
            $0.transactionID = id
            $0.proposal = Data(message.tlsSerialized)
            $0.initPriv = Data(bundle.initKey.secret.bytes)
            $0.encryptionPriv = Data(bundle.encryptionKey.privateKey.secret.bytes)
            $0.signaturePriv = Data(bundle.signer.serialized.bytes)
        }
    }

    public func createExternalSigner(_ request: MlsClient_CreateExternalSignerRequest) throws -> MlsClient_CreateExternalSignerResponse {
        let provider = try Self.provider(request.cipherSuite)
        let signer = try provider.generateSignatureKey(random: random)
        let sender = ExternalSender(signatureKey: signer.publicKey, credential: .basic(identity: Array(request.identity)))
        let id = try nextID()
        externalSigners[id] = ExternalSigner(signer: signer, sender: sender)
        return .with {
            $0.signerID = id
            $0.externalSender = Data(sender.tlsSerialized)
        }
    }

    public func addExternalSigner(_ request: MlsClient_AddExternalSignerRequest) throws -> MlsClient_ProposalResponse {
        let sender: ExternalSender
        do {
            sender = try ExternalSender(tlsSerialized: Array(request.externalSender))
        } catch let error as CodecError {
            throw InteropFailure.invalid("external_sender is malformed: \(error.description)")
        } catch {
            throw InteropFailure.invalid("external_sender is malformed")
        }
        return try propose(request.stateID) { group in
            let senders = try group.context.externalSenders() + [sender]
            var extensions = group.context.extensions.filter { $0.type != .externalSenders }
            extensions.append(Extension(type: .externalSenders, data: ExternalSendersList(senders).tlsSerialized))
            return .groupContextExtensions(extensions)
        }
    }

    public func externalSignerProposal(_ request: MlsClient_ExternalSignerProposalRequest) throws -> MlsClient_ProposalResponse {
        guard let external = externalSigners[request.signerID] else {
            throw InteropFailure(.notFound, "no external signer \(request.signerID)")
        }
        let view = try PublicGroup(
            groupInfo: try Self.decodeGroupInfo(request.groupInfo), ratchetTree: try Self.decodeTree(request.ratchetTree),
            now: Self.lifetimes)
        guard let index = try view.context.externalSenders().firstIndex(where: { $0.signatureKey == external.signer.publicKey }),
            let senderIndex = UInt32(exactly: index)
        else {
            throw InteropFailure.invalid("the signer is not among the group's external senders")
        }
        let description = request.description_p
        let type = String(decoding: description.proposalType, as: UTF8.self)
        let proposal: Proposal
        switch type {
        case "add": proposal = .add(try Self.decodeKeyPackage(description.keyPackage))
        case "remove": proposal = try Self.removal(of: Array(description.removedID), among: view.members)
        case "externalPSK": proposal = externalPSK(Array(description.pskID), provider: view.provider)
        case "resumptionPSK": proposal = resumptionPSK(epoch: description.epochID, groupID: view.groupID, provider: view.provider)
        case "groupContextExtensions": proposal = .groupContextExtensions(try Self.extensions(description.extensions))
        case "reinit":
            let provider = try Self.provider(description.cipherSuite)
            proposal = .reinit(
                ReInit(
                    groupID: Array(description.groupID), version: .mls10, cipherSuite: provider.suite,
                    extensions: try Self.extensions(description.extensions)))
        default:
            // External senders may not send Update or ExternalInit (§12.1.8.1).
            throw InteropFailure.invalid("description: unsupported proposal_type \"\(type.prefix(32))\" for an external sender")
        }
        let message = try view.externalProposal(proposal, senderIndex: senderIndex, signer: external.signer)
        return .with { $0.proposal = Data(message.tlsSerialized) }
    }

    // MARK: - Cleanup

    public func free(_ request: MlsClient_FreeRequest) throws -> MlsClient_FreeResponse {
        guard members.removeValue(forKey: request.stateID) != nil else {
            throw InteropFailure(.notFound, "no state \(request.stateID)")
        }
        return MlsClient_FreeResponse()
    }

    /// How many group states are held (for tests).
    public var stateCount: Int { members.count }

    // MARK: - Helpers

    private func nextID() throws -> UInt32 {
        guard lastID < UInt32.max else { throw InteropFailure(.resourceExhausted, "no more state or transaction ids") }
        lastID += 1
        return lastID
    }

    private func member(_ id: UInt32) throws -> Member {
        guard let state = members[id] else { throw InteropFailure(.notFound, "no state \(id)") }
        guard !state.removed else { throw InteropFailure(.failedPrecondition, "state \(id) was removed from its group") }
        return state
    }

    private func makeBundle(_ provider: CipherSuiteProvider, identity: [UInt8]) throws -> KeyPackageBundle {
        let signer = try provider.generateSignatureKey(random: random)
        return try KeyPackageBundle.create(
            provider, credential: .basic(identity: identity), signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: UInt64.max),
            random: random)
    }

    private func externalPSK(_ pskID: [UInt8], in group: Group) -> Proposal {
        externalPSK(pskID, provider: group.provider)
    }

    private func externalPSK(_ pskID: [UInt8], provider: CipherSuiteProvider) -> Proposal {
        .preSharedKey(PreSharedKeyID(kind: .external(pskID: pskID), nonce: random.bytes(count: provider.hashLength)))
    }

    private func resumptionPSK(epoch: UInt64, in group: Group) -> Proposal {
        resumptionPSK(epoch: epoch, groupID: group.groupID, provider: group.provider)
    }

    private func resumptionPSK(epoch: UInt64, groupID: [UInt8], provider: CipherSuiteProvider) -> Proposal {
        .preSharedKey(
            PreSharedKeyID(
                kind: .resumption(usage: .application, groupID: groupID, epoch: epoch),
                nonce: random.bytes(count: provider.hashLength)))
    }

    /// A by-value proposal of a CommitRequest (`ProposalDescription`).
    private func proposal(from description: MlsClient_ProposalDescription, index: Int, in group: Group) throws -> Proposal {
        let type = String(decoding: description.proposalType, as: UTF8.self)
        switch type {
        case "add": return .add(try Self.decodeKeyPackage(description.keyPackage))
        case "remove": return try Self.removal(of: Array(description.removedID), in: group)
        case "externalPSK": return externalPSK(Array(description.pskID), in: group)
        case "resumptionPSK": return resumptionPSK(epoch: description.epochID, in: group)
        case "groupContextExtensions": return .groupContextExtensions(try Self.extensions(description.extensions))
        default: throw InteropFailure.invalid("by_value[\(index)]: unsupported proposal_type \"\(type.prefix(32))\"")
        }
    }

    static func provider(_ rawSuite: UInt32) throws -> CipherSuiteProvider {
        guard let value = UInt16(exactly: rawSuite) else { throw InteropFailure.invalid("cipher suite \(rawSuite) is not a 16-bit value") }
        return try CipherSuiteProvider(CipherSuite(rawValue: value))
    }

    /// The time lifetimes are checked against: none. The harness drives
    /// fixed scenarios whose key packages may carry any lifetime; whether a
    /// leaf is current is the application's business, not the protocol
    /// interop's.
    static let lifetimes = ValidationTime.unchecked

    static func configuration(encryptHandshake: Bool) -> GroupConfiguration {
        GroupConfiguration(handshakeAsPublicMessage: !encryptHandshake)
    }

    static func decodeMessage(_ bytes: Data, _ field: String) throws -> MLSMessage {
        do {
            return try MLSMessage(tlsSerialized: Array(bytes))
        } catch let error as CodecError {
            throw InteropFailure.invalid("\(field) is not a valid MLSMessage: \(error.description)")
        } catch let error as MLSError {
            throw InteropFailure.invalid("\(field) is not a valid MLSMessage: \(error.description)")
        } catch {
            throw InteropFailure.invalid("\(field) is not a valid MLSMessage")
        }
    }

    static func decodeKeyPackage(_ bytes: Data, _ field: String = "key_package") throws -> KeyPackage {
        guard case .keyPackage(let keyPackage) = try decodeMessage(bytes, field).body else {
            throw InteropFailure.invalid("\(field) is not an MLSMessage carrying a KeyPackage")
        }
        return keyPackage
    }

    static func decodeKeyPackages(_ list: [Data], _ field: String) throws -> [KeyPackage] {
        var keyPackages: [KeyPackage] = []
        for (index, bytes) in list.enumerated() { keyPackages.append(try decodeKeyPackage(bytes, "\(field)[\(index)]")) }
        return keyPackages
    }

    static func decodeGroupInfo(_ bytes: Data) throws -> GroupInfo {
        guard case .groupInfo(let groupInfo) = try decodeMessage(bytes, "group_info").body else {
            throw InteropFailure.invalid("group_info is not an MLSMessage carrying a GroupInfo")
        }
        return groupInfo
    }

    static func decodeWelcome(_ bytes: Data) throws -> Welcome {
        guard case .welcome(let welcome) = try decodeMessage(bytes, "welcome").body else {
            throw InteropFailure.invalid("welcome is not an MLSMessage carrying a Welcome")
        }
        return welcome
    }

    /// An optional `ratchet_tree` field: empty means absent.
    static func decodeTree(_ bytes: Data) throws -> RatchetTreeNodes? {
        guard !bytes.isEmpty else { return nil }
        do {
            return try RatchetTreeNodes(tlsSerialized: Array(bytes))
        } catch let error as CodecError {
            throw InteropFailure.invalid("ratchet_tree is malformed: \(error.description)")
        } catch {
            throw InteropFailure.invalid("ratchet_tree is malformed")
        }
    }

    static func extensions(_ list: [MlsClient_Extension]) throws -> [Extension] {
        var extensions: [Extension] = []
        for item in list {
            guard let type = UInt16(exactly: item.extensionType) else {
                throw InteropFailure.invalid("extension type \(item.extensionType) is not a 16-bit value")
            }
            extensions.append(Extension(type: ExtensionType(rawValue: type), data: Array(item.extensionData)))
        }
        return extensions
    }

    /// The leaf of the member whose basic credential is `identity`.
    static func leaf(of identity: [UInt8], in members: [(index: LeafIndex, leaf: LeafNode)]) -> LeafIndex? {
        members.first { $0.leaf.credential == .basic(identity: identity) }?.index
    }

    static func removal(of identity: [UInt8], in group: Group) throws -> Proposal {
        try removal(of: identity, among: group.members)
    }

    static func removal(of identity: [UInt8], among members: [(index: LeafIndex, leaf: LeafNode)]) throws -> Proposal {
        guard let leaf = leaf(of: identity, in: members) else {
            throw InteropFailure.invalid("removed_id: no member of the group has this identity")
        }
        return .remove(leaf)
    }
}
