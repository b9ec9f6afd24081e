import ConclaveProtocol
import Foundation
import NIOCore

/// A client's message on the WebSocket: an acknowledgement
/// (`{"ack": seq}`), a send (``EventStreamSend``), or both. Each part is
/// read on its own, so that a malformed send is answered (with its `ref`
/// when that is usable) rather than ignored.
struct EventStreamRequest: Decodable {
    enum Send {
        case valid(EventStreamSend)
        case refused(EventStreamAnswer)
    }

    let ack: Int64?
    let send: Send?

    /// The request in a text message of the common shapes (an
    /// acknowledgement; a send without files, in plain JSON), read by
    /// ``FlatJSON``, which reads every message it takes as `JSONDecoder`
    /// does (``decode(_:)``); nil for any other message.
    static func quick(_ bytes: ByteBuffer) -> EventStreamRequest? {
        let flat = bytes.readableBytesView.withContiguousStorageIfAvailable { taken(from: FlatJSON.object(in: UnsafeRawBufferPointer($0))) }
        return flat ?? nil
    }

    /// The request in a text message, by `JSONDecoder`; nil when it is not
    /// a JSON object. A send's body takes the properties the messages route
    /// takes, and no null, as over HTTP.
    static func decode(_ bytes: ByteBuffer) -> EventStreamRequest? {
        let data = Data(bytes.readableBytesView)
        guard let request = try? ConclaveJSON.decoder().decode(EventStreamRequest.self, from: data) else { return nil }
        guard case .valid(let send)? = request.send else { return request }
        // Checked by the names as they are written: the decoder's snake-case conversion would take `messageId` too.
        do {
            let body = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["send"] as? [String: Any]
            try JSONBody.checkProperties(of: SendMessage.self, in: body ?? [:])
            return request
        } catch {
            let message = "send: " + ((error as? APIError)?.message ?? "{message_id, message (base64), files?} is required")
            return EventStreamRequest(
                ack: request.ack, send: .refused(EventStreamAnswer(ref: send.ref, error: APIError.badRequest(message).body.error)))
        }
    }

    private init(ack: Int64?, send: Send?) {
        self.ack = ack
        self.send = send
    }

    /// A request whose every part is well formed, from ``FlatJSON``'s
    /// reading; nil for anything else, which `JSONDecoder` then reads (and
    /// refuses with the same words).
    private static func taken(from object: [String: FlatJSON.Value]?) -> EventStreamRequest? {
        guard let object else { return nil }
        var ack: Int64?
        var ref: String?
        var conversation: ConversationID?
        var send: SendMessage?
        for (key, value) in object {
            switch (key, value) {
            case ("ack", .integer(let value)): ack = value
            case ("ref", .string(let value)) where (1...64).contains(value.utf8.count): ref = value
            case ("conversation", .string(let value)): conversation = ConversationID(value)
            case ("send", .object(let fields)):
                guard fields.count == 2, case .string(let id)? = fields["message_id"], case .string(let text)? = fields["message"],
                    let message = Data(base64Encoded: text)
                else { return nil }
                send = SendMessage(messageId: id, message: Base64Bytes(Array(message)))
            default: return nil
            }
        }
        switch (ref, conversation, send) {
        case (nil, nil, nil): return ack.map { EventStreamRequest(ack: $0, send: nil) }
        case (let ref?, let conversation?, let send?):
            return EventStreamRequest(ack: ack, send: .valid(EventStreamSend(ref: ref, conversation: conversation, send: send)))
        default: return nil
        }
    }

    private enum Keys: String, CodingKey {
        case ack, ref, conversation, send
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        ack = try? container.decodeIfPresent(Int64.self, forKey: .ack)
        guard container.contains(.ref) || container.contains(.conversation) || container.contains(.send) else {
            send = nil
            return
        }
        let ref = (try? container.decodeIfPresent(String.self, forKey: .ref)).flatMap { $0 }
        func refused(_ message: String, ref: String?) -> Send {
            .refused(EventStreamAnswer(ref: ref, error: APIError.badRequest(message).body.error))
        }
        guard let ref, (1...64).contains(ref.utf8.count) else {
            send = refused("ref: a send needs a ref of 1 to 64 bytes", ref: nil)
            return
        }
        guard let conversation = (try? container.decodeIfPresent(ConversationID.self, forKey: .conversation)).flatMap({ $0 }) else {
            send = refused("conversation: a conversation id (hex)", ref: ref)
            return
        }
        do {
            send = .valid(
                EventStreamSend(ref: ref, conversation: conversation, send: try container.decode(SendMessage.self, forKey: .send)))
        } catch {
            send = refused("send: {message_id, message (base64), files?} is required", ref: ref)
        }
    }
}

