import ConclaveProtocol
import ConclaveStorage
import Foundation
import NIOCore

/// The host's side: requests that a member's network relays for its
/// devices, and key package claims from peers.
extension FederationGateway {
    /// An answer to a peer: a JSON value and its status.
    struct PeerReply: Sendable {
        let body: [UInt8]
        let status: Int
        var contentType = "application/json; charset=utf-8"

        init(_ value: some Encodable, status: Int = 200) throws {
            self.body = Array(try ConclaveJSON.encoder().encode(value))
            self.status = status
        }

        /// Sealed file bytes.
        init(bytes: [UInt8]) {
            self.body = bytes
            self.status = 200
            self.contentType = "application/octet-stream"
        }
    }

    /// Carries out a relayed operation on a conversation hosted here. The
    /// relayed actor must be a user of the requesting network.
    func hostOperation(_ operation: HostOperation, of id: ConversationID, body: [UInt8], origin: NetworkDomain) async throws
        -> PeerReply
    {
        if operation == .removeDevices {
            return try await removeDevices(id, try JSONBody.decode(RemoteRemoval.self, body), origin: origin)
        }
        func relayed<T: Codable & Sendable>(_ type: T.Type) throws -> (Requester, T?) {
            let relayed = try JSONBody.decode(RelayedRequest<T>.self, body)
            guard relayed.actor.user.domain == origin else { throw APIError(.forbidden, "a network may only act for its own users") }
            return (Requester(address: relayed.actor.user, device: relayed.actor.device, isLocal: false), relayed.request)
        }
        switch operation {
        case .info:
            return try PeerReply(try await delivery.conversationInfo(id, requester: try relayed(Empty.self).0))
        case .groupInfo:
            return try PeerReply(try await delivery.groupInfo(id, requester: try relayed(Empty.self).0))
        case .commits:
            let (requester, commit) = try relayed(CommitRequest.self)
            guard let commit else { throw APIError.badRequest("a relayed commit needs its request") }
            return try PeerReply(try await delivery.acceptCommit(id, commit, requester: requester), status: 201)
        case .messages:
            let (requester, message) = try relayed(SendMessage.self)
            guard let message else { throw APIError.badRequest("a relayed message needs its request") }
            let (accepted, created) = try await delivery.acceptMessage(id, message, requester: requester)
            return try PeerReply(accepted, status: created ? 201 : 200)
        case .leave:
            try await delivery.leave(id, requester: try relayed(Empty.self).0)
            return try PeerReply(["left": true], status: 202)
        case .files:
            let (requester, upload) = try relayed(CreateUpload.self)
            guard let upload else { throw APIError.badRequest("a relayed upload needs its request") }
            return try PeerReply(try await files.create(id, upload, requester: requester), status: 201)
        case .fileStatus:
            let (requester, query) = try relayed(FileQuery.self)
            guard let query else { throw APIError.badRequest("a relayed file status needs its file") }
            return try PeerReply(try await files.status(id, query.file, requester: requester))
        case .fileFetched:
            let (requester, query) = try relayed(FileQuery.self)
            guard let query else { throw APIError.badRequest("a relayed fetch names its file") }
            return try PeerReply(["deleted": try await files.fetched(id, query.file, requester: requester)])
        case .fileFetch:
            let (requester, query) = try relayed(FileQuery.self)
            guard let query, let offset = query.offset, let length = query.length, (1...Self.fetchPiece).contains(length) else {
                throw APIError.badRequest("a relayed fetch names its file, offset and length (at most 4 MiB)")
            }
            return PeerReply(bytes: try await fetch(query.file, in: id, offset: offset, length: length, requester: requester))
        case .removeDevices, .fileContent:
            throw APIError.notFound("operation")
        }
    }

    /// Bytes of a relayed download, at most this many per request.
    static let fetchPiece: UInt64 = 4 << 20

