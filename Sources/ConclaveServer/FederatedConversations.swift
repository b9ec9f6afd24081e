import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLS
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Who acts on a conversation: a device of this network (a session), or a
/// member's device of another network, vouched for by that network's
/// signed request.
struct Actor: Sendable {
    let address: UserAddress
    let device: DeviceID
    let isLocal: Bool

    /// Whether a leaf is this actor's device: its certificate names the
    /// same device and user.
    func owns(_ leaf: LeafNode) -> Bool {
        guard let certificate = DeviceCertificate(credential: leaf.credential) else { return false }
        return certificate.device == device && certificate.user == address
    }
}

extension Session {
    var actor: Actor { Actor(address: address, device: device.id, isLocal: true) }
}

/// Conversations across networks (DESIGN.md §7): a conversation lives on
/// its creator's network, whose Delivery Service orders it. A member of
/// another network talks to its own server, which relays the request,
/// signed, to the host; the host sends each message for that network's
/// devices to it through the durable federation outbox.
extension ServerState {
    // MARK: Checks at the host

    /// A leaf's certificate, verified with the key of the network that
    /// issued it: this one, or a pinned peer.
    func verifiedCertificate(_ leaf: LeafNode) async throws -> DeviceCertificate? {
        guard let claimed = DeviceCertificate(credential: leaf.credential) else { return nil }
        if claimed.user.domain == domain { return DeviceCertificate.verify(leaf: leaf, networkKey: publicKey) }
        guard let peer = try await store.peer(claimed.user.domain), let key = try? await key(of: peer) else { return nil }
        return DeviceCertificate.verify(leaf: leaf, networkKey: NetworkPublicKey(domain: claimed.user.domain, rawKey: key))
    }

    /// F5 on this side: every remote member's network is a peer, and each
    /// pair of a local and a remote member in which one is new is allowed
    /// by the local member's security-group federation setting.
    func checkFederation(
        _ policies: [UserName: SecurityGroupPolicy], remote: some Collection<UserAddress>, newcomers: some Collection<UserAddress>
    ) async throws {
        guard !remote.isEmpty else { return }
        guard try await store.federationMode() != .off else { throw APIError(.forbidden, "federation_off", "\(domain) does not federate") }
        let fresh = Set(newcomers)
        for network in Set(remote.map(\.domain)) where try await store.peer(network) == nil {
            throw APIError(.notFound, "unknown_network", "\(domain) does not federate with \(network)")
        }
        for (name, policy) in policies {
            for other in remote where fresh.contains(other) || fresh.contains(UserAddress(name: name, domain: domain)) {
                guard policy.federation.contains(other.domain) else {
                    throw APIError(
                        .forbidden, "policy_federation", "security group \(policy.name) may not reach \(other.domain) (federation policy)")
                }
            }
        }
    }

    // MARK: Relaying a member's request to the host

    /// The host of a conversation this session's user belongs to, when it
    /// is another network.
    func remoteHost(_ id: ConversationID, session: Session) async throws -> NetworkDomain? {
        guard let record = try await store.conversation(id), let host = record.host else { return nil }
        guard try await store.memberUsers(id).contains(session.user.name) else { throw APIError.notFound("conversation") }
        return host
    }

    /// Sends a client's request on to the conversation's host, signed, for
    /// this session's device; the host's answer (or refusal) comes back.
    func relay<Request: Codable & Sendable, Response: Decodable>(
        _ operation: String, of id: ConversationID, to host: NetworkDomain, _ request: Request?, session: Session,
        as type: Response.Type = Response.self
    ) async throws -> (Response, status: Int) {
        guard try await store.federationMode() != .off else { throw APIError(.forbidden, "federation_off", "\(domain) does not federate") }
        guard let peer = try await store.peer(host) else {
            throw APIError(.notFound, "unknown_network", "\(domain) no longer federates with \(host), which hosts this conversation")
        }
        let policies = try await policies(of: [session.user.name])
        if let policy = policies[session.user.name], !policy.federation.contains(host) {
            throw APIError(.forbidden, "policy_federation", "security group \(policy.name) may not reach \(host) (federation policy)")
        }
        let body = RelayedRequest(actor: RemoteActor(user: session.address, device: session.device.id), request: request)
        let answer = try await FederationClient(state: self).send(
            .POST, to: peer, path: "/v1/federation/conversations/\(id)/\(operation)", body: body)
        return (try answer.decode(Response.self, from: peer), answer.status)
    }

    // MARK: The host's side

