/// Every error code the API answers with, each with its one HTTP status.
///
/// The set is closed: the server throws only these, the SDK and the
/// federation relay decide on them (never on message text), and the
/// OpenAPI document and docs/server.md list them. A code means the same
/// thing, with the same status, wherever it is raised.
public enum ErrorCode: String, Codable, CaseIterable, Sendable, Hashable {
    // 400
    case badRequest = "bad_request"
    case invalidMLSMessage = "invalid_mls_message"
    case invalidCredential = "invalid_credential"
    case invalidKeyPackage = "invalid_key_package"
    case invalidSettings = "invalid_settings"
    case invalidPolicy = "invalid_policy"
    case missingExternalSender = "missing_external_sender"
    case unknownGroup = "unknown_group"
    case peerMismatch = "peer_mismatch"
    // 401
    case unauthenticated
    case sessionExpired = "session_expired"
    case invalidCredentials = "invalid_credentials"
    case invalidRequestSignature = "invalid_request_signature"
    case staleRequest = "stale_request"
    case replayedRequest = "replayed_request"
    case ssoFailed = "sso_failed"
    // 403
    case forbidden
    case inactiveDevice = "inactive_device"
    case policySegmentation = "policy_segmentation"
    case policySettings = "policy_settings"
    case policyConflict = "policy_conflict"
    case policyFederation = "policy_federation"
    case policyFiles = "policy_files"
    case policyCipherSuite = "policy_cipher_suite"
    case federationOff = "federation_off"
    case networkNotPinned = "network_not_pinned"
    case peerUnverified = "peer_unverified"
    case directConversation = "direct_conversation"
    case devicePending = "device_pending"
    case passwordSignInOff = "password_sign_in_off"
    // 404
    case notFound = "not_found"
    case unknownNetwork = "unknown_network"
    case ssoOff = "sso_off"
    // 405
    case methodNotAllowed = "method_not_allowed"
    // 409
    case conflict
    case conversationExists = "conversation_exists"
    case userExists = "user_exists"
    case groupExists = "group_exists"
    case groupInUse = "group_in_use"
    case keyInUse = "key_in_use"
    case duplicateKeyPackage = "duplicate_key_package"
    case peerExists = "peer_exists"
    case wrongEpoch = "wrong_epoch"
    case pendingProposals = "pending_proposals"
    case keyPackageStockFull = "key_package_stock_full"
    case identityExists = "identity_exists"
    case wrongOffset = "wrong_offset"
    case fileIncomplete = "file_incomplete"
    // 413
    case tooLarge = "too_large"
    case policyFileSize = "policy_file_size"
    // 416
    case rangeNotSatisfiable = "range_not_satisfiable"
    // 429
    case rateLimited = "rate_limited"
    // 500
    case `internal`
    // 502
    case peerUnavailable = "peer_unavailable"
    case peerInvalid = "peer_invalid"
    case peerKeyMismatch = "peer_key_mismatch"
    case peerRefused = "peer_refused"
    case transparencySplitView = "transparency_split_view"
    case providerUnavailable = "provider_unavailable"
    // 503
    case serverBusy = "server_busy"
    case notReady = "not_ready"

    /// The HTTP status that goes with the code, always.
    public var status: Int {
        switch self {
        case .badRequest, .invalidMLSMessage, .invalidCredential, .invalidKeyPackage, .invalidSettings, .invalidPolicy,
            .missingExternalSender, .unknownGroup, .peerMismatch:
            400
        case .unauthenticated, .sessionExpired, .invalidCredentials, .invalidRequestSignature, .staleRequest, .replayedRequest, .ssoFailed:
            401
        case .forbidden, .inactiveDevice, .policySegmentation, .policySettings, .policyConflict, .policyFederation, .policyFiles,
            .policyCipherSuite, .federationOff, .networkNotPinned, .peerUnverified, .directConversation, .devicePending, .passwordSignInOff:
            403
        case .notFound, .unknownNetwork, .ssoOff: 404
        case .methodNotAllowed: 405
        case .conflict, .conversationExists, .userExists, .groupExists, .groupInUse, .keyInUse, .duplicateKeyPackage, .peerExists,
            .wrongEpoch, .pendingProposals, .keyPackageStockFull, .identityExists, .wrongOffset, .fileIncomplete:
            409
        case .tooLarge, .policyFileSize: 413
        case .rangeNotSatisfiable: 416
        case .rateLimited: 429
        case .internal: 500
        case .peerUnavailable, .peerInvalid, .peerKeyMismatch, .peerRefused, .transparencySplitView, .providerUnavailable: 502
        case .serverBusy, .notReady: 503
        }
    }

