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
    /// ``QuickRequestReader``, which reads every message it takes as
    /// `JSONDecoder` does (``decode(_:)``); nil for any other message.
    static func quick(_ bytes: ByteBuffer) -> EventStreamRequest? {
        let request = bytes.readableBytesView.withContiguousStorageIfAvailable {
            QuickRequestReader.request(in: UnsafeRawBufferPointer($0))
        }
        return request ?? nil
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

    fileprivate init(ack: Int64?, send: Send?) {
        self.ack = ack
        self.send = send
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

/// Text frames the server sends (RFC 6455 §5.2: final, not masked), one
/// after another in one buffer, headers included: written to the socket as
/// they are, past NIO's `WebSocketFrameEncoder`, which writes each frame as
/// two parts of a socket write (a header in a buffer of its own, then the
/// payload). A pusher's events for one connection are one buffer, not one
/// per event.
struct TextFrames: Sendable {
    /// The frames, each its header then its JSON.
    private(set) var bytes: ByteBuffer
    /// How many frames `bytes` holds.
    private(set) var count = 0

    /// The largest header: a 64-bit length.
    private static let maxHeader = 10

    /// No frame yet, with room for about `capacity` bytes of them.
    init(capacity: Int = 0) { bytes = ByteBufferAllocator().buffer(capacity: capacity) }

    var isEmpty: Bool { count == 0 }

    /// Appends a frame of this JSON.
    mutating func append(json: some Collection<UInt8>) {
        append(capacity: json.count) { $0.writeBytes(json) }
    }

    /// Appends a frame of the JSON `write` appends (about `capacity`
    /// bytes): the JSON is written after room for the largest header, then
    /// the header before it once its length is known (the JSON moved up to
    /// meet a shorter one).
    mutating func append(capacity: Int, _ write: (inout ByteBuffer) -> Void) {
        bytes.reserveCapacity(minimumWritableBytes: Self.maxHeader + capacity)
        let start = bytes.writerIndex
        bytes.moveWriterIndex(forwardBy: Self.maxHeader)
        write(&bytes)
        let length = bytes.writerIndex - start - Self.maxHeader
        let header = length < 126 ? 2 : length <= 0xFFFF ? 4 : Self.maxHeader
        if header < Self.maxHeader {
            let offset = start - bytes.readerIndex
            bytes.withUnsafeMutableReadableBytes { all in  // (the regions overlap: copyMemory moves)
                UnsafeMutableRawBufferPointer(rebasing: all[(offset + header)...]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: all[(offset + Self.maxHeader)..<(offset + Self.maxHeader + length)]))
            }
        }
        bytes.setInteger(UInt8(0x81), at: start)  // FIN, text
        switch header {
        case 2:
            bytes.setInteger(UInt8(length), at: start + 1)
        case 4:
            bytes.setInteger(UInt8(126), at: start + 1)
            bytes.setInteger(UInt16(length), at: start + 2)
        default:
            bytes.setInteger(UInt8(127), at: start + 1)
            bytes.setInteger(UInt64(length), at: start + 2)
        }
        bytes.moveWriterIndex(to: start + header + length)
        count += 1
    }
}

extension EventStreamAnswer {
    /// The answer as a text frame (``append(to:)``).
    var frame: TextFrames {
        var frames = TextFrames(capacity: 192)
        append(to: &frames)
        return frames
    }

    /// Appends the answer as a text frame; its JSON as
    /// `ConclaveJSON.encoder()` writes it. An accepted message whose ref and
    /// id need no escaping (D17 ids never do) is written directly, like
    /// ``EncodedEvent``.
    func append(to frames: inout TextFrames) {
        if let accepted, let created, error == nil, retryAfter == nil, let ref, ref.utf8.allSatisfy(\.isASCIIIdentifier),
            accepted.messageId.utf8.allSatisfy(\.isASCIIIdentifier)
        {
            frames.append(capacity: 128 + ref.utf8.count + accepted.messageId.utf8.count) { buffer in
                buffer.writeStaticString(#"{"accepted":{"#)
                if let expiresAt = accepted.expiresAt {
                    buffer.writeStaticString(#""expires_at":""#)
                    buffer.writeString(ConclaveJSON.formatTimestamp(expiresAt))
                    buffer.writeStaticString(#"","#)
                }
                buffer.writeStaticString(#""message_id":""#)
                buffer.writeString(accepted.messageId)
                buffer.writeStaticString(#"","sent_at":""#)
                buffer.writeString(ConclaveJSON.formatTimestamp(accepted.sentAt))
                buffer.writeStaticString(created ? #""},"created":true,"ref":""# : #""},"created":false,"ref":""#)
                buffer.writeString(ref)
                buffer.writeStaticString(#""}"#)
            }
            return
        }
        // An answer of strings, numbers and dates always encodes.
        frames.append(
            json: (try? ConclaveJSON.encoder().encode(self)) ?? Data(#"{"error":{"code":"internal","message":"internal error"}}"#.utf8))
    }
}

/// A strict reader of the plain JSON most clients write on the stream: one
/// object of `ack` (an integer), `ref`, `conversation` (strings) and `send`
/// (an object of exactly `message_id` and `message`, both strings), with
/// JSON's whitespace between tokens, read in one pass without building a
/// dictionary. It gives nil for anything else, to be read by `JSONDecoder`:
/// another key, a key twice, strings with escapes, bytes beyond ASCII or
/// control characters, numbers that are not integers of 64 bits, a value
/// of another type or one the request refuses (a `ref` outside 1 to 64
/// bytes, a conversation id that is not one, a message that is not
/// canonical base64), a send without its `ref` and `conversation`, or
/// anything after the object. So whatever it reads, `JSONDecoder` reads
/// the same way (EventStreamFrameTests).
struct QuickRequestReader {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    static func request(in bytes: UnsafeRawBufferPointer) -> EventStreamRequest? {
        var reader = QuickRequestReader(bytes: bytes)
        guard let request = reader.request() else { return nil }
        reader.skipSpace()
        return reader.position == bytes.count ? request : nil
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func request() -> EventStreamRequest? {
        var ack: Int64?
        var ref: String?
        var conversation: ConversationID?
        var send: SendMessage?
        // Every value taken is non-nil: a key seen before is refused.
        let read = Self.members(of: &self) { reader, key in
            if reader.matches(key, "ack") {
                guard ack == nil, let value = reader.integer() else { return false }
                ack = value
            } else if reader.matches(key, "ref") {
                guard ref == nil, let value = reader.string(), (1...64).contains(value.count) else { return false }
                ref = reader.text(value)
            } else if reader.matches(key, "conversation") {
                guard conversation == nil, let value = reader.string(), let id = ConversationID(reader.text(value)) else { return false }
                conversation = id
            } else if reader.matches(key, "send") {
                guard send == nil, let value = reader.sendMessage() else { return false }
                send = value
            } else {
                return false
            }
            return true
        }
        guard read else { return nil }
        switch (ref, conversation, send) {
        case (nil, nil, nil): return ack.map { EventStreamRequest(ack: $0, send: nil) }
        case (let ref?, let conversation?, let send?):
            return EventStreamRequest(ack: ack, send: .valid(EventStreamSend(ref: ref, conversation: conversation, send: send)))
        default: return nil
        }
    }

    /// `{"message_id": …, "message": …}` in either order, the message base64.
    private mutating func sendMessage() -> SendMessage? {
        var id: Range<Int>?
        var message: Range<Int>?
        let read = Self.members(of: &self) { reader, key in
            if reader.matches(key, "message_id") {
                guard id == nil, let value = reader.string() else { return false }
                id = value
            } else if reader.matches(key, "message") {
                guard message == nil, let value = reader.string() else { return false }
                message = value
            } else {
                return false
            }
            return true
        }
        guard read, let id, let message, let bytes = Base64Text.decodeCanonical(UnsafeRawBufferPointer(rebasing: self.bytes[message]))
        else { return nil }
        return SendMessage(messageId: text(id), message: Base64Bytes(bytes))
    }

    /// An object of one member or more, each value read by `member` from
    /// its key (false: the object is refused).
    private static func members(
        of reader: inout QuickRequestReader, _ member: (inout QuickRequestReader, Range<Int>) -> Bool
    ) -> Bool {
        guard reader.take(UInt8(ascii: "{")) else { return false }
        repeat {
            reader.skipSpace()
            guard let key = reader.string(), reader.take(UInt8(ascii: ":")) else { return false }
            reader.skipSpace()
            guard member(&reader, key) else { return false }
        } while reader.take(UInt8(ascii: ","))
        return reader.take(UInt8(ascii: "}"))
    }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        skipSpace()
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    private func matches(_ range: Range<Int>, _ key: StaticString) -> Bool {
        range.count == key.utf8CodeUnitCount && key.withUTF8Buffer { key in zip(key, bytes[range]).allSatisfy { $0 == $1 } }
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// A string of printable ASCII without escapes: the range of its contents.
    private mutating func string() -> Range<Int>? {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
        let start = position + 1
        var end = start
        // Eight bytes at a time while none of them ends the string or is refused (a message's base64 is most of a send).
        while end + 8 <= bytes.count, Self.plain(bytes.loadUnaligned(fromByteOffset: end, as: UInt64.self)) { end += 8 }
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            guard (0x20...0x7E).contains(bytes[end]), bytes[end] != UInt8(ascii: "\\") else { return nil }
            end += 1
        }
        guard end < bytes.count else { return nil }
        position = end + 1
        return start..<end
    }

    /// Whether all eight bytes of `word` are printable ASCII (0x20–0x7E)
    /// other than `"` and `\`: no byte below 0x20, none above 0x7E, and
    /// no byte equal to either (the classic tests for a byte below a bound,
    /// above one, and for a zero byte in the word XORed with each).
    static func plain(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ value: UInt64) -> Bool { (value &- ones) & ~value & highs != 0 }
        let below = (word &- ones &* 0x20) & ~word & highs  // a byte under 0x20 (or with its high bit set)
        let above = (word &+ ones &* (0x7F - 0x7E)) | word  // a byte over 0x7E sets its high bit
        return below == 0 && above & highs == 0 && !hasZero(word ^ (ones &* 0x22)) && !hasZero(word ^ (ones &* 0x5C))
    }

    /// `-?(0|[1-9][0-9]*)` within Int64, not followed by a fraction or exponent.
    private mutating func integer() -> Int64? {
        guard position < bytes.count else { return nil }
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
