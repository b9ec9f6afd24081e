import Foundation
import MLS

/// The client API's version, served at `/.well-known/conclave`.
public let conclaveAPIVersion = "1"

/// JSON as the API writes it: snake_case keys, sorted, no escaped slashes.
public enum ConclaveJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            guard let date = parseTimestamp(try container.decode(String.self)) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time"))
            }
            return date
        }
        return decoder
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-27T10:00:00.123Z`.
    /// The time is rounded to the nearest millisecond and written from
    /// whole numbers, so that it reads back as the same millisecond (a
    /// formatter truncating 0.2339999… would write .233).
    ///
    /// Years 0000–9999 (every time ``parseTimestamp(_:)`` reads) are
    /// written from the day count by Hinnant's `civil_from_days`, without
    /// a formatter: a pushed message's times are written on the hot path.
    public static func formatTimestamp(_ date: Date) -> String {
        let scaled = (date.timeIntervalSince1970 * 1000).rounded()
        // Beyond ±285,000 years (or not a number): the formatter's own text, whole seconds.
        guard scaled.magnitude < 9e15 else { return Date.ISO8601FormatStyle().format(date) }
        let millis = Int64(scaled)
        let fraction = ((millis % 1000) + 1000) % 1000
        let seconds = (millis - fraction) / 1000
        let secondOfDay = ((seconds % 86_400) + 86_400) % 86_400
        let days = (seconds - secondOfDay) / 86_400
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        guard (0...9999).contains(year) else {
            let whole = Date.ISO8601FormatStyle().format(Date(timeIntervalSince1970: Double(seconds)))
            return whole.dropLast() + "." + String(String(1000 + fraction).dropFirst()) + "Z"
        }
        var text = Array("0000-00-00T00:00:00.000Z".utf8)
        for (value, end) in [
            (year, 4), (month, 7), (day, 10), (secondOfDay / 3600, 13), (secondOfDay / 60 % 60, 16), (secondOfDay % 60, 19),
            (fraction, 23),
        ] {
            var rest = value
            var index = end - 1
            while rest > 0 {
                text[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                index -= 1
            }
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// An RFC 3339 `date-time` (§5.6): `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
    /// `T` and `Z` in either case, any offset up to ±23:59, a leap second
    /// read as the next second. Nothing else (no week dates, no missing
    /// seconds, no out-of-range field).
    public static func parseTimestamp(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<(index + digits)] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            index += digits
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2), expect("Tt"),
            let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2)
        else { return nil }
        var fraction = (0.0, 1.0)
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            var digits = 0
            var scale = 1.0
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) {
                if index - start < 9 {
                    digits = digits * 10 + Int(bytes[index] - 0x30)
                    scale *= 10
                }
                index += 1
            }
            guard index > start else { return nil }
            fraction = (Double(digits), scale)
        }
        var offset = 0
        if expect("Zz") {
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let hours = number(2), expect(":"), let minutes = number(2), hours <= 23, minutes <= 59 else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        let daysInMonth = [31, year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard index == bytes.count, (1...12).contains(month), (1...daysInMonth[month - 1]).contains(day), hour <= 23, minute <= 59,
            second <= 60
        else { return nil }
        // Days since 1970-01-01 (the proleptic Gregorian calendar, as RFC 3339 counts).
        let (y, m) = month <= 2 ? (year - 1, month + 9) : (year, month - 3)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * m + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        // As `Date(millis:)` computes it, so that a time written with milliseconds reads back as the same Date.
        return Date(timeIntervalSince1970: (Double(seconds) * fraction.1 + fraction.0) / fraction.1)
    }
}

/// Bytes that travel as standard base64 in JSON (MLS objects in their RFC
/// 9420 encoding, certificates).
public struct Base64Bytes: Hashable, Sendable, Codable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        var text = try decoder.singleValueContainer().decode(String.self)
        if let bytes = text.withUTF8({ Base64Text.decodeCanonical(UnsafeRawBufferPointer($0)) }) {
            self.bytes = bytes
            return
        }
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
        }
        bytes = Array(data)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Base64Text.encode(bytes))
    }
}

