import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import MLS

/// Users vouch for their own devices (docs/client.md): the public halves
/// of users' identity keys, pending devices, and approvals. The server
/// cannot make an approval (it never holds an identity key); it checks the
/// ones it keeps so that its records agree with what members will check
/// (rules A11–A14 in docs/server.md), and it keeps a pending device out of
/// every conversation.
struct DeviceApprovals: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let audit: AuditRecorder
    let hub: InboxHub
    let policy: PolicyService
    let gateway: FederationGateway
    let deprovisioning: Deprovisioning
    let transparency: TransparencyService
    let logger: Logger

    /// A11: the first device of a user publishes the user's identity key,
    /// with its own approval under that key. A device of a user who has an
    /// identity already is refused (409): it must be approved instead.
    func publish(_ body: IdentityPublication, session: Session) async throws {
        guard body.identityKey.bytes.count == 32 else { throw APIError.badRequest("an identity key is 32 bytes (Ed25519)") }
        let key = UserIdentityPublicKey(rawKey: body.identityKey.bytes)
        guard let approval = try? DeviceApproval(tlsSerialized: body.approval.bytes),
            let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: session.device.certificate))?.verified(
                by: identity.publicKey),
            approval.isValid(for: certificate, identity: key)
        else { throw APIError(.invalidCredential, "the approval does not verify with this identity key for this device") }
        let draft = audit.draft(
            "user.identity", "user:\(session.user.name)", before: nil,
            after: ["fingerprint": key.fingerprint, "device": "\(session.device.id)"],
            actor: "device:\(session.address)/\(session.device.id)")
        guard
            try await store.publishIdentity(
                of: session.user.name, key: key.rawKey, device: session.device.id, approval: body.approval.bytes, at: clock.now,
                audit: draft)
        else { throw APIError(.identityExists, "this user has an identity key: this device must be approved by one of the user's devices") }
        audit.appended(draft)
    }

    /// A user's identity key: of this network (told under the same rule as
    /// the user's devices, A9), or asked of the user's network.
    func identityKey(of user: UserAddress, session: Session) async throws -> UserIdentityInfo {
        guard user.domain == identity.domain else { return try await gateway.remoteIdentity(user, session: session) }
        if user.name != session.user.name { try await policy.checkVisible(user.name, to: session) }
        return try await localIdentity(of: user.name)
    }

    func localIdentity(of name: UserName) async throws -> UserIdentityInfo {
        guard let found = try await store.identity(of: name) else { throw APIError.notFound("identity") }
        return UserIdentityInfo(
            user: identity.address(name), identityKey: Base64Bytes(found.key), createdAt: found.createdAt,
            transparency: try await transparency.inclusion(of: name))
    }

    /// The session user's devices, pending ones with their transfer keys.
    func ownDevices(session: Session) async throws -> DeviceList {
        DeviceList(
            user: session.address,
            devices: try await store.devices(of: session.user.name).map {
                DeviceInfo(
                    deviceId: $0.id, name: $0.name, certificate: Base64Bytes($0.certificate), createdAt: $0.createdAt,
                    lastSeenAt: $0.lastSeenAt,
                    pending: $0.pending, transferKey: $0.pending ? $0.transferKey.map(Base64Bytes.init) : nil,
                    approval: $0.approval.map(Base64Bytes.init))
            })
    }

    /// A12: an approved device of the same user approves a pending one; the
    /// approval must verify under the user's identity key for the pending
    /// device's certificate. The new device is told (its WebSocket rings).
    func approve(_ target: DeviceID, _ body: ApproveDevice, session: Session) async throws {
        guard !session.device.pending else { throw APIError(.forbidden, "a pending device cannot approve others") }
        guard let device = try await store.device(target), device.user == session.user.name else { throw APIError.notFound("device") }
        guard device.pending else { throw APIError(.conflict, "this device is not waiting for approval") }
        guard let identityKey = try await store.identity(of: session.user.name)?.key else { throw APIError.notFound("identity") }
        guard (1...4096).contains(body.sealedIdentity.bytes.count),
            let approval = try? DeviceApproval(tlsSerialized: body.approval.bytes),
            let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: device.certificate))?.verified(by: identity.publicKey),
            approval.isValid(for: certificate, identity: UserIdentityPublicKey(rawKey: identityKey))
        else { throw APIError(.invalidCredential, "the approval does not verify with the user's identity key for that device") }
        let draft = audit.draft(
            "device.approve", "device:\(session.address)/\(target)", before: ["pending": true], after: ["pending": false],
            actor: "device:\(session.address)/\(session.device.id)")
        guard
            try await store.approveDevice(
                target, of: session.user.name, approval: body.approval.bytes, sealedIdentity: body.sealedIdentity.bytes, audit: draft)
        else { throw APIError(.conflict, "this device is not waiting for approval") }
        hub.notify([target])
        audit.appended(draft)
    }

    /// What an approved device fetches once: its approval and the identity
    /// key sealed to it (404 while it is pending, or for a first device).
    func ownApproval(session: Session) async throws -> ApproveDevice {
        guard let approval = session.device.approval, let sealed = session.device.sealedIdentity else {
            throw APIError.notFound("approval")
        }
        return ApproveDevice(approval: Base64Bytes(approval), sealedIdentity: Base64Bytes(sealed))
    }

    /// A13: one of the user's approved devices removes another of the
    /// user's devices (a pending one it does not recognise, or a lost one):
    /// as a sign-out of that device.
    func remove(_ target: DeviceID, session: Session) async throws {
        guard !session.device.pending else { throw APIError(.forbidden, "a pending device cannot remove others") }
        guard let device = try await store.device(target), device.user == session.user.name else { throw APIError.notFound("device") }
        try await deprovisioning.signOut(device: device.id, of: session.user.name)
        let draft = audit.draft(
            "device.remove", "device:\(session.address)/\(target)", before: ["name": device.name], after: nil,
            actor: "device:\(session.address)/\(session.device.id)")
        try await store.appendAudit(draft)
        audit.appended(draft)
    }
}
