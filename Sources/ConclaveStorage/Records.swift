import ConclaveProtocol
import Foundation

/// Milliseconds since 1970, as the schema stores times.
extension Date {
    public var millis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    public init(millis: Int64) { self.init(timeIntervalSince1970: Double(millis) / 1000) }
}

public struct UserRecord: Sendable, Hashable {
    public var name: UserName
    public var passwordHash: String
    public var securityGroup: String
    public var suspended: Bool
    public var createdAt: Date

    public init(name: UserName, passwordHash: String, securityGroup: String, suspended: Bool, createdAt: Date) {
        self.name = name
        self.passwordHash = passwordHash
        self.securityGroup = securityGroup
        self.suspended = suspended
        self.createdAt = createdAt
    }
}

public struct DeviceRecord: Sendable, Hashable {
    public var id: DeviceID
    public var user: UserName
    public var name: String
    public var signatureKey: [UInt8]
    public var certificate: [UInt8]
    public var createdAt: Date
    public var lastSeenAt: Date?
    /// Waiting for approval by one of its user's approved devices.
    public var pending: Bool
    /// A pending device's X25519 key for the sealed identity key.
    public var transferKey: [UInt8]?
    /// Its ``DeviceApproval`` (TLS encoding), once approved.
    public var approval: [UInt8]?
    /// The identity key sealed to ``transferKey`` by the approving device.
    public var sealedIdentity: [UInt8]?

    public init(
        id: DeviceID, user: UserName, name: String, signatureKey: [UInt8], certificate: [UInt8], createdAt: Date, lastSeenAt: Date?,
        pending: Bool = false, transferKey: [UInt8]? = nil, approval: [UInt8]? = nil, sealedIdentity: [UInt8]? = nil
    ) {
        self.id = id
        self.user = user
        self.name = name
        self.signatureKey = signatureKey
        self.certificate = certificate
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.pending = pending
        self.transferKey = transferKey
        self.approval = approval
        self.sealedIdentity = sealedIdentity
    }
}

public struct ConversationRecord: Sendable, Hashable {
    public var id: ConversationID
    public var kind: ConversationKind
    public var name: String?
    /// For 1:1: the two user names, sorted and joined, unique in the table.
    public var directKey: String?
    public var createdBy: UserName
    public var createdAt: Date
    public var epoch: UInt64
    public var groupInfo: [UInt8]
    public var ratchetTree: [UInt8]
    /// The settings of the current epoch's GroupContext.
    public var settings: ConversationSettings
    /// The network that hosts the conversation; nil when this one does.
    /// A remote conversation's record holds no group state.
    public var host: NetworkDomain?
    /// How many successor groups (ReInit, D25) the conversation has had.
    public var generation: UInt64
    /// The ReInit proposal the current group committed (TLS-encoded), while
    /// its successor has not started: the group takes nothing more.
    public var reinit: [UInt8]?

    public init(
        id: ConversationID, kind: ConversationKind, name: String?, directKey: String?, createdBy: UserName, createdAt: Date, epoch: UInt64,
        groupInfo: [UInt8], ratchetTree: [UInt8], settings: ConversationSettings = ConversationSettings(), host: NetworkDomain? = nil,
        generation: UInt64 = 0, reinit: [UInt8]? = nil
    ) {
        self.host = host
        self.generation = generation
        self.reinit = reinit
        self.id = id
        self.kind = kind
        self.name = name
        self.directKey = directKey
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.epoch = epoch
        self.groupInfo = groupInfo
        self.ratchetTree = ratchetTree
        self.settings = settings
    }
}

/// A device in a conversation's group, with its user.
public struct MemberDevice: Sendable, Hashable {
    public var device: DeviceID
    public var user: UserName

    public init(device: DeviceID, user: UserName) {
        self.device = device
        self.user = user
    }
}

/// A device of another network in a conversation hosted here.
public struct RemoteDevice: Sendable, Hashable {
    public var device: DeviceID
    public var user: UserAddress

    public init(device: DeviceID, user: UserAddress) {
        self.device = device
        self.user = user
    }
}

/// One message to put into several inboxes: those of this network's
/// `recipients`, and, through the federation outbox, those of `remote`.
public struct Delivery: Sendable {
    public var kind: InboxEventKind
    public var data: [UInt8]
    public var messageID: String?
    public var senderDevice: DeviceID?
    public var sentAt: Date
    public var expiresAt: Date?
    public var recipients: [DeviceID]
    public var remote: [RemoteDevice]

    public init(
        kind: InboxEventKind, data: [UInt8], messageID: String? = nil, senderDevice: DeviceID? = nil, sentAt: Date, expiresAt: Date? = nil,
        recipients: [DeviceID], remote: [RemoteDevice] = []
    ) {
        self.remote = remote
        self.kind = kind
        self.data = data
        self.messageID = messageID
        self.senderDevice = senderDevice
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.recipients = recipients
    }
}

/// A commit the Delivery Service accepted, written in one transaction.
public struct CommitWrite: Sendable {
    public var conversation: ConversationID
    public var fromEpoch: UInt64
    public var toEpoch: UInt64
    public var groupInfo: [UInt8]
    public var ratchetTree: [UInt8]
    public var settings: ConversationSettings
    /// The group's devices after the commit.
    public var devices: [MemberDevice]
    /// Users who joined (now members) and users who left entirely.
    public var addedUsers: [UserName]
    public var removedUsers: [UserName]
    /// Every member of other networks after the commit, and their devices.
    public var remoteMembers: [UserAddress]
    public var remoteDevices: [RemoteDevice]
    public var deliveries: [Delivery]
    /// The generation the conversation must be at, and whether this write
    /// starts its successor group (generation + 1, D25).
    public var generation: UInt64 = 0
    public var startsSuccessor = false
    /// The ReInit proposal the commit committed (TLS-encoded): the group
    /// then takes nothing more until its successor starts.
    public var reinit: [UInt8]?

    public init(
        conversation: ConversationID, fromEpoch: UInt64, toEpoch: UInt64, groupInfo: [UInt8], ratchetTree: [UInt8],
        settings: ConversationSettings = ConversationSettings(), devices: [MemberDevice],
        addedUsers: [UserName], removedUsers: [UserName], remoteMembers: [UserAddress] = [], remoteDevices: [RemoteDevice] = [],
        deliveries: [Delivery]
    ) {
        self.remoteMembers = remoteMembers
        self.remoteDevices = remoteDevices
        self.conversation = conversation
        self.fromEpoch = fromEpoch
        self.toEpoch = toEpoch
        self.groupInfo = groupInfo
        self.ratchetTree = ratchetTree
        self.settings = settings
        self.devices = devices
        self.addedUsers = addedUsers
        self.removedUsers = removedUsers
        self.deliveries = deliveries
    }
}

public enum CommitOutcome: Sendable, Hashable {
    case applied
    /// Another commit moved the group first.
    case wrongEpoch(current: UInt64)
}

public enum SendOutcome: Sendable, Hashable {
    case stored(sentAt: Date, expiresAt: Date?)
    /// The same message id was stored before: nothing new was written.
    case duplicate(sentAt: Date, expiresAt: Date?)
    case wrongEpoch(current: UInt64)
    /// Server proposals wait for a commit; no application message until then.
    case pendingProposals
    /// The group committed a ReInit: nothing more until its successor starts (D25).
    case moving
    case unknownConversation
}