/// Every 4xx/5xx answer's body.
public struct APIErrorBody: Codable, Sendable, Hashable {
    public struct Detail: Codable, Sendable, Hashable {
        public var code: ErrorCode
        public var message: String
        /// The conversation's epoch, with `wrong_epoch`.
        public var currentEpoch: UInt64?
        /// The existing conversation, with `conversation_exists`.
        public var conversation: ConversationID?

        public init(code: ErrorCode, message: String, currentEpoch: UInt64? = nil, conversation: ConversationID? = nil) {
            self.code = code
            self.message = message
            self.currentEpoch = currentEpoch
            self.conversation = conversation
        }
    }

    public var error: Detail

    public init(_ detail: Detail) { error = detail }
}

public struct WellKnown: Codable, Sendable, Hashable {
    public var domain: NetworkDomain
    public var apiVersion: String
    /// The network's Ed25519 public key, base64.
    public var signingKey: Base64Bytes
    public var keyFingerprint: String
    public var cipherSuite: UInt16
    /// The server-to-server API's base URL (`…/v1/federation`).
    public var federationEndpoint: String?

    public init(
        domain: NetworkDomain, apiVersion: String, signingKey: Base64Bytes, keyFingerprint: String, cipherSuite: UInt16,
        federationEndpoint: String? = nil
    ) {
        self.domain = domain
        self.apiVersion = apiVersion
        self.signingKey = signingKey
        self.keyFingerprint = keyFingerprint
        self.cipherSuite = cipherSuite
        self.federationEndpoint = federationEndpoint
    }
}

// MARK: - Authentication Service

public struct LoginRequest: Codable, Sendable {
    /// `alice` or `alice@acme.example`.
    public var user: String
    public var password: String
    public var deviceName: String
    /// The new device's MLS signature public key.
    public var signatureKey: Base64Bytes
    public var cipherSuite: UInt16
    /// The new device's X25519 public key, to which an approving device
    /// seals the user's identity key (required when the user has one).
    public var transferKey: Base64Bytes?

    public init(
        user: String, password: String, deviceName: String, signatureKey: Base64Bytes, cipherSuite: UInt16, transferKey: Base64Bytes? = nil
    ) {
        self.user = user
        self.password = password
        self.deviceName = deviceName
        self.signatureKey = signatureKey
        self.cipherSuite = cipherSuite
        self.transferKey = transferKey
    }
}

/// Signs an existing device in again (its session expired, or it signed
/// out of this session only): the password, and proof that the caller holds
/// the device's MLS signature key. The device keeps its id, certificate,
/// conversations and inbox.
public struct DeviceSignIn: Codable, Sendable {
    /// `alice` or `alice@acme.example`.
    public var user: String
    public var password: String
    public var deviceId: DeviceID
    /// Milliseconds since 1970, within five minutes of the server's clock.
    public var signedAt: Int64
    /// SignWithLabel(device key, "Conclave device sign-in", ``content(user:device:signedAt:)``).
    public var signature: Base64Bytes

    public init(user: String, password: String, deviceId: DeviceID, signedAt: Int64, signature: Base64Bytes) {
        self.user = user
        self.password = password
        self.deviceId = deviceId
        self.signedAt = signedAt
        self.signature = signature
    }

    public static let label = "Conclave device sign-in"

    /// What the device signs: the user's address, the device id and the time, one per line.
    public static func content(user: UserAddress, device: DeviceID, signedAt: Int64) -> [UInt8] {
        Array("\(user)\n\(device)\n\(signedAt)".utf8)
    }
}

