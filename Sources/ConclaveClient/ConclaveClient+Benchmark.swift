import ConclaveProtocol
import Foundation
import MLS

/// Hooks for `conclave-bench` (the `Benchmarks/` package), the server benchmark. Not API.
extension ConclaveClient {
    /// The device's session token, so that a load generator can talk to the
    /// server directly.
    @_spi(Benchmarks) public var sessionTokenForBenchmark: String? { account?.token }

    /// Encrypts `count` text messages for a conversation in one go and
    /// returns the request bodies of `POST /v1/conversations/{id}/messages`,
    /// each a real PrivateMessage with a fresh message id, in the order of
    /// their generations. The group is loaded once and saved once, before
    /// the messages are returned, so no key is ever used twice.
    ///
    /// The messages are only valid at the group's current epoch: send them
    /// before anything commits.
    @_spi(Benchmarks) public func encryptForBenchmark(_ text: String, count: Int, to id: ConversationID) async throws -> [SendMessage] {
        try await lock.withLock { try await self.performEncryptForBenchmark(text, count: count, to: id) }
    }

    private func performEncryptForBenchmark(_ text: String, count: Int, to id: ConversationID) async throws -> [SendMessage] {
        guard let (stored, original) = try await loadGroup(id) else { throw ClientError.unknownConversation(id.description) }
        var group = original
        let encoder = ConclaveJSON.encoder()
        var messages: [SendMessage] = []
        messages.reserveCapacity(max(0, count))
        for _ in 0..<max(0, count) {
            let messageID = UUID().uuidString.lowercased()
            let body = Array(try encoder.encode(MessageBody(id: messageID, text: text)))
            let message = try group.encrypt(body, random: random)
            messages.append(SendMessage(messageId: messageID, message: Base64Bytes(message.tlsSerialized)))
        }
        try await saveGroup(id, stored, group)
        return messages
    }
}