    func addFederatedConversationRoutes(_ router: ConclaveRouter) {
        let federation = router.group("/v1/federation")
        federation.post("/conversations/:id/:operation") { request, context in
            let (origin, body) = try await self.authenticatePeer(request, context: context)
            let id = try Self.conversationID(context)
            let operation = try context.parameters.require("operation")
            if operation == "remove-devices" {
                return try await self.remoteRemoval(id, try Self.decode(RemoteRemoval.self, body), origin: origin.peer.domain)
            }
            func relayed<T: Codable & Sendable>(_ type: T.Type) throws -> (Actor, T?) {
                let relayed = try Self.decode(RelayedRequest<T>.self, body)
                guard relayed.actor.user.domain == origin.peer.domain else {
                    throw APIError(.forbidden, "forbidden", "a network may only act for its own users")
                }
                return (Actor(address: relayed.actor.user, device: relayed.actor.device, isLocal: false), relayed.request)
            }
            switch operation {
            case "info":
                let (actor, _) = try relayed(Empty.self)
                return try Self.json(try await self.conversationInfo(id, actor: actor))
            case "group-info":
                let (actor, _) = try relayed(Empty.self)
                return try Self.json(try await self.groupInfo(id, actor: actor))
            case "commits":
                let (actor, commit) = try relayed(CommitRequest.self)
                guard let commit else { throw APIError.badRequest("a relayed commit needs its request") }
                return try Self.json(try await self.acceptCommit(id, commit, actor: actor), status: .created)
            case "messages":
                let (actor, message) = try relayed(SendMessage.self)
                guard let message else { throw APIError.badRequest("a relayed message needs its request") }
                let (accepted, created) = try await self.acceptMessage(id, message, actor: actor)
                return try Self.json(accepted, status: created ? .created : .ok)
            case "leave":
                let (actor, _) = try relayed(Empty.self)
                _ = try await self.memberConversation(id, actor: actor)
                let devices = try await self.store.remoteDevices(id).filter { $0.user == actor.address }.map(\.device)
                try await self.proposeRemoval(of: Set(devices), ofNetwork: actor.address.domain, in: [id])
                return try Self.json(["left": true], status: .accepted)
            default:
                throw APIError.notFound("operation")
            }
        }
        federation.post("/deliver") { request, context in
            let (origin, body) = try await self.authenticatePeer(request, context: context)
            let delivery = try Self.decode(FederatedDelivery.self, body)
            return try Self.json(["accepted": try await self.acceptFederatedDelivery(delivery, from: origin.peer.domain)])
        }
    }

    struct Empty: Codable, Sendable {}

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try ConclaveJSON.encoder().encode(value))))
    }

    /// The host proposes removing devices of the requesting network's user
    /// (that network de-provisioned them).
    func remoteRemoval(_ id: ConversationID, _ removal: RemoteRemoval, origin: NetworkDomain) async throws -> Response {
        let theirs = try await store.remoteDevices(id).filter { $0.user.domain == origin && removal.devices.contains($0.device) }
        try await proposeRemoval(of: Set(theirs.map(\.device)), ofNetwork: origin, in: [id])
        return try Self.json(["proposed": theirs.count], status: .accepted)
    }

    // MARK: A member's network receiving

    /// Stores a message of a conversation hosted by `origin` for the local
    /// devices it names. A recipient must be a device of a local member the
    /// delivery lists; devices whose user is suspended, whose security group
    /// may not reach every network in the conversation (F5 on this side), or
    /// whose group's bounds the settings exceed (P2 on this side) are left
    /// out, and the host is asked to remove them.
    func acceptFederatedDelivery(_ delivery: FederatedDelivery, from origin: NetworkDomain) async throws -> Int {
        guard !delivery.recipients.isEmpty, delivery.recipients.count <= 10_000, delivery.members.count <= 10_000 else {
            throw APIError.badRequest("a delivery names 1 to 10,000 recipients")
        }
        if let record = try await store.conversation(delivery.conversation), record.host != origin {
            throw APIError(.forbidden, "forbidden", "\(origin) does not host this conversation")
        }
        let members = delivery.memberAddresses(host: origin)
        let localMembers = Set(members.filter { $0.domain == domain }.map(\.name))
        let networks = Set(members.map(\.domain)).union([origin]).subtracting([domain])
        let settings = ConversationSettings(messageLifetime: delivery.messageLifetime, burnOnRead: delivery.burnOnRead)
        var recipients: [DeviceID] = []
        var refused: [DeviceID] = []
        for device in Set(delivery.recipients) {
            guard let record = try await store.device(device), localMembers.contains(record.user) else { continue }
            guard let user = try await store.user(named: record.user), !user.suspended,
                let policy = try await store.policies(of: [user.name])[user.name], networks.allSatisfy(policy.federation.contains),
                ConversationBounds(intersecting: [policy])?.problem(settings) == nil
            else {
                refused.append(device)
                continue
            }
            recipients.append(device)
        }
        if !refused.isEmpty {
            // The host is asked to take these devices out of its group, so they do not linger as members.
            try await store.enqueue(
                destination: origin, path: "/v1/federation/conversations/\(delivery.conversation)/remove-devices",
                body: RemoteRemoval(devices: refused.sorted()), at: clock())
        }
        guard !recipients.isEmpty else {
            throw APIError(.forbidden, "policy_federation", "no recipient of \(domain) may receive this from \(origin)")
        }
        switch try await store.acceptRemoteDelivery(delivery, origin: origin, localDomain: domain, recipients: recipients.sorted()) {
        case .stored(let notified):
            await hub.notify(notified)
            return recipients.count
        case .duplicate:
            return recipients.count
        case .notTheHost:
            throw APIError(.forbidden, "forbidden", "\(origin) does not host this conversation")
        case .unknownConversation:
            throw APIError(.notFound, "not_found", "this network holds no such conversation")
        }
    }

    /// De-provisioning on a member's network: asks the hosts of the user's
    /// conversations elsewhere to propose removing these devices (queued,
    /// so a host that is down gets the request when it is back).
    func requestRemoteRemoval(of devices: [DeviceID], user: UserName) async throws {
        for (record, _) in try await store.conversations(of: user) {
            guard let host = record.host else { continue }
            try await requestRemoteRemoval(of: devices, user: user, in: record.id, host: host)
        }
    }

    func requestRemoteRemoval(of devices: [DeviceID], user: UserName, in id: ConversationID, host: NetworkDomain) async throws {
        guard !devices.isEmpty else { return }
        try await store.enqueue(
            destination: host, path: "/v1/federation/conversations/\(id)/remove-devices", body: RemoteRemoval(devices: devices), at: clock()
        )
    }
}

