import GRPCCore

/// The MLSClient service of the MLS interop harness
/// (`Protos/mls_client.proto`), backed by an ``InteropClient``.
///
/// Every failure answers with a gRPC error status whose message names the RPC
/// and the reason; nothing a request carries can crash the server.
public struct MLSClientService: MlsClient_MLSClient.SimpleServiceProtocol {
    public let client: InteropClient

    public init(client: InteropClient = InteropClient()) {
        self.client = client
    }

    /// The RPCs this client answers: every RPC of `mls_client.proto`.
    public static let implementedRPCs = [
        "Name",
        "SupportedCiphersuites",
        "CreateGroup",
        "CreateKeyPackage",
        "JoinGroup",
        "ExternalJoin",
        "GroupInfo",
        "StateAuth",
        "Export",
        "Protect",
        "Unprotect",
        "StorePSK",
        "AddProposal",
        "UpdateProposal",
        "RemoveProposal",
        "ExternalPSKProposal",
        "ResumptionPSKProposal",
        "GroupContextExtensionsProposal",
        "Commit",
        "HandleCommit",
        "HandlePendingCommit",
        "ReInitProposal",
        "ReInitCommit",
        "HandlePendingReInitCommit",
        "HandleReInitCommit",
        "ReInitWelcome",
        "HandleReInitWelcome",
        "CreateBranch",
        "HandleBranch",
        "NewMemberAddProposal",
        "CreateExternalSigner",
        "AddExternalSigner",
        "ExternalSignerProposal",
        "Free",
    ]

    public func name(request: MlsClient_NameRequest, context: ServerContext) async throws -> MlsClient_NameResponse {
        MlsClient_NameResponse.with { $0.name = InteropClient.name }
    }

    public func supportedCiphersuites(request: MlsClient_SupportedCiphersuitesRequest, context: ServerContext) async throws
        -> MlsClient_SupportedCiphersuitesResponse
    {
        .with { $0.ciphersuites = InteropClient.supportedCipherSuites }
    }

    public func createGroup(request: MlsClient_CreateGroupRequest, context: ServerContext) async throws -> MlsClient_CreateGroupResponse {
        try await run("CreateGroup") { try await client.createGroup(request) }
    }

    public func createKeyPackage(request: MlsClient_CreateKeyPackageRequest, context: ServerContext) async throws
        -> MlsClient_CreateKeyPackageResponse
    {
        try await run("CreateKeyPackage") { try await client.createKeyPackage(request) }
    }

    public func joinGroup(request: MlsClient_JoinGroupRequest, context: ServerContext) async throws -> MlsClient_JoinGroupResponse {
        try await run("JoinGroup") { try await client.joinGroup(request) }
    }

    public func externalJoin(request: MlsClient_ExternalJoinRequest, context: ServerContext) async throws -> MlsClient_ExternalJoinResponse
    {
        try await run("ExternalJoin") { try await client.externalJoin(request) }
    }

    public func groupInfo(request: MlsClient_GroupInfoRequest, context: ServerContext) async throws -> MlsClient_GroupInfoResponse {
        try await run("GroupInfo") { try await client.groupInfo(request) }
    }

    public func stateAuth(request: MlsClient_StateAuthRequest, context: ServerContext) async throws -> MlsClient_StateAuthResponse {
        try await run("StateAuth") { try await client.stateAuth(request) }
    }

    public func export(request: MlsClient_ExportRequest, context: ServerContext) async throws -> MlsClient_ExportResponse {
        try await run("Export") { try await client.export(request) }
    }

    public func protect(request: MlsClient_ProtectRequest, context: ServerContext) async throws -> MlsClient_ProtectResponse {
        try await run("Protect") { try await client.protect(request) }
    }

    public func unprotect(request: MlsClient_UnprotectRequest, context: ServerContext) async throws -> MlsClient_UnprotectResponse {
        try await run("Unprotect") { try await client.unprotect(request) }
    }

    public func storePSK(request: MlsClient_StorePSKRequest, context: ServerContext) async throws -> MlsClient_StorePSKResponse {
        try await run("StorePSK") { try await client.storePSK(request) }
    }

    public func addProposal(request: MlsClient_AddProposalRequest, context: ServerContext) async throws -> MlsClient_ProposalResponse {
        try await run("AddProposal") { try await client.addProposal(request) }
    }

    public func updateProposal(request: MlsClient_UpdateProposalRequest, context: ServerContext) async throws -> MlsClient_ProposalResponse
    {
        try await run("UpdateProposal") { try await client.updateProposal(request) }
    }

    public func removeProposal(request: MlsClient_RemoveProposalRequest, context: ServerContext) async throws -> MlsClient_ProposalResponse
    {
        try await run("RemoveProposal") { try await client.removeProposal(request) }
    }

