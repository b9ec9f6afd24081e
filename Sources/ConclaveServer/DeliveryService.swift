import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS
import MLSCodec

/// The Delivery Service (DESIGN.md §4): per conversation, one commit per
/// epoch (first wins), handshake messages checked with the public group
/// view, application messages only as PrivateMessage, fan-out to every
/// member device's inbox, Welcomes to added devices, GroupInfo for external
/// joins. Rule numbers (D1…) are listed in docs/server.md.
extension ServerState {
    // MARK: Conversations

    func createConversation(_ request: CreateConversation, session: Session) async throws -> ConversationInfo {
        let groupInfo = try decode(GroupInfo.self, request.groupInfo.bytes, "GroupInfo")
        guard groupInfo.groupContext.epoch == 0 else { throw APIError.invalidMessage("a new conversation starts at epoch 0") }  // D1
        guard let id = ConversationID(bytes: groupInfo.groupContext.groupID) else {
            throw APIError.invalidMessage("the group id must be 16 to 64 bytes")
        }
        let group: PublicGroup
        do { group = try PublicGroup(groupInfo: groupInfo, now: clock().unixSeconds) } catch {
            throw APIError.invalidMessage("the GroupInfo does not verify: \(error.rule) \(error.message)")  // D2
        }
        guard group.members.count == 1, let creator = group.members.first,
            let certificate = DeviceCertificate.verify(leaf: creator.leaf, networkKey: publicKey), certificate.device == session.device.id
        else { throw APIError(.forbidden, "forbidden", "a conversation starts with the creating device alone") }  // D3
        guard (try? group.context.externalSenders())?.contains(publicKey.externalSender) == true else {
            throw APIError(.badRequest, "missing_external_sender", "the group must name this network's server in external_senders")  // D4
        }
        guard let settings = ConversationSettings(extensions: group.context.extensions) else {  // D18
            throw APIError(.badRequest, "invalid_settings", "the conversation settings extension is malformed or out of range")
        }
        var directKey: String?
        var name: String?
        var participants = [session.user.name]
        switch request.kind {
        case .direct:
            guard let peer = request.peer else { throw APIError.badRequest("a 1:1 conversation needs a peer") }
            if peer.domain != domain {
                // A 1:1 with a user of another network, hosted here: this network's policy first (F5).
                let policies = try await policies(of: [session.user.name])
                try await checkFederation(policies, remote: [peer], newcomers: [peer])
                directKey = [session.address.description, peer.description].sorted().joined(separator: " ")
            } else {
                let peerName = peer.name
                guard peerName != session.user.name else { throw APIError.badRequest("a 1:1 conversation needs another user") }
                guard let peerUser = try await store.user(named: peerName), !peerUser.suspended else { throw APIError.notFound("user") }
                participants.append(peerName)
                directKey = UserName.directKey(session.user.name, peerName)
            }
            if let existing = try await store.directConversation(key: directKey ?? "") {  // D5
                throw APIError(.conflict, "conversation_exists", "a 1:1 conversation with this user exists", conversation: existing)
            }
        case .room:
            guard let roomName = request.name?.trimmingCharacters(in: .whitespaces), (1...100).contains(roomName.count),
                !roomName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { throw APIError.badRequest("a room needs a name of 1 to 100 printable characters") }
            name = roomName
        }
        // P1, P2: a 1:1 conversation's two users may message each other; the settings are within their groups' bounds.
        let policies = try await policies(of: participants)
        try checkSegmentation(added: participants.dropFirst(), members: participants, policies)
        try checkSettings(settings, policies.values)
        let record = ConversationRecord(
            id: id, kind: request.kind, name: name, directKey: directKey, createdBy: session.user.name, createdAt: clock(), epoch: 0,
            groupInfo: request.groupInfo.bytes, ratchetTree: group.tree.exported.tlsSerialized, settings: settings)
        do {
            try await store.createConversation(record, creator: MemberDevice(device: session.device.id, user: session.user.name))
        } catch StoreError.conflict {
            if let directKey, let existing = try await store.directConversation(key: directKey) {
                throw APIError(.conflict, "conversation_exists", "a 1:1 conversation with this user exists", conversation: existing)
            }
            throw APIError(.conflict, "conversation_exists", "a conversation with this group id exists")
        }
        await groups.store(id, group, pendingCount: 0)
        return info(record, members: [session.address])
    }

