import ConclaveProtocol
import Foundation
import MLS

/// Hooks for tests that play a modified client. Not API.
extension ConclaveClient {
    @_spi(Testing) public var sessionTokenForTesting: String? { account?.token }

    /// Builds (but neither sends nor merges) an empty commit with a path,
    /// with the new epoch's GroupInfo.
    @_spi(Testing) public func captureNextCommitForTesting(_ id: ConversationID) async throws -> CommitRequest {
        guard let (_, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        var group = original
        let output = try group.commit(forcePath: true, now: validationTime, random: random)
        try group.mergePendingCommit()
        return CommitRequest(
            commit: Base64Bytes(output.commit.tlsSerialized), welcome: nil,
            groupInfo: Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized))
    }

    /// The held messages: how many are sealed in the local store, and how
    /// many (burn-on-read) are in memory only.
    @_spi(Testing) public func heldMessageCountsForTesting() async throws -> (onDisk: Int, inMemory: Int) {
        let bytes = try await store.meta("held_messages") ?? Array("[]".utf8)
        let onDisk = try ConclaveJSON.decoder().decode([ReceivedMessage].self, from: Data(bytes)).count
        return (onDisk, heldBurnOnRead.count)
    }

    /// This device's MLS state of a conversation, as saved.
    @_spi(Testing) public func groupForTesting(_ id: ConversationID) async throws -> Group? { try await loadGroup(id)?.1 }
}
