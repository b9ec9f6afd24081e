import Foundation

/// An administrator's or an API token's name: 1–64 of `a-z 0-9 . _ -`,
/// starting with a letter or digit (the rule of user names).
public struct AdminName: TextIdentifier {
    public let value: String

    public init?(_ text: String) {
        guard let name = UserName(text) else { return nil }
        value = name.value
    }

    public var description: String { value }
}

/// What an administrator, or an API token, may do (docs/server.md#administrators).
public enum AdminRole: String, Codable, Sendable, CaseIterable, Comparable {
    /// Read-only: users, security groups and the audit log.
    case auditor
    /// Read users; suspend and unsuspend them, reset their devices and passwords.
    case helpdesk
    /// Users, security groups and their policies, and what helpdesk and auditor may do.
    case admin
    /// Everything: administrators, API tokens, federation, sign-in settings.
    case owner

    private var rank: Int {
        switch self {
        case .auditor: 0
        case .helpdesk: 1
        case .admin: 2
        case .owner: 3
        }
    }

    public static func < (lhs: AdminRole, rhs: AdminRole) -> Bool { lhs.rank < rhs.rank }
}

/// `POST /v1/admin/administrators`.
public struct CreateAdministrator: Codable, Sendable {
    public var name: AdminName
    public var role: AdminRole
    public var password: String
    /// Whether to set up an authenticator (TOTP) now; its secret is in the answer, once.
    public var totp: Bool?

    public init(name: AdminName, role: AdminRole, password: String, totp: Bool? = nil) {
        self.name = name
        self.role = role
        self.password = password
        self.totp = totp
    }
}

/// `PATCH /v1/admin/administrators/{name}`: each field that is set changes.
public struct AdministratorChange: Codable, Sendable, Hashable {
    public var role: AdminRole?
    public var password: String?
    /// true: a new authenticator secret (in the answer, once); false: none.
    public var totp: Bool?

    public init(role: AdminRole? = nil, password: String? = nil, totp: Bool? = nil) {
        self.role = role
        self.password = password
        self.totp = totp
    }
}

/// An administrator as the API shows one (never the password's hash or the
/// authenticator's secret).
public struct AdministratorInfo: Codable, Sendable, Hashable {
    public var name: AdminName
    public var role: AdminRole
    public var totp: Bool
    public var createdAt: Date

    public init(name: AdminName, role: AdminRole, totp: Bool, createdAt: Date) {
        self.name = name
        self.role = role
        self.totp = totp
        self.createdAt = createdAt
    }
}

/// An administrator just created or changed; the authenticator's secret
/// and its `otpauth://` URI when one was just set up, shown this once.
public struct AdministratorCreated: Codable, Sendable, Hashable {
    public var administrator: AdministratorInfo
    public var totpSecret: String?
    public var totpURI: String?

    /// `totp_uri` on the wire (the key strategies spell acronyms `Uri`).
    private enum CodingKeys: String, CodingKey {
        case administrator, totpSecret
        case totpURI = "totpUri"
    }

    public init(administrator: AdministratorInfo, totpSecret: String? = nil, totpURI: String? = nil) {
        self.administrator = administrator
        self.totpSecret = totpSecret
        self.totpURI = totpURI
    }
}

public struct AdministratorList: Codable, Sendable, Hashable {
    public var administrators: [AdministratorInfo]

    public init(administrators: [AdministratorInfo]) { self.administrators = administrators }
}

/// `POST /v1/admin/tokens`: a named API token for scripts.
public struct CreateAdminToken: Codable, Sendable {
    public var name: AdminName
    public var role: AdminRole

    public init(name: AdminName, role: AdminRole) {
        self.name = name
        self.role = role
    }
}

public struct AdminTokenInfo: Codable, Sendable, Hashable {
    public var name: AdminName
    public var role: AdminRole
    public var createdAt: Date
    /// Who made it, as the audit log names them (`token`, `token:NAME`,
    /// `admin:NAME`): revoking a leaked token shows what else it made.
    public var createdBy: String

    public init(name: AdminName, role: AdminRole, createdAt: Date, createdBy: String) {
        self.name = name
        self.role = role
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// A new API token: shown once, kept by the server as its hash.
public struct AdminTokenCreated: Codable, Sendable, Hashable {
    public var token: String
    public var info: AdminTokenInfo

    public init(token: String, info: AdminTokenInfo) {
        self.token = token
        self.info = info
    }
}

public struct AdminTokenList: Codable, Sendable, Hashable {
    public var tokens: [AdminTokenInfo]

    public init(tokens: [AdminTokenInfo]) { self.tokens = tokens }
}

/// `GET /v1/admin/whoami`: who the request's credentials are, as the audit
/// log names them (`token`, `token:NAME`, `admin:NAME`), and their role.
public struct AdminIdentity: Codable, Sendable, Hashable {
    public var actor: String
    public var role: AdminRole

    public init(actor: String, role: AdminRole) {
        self.actor = actor
        self.role = role
    }
}