/// Sends the federation outbox: for each destination, its oldest request
/// first, destinations in parallel; a final refusal (``isFinal(status:code:)``)
/// is dropped with a warning, anything else is retried with exponential
/// backoff (1 s … 5 min), and waits hold up only their own destination.
struct FederationRelay: Service {
    let state: ServerState

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            var sent = 0
            do {
                // The head of each destination's queue, all at once: a slow peer holds up only its own queue.
                let due = try await state.store.dueOutbox(now: state.clock())
                sent = due.count
                await withTaskGroup(of: Void.self) { group in
                    for item in due { group.addTask { await deliver(item) } }
                }
            } catch {
                state.logger.warning("federation outbox failed", metadata: ["error.type": "\(type(of: error))"])
            }
            if sent == 0 {
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(100)) } } catch { return }
            }
        }
    }

    func deliver(_ item: OutboxItem) async {
        do {
            guard let peer = try await state.store.peer(item.destination) else {
                state.logger.warning(
                    "federation: dropped a request for a network no longer pinned", metadata: ["peer": "\(item.destination)"])
                try await state.store.completeOutbox(item.id)
                return
            }
            let answer = try await FederationClient(state: state).send(.POST, to: peer, path: item.path, raw: item.body)
            let code = (try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: answer.body))?.error.code
            if (200..<300).contains(answer.status) {
                try await state.store.completeOutbox(item.id)
            } else if Self.isFinal(status: answer.status, code: code) {
                state.logger.warning(
                    "federation: a peer refused a request; dropped", metadata: ["peer": "\(item.destination)", "code": "\(code ?? "none")"])
                try await state.store.completeOutbox(item.id)
            } else {
                try await retryLater(item)
            }
        } catch {
            try? await retryLater(item)
        }
    }

    /// A refusal that a retry cannot change: a malformed or oversized
    /// request, the peer's policy, or a conversation it does not hold.
    /// Anything else (its federation off for a while, this network not
    /// pinned yet, a stale signature, errors, silence) is retried.
    static func isFinal(status: Int, code: String?) -> Bool {
        switch (status, code) {
        case (400, _), (413, _), (403, "policy_federation"), (403, "forbidden"), (404, "not_found"): true
        default: false
        }
    }

    func retryLater(_ item: OutboxItem) async throws {
        let delay = min(300, pow(2, Double(min(item.attempts, 10))))
        try await state.store.deferOutbox(item.id, attempts: item.attempts + 1, until: state.clock().addingTimeInterval(delay))
    }
}