public struct LoginResponse: Codable, Sendable {
    public var token: String
    public var user: UserAddress
    public var deviceId: DeviceID
    /// The device's certificate: the identity of its MLS BasicCredential.
    public var certificate: Base64Bytes
    public var expiresAt: Date
    /// True when the user has an identity key and this device waits for
    /// one of the user's approved devices to approve it.
    public var pending: Bool?
    /// The public half of the user's identity key, when there is one.
    public var identityKey: Base64Bytes?

    public init(
        token: String, user: UserAddress, deviceId: DeviceID, certificate: Base64Bytes, expiresAt: Date, pending: Bool? = nil,
        identityKey: Base64Bytes? = nil
    ) {
        self.token = token
        self.user = user
        self.deviceId = deviceId
        self.certificate = certificate
        self.expiresAt = expiresAt
        self.pending = pending
        self.identityKey = identityKey
    }
}

/// The first device of a user publishes the user's identity key with its
/// own approval (`PUT /v1/identity`).
public struct IdentityPublication: Codable, Sendable {
    public var identityKey: Base64Bytes
    /// This device's ``DeviceApproval`` (TLS encoding).
    public var approval: Base64Bytes

    public init(identityKey: Base64Bytes, approval: Base64Bytes) {
        self.identityKey = identityKey
        self.approval = approval
    }
}

/// A user's identity key as the server keeps it (`GET /v1/users/{name}/identity`).
public struct UserIdentityInfo: Codable, Sendable, Hashable {
    public var user: UserAddress
    public var identityKey: Base64Bytes
    public var createdAt: Date
    /// The user's newest entry in their network's key-transparency log,
    /// with its inclusion proof (docs/transparency.md). Clients refuse a
    /// key without one.
    public var transparency: TransparencyInclusion?

    public init(user: UserAddress, identityKey: Base64Bytes, createdAt: Date, transparency: TransparencyInclusion? = nil) {
        self.user = user
        self.identityKey = identityKey
        self.createdAt = createdAt
        self.transparency = transparency
    }
}

/// An approved device approves a pending one (`POST /v1/devices/{id}/approve`).
public struct ApproveDevice: Codable, Sendable {
    /// The pending device's ``DeviceApproval`` (TLS encoding).
    public var approval: Base64Bytes
    /// The identity key's seed sealed to the pending device's transfer key
    /// (HPKE base mode, suite 1's KEM, KDF and AEAD; info "Conclave identity
    /// transfer v1", aad the device id): `kem_output || ciphertext`.
    public var sealedIdentity: Base64Bytes

    public init(approval: Base64Bytes, sealedIdentity: Base64Bytes) {
        self.approval = approval
        self.sealedIdentity = sealedIdentity
    }
}

public struct DeviceInfo: Codable, Sendable, Hashable {
    public var deviceId: DeviceID
    public var name: String
    public var certificate: Base64Bytes
    public var createdAt: Date
    public var lastSeenAt: Date?
    /// True while the device waits for approval by one of its user's devices.
    public var pending: Bool?
    /// A pending device's transfer key (told to its own user's devices only).
    public var transferKey: Base64Bytes?
    /// An approved device's ``DeviceApproval`` (TLS encoding), when the user has an identity.
    public var approval: Base64Bytes?

    public init(
        deviceId: DeviceID, name: String, certificate: Base64Bytes, createdAt: Date, lastSeenAt: Date?, pending: Bool? = nil,
        transferKey: Base64Bytes? = nil, approval: Base64Bytes? = nil
    ) {
        self.deviceId = deviceId
        self.name = name
        self.certificate = certificate
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.pending = pending
        self.transferKey = transferKey
        self.approval = approval
    }
}

public struct DeviceList: Codable, Sendable {
    public var user: UserAddress
    public var devices: [DeviceInfo]

    public init(user: UserAddress, devices: [DeviceInfo]) {
        self.user = user
        self.devices = devices
    }
}

// MARK: - Key package directory