    public func externalPSKProposal(request: MlsClient_ExternalPSKProposalRequest, context: ServerContext) async throws
        -> MlsClient_ProposalResponse
    {
        try await run("ExternalPSKProposal") { try await client.externalPSKProposal(request) }
    }

    public func resumptionPSKProposal(request: MlsClient_ResumptionPSKProposalRequest, context: ServerContext) async throws
        -> MlsClient_ProposalResponse
    {
        try await run("ResumptionPSKProposal") { try await client.resumptionPSKProposal(request) }
    }

    public func groupContextExtensionsProposal(request: MlsClient_GroupContextExtensionsProposalRequest, context: ServerContext)
        async throws -> MlsClient_ProposalResponse
    {
        try await run("GroupContextExtensionsProposal") { try await client.groupContextExtensionsProposal(request) }
    }

    public func commit(request: MlsClient_CommitRequest, context: ServerContext) async throws -> MlsClient_CommitResponse {
        try await run("Commit") { try await client.commit(request) }
    }

    public func handleCommit(request: MlsClient_HandleCommitRequest, context: ServerContext) async throws -> MlsClient_HandleCommitResponse
    {
        try await run("HandleCommit") { try await client.handleCommit(request) }
    }

    public func handlePendingCommit(request: MlsClient_HandlePendingCommitRequest, context: ServerContext) async throws
        -> MlsClient_HandleCommitResponse
    {
        try await run("HandlePendingCommit") { try await client.handlePendingCommit(request) }
    }

    public func free(request: MlsClient_FreeRequest, context: ServerContext) async throws -> MlsClient_FreeResponse {
        try await run("Free") { try await client.free(request) }
    }

    // MARK: - Reinitialisation and branches

    public func reInitProposal(request: MlsClient_ReInitProposalRequest, context: ServerContext) async throws -> MlsClient_ProposalResponse
    {
        try await run("ReInitProposal") { try await client.reInitProposal(request) }
    }

    public func reInitCommit(request: MlsClient_CommitRequest, context: ServerContext) async throws -> MlsClient_CommitResponse {
        try await run("ReInitCommit") { try await client.reInitCommit(request) }
    }

    public func handlePendingReInitCommit(request: MlsClient_HandlePendingCommitRequest, context: ServerContext) async throws
        -> MlsClient_HandleReInitCommitResponse
    {
        try await run("HandlePendingReInitCommit") { try await client.handlePendingReInitCommit(request) }
    }

    public func handleReInitCommit(request: MlsClient_HandleCommitRequest, context: ServerContext) async throws
        -> MlsClient_HandleReInitCommitResponse
    {
        try await run("HandleReInitCommit") { try await client.handleReInitCommit(request) }
    }

    public func reInitWelcome(request: MlsClient_ReInitWelcomeRequest, context: ServerContext) async throws
        -> MlsClient_CreateSubgroupResponse
    {
        try await run("ReInitWelcome") { try await client.reInitWelcome(request) }
    }

    public func handleReInitWelcome(request: MlsClient_HandleReInitWelcomeRequest, context: ServerContext) async throws
        -> MlsClient_JoinGroupResponse
    {
        try await run("HandleReInitWelcome") { try await client.handleReInitWelcome(request) }
    }

    public func createBranch(request: MlsClient_CreateBranchRequest, context: ServerContext) async throws
        -> MlsClient_CreateSubgroupResponse
    {
        try await run("CreateBranch") { try await client.createBranch(request) }
    }

    public func handleBranch(request: MlsClient_HandleBranchRequest, context: ServerContext) async throws -> MlsClient_HandleBranchResponse
    {
        try await run("HandleBranch") { try await client.handleBranch(request) }
    }

    // MARK: - External proposals

    public func newMemberAddProposal(request: MlsClient_NewMemberAddProposalRequest, context: ServerContext) async throws
        -> MlsClient_NewMemberAddProposalResponse
    {
        try await run("NewMemberAddProposal") { try await client.newMemberAddProposal(request) }
    }

    public func createExternalSigner(request: MlsClient_CreateExternalSignerRequest, context: ServerContext) async throws
        -> MlsClient_CreateExternalSignerResponse
    {
        try await run("CreateExternalSigner") { try await client.createExternalSigner(request) }
    }

    public func addExternalSigner(request: MlsClient_AddExternalSignerRequest, context: ServerContext) async throws
        -> MlsClient_ProposalResponse
    {
        try await run("AddExternalSigner") { try await client.addExternalSigner(request) }
    }

    public func externalSignerProposal(request: MlsClient_ExternalSignerProposalRequest, context: ServerContext) async throws
        -> MlsClient_ProposalResponse
    {
        try await run("ExternalSignerProposal") { try await client.externalSignerProposal(request) }
    }

    private func run<Response: Sendable>(_ rpc: String, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            throw RPCError(rpc: rpc, failure: error)
        }
    }
}
