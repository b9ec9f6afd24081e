import ConclaveProtocol
import Foundation
import Testing

@testable import ConclaveServer

/// The WebSocket push path: an application message is encoded once for all
/// its recipients, and each copy is what the HTTP inbox would return.
@Suite struct InboxPushTests {
    @Test(arguments: [nil, Date(millis: 1_767_225_600_123)])
    func anEncodedEventIsTheEventsJSON(_ expiresAt: Date?) throws {
        let event = InboxEvent(
            seq: 0, kind: .application, conversation: .random(), message: Base64Bytes((0..<300).map { UInt8($0 % 256) }),
            messageId: "m-1_Z", sentAt: Date(millis: 1_767_225_599_007), expiresAt: expiresAt)
        let encoded = try #require(EncodedEvent(event))
        for seq: Int64 in [1, 42, .max] {
            var numbered = event
            numbered.seq = seq
            let expected = String(decoding: try ConclaveJSON.encoder().encode(numbered), as: UTF8.self)
            #expect(encoded.text(seq: seq) == expected)
            let decoded = try ConclaveJSON.decoder().decode(InboxEvent.self, from: Data(encoded.text(seq: seq).utf8))
            #expect(decoded.seq == seq && decoded.message == numbered.message && decoded.messageId == numbered.messageId)
        }
    }

    /// Anything but an application message with a plain id is left to the store.
    @Test func otherEventsAreNotEncodedHere() {
        let message = InboxEvent(
            seq: 0, kind: .application, conversation: .random(), message: Base64Bytes([1]), messageId: "m1", sentAt: Date(),
            expiresAt: nil)
        var welcome = message
        welcome.kind = .welcome
        var quoted = message
        quoted.messageId = "a\"b"
        #expect(EncodedEvent(welcome) == nil)
        #expect(EncodedEvent(quoted) == nil)
    }
}
