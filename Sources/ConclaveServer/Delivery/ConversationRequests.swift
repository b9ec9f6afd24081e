import ConclaveProtocol
import ConclaveStorage
import Foundation

/// A device's requests on a conversation, wherever it is hosted: here, to
/// the Delivery Service; on another network, relayed to that host through
/// the federation gateway.
struct ConversationRequests: Sendable {
    let delivery: DeliveryService
    let gateway: FederationGateway

    /// A conversation's kind, name, members and settings. For one hosted
    /// elsewhere, as this network last read them from the group's
    /// member-signed state (F6): answered here, so that a host that is
    /// down, or hostile, cannot keep a device from joining.
    func info(_ id: ConversationID, session: Session) async throws -> ConversationInfo {
        if try await gateway.remoteHost(id, session: session) != nil {
            return try await gateway.localView(of: id)
        }
        return try await delivery.conversationInfo(id, requester: session.requester)
    }

    func groupInfo(_ id: ConversationID, session: Session) async throws -> GroupInfoResponse {
        if let host = try await gateway.remoteHost(id, session: session) {
            return try await gateway.relay(.groupInfo, of: id, to: host, FederationGateway.Empty?.none, session: session).0
        }
        return try await delivery.groupInfo(id, requester: session.requester)
    }

    func commit(_ id: ConversationID, _ request: CommitRequest, session: Session) async throws -> CommitAccepted {
        if let host = try await gateway.remoteHost(id, session: session) {
            return try await gateway.relay(.commits, of: id, to: host, request, session: session).0
        }
        return try await delivery.acceptCommit(id, request, requester: session.requester)
    }

    /// D25: the successor group of a conversation hosted here (moving a
    /// federated conversation is not supported yet).
    func startSuccessor(_ id: ConversationID, _ request: StartSuccessor, session: Session) async throws -> CommitAccepted {
        if try await gateway.remoteHost(id, session: session) != nil {
            throw APIError.badRequest("a conversation with members of other networks cannot move to another cipher suite yet")
        }
        return try await delivery.startSuccessor(id, request, requester: session.requester)
    }

    /// The accepted message, and whether it is new (201) or a retry (200).
    func send(_ id: ConversationID, _ request: SendMessage, session: Session) async throws -> (MessageAccepted, created: Bool) {
        if let host = try await gateway.remoteHost(id, session: session) {
            let (accepted, status) = try await gateway.relay(
                .messages, of: id, to: host, request, session: session, as: MessageAccepted.self)
            return (accepted, status == 201)
        }
        return try await delivery.acceptMessage(id, request, requester: session.requester)
    }

    /// ``send(_:_:session:)`` without a task, for a conversation that
    /// memory knows is hosted here
    /// (``DeliveryService/acceptMessageFromMemory(_:_:requester:answered:)``);
    /// false, with nothing done, when the message must be sent with
    /// ``send(_:_:session:)``.
    func sendFromMemory(
        _ id: ConversationID, _ request: SendMessage, session: Session,
        answered: @escaping @Sendable (Result<(MessageAccepted, created: Bool), any Error>) -> Void
    ) -> Bool {
        guard gateway.isHostedHereInMemory(id) else { return false }
        return delivery.acceptMessageFromMemory(id, request, requester: session.requester, answered: answered)
    }

    func leave(_ id: ConversationID, session: Session) async throws {
        if let host = try await gateway.remoteHost(id, session: session) {
            _ = try await gateway.relay(.leave, of: id, to: host, FederationGateway.Empty?.none, session: session, as: [String: Bool].self)
            return
        }
        try await delivery.leave(id, requester: session.requester)
    }
}
