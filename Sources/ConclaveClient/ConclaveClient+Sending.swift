import ConclaveProtocol
import Foundation
import MLS

/// A message the server accepted, and the devices it goes to.
public struct SentMessage: Sendable, Hashable {
    public let id: String
    public let conversation: ConversationID
    /// Every other device in the group when it was sent: each gets it once.
    public let recipients: [DeviceRef]
    /// When the server accepted it, and when its ciphertext expires there.
    public let sentAt: Date
    public let expiresAt: Date?
}

extension ConclaveClient {
    /// Encrypts and sends a text message. The group state is saved before
    /// the message leaves, so a key is never used twice even after a crash.
    /// A refused epoch is caught up and retried with a new encryption.
    ///
    /// Before anything leaves, the group is checked (C3, C4 in
    /// docs/client.md): a device whose certificate does not verify is
    /// removed first; a 1:1 must hold its peer's verified devices, and when
    /// the peer has none left (devices reset, account suspended and back,
    /// a new device) the peer's current devices are added again. If that is
    /// impossible the send fails and nothing is sent.
    @discardableResult
    public func send(_ text: String, to id: ConversationID) async throws -> SentMessage {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ClientError.invalid("the message is empty") }
        guard !isPending else { throw ClientError.pendingApproval }
        return try await lock.withLock { try await self.performSend(MessageBody(id: UUID().uuidString.lowercased(), text: text), to: id) }
    }

    /// Sends a message body: its text, and the file it shares (uploaded
    /// already, S5 in docs/server.md).
    func performSend(_ content: MessageBody, to id: ConversationID) async throws -> SentMessage {
        let messageID = content.id
        let body = Array(try ConclaveJSON.encoder().encode(content))
        var lastError: (any Error)?
        _ = try await joinedGroup(id)
        for _ in 0..<4 {
            try await ensureTrusted(id)
            guard let (stored, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
            guard original.pendingReInit == nil else {
                throw ClientError.invalid(
                    "conversation \(id) is moving to another cipher suite and takes no messages until its new group starts; "
                        + "receive, then send again (if it stays stuck, `conclave room set` with the same --cipher-suite finishes the move)"
                )
            }
            var group = original
            let message = try group.encrypt(
                body, authenticatedData: ConversationGeneration.authenticatedData(original.generation), random: random)
            var shown = stored
            shown.hidden = nil  // writing in a hidden 1:1 shows it again
            try await saveGroup(id, shown, group)
            do {
                let accepted: MessageAccepted = try await api.postIdempotent(
                    "/v1/conversations/\(id)/messages",
                    SendMessage(
                        messageId: messageID, message: Base64Bytes(message.tlsSerialized), files: content.file.map { [$0.id] }))
                let own = try requireAccount().0
                let recipients = await verifyLeaves(group).verified.values.map(DeviceRef.init).filter { $0.device != own.device }
                return SentMessage(
                    id: messageID, conversation: id, recipients: recipients.sorted(), sentAt: accepted.sentAt, expiresAt: accepted.expiresAt
                )
            } catch let error as ClientError where [.wrongEpoch, .pendingProposals, .conflict].contains(error.code) {
                lastError = error  // a commit came first, or the conversation is moving to its successor group (D25)
                try await catchUp(autoCommit: true)
            }
        }
        throw lastError ?? ClientError.invalid("the message was not accepted")
    }

    /// Before anything is sent into a group (C3, C4 in docs/client.md):
    /// every leaf's certificate verifies with the key of its network (a leaf
    /// that does not is removed by a commit of this device first), and a
    /// 1:1 holds this user and the peer only, with at least one verified
    /// device of the peer: when the peer has none left, the peer's current
    /// devices are added again (and if the peer has none, nothing is sent).
    func ensureTrusted(_ id: ConversationID) async throws {
        guard let (stored, group) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        let (account, _, _) = try requireAccount()
        let leaves = await verifyLeaves(group)
        if let (_, error) = leaves.unavailable.first { throw error }
        if !leaves.untrusted.isEmpty {
            // C4, C6: a leaf without a valid certificate, or not approved by its user, is removed before anything is sent.
            try await holdEvents(leaves.unapproved.sorted { $0.key < $1.key }.map { .untrustedDevice(id, DeviceRef($0.value)) })
            let untrusted = Set(leaves.untrusted.compactMap { group.tree.leaf($0)?.signatureKey })
            _ = try await commitWithRetry(id) { group in
                let remove = group.members.filter { untrusted.contains($0.leaf.signatureKey) && $0.index != group.ownLeaf }.map(\.index)
                return try group.commit(removing: remove, now: self.validationTime, random: self.random)
            }
        }
        guard stored.kind == .direct else { return }
        guard let peer = stored.peer else { throw ClientError.untrusted("this 1:1 conversation has no known peer") }
        let users = Set(leaves.verified.values.map(\.user))
        guard users.isSubset(of: [account.user, peer]) else {
            throw ClientError.untrusted("the 1:1 conversation with \(peer) holds other users")
        }
        guard !users.contains(peer) else { return }
        do {
            _ = try await addUsers([peer], to: id)
        } catch ClientError.noDevices {
            throw ClientError.peerUnreachable(peer)
        }
    }
}
