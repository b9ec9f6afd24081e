import ConclaveProtocol
import ConclaveStorage
import MLS

/// An authenticated device session of this network.
struct Session: Sendable {
    let device: DeviceRecord
    let user: UserRecord
    let address: UserAddress

    var requester: Requester { Requester(address: address, device: device.id, isLocal: true) }
}

/// Who acts on a conversation: a device of this network (a session), or a
/// member's device of another network, vouched for by that network's
/// signed request.
struct Requester: Sendable, Hashable {
    let address: UserAddress
    let device: DeviceID
    let isLocal: Bool

    /// Whether a leaf claims to be this requester's device. A claim only:
    /// whether the leaf's certificate verifies is rule D12's business.
    func claims(_ leaf: LeafNode) -> Bool {
        guard let certificate = UnverifiedDeviceCertificate(credential: leaf.credential) else { return false }
        return certificate.claimedDevice == device && certificate.claimedUser == address
    }

    /// This requester's device, as a conversation's remote-device row names it.
    var remoteDevice: RemoteDevice { RemoteDevice(device: device, user: address) }
}
