import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import MLS

/// The Delivery Service (DESIGN.md §4) for the conversations this network
/// hosts: one commit per epoch (first wins), handshakes checked with the
/// public group view, application messages only as PrivateMessage, fan-out
/// to every member device, Welcomes to added devices, GroupInfo for
/// external joins, and the server's own proposals. This type is the shell:
/// it loads a conversation and the facts a rule needs, asks
/// ``DeliveryCore`` for a decision, and applies it in one transaction.
final class DeliveryService: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let hub: InboxHub
    let policy: PolicyService
    let directory: FederationDirectory
    let files: FileService
    let groups = GroupCache()
    let limits: ServerLimits
    /// D20: each device's message and byte budgets.
    private let messageRate: RateLimiter<SendingDevice>
    private let byteRate: RateLimiter<SendingDevice>

    /// A device's budget is kept by its user's address and its id (device
    /// ids of other networks are theirs to choose).
    private struct SendingDevice: Hashable, Sendable {
        let user: UserAddress
        let device: DeviceID
    }
    let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, hub: InboxHub, policy: PolicyService,
        directory: FederationDirectory, files: FileService, limits: ServerLimits, logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.hub = hub
        self.policy = policy
        self.directory = directory
        self.files = files
        self.limits = limits
        self.messageRate = RateLimiter(rate: limits.messagesPerSecond, burst: limits.messageBurst)
        self.byteRate = RateLimiter(rate: limits.messageBytesPerSecond, burst: limits.messageByteBurst)
        self.logger = logger
    }

    var domain: NetworkDomain { identity.domain }

    // MARK: Conversations

    /// Creates a conversation hosted here (D1–D5, P1, P2, P4, F5).
    func createConversation(_ request: CreateConversation, session: Session) async throws -> ConversationInfo {
        let new = try DeliveryCore.checkNewConversation(
            request, by: session.requester, networkKey: identity.publicKey, now: clock.validationTime)
        var directKey: String?
        var participants = [session.user.name]
        if request.kind == .direct {
            guard let peer = request.peer else { throw APIError.badRequest("a 1:1 conversation needs a peer") }
            if peer.domain != domain {
                // A 1:1 with a user of another network, hosted here: this network's policy first (F5).
                try await policy.checkFederation(try await policy.policies(of: participants), remote: [peer], newcomers: [peer])
                directKey = [session.address.description, peer.description].sorted().joined(separator: " ")
            } else {
                guard peer.name != session.user.name else { throw APIError.badRequest("a 1:1 conversation needs another user") }
                guard let peerUser = try await store.user(named: peer.name), !peerUser.suspended else { throw APIError.notFound("user") }
                participants.append(peer.name)
                directKey = UserName.directKey(session.user.name, peer.name)
            }
            if let existing = try await store.directConversation(key: directKey ?? "") {  // D5
                throw APIError(.conversationExists, "a 1:1 conversation with this user exists", conversation: existing)
            }
        }
        // P1, P2, P4: a 1:1 conversation's two users may message each other; the settings and suite are within their groups' policy.
        let policies = try await policy.policies(of: participants)
        try PolicyRules.checkSegmentation(added: participants.dropFirst(), members: participants, policies)
        try PolicyRules.checkSettings(new.settings, policies.values)
        try PolicyRules.checkCipherSuite(new.group.context.cipherSuite, policies.values)  // P4
        let record = ConversationRecord(
            id: new.id, kind: request.kind, name: new.name, directKey: directKey, createdBy: session.user.name, createdAt: clock.now,
            epoch: 0, groupInfo: request.groupInfo.bytes, ratchetTree: new.group.tree.exported.tlsSerialized, settings: new.settings)
        do {
            // A 1:1's two users are its members from the start and for its whole life (D21): the peer's devices may join it,
            // and after losing them all, heal it.
            try await store.createConversation(
                record, creator: MemberDevice(device: session.device.id, user: session.user.name), members: participants)
        } catch StoreError.conflict {
            if let directKey, let existing = try await store.directConversation(key: directKey) {
                throw APIError(.conversationExists, "a 1:1 conversation with this user exists", conversation: existing)
            }
            throw APIError(.conflict, "a conversation with this group id exists")
        }
        await groups.store(new.id, new.group, generation: 0, pendingCount: 0)
        return info(record, members: participants.map(identity.address))
    }

    func conversationInfo(_ id: ConversationID, requester: Requester) async throws -> ConversationInfo {
        let (record, members) = try await memberConversation(id, requester: requester)
        return info(record, members: members)
    }

    func listConversations(session: Session) async throws -> ConversationList {
        var conversations: [ConversationInfo] = []
        for row in try await store.conversations(of: session.user.name) {
            let remote = try await store.remoteMembers(row.conversation.id)
            conversations.append(info(row.conversation, members: row.members.map(identity.address) + remote))
        }
        return ConversationList(conversations: conversations)
    }

    /// D6: only members read a conversation's GroupInfo.
    func groupInfo(_ id: ConversationID, requester: Requester) async throws -> GroupInfoResponse {
        let (record, _) = try await memberConversation(id, requester: requester)
        return GroupInfoResponse(
            epoch: record.epoch, groupInfo: Base64Bytes(record.groupInfo), ratchetTree: Base64Bytes(record.ratchetTree))
    }

    /// A conversation hosted here that the requester's user is a member of
    /// (404 otherwise, so that outsiders learn nothing of it, D6), with its
    /// members.
    func memberConversation(_ id: ConversationID, requester: Requester) async throws -> (ConversationRecord, [UserAddress]) {
        guard let record = try await store.conversation(id), record.host == nil else { throw APIError.notFound("conversation") }
        let members = try await allMembers(id)
        guard members.contains(requester.address) else { throw APIError.notFound("conversation") }
        return (record, members)
    }

    /// The members of a conversation, of this network and of others.
    func allMembers(_ id: ConversationID) async throws -> [UserAddress] {
        try await store.memberUsers(id).map(identity.address) + (try await store.remoteMembers(id))
    }

    func info(_ record: ConversationRecord, members: [UserAddress]) -> ConversationInfo {
        ConversationInfo(
            id: record.id, kind: record.kind, name: record.name, epoch: record.epoch, members: members.sorted(),
            createdBy: UserAddress(name: record.createdBy, domain: record.host ?? domain), createdAt: record.createdAt,
            messageLifetime: record.settings.messageLifetime, burnOnRead: record.settings.burnOnRead)
    }

    // MARK: Commits and messages

    /// A commit: staged and admitted by ``DeliveryCore``, then stored with
    /// its fan-out if the conversation is still at its epoch.
    func acceptCommit(_ id: ConversationID, _ request: CommitRequest, requester: Requester) async throws -> CommitAccepted {
        let conversation = try await hosted(id)
        let staged = try DeliveryCore.stageCommit(request, to: conversation, by: requester, now: clock.validationTime)
        if let reinit = staged.summary.reinit {  // D25: every member device can follow, so the move cannot leave the group frozen
            let devices = conversation.localDevices.filter { !requester.isLocal || $0 != requester.device }  // the starter needs none
            let able = try await store.devicesHoldingKeyPackages(suite: reinit.cipherSuite.rawValue, among: devices)
            guard able.count == Set(devices).count else {
                throw APIError(
                    .conflict,
                    "\(Set(devices).subtracting(able).count) device(s) of this conversation have no key package of \(reinit.cipherSuite): they could not follow the move"
                )
            }
        }
        let write = try DeliveryCore.admit(staged, facts: try await admissionFacts(for: staged), domain: domain, now: clock.now)
        let (outcome, notified) = try await store.applyCommit(write)
        switch outcome {
        case .applied:
            await groups.store(id, staged.group, generation: conversation.record.generation, pendingCount: 0)
            hub.notify(notified)
            if !conversation.pendingProposalRefs.isEmpty {
                await proposeAgain(removalsPending(in: conversation.group), in: id)  // D11: those an external join left out
                await retuneAfterCommit(id)
            }
            return CommitAccepted(epoch: staged.group.epoch)
        case .wrongEpoch(let current):
            throw APIError(.wrongEpoch, "another commit was accepted first", currentEpoch: current)
        }
    }

    /// Starts the successor group a committed ReInit asks for (D25): the
    /// conversation, at generation + 1, is that group from now on.
    func startSuccessor(_ id: ConversationID, _ request: StartSuccessor, requester: Requester) async throws -> CommitAccepted {
        let conversation = try await hosted(id)
        let staged = try DeliveryCore.stageSuccessor(
            request, to: conversation, by: requester, networkKey: identity.publicKey, now: clock.validationTime)
        let local = staged.claims.filter { $0.claimedUser.domain == domain }.map(\.claimedDevice)
        let facts = AdmissionFacts(
            networkKeys: [domain: identity.publicKey], devices: try await liveDevices(Set(local)),
            policies: [:], federation: FederationFacts(mode: .off, peers: []))
        let write = try DeliveryCore.admitSuccessor(staged, facts: facts, domain: domain, now: clock.now)
        switch try await store.applyCommit(write) {
        case (.applied, let notified):
            await groups.store(id, staged.group, generation: conversation.record.generation + 1, pendingCount: 0)
            hub.notify(notified)
            logger.info("conversation moved to another cipher suite", metadata: ["conversation": "\(id)"])
            await retuneAfterCommit(id)  // a settings bound changed while it was moving
            return CommitAccepted(epoch: staged.group.epoch)
        case (.wrongEpoch, _):
            throw APIError(.conflict, "another member started the successor group first")
        }
    }

    /// An application message (D8, D11, D15–D17, D19, D20, S5), stored
    /// once for every other member device.
    func acceptMessage(_ id: ConversationID, _ request: SendMessage, requester: Requester) async throws -> (MessageAccepted, created: Bool)
    {
        let devices = try await store.memberDevices(id).map(\.device)
        let remote = try await store.remoteDevices(id)
        let message = try prepareMessage(id, request, requester: requester, localDevices: devices, remoteDevices: remote)
        let delivery = message.delivery
        var share: FileShare?
        if let shared = request.files, !shared.isEmpty {  // S5
            try await files.checkShareable(shared, in: id, messageID: request.messageId, requester: requester)
            share = FileShare(
                files: shared, sharer: requester.fileReader,
                readers: delivery.recipients.map { FileReader(device: $0, user: nil) }
                    + delivery.remote.map { FileReader(device: $0.device, user: $0.user) })
        }
        let (outcome, sequences): (SendOutcome, [DeviceID: Int64])
        do {
            (outcome, sequences) = try await store.appendApplication(
                id, epoch: message.epoch, generation: message.generation, delivery: delivery, files: share, stored: message.handOver)
        } catch StoreError.conflict("files") {
            throw APIError(.fileIncomplete, "a shared file must be completely uploaded, and shared by no other message")
        }
        try await store.announceInbox(Self.announced(outcome, sequences, delivery))
        return try Self.accepted(outcome, messageID: request.messageId)
    }

    /// ``acceptMessage(_:_:requester:)`` without a task, when memory holds
    /// the conversation's devices and the message has no file and no
    /// recipient of another network: checked at once, and `answered` told
    /// once it has committed (a refusal at once). False, with nothing done,
    /// otherwise: call ``acceptMessage(_:_:requester:)`` then.
    func acceptMessageFromMemory(
        _ id: ConversationID, _ request: SendMessage, requester: Requester,
        answered: @escaping @Sendable (Result<(MessageAccepted, created: Bool), any Error>) -> Void
    ) -> Bool {
        guard request.files?.isEmpty ?? true, let members = store.memberDevicesInMemory(id), members.remote.isEmpty else { return false }
        let message: PreparedMessage
        do {
            message = try prepareMessage(
                id, request, requester: requester, localDevices: members.local.map(\.device), remoteDevices: [])
        } catch {
            answered(.failure(error))
            return true
        }
        let (store, delivery, messageID) = (store, message.delivery, request.messageId)
        store.appendApplication(
            id, epoch: message.epoch, generation: message.generation, delivery: delivery, stored: message.handOver
        ) { result in
            let (answer, announced): ((MessageAccepted, created: Bool), [DeviceID])
            do {
                let (outcome, sequences) = try result.get()
                (answer, announced) = (try Self.accepted(outcome, messageID: messageID), Self.announced(outcome, sequences, delivery))
            } catch {
                answered(.failure(error))
                return
            }
            guard store.announcesInbox, !announced.isEmpty else {
                answered(.success(answer))
                return
            }
            Task {
                do {
                    try await store.announceInbox(announced)
                    answered(.success(answer))
                } catch {
                    answered(.failure(error))
                }
            }
        }
        return true
    }

    /// A message checked and ready to store.
    private struct PreparedMessage {
        let epoch: UInt64
        let generation: UInt64
        let delivery: Delivery
        /// Hands the message to its recipients' connections once stored.
        let handOver: ConclaveStore.StoredHandler
    }

    /// Checks a message (D15, D16, D19, D25) and spends the sender's budget
    /// (D20): what to store, and how it is handed to its recipients.
    private func prepareMessage(
        _ id: ConversationID, _ request: SendMessage, requester: Requester, localDevices devices: [DeviceID],
        remoteDevices remote: [RemoteDevice]
    ) throws -> PreparedMessage {
        let (epoch, generation) = try DeliveryCore.checkMessage(
            request, to: id, localDevices: devices, remoteDevices: remote, by: requester, maxBytes: limits.maxMessageBytes)
        try spendSendBudget(requester, bytes: request.message.bytes.count)
        let delivery = Delivery(
            kind: .application, data: request.message.bytes, messageID: request.messageId, senderDevice: requester.device,
            sentAt: Date(millis: clock.now.millis), recipients: devices.filter { !requester.isLocal || $0 != requester.device },
            remote: remote.filter { $0 != requester.remoteDevice })
        // Handed to the recipients' connections as soon as it is stored (with the rest of its batch, in order).
        // Written here, before it is stored, so that the batch only joins the parts (but for a lifetime).
        let hub = hub
        let (message, messageID) = (request.message, request.messageId)
        let draft = { @Sendable (sentAt: Date) in
            EncodedEvent.Draft(
                InboxEvent(
                    seq: 0, kind: .application, conversation: id, message: message, messageId: messageID, sentAt: sentAt, expiresAt: nil))
        }
        let drafted = draft(delivery.sentAt)
        let handOver: ConclaveStore.StoredHandler = { outcome, sequences in
            guard case .stored(let sentAt, let expiresAt) = outcome else { return }
            if let written = sentAt == delivery.sentAt ? drafted : draft(sentAt) {
                hub.push(written.event(expiresAt: expiresAt), sequences: sequences)
            } else {
                hub.notify(Set(sequences.keys))
            }
        }
        return PreparedMessage(epoch: epoch, generation: generation, delivery: delivery, handOver: handOver)
    }

    /// The devices whose connections on other server processes are told of
    /// a message: its recipients once stored; again for a retry (D17), in
    /// case the first try stopped before it told them.
    private static func announced(_ outcome: SendOutcome, _ sequences: [DeviceID: Int64], _ delivery: Delivery) -> [DeviceID] {
        switch outcome {
        case .stored: Array(sequences.keys)
        case .duplicate: delivery.recipients
        case .wrongEpoch, .pendingProposals, .moving, .unknownConversation: []
        }
    }

    /// The answer to a message's sender (201 stored, 200 a retry), or its
    /// refusal.
    private static func accepted(_ outcome: SendOutcome, messageID: String) throws(APIError) -> (MessageAccepted, created: Bool) {
        switch outcome {
        case .stored(let sentAt, let expiresAt):
            return (MessageAccepted(messageId: messageID, sentAt: sentAt, expiresAt: expiresAt), true)
        case .duplicate(let sentAt, let expiresAt):
            return (MessageAccepted(messageId: messageID, sentAt: sentAt, expiresAt: expiresAt), false)
        case .wrongEpoch(let current):  // D8
            throw APIError(.wrongEpoch, "the conversation is at another epoch", currentEpoch: current)
        case .pendingProposals:  // D11
            throw APIError(.pendingProposals, "the server's proposals must be committed before new messages")
        case .moving:  // D25
            throw APIError(.conflict, "the conversation is moving to another cipher suite; send again once its successor group started")
        case .unknownConversation:
            throw APIError.notFound("conversation")
        }
    }

    /// D20: a device sends at most `messagesPerSecond` messages and
    /// `messageBytesPerSecond` bytes, with bursts; beyond that 429 with
    /// `Retry-After`, and nothing is stored.
    private func spendSendBudget(_ requester: Requester, bytes: Int) throws {
        let key = SendingDevice(user: requester.address, device: requester.device)
        let now = clock.now
        if let wait = messageRate.spend(for: key, now: now) {
            throw APIError(.rateLimited, "this device sends too many messages; slow down", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        if let wait = byteRate.spend(Double(bytes), for: key, now: now) {
            throw APIError(.rateLimited, "this device sends too many bytes; slow down", retryAfter: max(1, Int(wait.rounded(.up))))
        }
    }

    /// A member leaves a room: the server proposes removing every device of
    /// its user (of its network) from the conversation. A 1:1 cannot be left.
    func leave(_ id: ConversationID, requester: Requester) async throws {
        let (record, _) = try await memberConversation(id, requester: requester)
        guard record.kind != .direct else {  // D21: a 1:1 is its two users' for its whole life
            throw APIError(.directConversation, "a 1:1 conversation cannot be left; hide it on your device instead")
        }
        let devices =
            requester.isLocal
            ? try await store.devices(of: requester.address.name).map(\.id)
            : try await store.remoteDevices(id).filter { $0.user == requester.address }.map(\.device)
        try await proposeRemoval(of: Set(devices), ofNetwork: requester.address.domain, in: [id])
    }

    // MARK: Loading

    /// The conversation as the core needs it.
    func hosted(_ id: ConversationID) async throws -> HostedConversation {
        guard let record = try await store.conversation(id), record.host == nil else { throw APIError.notFound("conversation") }
        let pending = try await store.pendingProposals(id).filter { $0.epoch == record.epoch }
        return HostedConversation(
            record: record, group: try await publicGroup(record, pending: pending), pendingProposalRefs: pending.map(\.ref),
            members: try await allMembers(id), localDevices: try await store.memberDevices(id).map(\.device),
            remoteDevices: try await store.remoteDevices(id), directUsers: directUsers(record))
    }

    /// A 1:1 conversation's two users, read from its key: two local names,
    /// or two addresses when one user is of another network.
    func directUsers(_ record: ConversationRecord) -> Set<UserAddress>? {
        guard record.kind == .direct, let key = record.directKey else { return nil }
        let users = key.split(separator: " ").compactMap { part -> UserAddress? in
            part.contains("@") ? UserAddress(String(part)) : UserName(String(part)).map(identity.address)
        }
        return users.count == 2 ? Set(users) : nil
    }

    /// D12's facts about these devices of this network: those that exist,
    /// with their key, user, suspension and approval.
    func liveDevices(_ ids: Set<DeviceID>) async throws -> [DeviceID: LiveDevice] {
        var devices: [DeviceID: LiveDevice] = [:]
        for id in ids {
            guard let device = try await store.device(id), let user = try await store.user(named: device.user) else { continue }
            devices[id] = LiveDevice(
                signatureKey: device.signatureKey, user: device.user, suspended: user.suspended, pending: device.pending)
        }
        return devices
    }

    /// The facts D12, P1, P2 and F5 need for a staged commit.
    func admissionFacts(for staged: StagedCommit) async throws -> AdmissionFacts {
        var keys: [NetworkDomain: NetworkPublicKey] = [:]
        for network in staged.networksToVerify {
            keys[network] = network == domain ? identity.publicKey : try? await directory.peerKey(network)
        }
        let devices = try await liveDevices(staged.localDevicesToCheck(domain))
        let localUsers = staged.memberUsers.filter { $0.domain == domain }.map(\.name)
        return AdmissionFacts(
            networkKeys: keys, devices: devices,
            policies: staged.needsPolicy ? try await store.policies(of: localUsers) : [:],
            federation: staged.needsPolicy ? try await policy.federationFacts() : FederationFacts(mode: .off, peers: []))
    }

    /// The public view at the record's epoch, with this epoch's server
    /// proposals applied.
    func publicGroup(_ record: ConversationRecord, pending: [(epoch: UInt64, ref: [UInt8], message: [UInt8])]) async throws -> PublicGroup {
        if let cached = await groups.group(record.id, epoch: record.epoch, generation: record.generation, pendingCount: pending.count) {
            return cached
        }
        do {
            var group = try PublicGroup(
                groupInfo: try GroupInfo(tlsSerialized: record.groupInfo),
                ratchetTree: try RatchetTreeNodes(tlsSerialized: record.ratchetTree),
                now: .unchecked)  // stored state was validated when it was accepted
            for proposal in pending {
                if case .publicMessage(let message) = try MLSMessage(tlsSerialized: proposal.message).body {
                    _ = try group.process(message, now: .unchecked)
                }
            }
            await groups.store(record.id, group, generation: record.generation, pendingCount: pending.count)
            return group
        } catch {
            logger.error("stored group state does not load", metadata: ["conversation": "\(record.id)"])
            throw APIError(.internal, "the conversation's stored state does not load")
        }
    }
}
