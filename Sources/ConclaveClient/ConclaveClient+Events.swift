import ConclaveProtocol
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging

extension ConclaveClient {
    /// Events as they happen: the device's WebSocket rings on every new inbox
    /// entry, and each ring processes the inbox (``receive()``). The stream
    /// starts with whatever is pending, and throws when the connection
    /// fails (``ClientError/transport(_:)``) or the server ends the session
    /// (``ClientError/sessionEnded``).
    public nonisolated func events() -> AsyncThrowingStream<ClientEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await _ in self.inboxRings() {
                        for event in try await self.receive() { continuation.yield(event) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One element as soon as the device's WebSocket is open, then one for
    /// every inbox entry the server pushes: a cue to process the inbox (with
    /// ``receive()`` or ``pendingEvents()``). Throws
    /// ``ClientError/sessionEnded`` when the server ends the session, and
    /// ``ClientError/transport(_:)`` when the connection fails or closes.
    public nonisolated func inboxRings() -> AsyncThrowingStream<Void, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.ring(into: continuation)
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func ring(into continuation: AsyncThrowingStream<Void, any Error>.Continuation) async throws {
        let (account, _, _) = try requireAccount()
        let url = account.server.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(account.token)"
        var logger = Logger(label: "conclave.client.events")
        logger.logLevel = .critical
        let close: WebSocketCloseFrame?
        do {
            close = try await WebSocketClient.connect(
                url: url + "/v1/events", configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers), logger: logger
            ) { inbound, _, _ in
                continuation.yield()
                for try await _ in inbound.messages(maxSize: 1 << 22) { continuation.yield() }
            }
        } catch {
            throw ClientError.transport("the event connection failed: \(HTTPAPI.cause(of: error))")
        }
        if close?.closeCode == .policyViolation, close?.reason == "session ended" { throw ClientError.sessionEnded }
        if Task.isCancelled {
            continuation.finish()
            return
        }
        throw ClientError.transport("the server closed the event connection\(close?.reason.map { ": \($0)" } ?? "")")
    }
}

/// The administrator's side of the API (`conclave admin`), authenticated by
/// the administrator token.
public struct AdminClient: Sendable {
    let api: HTTPAPI

    public init(server: String, token: String) {
        api = HTTPAPI(baseURL: server, token: token)
    }

    public func network() async throws -> NetworkInfo { try await api.get("/v1/admin/network") }

    public func addUser(_ name: UserName, password: String, group: String?) async throws -> UserInfo {
        try await api.post("/v1/admin/users", CreateUser(name: name, password: password, group: group))
    }

    /// Moves a user to another security group; the server enforces the new
    /// policy on the user's conversations at once.
    public func setGroup(of name: UserName, to group: SecurityGroupName) async throws -> UserInfo {
        try await updateUser(name, UserChange(group: group))
    }

    /// Moves a user to another group and/or sets a new password (audited).
    public func updateUser(_ name: UserName, _ change: UserChange) async throws -> UserInfo {
        try await api.patch("/v1/admin/users/\(name)", change)
    }

    public func groups() async throws -> [SecurityGroupInfo] { (try await api.get("/v1/admin/groups", as: SecurityGroupList.self)).groups }

    public func addGroup(_ name: SecurityGroupName, _ settings: SecurityGroupChange) async throws -> SecurityGroupInfo {
        try await api.post("/v1/admin/groups", CreateSecurityGroup(name: name, settings: settings))
    }

    public func updateGroup(_ name: SecurityGroupName, _ change: SecurityGroupChange) async throws -> SecurityGroupInfo {
        try await api.patch("/v1/admin/groups/\(name)", change)
    }

    public func deleteGroup(_ name: SecurityGroupName) async throws {
        let _: [String: String] = try await api.delete("/v1/admin/groups/\(name)")
    }

    public func federation() async throws -> FederationState { try await api.get("/v1/admin/federation") }

    /// Pins a peer network by domain, URL and key fingerprint.
    public func addPeer(_ domain: NetworkDomain, url: String, keyFingerprint: String) async throws -> FederationPeer {
        try await api.post("/v1/admin/federation/peers", AddFederationPeer(domain: domain, url: url, keyFingerprint: keyFingerprint))
    }

    public func removePeer(_ domain: NetworkDomain) async throws {
        let _: [String: String] = try await api.delete("/v1/admin/federation/peers/\(domain)")
    }

    public func setFederationMode(_ mode: FederationMode) async throws -> FederationState {
        try await api.put("/v1/admin/federation/mode", FederationModeChange(mode: mode))
    }

    // MARK: Key transparency