    func conversationInfo(_ id: ConversationID, actor: Actor) async throws -> ConversationInfo {
        let (record, members) = try await memberConversation(id, actor: actor)
        return info(record, members: members)
    }

    func listConversations(session: Session) async throws -> ConversationList {
        var conversations: [ConversationInfo] = []
        for row in try await store.conversations(of: session.user.name) {
            let remote = try await store.remoteMembers(row.conversation.id)
            conversations.append(info(row.conversation, members: row.members.map { UserAddress(name: $0, domain: domain) } + remote))
        }
        return ConversationList(conversations: conversations)
    }

    func groupInfo(_ id: ConversationID, actor: Actor) async throws -> GroupInfoResponse {
        let (record, _) = try await memberConversation(id, actor: actor)  // D6
        return GroupInfoResponse(
            epoch: record.epoch, groupInfo: Base64Bytes(record.groupInfo), ratchetTree: Base64Bytes(record.ratchetTree))
    }

    /// A conversation hosted here that the actor's user is a member of (404
    /// otherwise, so that outsiders learn nothing of it), with its members.
    func memberConversation(_ id: ConversationID, actor: Actor) async throws -> (ConversationRecord, [UserAddress]) {
        guard let record = try await store.conversation(id), record.host == nil else { throw APIError.notFound("conversation") }
        let members = try await allMembers(id)
        guard members.contains(actor.address) else { throw APIError.notFound("conversation") }
        return (record, members)
    }

    /// The members of a conversation, of this network and of others.
    func allMembers(_ id: ConversationID) async throws -> [UserAddress] {
        try await store.memberUsers(id).map { UserAddress(name: $0, domain: domain) } + (try await store.remoteMembers(id))
    }

    func info(_ record: ConversationRecord, members: [UserAddress]) -> ConversationInfo {
        ConversationInfo(
            id: record.id, kind: record.kind, name: record.name, epoch: record.epoch, members: members.sorted(),
            createdBy: UserAddress(name: record.createdBy, domain: record.host ?? domain), createdAt: record.createdAt,
            messageLifetime: record.settings.messageLifetime, burnOnRead: record.settings.burnOnRead)
    }

    // MARK: Commits