/// Key packages of one cipher suite (K1): the device's certificate suite,
/// or another of the same signature scheme (a suite-1 device also keeps
/// packages of the hybrid post-quantum 0x004D).
public struct KeyPackageUpload: Codable, Sendable {
    public var keyPackages: [Base64Bytes]
    /// Kept after the others are claimed, and handed out again (RFC 9420 §16.8).
    public var lastResort: Base64Bytes?

    public init(keyPackages: [Base64Bytes], lastResort: Base64Bytes?) {
        self.keyPackages = keyPackages
        self.lastResort = lastResort
    }
}

/// A device's stock of key packages of one suite.
public struct KeyPackageCount: Codable, Sendable {
    public var cipherSuite: UInt16
    public var available: Int
    public var lastResort: Bool

    public init(cipherSuite: UInt16, available: Int, lastResort: Bool) {
        self.cipherSuite = cipherSuite
        self.available = available
        self.lastResort = lastResort
    }

    private enum CodingKeys: String, CodingKey { case cipherSuite, available, lastResort }

    /// A server that predates cipher-suite choice counts suite 1 without naming it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cipherSuite = try container.decodeIfPresent(UInt16.self, forKey: .cipherSuite) ?? 1
        available = try container.decode(Int.self, forKey: .available)
        lastResort = try container.decode(Bool.self, forKey: .lastResort)
    }
}

public struct KeyPackageClaim: Codable, Sendable {
    public var user: UserAddress
    /// The suites the new member's devices may use, the strongest first
    /// (absent: suite 1 only). The server hands out packages of the first
    /// suite every one of the user's devices has.
    public var cipherSuites: [UInt16]?

    public init(user: UserAddress, cipherSuites: [UInt16]? = nil) {
        self.user = user
        self.cipherSuites = cipherSuites
    }
}

public struct ClaimedKeyPackages: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var deviceId: DeviceID
        public var keyPackage: Base64Bytes

        public init(deviceId: DeviceID, keyPackage: Base64Bytes) {
            self.deviceId = deviceId
            self.keyPackage = keyPackage
        }
    }

    public var user: UserAddress
    /// The suite of every package handed out.
    public var cipherSuite: UInt16
    public var keyPackages: [Entry]
    /// The user's devices that have key packages, but none of `cipher_suite`
    /// (none of the requested suites was had by every device).
    public var missing: [DeviceID]

    public init(user: UserAddress, cipherSuite: UInt16, keyPackages: [Entry], missing: [DeviceID]) {
        self.user = user
        self.cipherSuite = cipherSuite
        self.keyPackages = keyPackages
        self.missing = missing
    }

    private enum CodingKeys: String, CodingKey { case user, cipherSuite, keyPackages, missing }

    /// A peer network that predates cipher-suite choice answers without
    /// `cipher_suite` and `missing`: suite 1, nothing missing.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        user = try container.decode(UserAddress.self, forKey: .user)
        keyPackages = try container.decode([Entry].self, forKey: .keyPackages)
        cipherSuite = try container.decodeIfPresent(UInt16.self, forKey: .cipherSuite) ?? 1
        missing = try container.decodeIfPresent([DeviceID].self, forKey: .missing) ?? []
    }
}

// MARK: - Delivery Service

public enum ConversationKind: String, Codable, Sendable {
    case direct
    case room
}

public struct CreateConversation: Codable, Sendable {
    public var kind: ConversationKind
    /// A room's name; absent for 1:1.
    public var name: String?
    /// The other user of a 1:1 conversation.
    public var peer: UserAddress?
    /// Epoch 0's GroupInfo with the `ratchet_tree` extension: the creator alone.
    public var groupInfo: Base64Bytes

    public init(kind: ConversationKind, name: String?, peer: UserAddress?, groupInfo: Base64Bytes) {
        self.kind = kind
        self.name = name
        self.peer = peer
        self.groupInfo = groupInfo
    }
}