    /// The network's newest tree head, its witnesses and the evidence kept.
    public func transparency() async throws -> TransparencyStatus { try await api.get("/v1/admin/transparency") }

    /// How many witness cosignatures clients require of a head (0: none).
    public func setTransparencyQuorum(_ quorum: Int) async throws -> TransparencyStatus {
        try await api.put("/v1/admin/transparency", TransparencySettings(quorum: quorum))
    }

    /// Witnesses every peer's log now (as the server does every ten minutes).
    public func witnessPeers() async throws -> [WitnessedPeer] { try await api.post("/v1/admin/transparency/witness") }

    // MARK: Single sign-on and SCIM

    /// The network's single sign-on settings (an `sso_off` error when off).
    public func ssoSettings() async throws -> SSOSettings { try await api.get("/v1/admin/sso") }

    public func setSSO(_ change: SetSSO) async throws -> SSOSettings { try await api.put("/v1/admin/sso", change) }

    public func removeSSO() async throws {
        let _: [String: Bool] = try await api.delete("/v1/admin/sso")
    }

    public func scimTokens() async throws -> [SCIMTokenInfo] { (try await api.get("/v1/admin/scim/tokens", as: SCIMTokenList.self)).tokens }

    /// A new bearer token for the directory's SCIM client (shown once).
    public func createSCIMToken() async throws -> SCIMTokenCreated { try await api.post("/v1/admin/scim/tokens") }

    public func revokeSCIMToken(_ id: String) async throws {
        let _: [String: String] = try await api.delete(
            "/v1/admin/scim/tokens/" + (id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
    }

    // MARK: Administrators and API tokens

    /// Who this client's token is, as the audit log names it, and its role.
    public func whoami() async throws -> AdminIdentity { try await api.get("/v1/admin/whoami") }

    public func administrators() async throws -> [AdministratorInfo] {
        (try await api.get("/v1/admin/administrators", as: AdministratorList.self)).administrators
    }

    public func addAdministrator(_ body: CreateAdministrator) async throws -> AdministratorCreated {
        try await api.post("/v1/admin/administrators", body)
    }

    public func updateAdministrator(_ name: AdminName, _ change: AdministratorChange) async throws -> AdministratorCreated {
        try await api.patch("/v1/admin/administrators/\(name)", change)
    }

    public func removeAdministrator(_ name: AdminName) async throws {
        let _: [String: String] = try await api.delete("/v1/admin/administrators/\(name)")
    }

    public func adminTokens() async throws -> [AdminTokenInfo] { (try await api.get("/v1/admin/tokens", as: AdminTokenList.self)).tokens }

    /// A new named API token with a role (shown once).
    public func createAdminToken(_ name: AdminName, role: AdminRole) async throws -> AdminTokenCreated {
        try await api.post("/v1/admin/tokens", CreateAdminToken(name: name, role: role))
    }

    public func revokeAdminToken(_ name: AdminName) async throws {
        let _: [String: String] = try await api.delete("/v1/admin/tokens/\(name)")
    }

    /// The audit log, oldest first; with `since`, only entries from then on.
    public func audit(since: Date? = nil) async throws -> [AuditEntry] {
        let query = since.map { "?since=" + ConclaveJSON.formatTimestamp($0).replacingOccurrences(of: "+", with: "%2B") } ?? ""
        return (try await api.get("/v1/admin/audit" + query, as: AuditLog.self)).entries
    }

    /// Fetches the whole audit log and the network key from
    /// `/.well-known/conclave`, and checks the chain and every signature.
    public func verifyAudit() async throws -> (verification: AuditVerification, keyFingerprint: String) {
        let wellKnown: WellKnown = try await api.get("/.well-known/conclave")
        let key = NetworkPublicKey(domain: wellKnown.domain, rawKey: wellKnown.signingKey.bytes)
        return (AuditVerification(checking: try await audit(), key: key), key.fingerprint)
    }

    public func users() async throws -> [UserInfo] { (try await api.get("/v1/admin/users", as: UserList.self)).users }

    public func suspend(_ name: UserName) async throws -> UserInfo { try await api.post("/v1/admin/users/\(name)/suspend") }
    public func unsuspend(_ name: UserName) async throws -> UserInfo { try await api.post("/v1/admin/users/\(name)/unsuspend") }

    public func delete(_ name: UserName) async throws {
        let _: [String: String] = try await api.delete("/v1/admin/users/\(name)")
    }

    public func devices(_ name: UserName) async throws -> DeviceList { try await api.get("/v1/admin/users/\(name)/devices") }

    public func resetDevices(_ name: UserName) async throws -> Int {
        (try await api.post("/v1/admin/users/\(name)/reset-devices", as: [String: Int].self))["removed"] ?? 0
    }
}
