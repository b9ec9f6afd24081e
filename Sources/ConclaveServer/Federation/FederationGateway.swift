import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import MLS

/// Conversations across networks (DESIGN.md §7): a conversation lives on
/// its creator's network, whose Delivery Service orders it. A member of
/// another network talks to its own server, which relays the request,
/// signed, to the host (``relay(_:of:to:_:session:as:)``); the host answers
/// relayed requests (``hostOperation(_:of:body:origin:)``) and sends each
/// message for another network's devices through the durable outbox, which
/// that network takes in (``acceptDelivery(_:from:)``).
final class FederationGateway: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let hub: InboxHub
    let policy: PolicyService
    let directory: FederationDirectory
    let delivery: DeliveryService
    let files: FileService
    let client: FederationClient
    let claims: ClaimBudget
    let transparency: TransparencyService
    let logger: Logger

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, hub: InboxHub, policy: PolicyService,
        directory: FederationDirectory, delivery: DeliveryService, files: FileService, claims: ClaimBudget,
        transparency: TransparencyService, logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.hub = hub
        self.policy = policy
        self.directory = directory
        self.delivery = delivery
        self.files = files
        self.client = FederationClient(identity: identity, clock: clock, logger: logger)
        self.claims = claims
        self.transparency = transparency
        self.logger = logger
    }

    var domain: NetworkDomain { identity.domain }

    // MARK: A member's side: relaying to the host

    /// The host of a conversation this session's user belongs to, when it
    /// is another network.
    func remoteHost(_ id: ConversationID, session: Session) async throws -> NetworkDomain? {
        guard case .remote(let host) = try await store.conversationHost(id) else { return nil }
        guard try await store.memberUsers(id).contains(session.user.name) else { throw APIError.notFound("conversation") }
        return host
    }

    /// Whether memory knows the conversation is hosted here (false: ask
    /// ``remoteHost(_:session:)``).
    func isHostedHereInMemory(_ id: ConversationID) -> Bool { store.conversationHostInMemory(id) == .local }

    /// Sends a client's request on to the conversation's host, signed, for
    /// this session's device; the host's answer (or refusal) comes back.
    func relay<Request: Codable & Sendable, Response: Decodable>(
        _ operation: HostOperation, of id: ConversationID, to host: NetworkDomain, _ request: Request?, session: Session,
        as type: Response.Type = Response.self
    ) async throws -> (Response, status: Int) {
        let answer = try await relayAnswer(operation, of: id, to: host, request, session: session)
        return (try answer.decode(Response.self, from: host), answer.status)
    }

    /// The host's answer to a relayed request, as it came.
    func relayAnswer<Request: Codable & Sendable>(
        _ operation: HostOperation, of id: ConversationID, to host: NetworkDomain, _ request: Request?, session: Session
    ) async throws -> PeerAnswer {
        let peer = try await hostPeer(host, session: session)
        let body = RelayedRequest(actor: RemoteActor(user: session.address, device: session.device.id), request: request)
        return try await client.send(.POST, to: peer, path: HostOperation.path(operation, of: id), body: body)
    }

    /// S7: a piece of an upload's bytes, relayed to the host for this
    /// session's device (the actor is in the signed path, the bytes are the body).
    func relayFileContent(
        _ bytes: [UInt8], of file: FileID, at offset: UInt64, in id: ConversationID, to host: NetworkDomain, session: Session
    )
        async throws -> FileStatus
    {
        let peer = try await hostPeer(host, session: session)
        let path =
            HostOperation.path(.fileContent, of: id)
            + "?file=\(file)&offset=\(offset)&user=\(session.address)&device=\(session.device.id)"
        return try await client.send(.POST, to: peer, path: path, raw: bytes, contentType: "application/octet-stream")
            .decode(FileStatus.self, from: host)
    }

    /// The pinned host a session's user may reach (federation on, the host
    /// pinned, the user's security group reaching it).
    private func hostPeer(_ host: NetworkDomain, session: Session) async throws -> FederationPeer {
        guard try await store.federationMode() != .off else { throw APIError(.federationOff, "\(domain) does not federate") }
        guard let peer = try await store.peer(host) else {
            throw APIError(.unknownNetwork, "\(domain) no longer federates with \(host), which hosts this conversation")
        }
        if let own = try await policy.policies(of: [session.user.name])[session.user.name], !own.federation.contains(host) {
            throw APIError(.policyFederation, "your security group may not reach \(host) (federation policy)")
        }
        return peer.peer
    }

    /// A conversation another network hosts, as this network recorded it.
    func localView(of id: ConversationID) async throws -> ConversationInfo {
        guard let record = try await store.conversation(id) else { throw APIError.notFound("conversation") }
        return delivery.info(record, members: try await delivery.allMembers(id))
    }

    /// Claims key packages of a user of another network through its server,
    /// after this network's own policy allows it (F5 on this side).
    func claimRemoteKeyPackages(_ user: UserAddress, suites: [UInt16], session: Session) async throws -> ClaimedKeyPackages {
        let claimed = try await askUsersNetwork(
            user, suites: suites, session: session, path: "/v1/federation/key-packages/claim", as: ClaimedKeyPackages.self)
        guard claimed.user == user else { throw APIError(.peerInvalid, "\(user.domain) answered for another user") }
        guard suites.contains(claimed.cipherSuite) else {
            throw APIError(.peerInvalid, "\(user.domain) answered with another cipher suite")
        }
        return claimed
    }

    /// A remote user's identity key, asked of the user's network (within the
    /// caller's federation policy). Members check it against their own pin.
    func remoteIdentity(_ user: UserAddress, session: Session) async throws -> UserIdentityInfo {
        let found = try await askUsersNetwork(user, session: session, path: "/v1/federation/identity", as: UserIdentityInfo.self)
        guard found.user == user else { throw APIError(.peerInvalid, "\(user.domain) answered for another user") }
        return found
    }

    /// A question about one remote user, for one local user, to the remote
    /// user's network: when this network federates and the asker's security
    /// group may reach that network (F5 on this side).
    private func askUsersNetwork<Answer: Decodable>(
        _ user: UserAddress, suites: [UInt16]? = nil, session: Session, path: String, as type: Answer.Type
    ) async throws -> Answer {
        guard try await store.federationMode() != .off else { throw APIError(.federationOff, "\(domain) does not federate") }
        guard let own = try await policy.policies(of: [session.user.name])[session.user.name] else { throw APIError.unauthenticated }
        guard own.federation.contains(user.domain) else {
            throw APIError(.policyFederation, "your security group may not reach \(user.domain) (federation policy)")
        }
        let peer = try await directory.peer(user.domain)
        let answer = try await client.send(
            .POST, to: peer.peer, path: path,
            body: FederatedKeyPackageClaim(user: user.name, requester: session.address, cipherSuites: suites))
        return try answer.decode(Answer.self, from: user.domain)
    }

    /// Unpins a peer network; its users leave the conversations hosted here.
    func removePeer(_ peer: NetworkDomain, actor: String) async throws {
        let hosted = try await directory.unpin(peer, actor: actor)
        for (id, devices) in hosted { try await delivery.proposeRemoval(of: Set(devices), ofNetwork: peer, in: [id]) }
        logger.notice(
            "admin: federation peer's users removed from hosted conversations",
            metadata: ["peer": "\(peer)", "conversations": "\(hosted.count)"])
    }

    // MARK: The user's network: de-provisioning elsewhere

    /// Asks the hosts of the user's conversations elsewhere to propose
    /// removing these devices (queued, so a host that is down gets the
    /// request when it is back).
    func requestRemoteRemoval(of devices: [DeviceID], user: UserName) async throws {
        for (record, _) in try await store.conversations(of: user) {
            guard let host = record.host else { continue }
            try await requestRemoteRemoval(of: devices, in: record.id, host: host)
        }
    }

    /// Queues the request (once: the same request already waiting is not
    /// queued again, F8).
    func requestRemoteRemoval(of devices: [DeviceID], in id: ConversationID, host: NetworkDomain) async throws {
        guard !devices.isEmpty else { return }
        try await store.enqueue(
            destination: host, path: HostOperation.path(.removeDevices, of: id), body: RemoteRemoval(devices: devices.sorted()),
            at: clock.now, limit: store.outboxLimit)
    }
}

/// What a member's network may ask of a conversation's host.
enum HostOperation: String, Sendable, CaseIterable {
    case info
    case groupInfo = "group-info"
    case commits
    case messages
    case leave
    case removeDevices = "remove-devices"
    case files
    case fileStatus = "file-status"
    case fileContent = "file-content"
    case fileFetch = "file-fetch"
    case fileFetched = "file-fetched"

    static func path(_ operation: HostOperation, of id: ConversationID) -> String {
        "/v1/federation/conversations/\(id)/\(operation.rawValue)"
    }
}
