import ConclaveProtocol
import MLS

/// Hooks for tests that play a modified client. Not API.
extension ConclaveClient {
    @_spi(Testing) public var sessionTokenForTesting: String? { account?.token }

    /// Builds (but neither sends nor merges) an empty commit with a path,
    /// with the new epoch's GroupInfo.
    @_spi(Testing) public func captureNextCommitForTesting(_ id: ConversationID) async throws -> CommitRequest {
        guard let (_, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        var group = original
        let output = try group.commit(forcePath: true, now: now, random: random)
        try group.mergePendingCommit()
        return CommitRequest(
            commit: Base64Bytes(output.commit.tlsSerialized), welcome: nil,
            groupInfo: Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized))
    }
}