public struct ConversationInfo: Codable, Sendable, Hashable {
    public var id: ConversationID
    public var kind: ConversationKind
    public var name: String?
    public var epoch: UInt64
    /// Users with at least one device in the group.
    public var members: [UserAddress]
    public var createdBy: UserAddress
    public var createdAt: Date
    /// From the group's ConversationSettings: seconds, 0 when off.
    public var messageLifetime: UInt64
    public var burnOnRead: UInt64

    public init(
        id: ConversationID, kind: ConversationKind, name: String?, epoch: UInt64, members: [UserAddress], createdBy: UserAddress,
        createdAt: Date, messageLifetime: UInt64 = 0, burnOnRead: UInt64 = 0
    ) {
        self.id = id
        self.kind = kind
        self.name = name
        self.epoch = epoch
        self.members = members
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.messageLifetime = messageLifetime
        self.burnOnRead = burnOnRead
    }
}

public struct ConversationList: Codable, Sendable {
    public var conversations: [ConversationInfo]

    public init(conversations: [ConversationInfo]) { self.conversations = conversations }
}

public struct GroupInfoResponse: Codable, Sendable {
    public var epoch: UInt64
    public var groupInfo: Base64Bytes
    /// The server's view of the ratchet tree (`RatchetTreeNodes` encoding).
    public var ratchetTree: Base64Bytes

    public init(epoch: UInt64, groupInfo: Base64Bytes, ratchetTree: Base64Bytes) {
        self.epoch = epoch
        self.groupInfo = groupInfo
        self.ratchetTree = ratchetTree
    }
}

public struct CommitRequest: Codable, Sendable {
    /// An MLSMessage holding a PublicMessage commit.
    public var commit: Base64Bytes
    /// The Welcome for the devices the commit adds.
    public var welcome: Base64Bytes?
    /// The new epoch's GroupInfo (with `external_pub`), for later external joins.
    public var groupInfo: Base64Bytes

    public init(commit: Base64Bytes, welcome: Base64Bytes?, groupInfo: Base64Bytes) {
        self.commit = commit
        self.welcome = welcome
        self.groupInfo = groupInfo
    }
}

/// `POST /v1/conversations/{id}/successor`: the group that the
/// conversation's committed ReInit asks for (RFC 9420 §11.2), started by a
/// member at epoch 1 with every member device it could add (D25).
public struct StartSuccessor: Codable, Sendable {
    /// The new group's GroupInfo at epoch 1, with its `ratchet_tree` and
    /// `external_pub` extensions.
    public var groupInfo: Base64Bytes
    /// The Welcome for every device of the new group but the sender's
    /// (absent when the group holds the sender's device alone).
    public var welcome: Base64Bytes?

    public init(groupInfo: Base64Bytes, welcome: Base64Bytes?) {
        self.groupInfo = groupInfo
        self.welcome = welcome
    }
}

/// A conversation's generation: 0 for the group it was created as, one
/// more for each successor a ReInit started (D25). The group's context
/// carries it (extension 0xF0C2, a uint64, absent for 0), so every member,
/// including one that joins later, agrees on it; an application message
/// names it in its `authenticated_data` (empty for 0, else the generation
/// as a big-endian uint64), so that the server refuses a message meant for
/// a group the conversation no longer is, even when its epoch number
/// happens to match the successor's.
public enum ConversationGeneration {
    public static let extensionType = ExtensionType(rawValue: 0xF0C2)

    public static func authenticatedData(_ generation: UInt64) -> [UInt8] {
        generation == 0 ? [] : bytes(generation)
    }

    /// The generation `authenticated_data` names; nil when it is neither
    /// empty nor eight bytes.
    public static func generation(of authenticatedData: [UInt8]) -> UInt64? {
        switch authenticatedData.count {
        case 0: 0
        case 8: authenticatedData.reduce(0) { $0 << 8 | UInt64($1) }
        default: nil
        }
    }