extension EventStreamAnswer {
    /// The answer's JSON, as `ConclaveJSON.encoder()` writes it. An
    /// accepted message whose ref and id need no escaping (D17 ids never
    /// do) is written directly, like ``EncodedEvent``.
    var text: String {
        if let accepted, let created, error == nil, retryAfter == nil, let ref, ref.utf8.allSatisfy(\.isASCIIIdentifier),
            accepted.messageId.utf8.allSatisfy(\.isASCIIIdentifier)
        {
            var text = #"{"accepted":{"#
            if let expiresAt = accepted.expiresAt { text += #""expires_at":""# + ConclaveJSON.formatTimestamp(expiresAt) + #"","# }
            text += #""message_id":""# + accepted.messageId + #"","sent_at":""# + ConclaveJSON.formatTimestamp(accepted.sentAt)
            return text + #""},"created":"# + (created ? "true" : "false") + #","ref":""# + ref + #""}"#
        }
        // An answer of strings, numbers and dates always encodes.
        return (try? ConclaveJSON.encoder().encode(self)).map { String(decoding: $0, as: UTF8.self) }
            ?? #"{"error":{"code":"internal","message":"internal error"}}"#
    }
}

/// A strict reader of the plain JSON most clients write: one object whose
/// values are strings without escapes, integers, or objects of those (one
/// level deep), with JSON's whitespace between tokens. It gives nil for
/// anything else, to be read by `JSONDecoder`: escapes, bytes beyond
/// ASCII, control characters, numbers that are not integers of 64 bits,
/// arrays, literals, deeper objects, a key twice, or anything after the
/// object. So whatever it reads, `JSONDecoder` reads the same way.
enum FlatJSON {
    enum Value: Equatable {
        case string(String)
        case integer(Int64)
        case object([String: Value])
    }

    static func object(in bytes: UnsafeRawBufferPointer) -> [String: Value]? {
        var reader = Reader(bytes: bytes)
        guard let object = reader.object(depth: 0) else { return nil }
        reader.skipSpace()
        return reader.position == bytes.count ? object : nil
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func object(depth: Int) -> [String: Value]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var object: [String: Value] = [:]
            if take(UInt8(ascii: "}")) { return object }
            repeat {
                skipSpace()
                guard let key = string(), take(UInt8(ascii: ":")), let value = value(depth: depth), object[key] == nil else { return nil }
                object[key] = value
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}")) ? object : nil
        }

        mutating func value(depth: Int) -> Value? {
            skipSpace()
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "{"): return depth == 0 ? object(depth: 1).map(Value.object) : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return integer().map(Value.integer)
            default: return nil
            }
        }

        /// A string of printable ASCII without escapes.
        mutating func string() -> String? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            let start = position + 1
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                guard (0x20...0x7E).contains(bytes[end]), bytes[end] != UInt8(ascii: "\\") else { return nil }
                end += 1
            }
            guard end < bytes.count else { return nil }
            position = end + 1
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }

        /// `-?(0|[1-9][0-9]*)` within Int64, not followed by a fraction or exponent.
        mutating func integer() -> Int64? {
            let negative = bytes[position] == UInt8(ascii: "-")
            if negative { position += 1 }
            let start = position
            var value: Int64 = 0
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                let digit = Int64(bytes[position] - UInt8(ascii: "0"))
                let (times, overflowed) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflowedAgain) = times.addingReportingOverflow(negative ? -digit : digit)
                guard !overflowed, !overflowedAgain else { return nil }
                value = sum
                position += 1
            }
            let digits = position - start
            guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
            if position < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[position]) { return nil }
            return value
        }
    }
}
