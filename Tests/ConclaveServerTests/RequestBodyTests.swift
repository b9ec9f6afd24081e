import ConclaveProtocol
import Foundation
import Testing

@testable import ConclaveServer

/// The message path: its body is checked without re-encoding (``FlatJSONBody``):
/// the same refusals as the generic check, for the same bodies; its answer
/// is written directly (``DirectJSON``), the same bytes as the encoder.
@Suite struct RequestBodyTests {
    private func decode(_ text: String) throws -> SendMessage { try JSONBody.decode(SendMessage.self, Array(text.utf8)) }

    private func refusal(_ text: String) -> String? {
        do {
            _ = try decode(text)
            return nil
        } catch let error as APIError {
            return error.code == .badRequest ? error.message : "\(error.code)"
        } catch {
            return "\(error)"
        }
    }

    @Test("Its properties are those it encodes")
    func propertiesMatchTheEncoding() throws {
        let full = SendMessage(messageId: "m1", message: Base64Bytes([1, 2, 3]), files: [FileID.random()])
        let object = try #require(try JSONSerialization.jsonObject(with: ConclaveJSON.encoder().encode(full)) as? [String: Any])
        #expect(Set(object.keys) == SendMessage.properties)
    }

    @Test("Unknown properties, nulls and malformed values are refused as the generic check refuses them")
    func refusals() throws {
        let file = FileID.random().description
        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "files": ["\#(file)"]}"#) == nil)
        let decoded = try decode(#"{"message_id": "m1", "message": "AQID", "files": ["\#(file)"]}"#)
        #expect(decoded.messageId == "m1" && decoded.message.bytes == [1, 2, 3] && decoded.files?.map(\.description) == [file])
        #expect(try decode(#"{"message_id": "m1", "message": "AQID"}"#).files == nil)

        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "extra": 1}"#) == "unknown property extra")
        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "files": null}"#) == "files must not be null: leave an absent value out")
        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "a\"b": 1}"#) == "the body has a property this request does not take")
        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "messageId": "m2"}"#) == "unknown property messageId")
        let invalid = "the body is not a valid SendMessage JSON object"
        #expect(refusal(#"{"message_id": "m1", "message": "AQID", "files": [null]}"#) == invalid)
        #expect(refusal(#"{"message_id": "m1"}"#) == invalid)
        #expect(refusal(#"[{"message_id": "m1", "message": "AQID"}]"#) == invalid)
        #expect(refusal("not json") == invalid)
        // The generic check says the same of another type's body.
        #expect(throws: APIError.badRequest("unknown property extra")) {
            try JSONBody.decode(InboxAck.self, Array(#"{"up_to": 0, "extra": 1}"#.utf8))
        }
    }

    @Test("The answer to a message is written as the encoder writes it", arguments: [nil, Date(millis: 1_767_225_600_123)])
    func acceptedIsTheEncodersJSON(_ expiresAt: Date?) throws {
        let accepted = MessageAccepted(messageId: "m-1_Z", sentAt: Date(millis: 1_767_225_599_007), expiresAt: expiresAt)
        #expect(accepted.directJSON == String(decoding: try ConclaveJSON.encoder().encode(accepted), as: UTF8.self))
        #expect(MessageAccepted(messageId: "a\"b", sentAt: Date(), expiresAt: nil).directJSON == nil)
    }
}
