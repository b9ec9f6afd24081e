import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS
import MLSCodec

/// A conversation hosted here, as the Delivery Service holds it when a
/// request arrives.
struct HostedConversation: Sendable {
    var record: ConversationRecord
    /// The public view at the record's epoch, with this epoch's server
    /// proposals applied.
    var group: PublicGroup
    /// The references of this epoch's pending server proposals (D11).
    var pendingProposalRefs: [[UInt8]]
    /// The users recorded as members, of this network and of others.
    var members: [UserAddress]
    var localDevices: [DeviceID]
    var remoteDevices: [RemoteDevice]
    /// A 1:1 conversation's two users (nil for a room): its group may
    /// hold no one else's leaves (D21).
    var directUsers: Set<UserAddress>?
}

/// A new conversation that passed D1–D4 and D18.
struct NewConversation: Sendable {
    let id: ConversationID
    let group: PublicGroup
    let settings: ConversationSettings
    /// The room's name; nil for a 1:1.
    let name: String?
}

/// The sans-I/O core of the Delivery Service: each function takes what the
/// shell (``DeliveryService``) loaded and returns a decision, accepting
/// with the effects to apply or refusing with the rule that failed. No
/// database, socket or clock: the shell passes the time, and the rules are
/// unit-tested without either (docs/server.md numbers them).
enum DeliveryCore {
    /// D1–D4, D18, D22 and the room's name, for `POST /v1/conversations`.
    static func checkNewConversation(
        _ request: CreateConversation, by requester: Requester, networkKey: NetworkPublicKey, now: ValidationTime
    ) throws(APIError) -> NewConversation {
        let groupInfo = try decode(GroupInfo.self, request.groupInfo.bytes, "GroupInfo")
        guard groupInfo.groupContext.epoch == 0 else { throw .invalidMessage("a new conversation starts at epoch 0") }  // D1
        guard let id = ConversationID(bytes: groupInfo.groupContext.groupID), id.isHosted(by: networkKey.domain) else {  // D22
            throw .invalidMessage("the group id must be 16 random bytes and this network's host tag (ConversationID.hosted(by:))")
        }
        let group: PublicGroup
        do { group = try PublicGroup(groupInfo: groupInfo, now: now) } catch {
            throw .invalidMessage("the GroupInfo does not verify: \(error.rule) \(error.message)")  // D2
        }
        guard group.members.count == 1, let creator = group.members.first,
            let certificate = VerifiedDeviceCertificate.verify(leaf: creator.leaf, networkKey: networkKey),
            certificate.device == requester.device
        else { throw APIError(.forbidden, "a conversation starts with the creating device alone") }  // D3
        guard (try? group.context.externalSenders())?.contains(networkKey.externalSender) == true else {  // D4
            throw APIError(.missingExternalSender, "the group must name this network's server in external_senders")
        }
        let settings = try settings(of: group)
        try checkGeneration(of: group, is: 0)  // D25
        switch request.kind {
        case .direct:
            return NewConversation(id: id, group: group, settings: settings, name: nil)
        case .room:
            guard let name = request.name?.trimmingCharacters(in: .whitespaces), (1...100).contains(name.count),
                !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { throw .badRequest("a room needs a name of 1 to 100 printable characters") }
            return NewConversation(id: id, group: group, settings: settings, name: name)
        }
    }

    /// D25: the group's context names the conversation's generation (none for 0).
    static func checkGeneration(of group: PublicGroup, is generation: UInt64) throws(APIError) {
        guard ConversationGeneration.generation(in: group.context.extensions) == generation else {
            throw APIError(.invalidSettings, "the group's generation extension is not the conversation's generation \(generation)")
        }
    }

    /// D18: the conversation settings the group's context carries are well formed.
    static func settings(of group: PublicGroup) throws(APIError) -> ConversationSettings {
        guard let settings = ConversationSettings(extensions: group.context.extensions) else {
            throw APIError(.invalidSettings, "the conversation settings extension is malformed or out of range")
        }
        return settings
    }

    /// D15, D16, D19 and the message id: an application message of a
    /// member device, as a PrivateMessage of this group, at most `maxBytes`.
    /// Returns its epoch (the store checks it against the conversation's,
    /// D8, D11).
    static func checkMessage(
        _ request: SendMessage, to id: ConversationID, localDevices: [DeviceID], remoteDevices: [RemoteDevice], by requester: Requester,
        maxBytes: Int
    ) throws(APIError) -> (epoch: UInt64, generation: UInt64) {
        let isMember =
            requester.isLocal ? localDevices.contains(requester.device) : remoteDevices.contains(requester.remoteDevice)
        guard isMember else { throw .notFound("conversation") }  // D16: outsiders learn nothing
        guard request.message.bytes.count <= maxBytes else {  // D19
            throw APIError(
                .tooLarge, "a message is at most \(maxBytes) bytes (the network's max_message_bytes); send large content as a file")
        }
        guard (1...64).contains(request.messageId.utf8.count), request.messageId.utf8.allSatisfy(\.isASCIIIdentifier) else {
            throw .badRequest("message_id must be 1 to 64 of A-Z a-z 0-9 - _")
        }
        let message = try decode(MLSMessage.self, request.message.bytes, "MLSMessage")
        guard case .privateMessage(let privateMessage) = message.body, privateMessage.contentType == .application else {
            throw .invalidMessage("application messages must be PrivateMessage")  // D15
        }
        guard privateMessage.groupID == id.bytes else { throw .invalidMessage("the message is for another group") }
        guard let generation = ConversationGeneration.generation(of: privateMessage.authenticatedData) else {  // D25
            throw .invalidMessage("a message's authenticated data names its conversation generation (empty, or eight bytes)")
        }
        return (privateMessage.epoch, generation)
    }

    static func decode<T: TLSDecodable>(_ type: T.Type, _ bytes: [UInt8], _ name: String) throws(APIError) -> T {
        do { return try T(tlsSerialized: bytes) } catch { throw .invalidMessage("not a valid \(name) (RFC 9420 encoding)") }
    }
}

extension UInt8 {
    var isASCIIIdentifier: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5a).contains(self) || (0x61...0x7a).contains(self) || self == 0x2d || self == 0x5f
    }
}