    func acceptCommit(_ id: ConversationID, _ request: CommitRequest, actor: Actor) async throws -> CommitAccepted {
        let (record, members) = try await memberConversation(id, actor: actor)  // outsiders learn nothing (D6)
        let message = try decode(MLSMessage.self, request.commit.bytes, "MLSMessage")
        guard case .publicMessage(let publicMessage) = message.body, case .commit(let commit) = publicMessage.content.content else {
            throw APIError.invalidMessage("a commit must be a PublicMessage")  // D7
        }
        guard publicMessage.content.groupID == id.bytes else { throw APIError.invalidMessage("the commit is for another group") }
        guard publicMessage.content.epoch == record.epoch else {  // D8
            throw APIError(.conflict, "wrong_epoch", "the conversation is at another epoch", currentEpoch: record.epoch)
        }
        let pending = try await store.pendingProposals(id).filter { $0.epoch == record.epoch }
        var group = try await publicGroup(record, pending: pending)
        let oldGroup = group

        // D9: a member commits as itself; an external commit comes from a new device of a member user.
        switch publicMessage.content.sender {
        case .member(let leaf):
            guard let node = group.tree.leaf(leaf), actor.owns(node) else {
                throw APIError(.forbidden, "forbidden", "a device may only commit as itself")
            }
        case .newMemberCommit:
            guard let path = commit.path, actor.owns(path.leafNode), members.contains(actor.address) else {
                throw APIError(.forbidden, "forbidden", "only a member's own new device may join by external commit")
            }
        default:
            throw APIError.invalidMessage("a commit comes from a member or a joining device")
        }

        let summary: CommitSummary
        do {
            guard case .commit(let processed) = try group.process(publicMessage, now: clock().unixSeconds) else {
                throw APIError.invalidMessage("not a commit")
            }
            summary = processed
        } catch let error as MLSError {
            throw APIError.invalidMessage("the commit does not verify: \(error.rule) \(error.message)")  // D10
        }

        // D11: every server proposal of this epoch must be in the commit.
        let referenced = Set(
            commit.proposals.compactMap { item -> [UInt8]? in
                if case .reference(let ref) = item { return ref }
                return nil
            })
        guard pending.allSatisfy({ referenced.contains($0.ref) }) else {
            throw APIError(.conflict, "pending_proposals", "the commit must include the server's pending proposals")
        }

        // D12: every new or changed leaf carries a certificate of this network for a live device, or of a peer network.
        for index in Set(summary.added + summary.updated + [summary.committer]) {
            guard let leaf = group.tree.leaf(index) else { continue }
            guard let certificate = try await verifiedCertificate(leaf) else {
                throw APIError(.badRequest, "invalid_credential", "a leaf's credential is not a certificate of this network or of a peer")
            }
            let replacesLeaf =
                !summary.added.contains(index) && !(index == summary.committer && publicMessage.content.sender == .newMemberCommit)
            if replacesLeaf, let old = oldGroup.tree.leaf(index),
                DeviceCertificate(credential: old.credential)?.device != certificate.device
            {
                throw APIError(.badRequest, "invalid_credential", "a leaf may not change its device")
            }
            guard certificate.user.domain == domain else { continue }  // its own network vouches for a remote device
            guard let device = try await store.device(certificate.device), device.signatureKey == leaf.signatureKey.bytes,
                let user = try await store.user(named: device.user), !user.suspended
            else { throw APIError(.forbidden, "inactive_device", "a device in the commit is unknown, deleted or suspended") }
        }

        // D18: the settings the commit leaves in the GroupContext are well formed.
        guard let settings = ConversationSettings(extensions: group.context.extensions) else {
            throw APIError(.badRequest, "invalid_settings", "the conversation settings extension is malformed or out of range")
        }

        // D13: the new GroupInfo matches the new epoch and is signed by a member.
        let newInfo = try decode(GroupInfo.self, request.groupInfo.bytes, "GroupInfo")
        guard newInfo.groupContext == group.context, let signer = group.tree.leaf(newInfo.signer),
            newInfo.verifySignature(group.provider, signerKey: signer.signatureKey), newInfo.extensions.first(ofType: .externalPub) != nil
        else { throw APIError.invalidMessage("the GroupInfo does not match the new epoch") }

        // D14: a commit that adds devices comes with their Welcome.
        var welcome: [UInt8]?
        if !summary.added.isEmpty {
            guard let bytes = request.welcome?.bytes, case .welcome(let decoded) = try decode(MLSMessage.self, bytes, "MLSMessage").body,
                decoded.cipherSuite == group.context.cipherSuite
            else { throw APIError.invalidMessage("a commit that adds members needs their Welcome") }
            welcome = bytes
        }

        // P1, P2: newcomers may share the conversation with every member; settings that change, or
        // meet new members, are within the bounds of all members' groups.
        // P1, P2, F5: newcomers may share the conversation with every member (segmentation here, federation across
        // networks); settings that change, or meet new members, are within the bounds of this network's members' groups.
        let certificates = group.members.compactMap { DeviceCertificate(credential: $0.leaf.credential) }
        guard Set(certificates.map(\.device)).count == certificates.count else {  // D12: one leaf per device id
            throw APIError(.badRequest, "invalid_credential", "two leaves of the group name the same device")
        }
        let memberUsers = Set(certificates.map(\.user))
        let newcomers = memberUsers.subtracting(members)
        let localUsers = memberUsers.filter { $0.domain == domain }.map(\.name)
        let remoteUsers = memberUsers.filter { $0.domain != domain }
        if !newcomers.isEmpty || settings != record.settings {
            let policies = try await policies(of: localUsers)
            try checkSegmentation(added: newcomers.filter { $0.domain == domain }.map(\.name), members: localUsers, policies)
            try await checkFederation(policies, remote: remoteUsers, newcomers: newcomers)
            try checkSettings(settings, policies.values)
        }

        let newDevices = certificates.filter { $0.user.domain == domain }.map { MemberDevice(device: $0.device, user: $0.user.name) }
        let newRemoteDevices = certificates.filter { $0.user.domain != domain }.map { RemoteDevice(device: $0.device, user: $0.user) }
        let oldDevices = try await store.memberDevices(id).map(\.device).filter { !actor.isLocal || $0 != actor.device }
        let oldRemote = try await store.remoteDevices(id).filter { $0 != RemoteDevice(device: actor.device, user: actor.address) }
        let oldUsers = Set(
            oldGroup.members.compactMap { DeviceCertificate(credential: $0.leaf.credential)?.user }.filter { $0.domain == domain }.map(
                \.name))
        let newUsers = Set(newDevices.map(\.user))
        let added = summary.added.compactMap { group.tree.leaf($0).flatMap { DeviceCertificate(credential: $0.credential) } }
        let now = clock()
        var deliveries = [
            Delivery(
                kind: .handshake, data: request.commit.bytes, senderDevice: actor.device, sentAt: now, recipients: oldDevices,
                remote: oldRemote)
        ]
        if let welcome {
            deliveries.append(
                Delivery(
                    kind: .welcome, data: welcome, sentAt: now, recipients: added.filter { $0.user.domain == domain }.map(\.device),
                    remote: added.filter { $0.user.domain != domain }.map { RemoteDevice(device: $0.device, user: $0.user) }))
        }
        let write = CommitWrite(
            conversation: id, fromEpoch: record.epoch, toEpoch: group.epoch, groupInfo: request.groupInfo.bytes,
            ratchetTree: group.tree.exported.tlsSerialized, settings: settings, devices: newDevices,
            addedUsers: Array(newUsers.subtracting(oldUsers)), removedUsers: Array(oldUsers.subtracting(newUsers)),
            remoteMembers: remoteUsers.sorted(), remoteDevices: newRemoteDevices, deliveries: deliveries)
        let (outcome, notified) = try await store.applyCommit(write)
        switch outcome {
        case .applied:
            await groups.store(id, group, pendingCount: 0)
            await hub.notify(notified)
            if !pending.isEmpty { await retuneAfterCommit(id) }
            return CommitAccepted(epoch: group.epoch)
        case .wrongEpoch(let current):
            throw APIError(.conflict, "wrong_epoch", "another commit was accepted first", currentEpoch: current)
        }
    }

