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
    /// Every device in the group, named by its verified certificate.
    public var devices: [DeviceRef]
    public var epoch: UInt64
    /// The group's ConversationSettings, in seconds (0: off).
    public var messageLifetime: UInt64
    public var burnOnRead: UInt64
    /// The group's MLS cipher suite: 0x004D (77) is hybrid post-quantum.
    public var cipherSuite: UInt16
    /// A 1:1 the user hid (`leave` on a 1:1): it stays, and shows again
    /// when a message arrives or the user writes.
    public var hidden: Bool

    /// How the CLI shows it: the room name, or the other user.
    public var title: String { name ?? peer?.description ?? id.description }

    /// Whether its key exchange is hybrid post-quantum.
    public var isPostQuantum: Bool { CipherSuite(rawValue: cipherSuite).isPostQuantum }
}

/// One device of one user, as a verified certificate names it.
public struct DeviceRef: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var user: UserAddress
    public var device: DeviceID

    public init(user: UserAddress, device: DeviceID) {
        self.user = user
        self.device = device
    }

    public var description: String { "\(user)/\(device)" }
    public static func < (lhs: DeviceRef, rhs: DeviceRef) -> Bool { lhs.description < rhs.description }
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
    /// The file the message shares, if any (``ConclaveClient/saveFile(_:in:to:progress:)`` fetches it).
    public var file: SharedFile?
}

/// A file a message shares, as the message carries it inside MLS: the
/// server stores the sealed bytes under `id` and never sees the rest.
public struct SharedFile: Sendable, Hashable, Codable {
    public var id: FileID
    /// The sender's name for it: show or save it through
    /// ``ConclaveClient/safeFileName(_:)`` only.
    public var name: String
    public var mediaType: String
    /// The plaintext's size and SHA-256.
    public var size: UInt64
    public var sha256: Base64Bytes
    /// The file key (docs/client.md#encrypted-files).
    public var key: Base64Bytes

    public init(id: FileID, name: String, mediaType: String, size: UInt64, sha256: Base64Bytes, key: Base64Bytes) {
        self.id = id
        self.name = name
        self.mediaType = mediaType
        self.size = size
        self.sha256 = sha256
        self.key = key
    }

    /// Whether the fields are of the documented shape (a hostile sender's are not trusted).
    var isWellFormed: Bool {
        sha256.bytes.count == 32 && key.bytes.count == 32 && size <= SecurityGroupPolicy.largestFileSize
            && (1...1024).contains(name.utf8.count) && (1...255).contains(mediaType.utf8.count)
            && mediaType.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }
    }
}

/// Who joined or left a conversation in one commit, and who committed it.
public struct MembershipChange: Sendable, Hashable, Codable {
    /// The conversation after the change.
    public var conversation: Conversation
    /// The device that committed the change (nil when its certificate does not verify).
    public var by: DeviceRef?
    /// The change carried out proposals of the server: a member leaving,
    /// an administrator removing a user or a device, a policy change.
    public var proposedByServer: Bool
    public var addedUsers: [UserAddress]
    public var removedUsers: [UserAddress]
    /// Devices that came or went, also of users who stayed (a new device, a device signed out).
    public var addedDevices: [DeviceRef]
    public var removedDevices: [DeviceRef]
}

/// New message lifetime or burn-on-read settings of a conversation.
public struct SettingsChange: Sendable, Hashable, Codable {
    public var conversation: Conversation
    public var by: DeviceRef?
    public var proposedByServer: Bool
}

/// What happened while processing the inbox.
public enum ClientEvent: Sendable, Hashable, Codable {
    case message(ReceivedMessage)
    /// This device joined a conversation (Welcome or external join).
    case joined(Conversation)
    /// Users or devices came or went.
    case membersChanged(MembershipChange)
    /// The conversation's message lifetime or burn-on-read changed.
    case settingsChanged(SettingsChange)
    /// The conversation moved to another cipher suite (ReInit): it is now
    /// `conversation.cipherSuite` (0x004D: hybrid post-quantum).
    case cipherSuiteChanged(Conversation)
    /// This device was removed from the conversation, or left it.
    case removed(ConversationID, by: DeviceRef?)
    /// Something the server delivered failed a check or could not be
    /// processed; what it was is said, and nothing else was affected.
    case warning(String)
    /// A conversation holds a device its user did not approve (C6): it is
    /// removed before anything is sent there, and reads nothing sent.
    case untrustedDevice(ConversationID, DeviceRef)
    /// A contact's identity key is not the one this device knew (C7).
    case identityChanged(UserAddress)
    /// A device signed in to this account and waits for approval (or was
    /// approved, or removed).
    case ownDevice(OwnDevice, change: OwnDeviceChange)
    /// This device was approved by another device of its user and joined
    /// the user's conversations.
    case approved
    /// This user's own entries in the key-transparency log are not what
    /// the user's devices published (C10): the server may be showing others
    /// a key or a device that is not the user's.
    case transparencyAlarm(String)
}

