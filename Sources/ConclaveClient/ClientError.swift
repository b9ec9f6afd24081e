import ConclaveProtocol

/// What the SDK reports. Descriptions hold no message content.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// The server answered with an error body.
    case api(status: Int, APIErrorBody.Detail)
    /// The server could not be reached, or answered with something that is not the API.
    case transport(String)
    /// This profile has no signed-in device.
    case notSignedIn
    /// A shared file cannot be sent, fetched or saved (the reason holds no content).
    case file(String)
    /// The profile already holds a device.
    case alreadySignedIn(UserAddress)
    /// No conversation matches (by id, room name or user).
    case unknownConversation(String)
    /// A room name matches several rooms.
    case ambiguousConversation(String)
    /// The user has no device with a key package to add.
    case noDevices(UserAddress)
    /// The local store is unreadable or was tampered with.
    case localStore(String)
    /// This device's saved state of one conversation is unreadable: that
    /// conversation's events are reported and skipped, the others go on.
    case unreadableConversation(ConversationID)
    /// A message or credential from the server failed a check.
    case invalid(String)
    /// The members' security-group policy does not allow it (checked before
    /// anything is sent; the server checks again).
    case policy(String)
    /// This device's server now names another key for a peer network than
    /// the one this device pinned the first time it saw that network.
    case networkKeyChanged(NetworkDomain)
    /// The conversation holds a device this device does not trust (a leaf
    /// whose certificate does not verify), or is not the 1:1 it claims to
    /// be; nothing was sent.
    case untrusted(String)
    /// A 1:1's peer has no device in the conversation and none to add
    /// (signed out everywhere, devices reset, suspended); nothing was sent.
    case peerUnreachable(UserAddress)
    /// A room of this name exists on this device; a second one would make
    /// the name ambiguous.
    case roomNameTaken(String, ConversationID)
    /// This device no longer exists on the server (signed out, reset, or its
    /// user deleted): the profile must sign in again as a new device.
    case deviceRemoved
    /// The server ended this device's session (its user was suspended or
    /// deleted, or its devices reset).
    case sessionEnded
    /// A contact the user verified shows another identity key now: nothing
    /// is sent to them until the user verifies the new safety number.
    case identityChanged(UserAddress)
    /// The safety number given is not the one of this user and the contact.
    case safetyNumberMismatch(UserAddress)
    /// This device waits for approval by another device of its user.
    case pendingApproval
    /// A key-transparency check failed (docs/transparency.md): an identity
    /// key without a valid inclusion proof, a tree head without its
    /// signature or witness quorum, or heads that contradict each other.
    /// Nothing was trusted.
    case transparency(String)
    /// A single sign-on did not complete at the identity provider or on
    /// the way back (the reason names the step).
    case singleSignOn(String)

    public var description: String {
        switch self {
        case .api(_, let detail) where detail.code == .sessionExpired:
            "this device's session has expired: run `conclave login` again with this profile (same server and user); the device, its conversations and unread messages are kept"
        case .api(let status, let detail): "server refused (\(status) \(detail.code.rawValue)): \(detail.message)"
        case .transport(let what): "cannot reach the server: \(what)"
        case .notSignedIn: "this profile has no device: run `conclave login` first"
        case .alreadySignedIn(let user): "this profile already holds a device of \(user); use another --profile"
        case .unknownConversation(let what): "no conversation matches \(what)"
        case .ambiguousConversation(let what): "several rooms are named \(what); use the room id"
        case .noDevices(let user): "\(user) has no device to add (has the user signed in?)"
        case .localStore(let what): "local store: \(what)"
        case .unreadableConversation(let id):
            "this device's state of conversation \(id) is unreadable (a damaged local store?): its events are skipped; the other conversations go on"
        case .invalid(let what): "refused: \(what)"
        case .singleSignOn(let what): "single sign-on: \(what)"
        case .transparency(let what): "key transparency: \(what)"
        case .file(let what): "file: \(what)"
        case .policy(let what): "not allowed by security-group policy: \(what)"
        case .networkKeyChanged(let domain):
            "the key of network \(domain) changed since this device first saw it: your server may be impersonating it; nothing was sent"
        case .untrusted(let what): "refused: \(what); nothing was sent"
        case .peerUnreachable(let user):
            "\(user) has no device in this 1:1 and none to add (they must sign in again, or their account is suspended); nothing was sent"
        case .roomNameTaken(let name, let id): "you are already in a room named \(name) (\(id)); choose another name"
        case .deviceRemoved:
            "this device no longer exists on the server (signed out, reset by an administrator, or the user was deleted): run `conclave logout --local` and sign in again"
        case .sessionEnded: "the server ended this device's session (suspended, deleted, or devices reset)"
        case .identityChanged(let user):
            "\(user)'s identity key changed since you verified it: nothing was sent; compare the new safety number (`conclave safety-number \(user)`) and run `conclave verify` again"
        case .safetyNumberMismatch(let user):
            "the safety number does not match the one of you and \(user): do not trust this conversation until you know why"
        case .pendingApproval:
            "this device waits for approval: run `conclave device approve CODE` on one of your other devices (`conclave device list` shows the code here)"
        }
    }

    /// The API error code, if the server sent one.
    /// A server, a network or its witnesses could not be reached (or
    /// failed): nothing was proved wrong.
    var isOutage: Bool {
        switch self {
        case .transport, .peerUnreachable: true
        case .api(let status, _): status >= 500
        case .transparency(let what): what.contains(Self.staleWitnesses)
        default: false
        }
    }

    /// Part of the message of a head whose witnesses last cosigned it over a day ago.
    static let staleWitnesses = "was last cosigned by its witnesses over a day ago"

    public var code: ErrorCode? {
        if case .api(_, let detail) = self { return detail.code }
        return nil
    }
}