    // MARK: Application messages

    func acceptMessage(_ id: ConversationID, _ request: SendMessage, actor: Actor) async throws -> (MessageAccepted, created: Bool) {
        let devices = try await store.memberDevices(id).map(\.device)
        let remote = try await store.remoteDevices(id)
        // D16: only a member device, and outsiders learn nothing.
        guard actor.isLocal ? devices.contains(actor.device) : remote.contains(RemoteDevice(device: actor.device, user: actor.address))
        else {
            throw APIError.notFound("conversation")
        }
        guard (1...64).contains(request.messageId.utf8.count),
            request.messageId.utf8.allSatisfy({ $0.isASCIIIdentifier })
        else { throw APIError.badRequest("message_id must be 1 to 64 of A-Z a-z 0-9 - _") }
        let message = try decode(MLSMessage.self, request.message.bytes, "MLSMessage")
        guard case .privateMessage(let privateMessage) = message.body, privateMessage.contentType == .application else {
            throw APIError.invalidMessage("application messages must be PrivateMessage")  // D15
        }
        guard privateMessage.groupID == id.bytes else { throw APIError.invalidMessage("the message is for another group") }
        let delivery = Delivery(
            kind: .application, data: request.message.bytes, messageID: request.messageId, senderDevice: actor.device,
            sentAt: Date(millis: clock().millis), recipients: devices.filter { !actor.isLocal || $0 != actor.device },
            remote: remote.filter { $0 != RemoteDevice(device: actor.device, user: actor.address) })
        let (outcome, notified) = try await store.appendApplication(id, epoch: privateMessage.epoch, delivery: delivery)
        switch outcome {
        case .stored(let sentAt, let expiresAt):
            await hub.notify(notified)
            return (MessageAccepted(messageId: request.messageId, sentAt: sentAt, expiresAt: expiresAt), true)
        case .duplicate(let sentAt, let expiresAt):  // D17
            return (MessageAccepted(messageId: request.messageId, sentAt: sentAt, expiresAt: expiresAt), false)
        case .wrongEpoch(let current):  // D8
            throw APIError(.conflict, "wrong_epoch", "the conversation is at another epoch", currentEpoch: current)
        case .pendingProposals:  // D11
            throw APIError(.conflict, "pending_proposals", "the server's proposals must be committed before new messages")
        case .unknownConversation:
            throw APIError.notFound("conversation")
        }
    }

    // MARK: Server proposals

    /// Proposes, as the group's external sender, to remove every leaf of
    /// these devices from every conversation they are in (leave,
    /// de-provisioning, segmentation). Members' clients commit the proposals.
    /// Devices are named by id within `network` (this one unless said):
    /// another network's certificate naming the same id is not touched.
    func proposeRemoval(of devices: Set<DeviceID>, ofNetwork network: NetworkDomain? = nil, in conversations: [ConversationID])
        async throws
    {
        let network = network ?? domain
        for id in conversations {
            try await proposeAsServer(in: id) { group in
                let alreadyRemoved = Set(
                    group.pendingProposals.compactMap { proposal -> LeafIndex? in
                        if case .remove(let leaf) = proposal { return leaf }
                        return nil
                    })
                return group.members.compactMap { member in
                    guard !alreadyRemoved.contains(member.index), let certificate = DeviceCertificate(credential: member.leaf.credential),
                        certificate.user.domain == network, devices.contains(certificate.device)
                    else { return nil }
                    return .remove(member.index)
                }
            }
        }
    }

