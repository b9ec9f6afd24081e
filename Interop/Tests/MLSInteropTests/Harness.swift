import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import MLSInteropService
import Testing

typealias MLSClient = MlsClient_MLSClient.Client<HTTP2ClientTransport.Posix>

/// Runs `body` against a fresh MLSClient server listening on 127.0.0.1 on an
/// ephemeral port, through a real grpc-swift-2 HTTP/2 client. The server and
/// the client are shut down when `body` returns or throws.
func withInteropServer<Result: Sendable>(_ body: (MLSClient) async throws -> Result) async throws -> Result {
    try await withGRPCServer(
        transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
        services: [MLSClientService()]
    ) { server in
        guard let port = try await server.listeningAddress?.ipv4?.port else {
            throw HarnessError("the server is not listening on IPv4")
        }
        return try await withGRPCClient(
            transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        ) { client in
            try await body(MlsClient_MLSClient.Client(wrapping: client))
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Expects `operation` to fail with a gRPC status of `code`; returns the error.
@discardableResult
func expectStatus<T>(
    _ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ operation: () async throws -> T
) async -> RPCError? {
    do {
        _ = try await operation()
        Issue.record("expected gRPC status \(code), got a response", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

func bytes(_ string: String) -> Data { Data(string.utf8) }

/// One member of a test group: which state id the server gave it.
struct Member {
    let name: String
    var stateID: UInt32
    var identity: Data { bytes(name) }
}

/// Conveniences over the generated client for the steps the harness takes.
extension MLSClient {
    func createGroup(_ name: String, suite: UInt32, encrypt: Bool) async throws -> Member {
        let response = try await createGroup(
            .with {
                $0.groupID = bytes("group-\(suite)-\(encrypt)")
                $0.cipherSuite = suite
                $0.encryptHandshake = encrypt
                $0.identity = bytes(name)
            })
        return Member(name: name, stateID: response.stateID)
    }

    func createKeyPackage(_ name: String, suite: UInt32) async throws -> MlsClient_CreateKeyPackageResponse {
        try await createKeyPackage(
            .with {
                $0.cipherSuite = suite
                $0.identity = bytes(name)
            })
    }

    func join(
        _ name: String, transaction: UInt32, welcome: Data, encrypt: Bool, ratchetTree: Data = Data()
    ) async throws -> (Member, Data) {
        let response = try await joinGroup(
            .with {
                $0.transactionID = transaction
                $0.welcome = welcome
                $0.encryptHandshake = encrypt
                $0.identity = bytes(name)
                $0.ratchetTree = ratchetTree
            })
        return (Member(name: name, stateID: response.stateID), response.epochAuthenticator)
    }

    func commit(
        _ member: Member, byReference: [Data] = [], byValue: [MlsClient_ProposalDescription] = [], forcePath: Bool = false,
        externalTree: Bool = false
    ) async throws -> MlsClient_CommitResponse {
        try await commit(
            .with {
                $0.stateID = member.stateID
                $0.byReference = byReference
                $0.byValue = byValue
                $0.forcePath = forcePath
                $0.externalTree = externalTree
            })
    }

    func handlePending(_ member: Member) async throws -> Data {
        try await handlePendingCommit(.with { $0.stateID = member.stateID }).epochAuthenticator
    }

    func handle(_ member: Member, commit: Data, proposals: [Data] = []) async throws -> Data {
        let response = try await handleCommit(
            .with {
                $0.stateID = member.stateID
                $0.proposal = proposals
                $0.commit = commit
            })
        #expect(response.stateID == member.stateID)
        return response.epochAuthenticator
    }

    func stateAuth(_ member: Member) async throws -> Data {
        try await stateAuth(.with { $0.stateID = member.stateID }).stateAuthSecret
    }

    func export(_ member: Member, label: String = "interop", context: Data = bytes("context"), length: UInt32 = 32) async throws -> Data {
        try await export(
            .with {
                $0.stateID = member.stateID
                $0.label = label
                $0.context = context
                $0.keyLength = length
            }
        ).exportedSecret
    }

    func protect(_ member: Member, _ plaintext: String, authenticatedData: String = "") async throws -> Data {
        try await protect(
            .with {
                $0.stateID = member.stateID
                $0.plaintext = bytes(plaintext)
                $0.authenticatedData = bytes(authenticatedData)
            }
        ).ciphertext
    }

    func unprotect(_ member: Member, _ ciphertext: Data) async throws -> MlsClient_UnprotectResponse {
        try await unprotect(
            .with {
                $0.stateID = member.stateID
                $0.ciphertext = ciphertext
            })
    }

    /// `from` protects a message and `to` unprotects it.
    func send(_ text: String, from sender: Member, to receiver: Member) async throws {
        let ciphertext = try await protect(sender, text, authenticatedData: "aad from \(sender.name)")
        let received = try await unprotect(receiver, ciphertext)
        #expect(received.plaintext == bytes(text))
        #expect(received.authenticatedData == bytes("aad from \(sender.name)"))
    }

    func storePSK(_ id: UInt32, pskID: String, secret: String) async throws {
        _ = try await storePSK(
            .with {
                $0.stateOrTransactionID = id
                $0.pskID = bytes(pskID)
                $0.pskSecret = bytes(secret)
            })
    }

    /// Every member's epoch authenticator, which must all agree.
    func expectAgreement(_ members: [Member], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var secrets: [Data] = []
        for member in members { secrets.append(try await stateAuth(member)) }
        #expect(Set(secrets).count == 1, "members disagree on the epoch authenticator", sourceLocation: sourceLocation)
        #expect(secrets.first?.isEmpty == false, sourceLocation: sourceLocation)
    }
}

func description(_ type: String, _ configure: (inout MlsClient_ProposalDescription) -> Void = { _ in }) -> MlsClient_ProposalDescription {
    var description = MlsClient_ProposalDescription()
    description.proposalType = bytes(type)
    configure(&description)
    return description
}