/// One of this user's devices, as the server lists them to the user.
public struct OwnDevice: Sendable, Hashable, Codable {
    public var id: DeviceID
    public var name: String
    public var pending: Bool
    /// This device.
    public var current: Bool
    public var createdAt: Date
}

public enum OwnDeviceChange: String, Sendable, Hashable, Codable {
    case signedIn = "signed_in"
    case approved
    case removed
}

/// An event held (sealed in the local store, or in memory for
/// burn-on-read) until the application confirms it with
/// ``ConclaveClient/confirm(through:)``.
public struct PendingEvent: Sendable, Hashable {
    public let sequence: Int64
    public let event: ClientEvent
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
    /// The user's identity key (its seed), once this device holds it.
    var identitySeed: Base64Bytes? = nil
    /// This device's approval under that key (TLS), carried in its leaves.
    var approval: Base64Bytes? = nil
    /// Waiting for approval by another device of the user.
    var pending: Bool? = nil
    /// The private X25519 key the identity key is sealed to while pending.
    var transferSeed: Base64Bytes? = nil
}

/// A contact's identity key as this device first saw it (trust on first
/// use), and whether the user verified it with the safety number.
struct ContactPin: Codable, Sendable {
    var key: Base64Bytes
    var verified: Bool
    /// When the key was last proved in its network's log (C9); nil for a
    /// pin from before the log, which is proved at its next use.
    var checkedAt: Date? = nil

    /// How long a pin is taken without asking the log again.
    static let recheckInterval: TimeInterval = 24 * 3600

    /// How long a pin proved before stands while the log cannot be asked.
    static let outageGrace: TimeInterval = 7 * 24 * 3600

    func isFresh(at now: Date) -> Bool {
        guard let checkedAt else { return false }
        return checkedAt <= now && now.timeIntervalSince(checkedAt) < Self.recheckInterval
    }

    func isUsable(at now: Date) -> Bool {
        guard let checkedAt else { return false }
        return checkedAt <= now && now.timeIntervalSince(checkedAt) < Self.outageGrace
    }
}

/// A conversation's local record: metadata and the MLS group snapshot.
struct StoredConversation: Codable, Sendable {
    var kind: ConversationKind
    var name: String?
    var peer: UserAddress?
    var snapshot: Base64Bytes
    /// A hidden 1:1 (the user "left" it).
    var hidden: Bool? = nil
    /// This device's commit, sent and not yet known to be accepted: the
    /// group in the next epoch. Kept so that a crash between the server's
    /// acceptance and saving the new epoch does not strand the device (it
    /// never receives its own commit).
    var pendingNext: Base64Bytes? = nil
    /// The group as it was before this device's own last commits (at most
    /// three epochs): messages the server accepted in an epoch before it
    /// accepted this device's commit are still in the inbox, and are read
    /// with these. Deleted once the inbox was read to its end.
    var previous: [Base64Bytes]? = nil
    /// The former group's states (its last epoch, and those this device's
    /// own commits ended) after a successor started: messages sent to it
    /// are still in the inbox, and are read with these. Deleted once the
    /// inbox was read to its end.
    var predecessor: [Base64Bytes]? = nil

    /// Keeps `group` (the epoch an own commit ends) for the messages still
    /// to be read in it.
    mutating func retain(_ group: Group) {
        previous = Array(((previous ?? []) + [Base64Bytes(group.snapshot())]).suffix(3))
    }
}

/// What an application message carries inside MLS.
package struct MessageBody: Codable, Sendable {
    package var id: String
    package var text: String
    package var file: SharedFile?

    package init(id: String, text: String, file: SharedFile? = nil) {
        self.id = id
        self.text = text
        self.file = file
    }
}

extension Group {
    /// The conversation's generation (D25), from the group's context.
    var generation: UInt64 { ConversationGeneration.generation(in: context.extensions) ?? 0 }
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