    /// Proposes new conversation settings (a GroupContextExtensions
    /// proposal keeping every other extension), unless a settings proposal
    /// of the server already waits in this epoch: a commit may carry only
    /// one, so the next goes out after that commit (``retuneAfterCommit(_:)``).
    /// True when a proposal went out.
    func proposeSettings(_ settings: ConversationSettings, in id: ConversationID) async throws -> Bool {
        try await proposeAsServer(in: id) { group in
            let waiting = group.pendingProposals.contains { proposal in
                if case .groupContextExtensions = proposal { return true }
                return false
            }
            guard !waiting, ConversationSettings(extensions: group.context.extensions) != settings else { return [] }
            let others = group.context.extensions.filter { $0.type != ConversationSettings.extensionType }
            return [.groupContextExtensions(others + (settings.isDefault ? [] : [settings.extension]))]
        }
    }

    /// Signs proposals as the group's external sender, records them as
    /// pending in the current epoch (D11) and delivers them to every member
    /// device. True when any went out.
    @discardableResult
    func proposeAsServer(in id: ConversationID, _ make: (PublicGroup) -> [Proposal]) async throws -> Bool {
        guard let record = try await store.conversation(id) else { return false }
        let pending = try await store.pendingProposals(id).filter { $0.epoch == record.epoch }
        var group = try await publicGroup(record, pending: pending)
        guard let senderIndex = try group.context.externalSenders().firstIndex(of: publicKey.externalSender) else { return false }
        var proposals: [(ref: [UInt8], message: [UInt8])] = []
        for proposal in make(group) {
            let message = try group.externalProposal(proposal, senderIndex: UInt32(senderIndex), signer: serverSigner)
            guard case .publicMessage(let publicMessage) = message.body else { continue }
            _ = try group.process(publicMessage)
            proposals.append((publicMessage.proposalReference(group.provider), message.tlsSerialized))
        }
        guard !proposals.isEmpty else { return false }
        let recipients = try await store.memberDevices(id).map(\.device)
        let remote = try await store.remoteDevices(id)
        let now = clock()
        let deliveries = proposals.map { Delivery(kind: .handshake, data: $0.message, sentAt: now, recipients: recipients, remote: remote) }
        let notified = try await store.addPendingProposals(id, epoch: record.epoch, proposals: proposals, delivery: deliveries)
        await groups.forget(id)
        await hub.notify(notified)
        return true
    }

    // MARK: Helpers

    /// The public view at the record's epoch, with this epoch's server
    /// proposals applied.
    func publicGroup(_ record: ConversationRecord, pending: [(epoch: UInt64, ref: [UInt8], message: [UInt8])]) async throws -> PublicGroup {
        if let cached = await groups.group(record.id, epoch: record.epoch, pendingCount: pending.count) { return cached }
        do {
            let info = try GroupInfo(tlsSerialized: record.groupInfo)
            let tree = try RatchetTreeNodes(tlsSerialized: record.ratchetTree)
            var group = try PublicGroup(groupInfo: info, ratchetTree: tree)
            for proposal in pending {
                if case .publicMessage(let message) = try MLSMessage(tlsSerialized: proposal.message).body {
                    _ = try group.process(message)
                }
            }
            await groups.store(record.id, group, pendingCount: pending.count)
            return group
        } catch {
            logger.error("stored group state does not load", metadata: ["conversation": "\(record.id)"])
            throw APIError(.internalServerError, "internal", "the conversation's stored state does not load")
        }
    }

    func decode<T: TLSDecodable>(_ type: T.Type, _ bytes: [UInt8], _ name: String) throws -> T {
        do { return try T(tlsSerialized: bytes) } catch { throw APIError.invalidMessage("not a valid \(name) (RFC 9420 encoding)") }
    }
}

extension UInt8 {
    var isASCIIIdentifier: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5a).contains(self) || (0x61...0x7a).contains(self) || self == 0x2d || self == 0x5f
    }
}
