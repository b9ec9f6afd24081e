import ConclaveProtocol
import Foundation
import MLS
import MLSCodec

/// A conversation as this device sees it.
public struct Conversation: Sendable, Hashable, Codable {
    public var id: ConversationID
    public var kind: ConversationKind
    /// A room's name.
    public var name: String?
    /// The other user of a 1:1 conversation.
    public var peer: UserAddress?
    /// The users with a device in the group, from the group's own tree.
    public var members: [UserAddress]
    public var epoch: UInt64
    /// The group's ConversationSettings, in seconds (0: off).
    public var messageLifetime: UInt64
    public var burnOnRead: UInt64

    /// How the CLI shows it: the room name, or the other user.
    public var title: String { name ?? peer?.description ?? id.description }
}

/// A decrypted message.
public struct ReceivedMessage: Sendable, Hashable, Codable {
    /// The sender's message id (de-duplication key).
    public var id: String
    public var conversation: ConversationID
    /// The room's name; nil for 1:1.
    public var room: String?
    public var from: UserAddress
    public var device: DeviceID
    public var text: String
    public var sentAt: Date
    public var expiresAt: Date?
    /// Seconds after reading at which the reader must delete it; nil when off.
    public var burnOnRead: UInt64?
}

/// What happened while processing the inbox.
public enum ClientEvent: Sendable, Hashable {
    case message(ReceivedMessage)
    /// This device joined a conversation (Welcome or external join).
    case joined(Conversation)
    /// Members changed (added, removed, a new device).
    case membersChanged(Conversation)
    /// This device was removed from the conversation, or left it.
    case removed(ConversationID)
    /// A check failed on something the server delivered; it was dropped.
    case warning(String)
}

/// The signed-in device, sealed in the local store.
struct Account: Codable, Sendable {
    var server: String
    var user: UserAddress
    var device: DeviceID
    var token: String
    var certificate: Base64Bytes
    var signerSeed: Base64Bytes
    var cipherSuite: UInt16
    /// The network key from `/.well-known/conclave`, pinned at sign-in.
    var networkKey: Base64Bytes
}

/// A conversation's local record: metadata and the MLS group snapshot.
struct StoredConversation: Codable, Sendable {
    var kind: ConversationKind
    var name: String?
    var peer: UserAddress?
    var snapshot: Base64Bytes
}

/// What an application message carries inside MLS.
struct MessageBody: Codable, Sendable {
    var id: String
    var text: String
}

extension KeyPackageBundle {
    /// The private parts, for the sealed local store.
    var serialized: [UInt8] {
        var writer = TLSWriter()
        writer.writeOpaque(MLSMessage(body: .keyPackage(keyPackage)).tlsSerialized)
        writer.writeOpaque(initKey.secret.bytes)
        writer.writeOpaque(encryptionKey.privateKey.secret.bytes)
        writer.writeOpaque(encryptionKey.publicKey.bytes)
        return writer.bytes
    }

    init(serialized bytes: [UInt8], signer: SignaturePrivateKey) throws {
        var reader = TLSReader(bytes)
        guard case .keyPackage(let package) = try MLSMessage(tlsSerialized: try reader.readOpaque()).body else {
            throw ClientError.localStore("a stored key package is not a KeyPackage")
        }
        let initKey = HPKEPrivateKey(try reader.readOpaque())
        let encryptionPrivate = HPKEPrivateKey(try reader.readOpaque())
        let encryptionPublic = HPKEPublicKey(try reader.readOpaque())
        self.init(
            keyPackage: package, initKey: initKey, encryptionKey: HPKEKeyPair(privateKey: encryptionPrivate, publicKey: encryptionPublic),
            signer: signer)
    }
}
