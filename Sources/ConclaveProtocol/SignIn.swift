import Crypto
import Foundation

/// Base64url without padding (RFC 4648 §5), as JOSE, PKCE and tokens use it.
public enum Base64URL {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: some StringProtocol) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}

/// RFC 3986 §2.3: everything but the unreserved characters (ASCII
/// letters, digits, `-._~`) percent-encoded as UTF-8, for a query value, a
/// form field or a path segment.
public enum PercentEncoding {
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    public static func unreserved(_ text: String) -> String {
        // Only nil for a string that is not valid Unicode, which a Swift String always is.
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }
}

/// PKCE (RFC 7636) with S256: the challenge the device sends for the
/// verifier it keeps.
public enum PKCE {
    public static func challenge(of verifier: String) -> String { Base64URL.encode(SHA256.hash(data: Array(verifier.utf8))) }
}

// MARK: - Single sign-on (OpenID Connect), docs/server.md#single-sign-on

/// One claim value that puts an account in a security group (e.g. the
/// provider's group `engineering` → Conclave's `staff`).
public struct SSOGroupMapping: Codable, Sendable, Hashable {
    public var value: String
    public var group: SecurityGroupName

    public init(value: String, group: SecurityGroupName) {
        self.value = value
        self.group = group
    }
}

/// The network's single sign-on, as the admin API shows it: never the
/// client secret, only whether one is set.
public struct SSOSettings: Codable, Sendable, Hashable {
    /// The provider's issuer URL (its discovery document is under it).
    public var issuer: String
    public var clientId: String
    public var clientSecretSet: Bool
    public var scopes: [String]
    /// The claim that gives the user name: `preferred_username`, `email`
    /// (its local part), or any other string claim.
    public var userClaim: String
    /// With `userClaim` `email`: the domains whose verified addresses are
    /// this network's users (`alice@acme.example` is `alice`).
    public var emailDomains: [String]
    /// A claim (a string or a list of strings) whose values `groupMap` maps
    /// to security groups; the first mapping that matches wins, and none
    /// puts the account in `default`.
    public var groupClaim: String?
    public var groupMap: [SSOGroupMapping]
    /// Whether a first sign-in creates the account (in the mapped group, or
    /// `default`); otherwise only existing accounts sign in.
    public var createAccounts: Bool
    /// Whether users may still sign in with a password.
    public var passwordsAllowed: Bool

    public init(
        issuer: String, clientId: String, clientSecretSet: Bool, scopes: [String], userClaim: String, emailDomains: [String],
        groupClaim: String?, groupMap: [SSOGroupMapping], createAccounts: Bool, passwordsAllowed: Bool
    ) {
        self.issuer = issuer
        self.clientId = clientId
        self.clientSecretSet = clientSecretSet
        self.scopes = scopes
        self.userClaim = userClaim
        self.emailDomains = emailDomains
        self.groupClaim = groupClaim
        self.groupMap = groupMap
        self.createAccounts = createAccounts
        self.passwordsAllowed = passwordsAllowed
    }
}

/// `PUT /v1/admin/sso`: sets single sign-on. Absent fields keep their
/// current value (or take the default when SSO is off); the client secret
/// is required the first time.
public struct SetSSO: Codable, Sendable, Hashable {
    public var issuer: String?
    public var clientId: String?
    public var clientSecret: String?
    public var scopes: [String]?
    public var userClaim: String?
    public var emailDomains: [String]?
    public var groupClaim: String?
    public var groupMap: [SSOGroupMapping]?
    public var createAccounts: Bool?
    public var passwordsAllowed: Bool?

    public init(
        issuer: String? = nil, clientId: String? = nil, clientSecret: String? = nil, scopes: [String]? = nil, userClaim: String? = nil,
        emailDomains: [String]? = nil, groupClaim: String? = nil, groupMap: [SSOGroupMapping]? = nil, createAccounts: Bool? = nil,
        passwordsAllowed: Bool? = nil
    ) {
        self.issuer = issuer
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.scopes = scopes
        self.userClaim = userClaim
        self.emailDomains = emailDomains
        self.groupClaim = groupClaim
        self.groupMap = groupMap
        self.createAccounts = createAccounts
        self.passwordsAllowed = passwordsAllowed
    }
}

/// `POST /v1/sso/start`: a device begins a sign-in at the provider. It
/// listens on `redirectUri` (a loopback address, RFC 8252 §7.3) and keeps
/// the PKCE verifier whose S256 challenge it sends.
public struct SSOStart: Codable, Sendable, Hashable {
    public var redirectUri: String
    public var codeChallenge: String

    public init(redirectUri: String, codeChallenge: String) {
        self.redirectUri = redirectUri
        self.codeChallenge = codeChallenge
    }
}

public struct SSOStarted: Codable, Sendable, Hashable {
    /// Where the user signs in (the provider's authorization endpoint).
    public var authorizationUrl: String
    /// The state the provider sends back with the code.
    public var state: String
    public var expiresAt: Date

    public init(authorizationUrl: String, state: String, expiresAt: Date) {
        self.authorizationUrl = authorizationUrl
        self.state = state
        self.expiresAt = expiresAt
    }
}

/// `POST /v1/sso/finish`: the provider's code, the state it came with and
/// the PKCE verifier; then either a new device (as `POST /v1/login`) or
/// an existing device of the user signing in again, with a signature of
/// its key (as `POST /v1/sessions`).
public struct SSOFinish: Codable, Sendable, Hashable {
    public var state: String
    public var code: String
    public var codeVerifier: String
    public var deviceName: String?
    public var signatureKey: Base64Bytes?
    public var cipherSuite: UInt16?
    public var transferKey: Base64Bytes?
    public var deviceId: DeviceID?
    public var signedAt: Int64?
    public var signature: Base64Bytes?

    public init(
        state: String, code: String, codeVerifier: String, deviceName: String? = nil, signatureKey: Base64Bytes? = nil,
        cipherSuite: UInt16? = nil, transferKey: Base64Bytes? = nil, deviceId: DeviceID? = nil, signedAt: Int64? = nil,
        signature: Base64Bytes? = nil
    ) {
        self.state = state
        self.code = code
        self.codeVerifier = codeVerifier
        self.deviceName = deviceName
        self.signatureKey = signatureKey
        self.cipherSuite = cipherSuite
        self.transferKey = transferKey
        self.deviceId = deviceId
        self.signedAt = signedAt
        self.signature = signature
    }
}

// MARK: - SCIM tokens, docs/server.md#scim

public struct SCIMTokenInfo: Codable, Sendable, Hashable {
    public var id: String
    public var createdAt: Date

    public init(id: String, createdAt: Date) {
        self.id = id
        self.createdAt = createdAt
    }
}

/// A new directory token: shown once, kept by the server as its hash.
public struct SCIMTokenCreated: Codable, Sendable, Hashable {
    public var id: String
    public var token: String
    public var createdAt: Date

    public init(id: String, token: String, createdAt: Date) {
        self.id = id
        self.token = token
        self.createdAt = createdAt
    }
}

public struct SCIMTokenList: Codable, Sendable, Hashable {
    public var tokens: [SCIMTokenInfo]

    public init(tokens: [SCIMTokenInfo]) { self.tokens = tokens }
}