    /// S7: a piece of a file for a device of the requesting network.
    private func fetch(_ file: FileID, in id: ConversationID, offset: UInt64, length: UInt64, requester: Requester) async throws -> [UInt8]
    {
        let (record, range) = try await files.download(
            id, file, range: "bytes=\(offset)-\(offset + length - 1)", requester: requester)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(range.count))
        try await files.blobs.read(record.id, range: range) { bytes.append(contentsOf: $0.readableBytesView) }
        return bytes
    }

    /// S7: upload bytes a member's network relays for one of its devices
    /// (named in the signed path's query).
    func hostFileContent(_ id: ConversationID, query: [String: String], body: [UInt8], origin: NetworkDomain) async throws -> PeerReply {
        guard let file = query["file"].flatMap(FileID.init), let offset = query["offset"].flatMap({ UInt64($0) }),
            let user = query["user"].flatMap(UserAddress.init), let device = query["device"].flatMap(DeviceID.init)
        else { throw APIError.badRequest("relayed file bytes name the file, offset, user and device") }
        guard user.domain == origin else { throw APIError(.forbidden, "a network may only act for its own users") }
        let requester = Requester(address: user, device: device, isLocal: false)
        let (bytes, end) = AsyncStream.makeStream(of: ByteBuffer.self)
        end.yield(ByteBuffer(bytes: body))
        end.finish()
        return try PeerReply(try await files.upload(id, file, offset: offset, body: bytes, requester: requester))
    }

    /// The host proposes removing devices of the requesting network's user
    /// (that network de-provisioned them).
    private func removeDevices(_ id: ConversationID, _ removal: RemoteRemoval, origin: NetworkDomain) async throws -> PeerReply {
        let theirs = try await store.remoteDevices(id).filter { $0.user.domain == origin && removal.devices.contains($0.device) }
        try await delivery.proposeRemoval(of: Set(theirs.map(\.device)), ofNetwork: origin, in: [id])
        return try PeerReply(["proposed": theirs.count], status: 202)
    }

    /// A peer claims key packages of one of this network's users for one of
    /// its own (F5 on this side: the user's group must reach that network).
    func serveKeyPackageClaim(_ claim: FederatedKeyPackageClaim, origin: NetworkDomain) async throws -> ClaimedKeyPackages {
        guard claim.requester.domain == origin else { throw APIError(.forbidden, "a network may only act for its own users") }
        let suites = try KeyPackageDirectory.requestedSuites(claim.cipherSuites)
        try claims.spend(requester: "network:\(origin)", target: identity.address(claim.user), now: clock.now)  // K4
        guard let user = try await store.user(named: claim.user), !user.suspended,
            let policy = try await store.policies(of: [claim.user])[claim.user]
        else { throw APIError.notFound("user") }
        guard policy.federation.contains(origin) else {
            throw APIError(.policyFederation, "\(domain) does not let this user be reached from \(origin) (federation policy)")
        }
        return ClaimedKeyPackages(try await store.claimKeyPackages(user: claim.user, suites: suites), of: identity.address(claim.user))
    }

    /// A user's identity key for a peer network acting for one of its
    /// users, under the user's federation policy.
    func serveIdentity(_ query: FederatedKeyPackageClaim, origin: NetworkDomain) async throws -> UserIdentityInfo {
        guard query.requester.domain == origin else { throw APIError(.forbidden, "a network may only act for its own users") }
        guard let user = try await store.user(named: query.user), !user.suspended,
            let policy = try await store.policies(of: [query.user])[query.user], policy.federation.contains(origin),
            let found = try await store.identity(of: query.user)
        else { throw APIError.notFound("identity") }
        return UserIdentityInfo(
            user: identity.address(query.user), identityKey: Base64Bytes(found.key), createdAt: found.createdAt,
            transparency: try await transparency.inclusion(of: query.user))
    }

    struct Empty: Codable, Sendable {}
}