    /// The generation a group context's extensions carry: 0 without the
    /// extension; nil when it is malformed (not eight bytes, or 0).
    public static func generation(in extensions: [Extension]) -> UInt64? {
        guard let data = extensions.first(ofType: extensionType)?.data else { return 0 }
        guard data.count == 8, let generation = generation(of: data), generation > 0 else { return nil }
        return generation
    }

    /// `extensions` with the generation set to `generation`.
    public static func extensions(_ extensions: [Extension], generation: UInt64) -> [Extension] {
        extensions.filter { $0.type != extensionType } + (generation == 0 ? [] : [Extension(type: extensionType, data: bytes(generation))])
    }

    private static func bytes(_ value: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
}

public struct CommitAccepted: Codable, Sendable {
    public var epoch: UInt64

    public init(epoch: UInt64) { self.epoch = epoch }
}

public struct SendMessage: Codable, Sendable {
    /// Chosen by the sender (a UUID): a retry with the same id is stored once.
    public var messageId: String
    /// An MLSMessage holding a PrivateMessage of application data.
    public var message: Base64Bytes
    /// The files this message shares (uploaded to the conversation by this
    /// device, complete, shared by no other message): from now on each is
    /// deleted with the message (its lifetime, or burn-on-read once every
    /// recipient device has fetched it).
    public var files: [FileID]?

    public init(messageId: String, message: Base64Bytes, files: [FileID]? = nil) {
        self.messageId = messageId
        self.message = message
        self.files = files
    }
}

// MARK: - Files

/// Starts an upload: the size of the sealed file (docs/client.md#encrypted-files).
public struct CreateUpload: Codable, Sendable {
    public var size: UInt64

    public init(size: UInt64) { self.size = size }
}

/// A file on the server, as its uploader and the conversation's devices see it.
public struct FileStatus: Codable, Sendable, Hashable {
    public var id: FileID
    public var conversation: ConversationID
    /// The sealed size, and how many bytes of it the server holds (an
    /// upload resumes at `received`).
    public var size: UInt64
    public var received: UInt64
    public var complete: Bool
    /// Whether a message shares it yet.
    public var shared: Bool
    /// When the server deletes it: an upload no message shares by then, or
    /// the sharing message's expiry; nil: with its conversation (or, under
    /// burn-on-read, once every recipient device has fetched it).
    public var expiresAt: Date?
    /// Members whose security group does not let them download a file of
    /// this size (answered to the uploader when the upload starts; members
    /// of other networks are checked by their own network).
    public var cannotReceive: [UserAddress]?

    public init(
        id: FileID, conversation: ConversationID, size: UInt64, received: UInt64, shared: Bool, expiresAt: Date?,
        cannotReceive: [UserAddress]? = nil
    ) {
        self.id = id
        self.conversation = conversation
        self.size = size
        self.received = received
        self.complete = received == size
        self.shared = shared
        self.expiresAt = expiresAt
        self.cannotReceive = cannotReceive
    }
}

public struct MessageAccepted: Codable, Sendable {
    public var messageId: String
    public var sentAt: Date
    public var expiresAt: Date?

    public init(messageId: String, sentAt: Date, expiresAt: Date?) {
        self.messageId = messageId
        self.sentAt = sentAt
        self.expiresAt = expiresAt
    }
}

// MARK: - Inbox

public enum InboxEventKind: String, Codable, Sendable {
    /// A Welcome: this device was added to a conversation.
    case welcome
    /// A handshake message (commit or proposal) of a conversation.
    case handshake
    /// An application message (PrivateMessage).
    case application
}

/// One entry of a device's inbox, in order of `seq`.
public struct InboxEvent: Codable, Sendable, Hashable {
    public var seq: Int64
    public var kind: InboxEventKind
    public var conversation: ConversationID
    /// The MLSMessage (or, for `welcome`, the MLSMessage holding the Welcome).
    public var message: Base64Bytes
    public var messageId: String?
    public var sentAt: Date
    public var expiresAt: Date?
    /// For `welcome`: the conversation's kind and a room's name, so that a
    /// device can join even when it was removed again before it read the
    /// Welcome (the conversation is then no longer its to look up).
    public var conversationKind: ConversationKind?
    public var name: String?

