import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// Drafts audit entries (signed by the network key when the store appends
/// them, in the same transaction as the change they record).
struct AuditRecorder: Sendable {
    let identity: NetworkIdentity
    let clock: ServerClock
    let metrics: ServerMetrics
    let logger: Logger

    /// Logs an entry the store has appended (its change committed), with
    /// who did what to which target, and counts it. Never the entry's
    /// before/after state: that stays in the signed log.
    func appended(_ draft: AuditDraft, _ details: Logger.Metadata = [:]) {
        metrics.auditAppended()
        logger.notice(
            "admin action",
            metadata: details.merging(
                ["actor": "\(draft.actor)", "action": "\(draft.action)", "target": "\(draft.target)"], uniquingKeysWith: { $1 }))
    }

    /// An entry for `action` on `target`, with the state before and after.
    func draft(_ action: String, _ target: String, before: (any Encodable)?, after: (any Encodable)?, actor: String)
        -> AuditDraft
    {
        let key = identity.key
        return AuditDraft(
            actor: actor, action: action, target: target, before: Self.json(before), after: Self.json(after), at: clock.now,
            sign: { try key.signature(for: $0) })
    }

    private static func json(_ value: (any Encodable)?) -> String? {
        guard let value, let data = try? ConclaveJSON.encoder().encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

/// What the audit log records of a user.
struct AuditedUser: Encodable {
    var group: String
    var suspended: Bool
    var devices: Int?

    init(_ user: UserRecord, devices: Int? = nil) {
        group = user.securityGroup
        suspended = user.suspended
        self.devices = devices
    }
}
