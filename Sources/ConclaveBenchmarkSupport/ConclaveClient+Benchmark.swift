import ConclaveClient
import ConclaveProtocol
import Foundation
import MLS

/// Hooks for `conclave-bench` (the `Benchmarks/` package), the server
/// benchmark. This module is not linked into the `conclave` binary: it
/// reaches the client's internals through `package` declarations only.
extension ConclaveClient {
    /// The device's session token, so that a load generator can talk to the
    /// server directly.
    public var sessionTokenForBenchmark: String? { sessionToken }

    /// Encrypts `count` text messages for a conversation in one go and
    /// returns the request bodies of `POST /v1/conversations/{id}/messages`,
    /// each a real PrivateMessage with a fresh message id, in the order of
    /// their generations. The group is loaded once and saved once, before
    /// the messages are returned, so no key is ever used twice.
    ///
    /// The messages are only valid at the group's current epoch: send them
    /// before anything commits.
    public func encryptForBenchmark(_ text: String, count: Int, to id: ConversationID) async throws -> [SendMessage] {
        try await withStoredGroup(id) { group, random in
            let encoder = ConclaveJSON.encoder()
            var messages: [SendMessage] = []
            messages.reserveCapacity(max(0, count))
            for _ in 0..<max(0, count) {
                let messageID = UUID().uuidString.lowercased()
                let body = Array(try encoder.encode(MessageBody(id: messageID, text: text)))
                let message = try group.encrypt(body, random: random)
                messages.append(SendMessage(messageId: messageID, message: Base64Bytes(message.tlsSerialized)))
            }
            return messages
        }
    }
}