    public init(
        seq: Int64, kind: InboxEventKind, conversation: ConversationID, message: Base64Bytes, messageId: String?, sentAt: Date,
        expiresAt: Date?, conversationKind: ConversationKind? = nil, name: String? = nil
    ) {
        self.seq = seq
        self.kind = kind
        self.conversation = conversation
        self.message = message
        self.messageId = messageId
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.conversationKind = conversationKind
        self.name = name
    }
}

public struct InboxPage: Codable, Sendable {
    public var events: [InboxEvent]

    public init(events: [InboxEvent]) { self.events = events }
}

public struct InboxAck: Codable, Sendable {
    /// Every event up to and including this `seq` has been processed.
    public var upTo: Int64

    public init(upTo: Int64) { self.upTo = upTo }
}

public struct AckResult: Codable, Sendable {
    public var removed: Int

    public init(removed: Int) { self.removed = removed }
}

/// An application message sent on the `/v1/events` WebSocket rather than
/// with `POST /v1/conversations/{id}/messages` (issue 14): the same checks,
/// the same durable store before the answer, and the same outcome, told in
/// an ``EventStreamAnswer`` with the same `ref` (docs/server.md).
public struct EventStreamSend: Codable, Sendable {
    /// Chosen by the client, 1–64 characters: the answer carries it back.
    public var ref: String
    public var conversation: ConversationID
    public var send: SendMessage

    public init(ref: String, conversation: ConversationID, send: SendMessage) {
        self.ref = ref
        self.conversation = conversation
        self.send = send
    }
}

/// The server's answer to an ``EventStreamSend``: `accepted` (`created`
/// false for a message id already stored, D17) or the `error` the HTTP
/// route would have answered, with `retry_after` seconds for
/// `rate_limited`. `ref` is absent only when the send had no usable one.
public struct EventStreamAnswer: Codable, Sendable {
    public var ref: String?
    public var accepted: MessageAccepted?
    public var created: Bool?
    public var error: APIErrorBody.Detail?
    public var retryAfter: Int?

    public init(
        ref: String?, accepted: MessageAccepted? = nil, created: Bool? = nil, error: APIErrorBody.Detail? = nil, retryAfter: Int? = nil
    ) {
        self.ref = ref
        self.accepted = accepted
        self.created = created
        self.error = error
        self.retryAfter = retryAfter
    }
}

// MARK: - Admin API

public struct CreateUser: Codable, Sendable {
    public var name: UserName
    public var password: String
    public var group: String?

    public init(name: UserName, password: String, group: String?) {
        self.name = name
        self.password = password
        self.group = group
    }
}

public struct UserInfo: Codable, Sendable, Hashable {
    public var name: UserName
    public var address: UserAddress
    public var group: String
    public var suspended: Bool
    public var devices: Int
    public var createdAt: Date

    public init(name: UserName, address: UserAddress, group: String, suspended: Bool, devices: Int, createdAt: Date) {
        self.name = name
        self.address = address
        self.group = group
        self.suspended = suspended
        self.devices = devices
        self.createdAt = createdAt
    }
}

public struct UserList: Codable, Sendable {
    public var users: [UserInfo]

    public init(users: [UserInfo]) { self.users = users }
}

public struct NetworkInfo: Codable, Sendable {
    public var domain: NetworkDomain
    public var url: String
    public var keyFingerprint: String
    public var apiVersion: String
    public var storage: String
    public var users: Int

    public init(domain: NetworkDomain, url: String, keyFingerprint: String, apiVersion: String, storage: String, users: Int) {
        self.domain = domain
        self.url = url
        self.keyFingerprint = keyFingerprint
        self.apiVersion = apiVersion
        self.storage = storage
        self.users = users
    }
}
