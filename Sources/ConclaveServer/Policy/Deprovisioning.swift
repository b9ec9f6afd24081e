import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

/// Cutting devices off (DESIGN.md §5): their connections end at once, and
/// every conversation they are in, here and on other networks, gets their
/// removal proposed, so from the next epoch on they can derive no key.
struct Deprovisioning: Sendable {
    let store: ConclaveStore
    let hub: InboxHub
    let delivery: DeliveryService
    let gateway: FederationGateway
    let logger: Logger

    /// These devices' connections end, and the conversations hosted here
    /// that held them (looked up before the devices went) get their removal
    /// proposed. Conversations on other networks are asked separately
    /// (``FederationGateway/requestRemoteRemoval(of:user:)``), while the
    /// user's memberships are still recorded.
    func cutOff(_ devices: [DeviceID], conversations: [ConversationID]) async throws {
        hub.disconnect(devices)
        do { try await store.announceDisconnect(devices) } catch {
            // Their sessions are gone: another process's connections of theirs end at their next event (InboxService).
            logger.warning("could not tell the other server processes to end connections", metadata: ["error.type": "\(type(of: error))"])
        }
        try await delivery.proposeRemoval(of: Set(devices), in: conversations)
    }

    /// A8: signing out removes the device, as `reset-devices` does for all:
    /// its session, key packages and inbox go, and it leaves every
    /// conversation.
    func signOut(_ session: Session) async throws { try await signOut(device: session.device.id, of: session.user.name) }

    /// A8 for any device of a user (A13: removed by another of the user's
    /// devices). When no approved device of the user is left, the user's
    /// identity key goes too.
    func signOut(device: DeviceID, of user: UserName) async throws {
        let conversations = try await store.conversations(withDevices: [device])
        try await gateway.requestRemoteRemoval(of: [device], user: user)
        guard try await store.deleteDevice(device) else { return }
        try await store.dropIdentityIfOrphaned(of: user)
        try await cutOff([device], conversations: conversations)
        logger.info("device signed out", metadata: ["device": "\(device)"])
    }
}
