import ConclaveProtocol

/// What an admin API route or console action needs (R1, docs/server.md#administrators).
enum AdminPermission: String, Sendable, CaseIterable {
    /// Users and their devices, security groups, the network: every role.
    case readDirectory
    /// The audit log: auditor, admin, owner.
    case readAudit
    /// Suspend and unsuspend, reset devices and passwords: helpdesk, admin, owner.
    case support
    /// Create, move and delete users; create, change and delete security groups: admin, owner.
    case manage
    /// The federation mode and peers: admin, owner.
    case readFederation
    /// Administrators, API tokens, federation changes, sign-in settings: owner.
    case own

    /// The roles that have this permission.
    var roles: Set<AdminRole> {
        switch self {
        case .readDirectory: [.auditor, .helpdesk, .admin, .owner]
        case .readAudit: [.auditor, .admin, .owner]
        case .support: [.helpdesk, .admin, .owner]
        case .manage, .readFederation: [.admin, .owner]
        case .own: [.owner]
        }
    }

    func allows(_ role: AdminRole) -> Bool { roles.contains(role) }
}

/// Who makes an admin request: the bootstrap token (`token`), a named API
/// token (`token:NAME`) or a named administrator signed in to the console
/// (`admin:NAME`), as the audit log records them, and their role.
struct AdminPrincipal: Sendable, Hashable {
    let actor: String
    let role: AdminRole

    static let bootstrap = AdminPrincipal(actor: "token", role: .owner)

    static func token(_ name: AdminName, role: AdminRole) -> AdminPrincipal { AdminPrincipal(actor: "token:\(name)", role: role) }
    static func administrator(_ name: AdminName, role: AdminRole) -> AdminPrincipal {
        AdminPrincipal(actor: "admin:\(name)", role: role)
    }

    func may(_ permission: AdminPermission) -> Bool { permission.allows(role) }

    /// Throws 403 `forbidden` unless the role has `permission`.
    func require(_ permission: AdminPermission) throws {
        guard may(permission) else {
            throw APIError(.forbidden, "the \(role.rawValue) role may not do this (it needs \(Self.needed(permission)))")
        }
    }

    private static func needed(_ permission: AdminPermission) -> String {
        AdminRole.allCases.filter(permission.allows).map(\.rawValue).joined(separator: ", ")
    }
}
