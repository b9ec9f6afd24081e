import Foundation
import MLS

/// A security group's name: 1–64 of `a-z 0-9 . _ -`, starting with a letter
/// or digit (the same rule as a user name).
public struct SecurityGroupName: TextIdentifier {
    public let value: String

    public init?(_ text: String) {
        guard let name = UserName(text) else { return nil }
        value = name.value
    }

    public static let `default` = SecurityGroupName(unchecked: "default")

    private init(unchecked value: String) { self.value = value }

    public var description: String { value }
}

/// Which security groups of this network a group's members may share a
/// conversation with. JSON: `"all"` or a list of group names.
public enum GroupReach: Hashable, Sendable, Codable {
    case all
    case only([SecurityGroupName])

    public func contains(_ group: SecurityGroupName) -> Bool {
        switch self {
        case .all: true
        case .only(let groups): groups.contains(group)
        }
    }

    /// `all`, or names separated by commas.
    public init?(_ text: String) {
        if text == "all" {
            self = .all
            return
        }
        let names = text.split(separator: ",").map { SecurityGroupName(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !names.isEmpty, !names.contains(nil) else { return nil }
        self = .only(names.compactMap { $0 })
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .only(let groups): groups.isEmpty ? "(none)" : groups.map(\.value).joined(separator: ",")
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let word = try? container.decode(String.self) {
            guard word == "all" else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "may_message is \"all\" or a list of groups")
            }
            self = .all
        } else {
            self = .only(try container.decode([SecurityGroupName].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .all: try container.encode("all")
        case .only(let groups): try container.encode(groups)
        }
    }
}

/// Which other networks a group's members may reach. JSON: `"none"`,
/// `"all"` (every federation peer of this network) or a list of domains.
public enum FederationReach: Hashable, Sendable, Codable {
    /// No other network (`"none"`; not `.none`, which an optional would swallow).
    case noNetworks
    case all
    case only([NetworkDomain])

    public func contains(_ domain: NetworkDomain) -> Bool {
        switch self {
        case .noNetworks: false
        case .all: true
        case .only(let domains): domains.contains(domain)
        }
    }

    /// `none`, `all`, or domains separated by commas.
    public init?(_ text: String) {
        switch text {
        case "none": self = .noNetworks
        case "all": self = .all
        default:
            let domains = text.split(separator: ",").map { NetworkDomain(String($0).trimmingCharacters(in: .whitespaces)) }
            guard !domains.isEmpty, !domains.contains(nil) else { return nil }
            self = .only(domains.compactMap { $0 })
        }
    }

    public var description: String {
        switch self {
        case .noNetworks: "none"
        case .all: "all"
        case .only(let domains): domains.map(\.value).joined(separator: ",")
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let word = try? container.decode(String.self) {
            switch word {
            case "none": self = .noNetworks
            case "all": self = .all
            default:
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "federation is \"none\", \"all\" or a list of domains")
            }
        } else {
            self = .only(try container.decode([NetworkDomain].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .noNetworks: try container.encode("none")
        case .all: try container.encode("all")
        case .only(let domains): try container.encode(domains)
        }
    }
}

extension CipherSuite {
    /// The suites a Conclave device keeps key packages of and joins groups
    /// of, the strongest first: the hybrid post-quantum 0x004D and the
    /// classical suite 1, both signing with the device's one Ed25519 key.
    public static let deviceSuites: [CipherSuite] = [.xwingChacha20Sha256Ed25519, .x25519Aes128Sha256Ed25519]
}

/// Which MLS cipher suites a group's members' conversations may use
/// (rule P4, docs/server.md): JSON and CLI `classical`, `pq-preferred`,
/// `pq-required`.
public enum CipherSuitePolicy: String, Codable, Sendable, Hashable, CaseIterable {
    /// Classical suites only (suite 1): no post-quantum key exchange.
    case classical
    /// The hybrid post-quantum suite when every member's devices support
    /// it, else a classical one (the default).
    case pqPreferred = "pq-preferred"
    /// The post-quantum suite only: members whose devices cannot are refused.
    case pqRequired = "pq-required"

    /// The suites a conversation of members of these groups may use, the
    /// strongest first; empty when the groups admit none in common (one
    /// requires post-quantum, another forbids it).
    public static func allowed(_ policies: some Collection<CipherSuitePolicy>) -> [CipherSuite] {
        let postQuantum = policies.contains(.classical) ? [] : CipherSuite.experimental.filter(\.isPostQuantum)
        let classical = policies.contains(.pqRequired) ? [] : [CipherSuite.x25519Aes128Sha256Ed25519]
        return postQuantum + classical
    }

    /// Whether a conversation of this suite is allowed.
    public func allows(_ suite: CipherSuite) -> Bool {
        switch self {
        case .classical: !suite.isPostQuantum
        case .pqPreferred: true
        case .pqRequired: suite.isPostQuantum
        }
    }
}

/// A security group (DESIGN.md §5): what its members may do. Durations are
/// in seconds. Every account belongs to exactly one group.
public struct SecurityGroupPolicy: Codable, Sendable, Hashable {
    public var name: SecurityGroupName
    /// The other groups its members may share a conversation with (both
    /// groups must allow each other; a group's own members always may).
    public var mayMessage: GroupReach
    /// The networks its members may reach (enforced by federation).
    public var federation: FederationReach
    /// Bounds on a conversation's message lifetime: messages must live at
    /// least `min` (0: no minimum) and at most `max` (0: no maximum; a
    /// maximum also forbids messages that never expire).
    public var messageLifetimeMin: UInt64
    public var messageLifetimeMax: UInt64
    /// The lifetime a new conversation gets when its creator names none
    /// (0: messages do not expire).
    public var messageLifetimeDefault: UInt64
    /// The longest burn-on-read delay allowed; 0: burn-on-read is off.
    public var burnOnReadMax: UInt64
    /// Whether members may share files, and how large (stored now; enforced
    /// by file sharing).
    public var files: Bool
    public var maxFileSize: UInt64
    /// Which cipher suites its members' conversations may use (P4).
    public var cipherSuites: CipherSuitePolicy

    public init(
        name: SecurityGroupName, mayMessage: GroupReach = .all, federation: FederationReach = .all, messageLifetimeMin: UInt64 = 0,
        messageLifetimeMax: UInt64 = 0, messageLifetimeDefault: UInt64 = 0, burnOnReadMax: UInt64 = ConversationSettings.maximumSeconds,
        files: Bool = true, maxFileSize: UInt64 = 100 << 20, cipherSuites: CipherSuitePolicy = .pqPreferred
    ) {
        self.name = name
        self.mayMessage = mayMessage
        self.federation = federation
        self.messageLifetimeMin = messageLifetimeMin
        self.messageLifetimeMax = messageLifetimeMax
        self.messageLifetimeDefault = messageLifetimeDefault
        self.burnOnReadMax = burnOnReadMax
        self.files = files
        self.maxFileSize = maxFileSize
        self.cipherSuites = cipherSuites
    }

    private enum CodingKeys: String, CodingKey {
        case name, mayMessage, federation, messageLifetimeMin, messageLifetimeMax, messageLifetimeDefault, burnOnReadMax, files,
            maxFileSize, cipherSuites
    }

    /// Groups stored before cipher-suite policy existed read as `pq-preferred`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(SecurityGroupName.self, forKey: .name)
        mayMessage = try container.decode(GroupReach.self, forKey: .mayMessage)
        federation = try container.decode(FederationReach.self, forKey: .federation)
        messageLifetimeMin = try container.decode(UInt64.self, forKey: .messageLifetimeMin)
        messageLifetimeMax = try container.decode(UInt64.self, forKey: .messageLifetimeMax)
        messageLifetimeDefault = try container.decode(UInt64.self, forKey: .messageLifetimeDefault)
        burnOnReadMax = try container.decode(UInt64.self, forKey: .burnOnReadMax)
        files = try container.decode(Bool.self, forKey: .files)
        maxFileSize = try container.decode(UInt64.self, forKey: .maxFileSize)
        cipherSuites = try container.decodeIfPresent(CipherSuitePolicy.self, forKey: .cipherSuites) ?? .pqPreferred
    }

    /// The largest `max-file-size` a group may set: 1 TiB.
    public static let largestFileSize: UInt64 = 1 << 40

    /// Why these settings cannot be saved, or nil when they can.
    public var problem: String? {
        let limit = ConversationSettings.maximumSeconds
        if [messageLifetimeMin, messageLifetimeMax, messageLifetimeDefault, burnOnReadMax].contains(where: { $0 > limit }) {
            return "durations are at most ten years"
        }
        if maxFileSize > Self.largestFileSize { return "the maximum file size is at most 1 TiB (1099511627776 bytes)" }
        if messageLifetimeMax > 0 && messageLifetimeMin > messageLifetimeMax { return "the lifetime minimum exceeds the maximum" }
        let bounds = ConversationBounds(intersecting: [self])
        if let problem = bounds?.problem(ConversationSettings(messageLifetime: messageLifetimeDefault)) {
            return "the default lifetime is outside the bounds: \(problem)"
        }
        return nil
    }

    /// Whether two groups' members may share a conversation: members of
    /// one group always may; two groups must each allow the other.
    public func mayShare(with other: SecurityGroupPolicy) -> Bool {
        name == other.name || (mayMessage.contains(other.name) && other.mayMessage.contains(name))
    }
}

/// A change to a security group: only the fields given change.
public struct SecurityGroupChange: Codable, Sendable, Hashable {
    public var mayMessage: GroupReach?
    public var federation: FederationReach?
    public var messageLifetimeMin: UInt64?
    public var messageLifetimeMax: UInt64?
    public var messageLifetimeDefault: UInt64?
    public var burnOnReadMax: UInt64?
    public var files: Bool?
    public var maxFileSize: UInt64?
    public var cipherSuites: CipherSuitePolicy?

    public init(
        mayMessage: GroupReach? = nil, federation: FederationReach? = nil, messageLifetimeMin: UInt64? = nil,
        messageLifetimeMax: UInt64? = nil, messageLifetimeDefault: UInt64? = nil, burnOnReadMax: UInt64? = nil, files: Bool? = nil,
        maxFileSize: UInt64? = nil, cipherSuites: CipherSuitePolicy? = nil
    ) {
        self.mayMessage = mayMessage
        self.federation = federation
        self.messageLifetimeMin = messageLifetimeMin
        self.messageLifetimeMax = messageLifetimeMax
        self.messageLifetimeDefault = messageLifetimeDefault
        self.burnOnReadMax = burnOnReadMax
        self.files = files
        self.maxFileSize = maxFileSize
        self.cipherSuites = cipherSuites
    }

    public func applied(to policy: SecurityGroupPolicy) -> SecurityGroupPolicy {
        var result = policy
        if let mayMessage { result.mayMessage = mayMessage }
        if let federation { result.federation = federation }
        if let messageLifetimeMin { result.messageLifetimeMin = messageLifetimeMin }
        if let messageLifetimeMax { result.messageLifetimeMax = messageLifetimeMax }
        if let messageLifetimeDefault { result.messageLifetimeDefault = messageLifetimeDefault }
        if let burnOnReadMax { result.burnOnReadMax = burnOnReadMax }
        if let files { result.files = files }
        if let maxFileSize { result.maxFileSize = maxFileSize }
        if let cipherSuites { result.cipherSuites = cipherSuites }
        // New bounds without a new default move the default inside them.
        if messageLifetimeDefault == nil, let bounds = ConversationBounds(intersecting: [result]) {
            result.messageLifetimeDefault =
                bounds.clamp(ConversationSettings(messageLifetime: result.messageLifetimeDefault)).messageLifetime
        }
        return result
    }
}

/// A new security group: its name and the settings that differ from the
/// defaults.
public struct CreateSecurityGroup: Codable, Sendable, Hashable {
    public var name: SecurityGroupName
    public var settings: SecurityGroupChange

    public init(name: SecurityGroupName, settings: SecurityGroupChange) {
        self.name = name
        self.settings = settings
    }
}

public struct SecurityGroupInfo: Codable, Sendable, Hashable {
    public var policy: SecurityGroupPolicy
    /// How many accounts are in the group.
    public var members: Int

    public init(policy: SecurityGroupPolicy, members: Int) {
        self.policy = policy
        self.members = members
    }
}

public struct SecurityGroupList: Codable, Sendable, Hashable {
    public var groups: [SecurityGroupInfo]

    public init(groups: [SecurityGroupInfo]) { self.groups = groups }
}

/// The settings a conversation may have: the intersection of its members'
/// security groups (DESIGN.md §5). In seconds; `messageLifetimeMax` 0 is
/// no maximum, `burnOnReadMax` 0 is burn-on-read off.
public struct ConversationBounds: Codable, Sendable, Hashable {
    public var messageLifetimeMin: UInt64
    public var messageLifetimeMax: UInt64
    public var messageLifetimeDefault: UInt64
    public var burnOnReadMax: UInt64
    /// The cipher suites the conversation may use, the strongest first
    /// (P4); empty when the groups admit none in common.
    public var cipherSuites: [UInt16]

    /// The intersection of these groups' bounds, or nil when they admit no
    /// lifetime at all (one group's minimum above another's maximum).
    public init?(intersecting policies: [SecurityGroupPolicy]) {
        let minimum = policies.map(\.messageLifetimeMin).max() ?? 0
        let maximum = policies.map(\.messageLifetimeMax).filter { $0 > 0 }.min() ?? 0
        guard maximum == 0 || minimum <= maximum else { return nil }
        cipherSuites = CipherSuitePolicy.allowed(policies.map(\.cipherSuites)).map(\.rawValue)
        messageLifetimeMin = minimum
        messageLifetimeMax = maximum
        burnOnReadMax = policies.map(\.burnOnReadMax).min() ?? ConversationSettings.maximumSeconds
        // The shortest default any member's group asks for, kept in bounds.
        messageLifetimeDefault = 0
        let requested = policies.map(\.messageLifetimeDefault).filter { $0 > 0 }.min() ?? 0
        messageLifetimeDefault = clamp(ConversationSettings(messageLifetime: requested)).messageLifetime
    }

    private enum CodingKeys: String, CodingKey {
        case messageLifetimeMin, messageLifetimeMax, messageLifetimeDefault, burnOnReadMax, cipherSuites
    }

    /// A server that predates cipher-suite choice allows suite 1 without saying so.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        messageLifetimeMin = try container.decode(UInt64.self, forKey: .messageLifetimeMin)
        messageLifetimeMax = try container.decode(UInt64.self, forKey: .messageLifetimeMax)
        messageLifetimeDefault = try container.decode(UInt64.self, forKey: .messageLifetimeDefault)
        burnOnReadMax = try container.decode(UInt64.self, forKey: .burnOnReadMax)
        cipherSuites =
            try container.decodeIfPresent([UInt16].self, forKey: .cipherSuites) ?? [CipherSuite.x25519Aes128Sha256Ed25519.rawValue]
    }

    /// The settings a new conversation gets when its creator names none.
    public var defaultSettings: ConversationSettings { ConversationSettings(messageLifetime: messageLifetimeDefault) }

    /// Why these settings are outside the bounds, or nil when inside.
    public func problem(_ settings: ConversationSettings) -> String? {
        let lifetime = settings.messageLifetime
        if messageLifetimeMax > 0 && (lifetime == 0 || lifetime > messageLifetimeMax) {
            return "messages must expire within \(DurationText.format(messageLifetimeMax))"
        }
        if lifetime > 0 && lifetime < messageLifetimeMin {
            return "messages must be kept at least \(DurationText.format(messageLifetimeMin))"
        }
        if settings.burnOnRead > 0 && burnOnReadMax == 0 { return "burn-on-read is not allowed" }
        if settings.burnOnRead > burnOnReadMax { return "burn-on-read may wait at most \(DurationText.format(burnOnReadMax))" }
        return nil
    }

    /// The nearest settings inside the bounds.
    public func clamp(_ settings: ConversationSettings) -> ConversationSettings {
        var result = settings
        if messageLifetimeMax > 0 && (result.messageLifetime == 0 || result.messageLifetime > messageLifetimeMax) {
            result.messageLifetime = messageLifetimeMax
        }
        if result.messageLifetime > 0 && result.messageLifetime < messageLifetimeMin { result.messageLifetime = messageLifetimeMin }
        result.burnOnRead = min(result.burnOnRead, burnOnReadMax)
        return result
    }
}

/// `POST /v1/policy`: the bounds for a conversation of the caller with
/// these users.
public struct PolicyQuery: Codable, Sendable, Hashable {
    public var members: [UserAddress]

    public init(members: [UserAddress]) { self.members = members }
}

/// `PATCH /v1/admin/users/{name}`.
public struct UserChange: Codable, Sendable, Hashable {
    public var group: SecurityGroupName?
    /// A new password (8 to 1,024 characters), set by an administrator and
    /// audited (`user.password_reset`). It lets the holder sign in new
    /// devices, which stay pending until one of the user's devices approves
    /// them.
    public var password: String?
    /// Unbinds the account from the identity-provider subject of its first
    /// single sign-on (`user.sso_unlink`), so that another subject (a
    /// re-created directory account) may sign in as this user.
    public var ssoUnlink: Bool?

    public init(group: SecurityGroupName? = nil, password: String? = nil, ssoUnlink: Bool? = nil) {
        self.group = group
        self.password = password
        self.ssoUnlink = ssoUnlink
    }
}