    /// What the code means, for the OpenAPI document and docs/server.md.
    public var meaning: String {
        switch self {
        case .badRequest: "the request is not of the documented shape, or a value is out of range"
        case .invalidMLSMessage: "an MLS object does not decode or does not verify (the message names the RFC 9420 rule)"
        case .invalidCredential: "a leaf's credential is not a valid device certificate of this network or of a pinned peer"
        case .invalidKeyPackage: "a key package is not this device's, or its signature does not verify"
        case .invalidSettings: "the conversation settings extension is malformed or out of range"
        case .invalidPolicy: "a security-group policy is inconsistent (bounds, default)"
        case .missingExternalSender: "a new group does not name this network's server in external_senders"
        case .unknownGroup: "a security group named in the request does not exist"
        case .peerMismatch: "the server at the given URL publishes another domain or key than the administrator named"
        case .unauthenticated: "a valid session token (or administrator token) is required"
        case .sessionExpired: "the session token has expired: sign in again with the same profile"
        case .invalidCredentials: "wrong user name or password"
        case .invalidRequestSignature: "a server-to-server request is unsigned, badly signed, or signed with a key that is not pinned"
        case .staleRequest: "a server-to-server request's timestamp is too far from this server's clock"
        case .replayedRequest: "a server-to-server request was received before"
        case .ssoFailed: "a single sign-on did not verify (its state, PKCE verifier or ID token): start the sign-in again"
        case .passwordSignInOff: "this network signs users in through its identity provider only (`login --sso`)"
        case .ssoOff: "single sign-on is not set up on this network"
        case .providerUnavailable: "the identity provider did not answer, or answered with something that is not OpenID Connect"
        case .forbidden: "this session or network may not do that"
        case .inactiveDevice: "a device in the commit is unknown, deleted or suspended"
        case .policySegmentation: "the security groups' may-message policy does not allow these users to share a conversation"
        case .policySettings: "the conversation settings lie outside the members' security-group bounds"
        case .policyConflict: "the members' security-group bounds do not overlap"
        case .policyFederation: "a security group's federation policy does not allow reaching that network"
        case .policyFiles: "a security group's policy does not let this user share files (upload or download)"
        case .policyCipherSuite:
            "a member's security group does not allow the conversation's cipher suite (it requires post-quantum, or allows only classical)"
        case .federationOff: "the network does not federate"
        case .networkNotPinned: "the requesting network is not a federation peer of this one"
        case .peerUnverified: "an unlisted network is not verified yet, or its URL does not publish the domain and key it signs with"
        case .directConversation: "a 1:1 conversation holds its two users only, for its whole life: no one is added, no one leaves"
        case .devicePending: "this device waits for approval by one of its user's devices: it is in no conversation until then"
        case .identityExists: "the user has an identity key: a new device is approved by one of the user's devices, not made first"
        case .notFound: "no such resource, or the caller may not know of it"
        case .unknownNetwork: "the network is not a federation peer"
        case .methodNotAllowed: "the route exists but not with this method"
        case .conflict: "the request conflicts with the current state"
        case .conversationExists: "a 1:1 conversation of these two users exists (its id is in `conversation`)"
        case .userExists: "a user with this name exists"
        case .groupExists: "a security group with this name exists"
        case .groupInUse: "the security group holds accounts, or is the default group"
        case .keyInUse: "the signature key belongs to another device"
        case .duplicateKeyPackage: "a key package was uploaded before"
        case .peerExists: "the network is pinned already"
        case .wrongEpoch: "the conversation is at another epoch (the current one is in `current_epoch`)"
        case .pendingProposals: "the server's pending proposals must be committed first"
        case .keyPackageStockFull: "the device keeps the most key packages the server stores for one device"
        case .tooLarge: "the request body is over the limit"
        case .policyFileSize: "the file is larger than the user's security group allows (`max-file-size`)"
        case .rangeNotSatisfiable: "the `Range` asks for bytes past the file's end"
        case .wrongOffset: "an upload's bytes start at another offset than the server's count of received bytes (`GET` the file to resume)"
        case .fileIncomplete: "the file's upload is not complete, or a message already shares it"
        case .rateLimited: "too many requests; try again later (`Retry-After` says when)"
        case .internal: "an internal error (details are in neither the answer nor the log)"
        case .peerUnavailable: "a peer network does not answer"
        case .peerInvalid: "a peer network answered with something that is not the API"
        case .peerKeyMismatch: "a peer network publishes a key that does not match its pin"
        case .peerRefused: "a peer network refused this network's request"
        case .transparencySplitView:
            "a peer network showed a key-transparency tree head that contradicts one it showed before; the evidence is kept"
        case .serverBusy: "the server is at its connection limit; try again later"
        case .notReady: "the server cannot serve yet: its database does not answer, or its schema is being migrated (`/readyz`)"
        }
    }

    /// A refusal by security-group policy (P1, P2, F5).
    public var isPolicyRefusal: Bool {
        switch self {
        case .policySegmentation, .policySettings, .policyConflict, .policyFederation, .policyFiles, .policyFileSize,
            .policyCipherSuite:
            true
        default: false
        }
    }

    /// A code a retry cannot change: the federation relay drops a request
    /// refused with one of these, and retries anything else.
    public var isFinal: Bool {
        switch self {
        case .badRequest, .invalidMLSMessage, .invalidCredential, .invalidKeyPackage, .invalidSettings, .tooLarge, .forbidden,
            .policyFederation, .policySegmentation, .policySettings, .policyFiles, .policyFileSize, .policyCipherSuite, .notFound,
            .inactiveDevice, .directConversation, .devicePending:
            true
        default: false
        }
    }
}
