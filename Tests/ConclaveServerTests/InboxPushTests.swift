import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
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
        // Written before the message is stored, and given its lifetime after.
        var unstored = event
        unstored.expiresAt = nil
        let drafted = try #require(EncodedEvent.Draft(unstored)).event(expiresAt: expiresAt)
        for seq: Int64 in [1, 42, .max] {
            var numbered = event
            numbered.seq = seq
            let expected = String(decoding: try ConclaveJSON.encoder().encode(numbered), as: UTF8.self)
            var frames = TextFrames()
            encoded.append(seq: seq, to: &frames)
            drafted.append(seq: seq, to: &frames)
            #expect(frames.jsons.map { String(buffer: $0) } == [expected, expected])
            let decoded = try ConclaveJSON.decoder().decode(InboxEvent.self, from: Data(frames.jsons[0].readableBytesView))
            #expect(decoded.seq == seq && decoded.message == numbered.message && decoded.messageId == numbered.messageId)
        }
    }

    @Test("Integers, base64 and hex written into a buffer are what String, Foundation and Hex write")
    func bufferWriters() {
        for value: Int64 in [0, 1, 9, 10, 42, 99_999, -1, -10, .max, .min] {
            var buffer = ByteBuffer()
            buffer.writeDecimal(value)
            #expect(String(buffer: buffer) == String(value))
        }
        for length in [0, 1, 2, 3, 31, 32, 33, 64] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var buffer = ByteBuffer(string: "x")
            buffer.writeBase64(bytes)
            buffer.writeHex(bytes)
            #expect(String(buffer: buffer) == "x" + Data(bytes).base64EncodedString() + bytes.map { String(format: "%02x", $0) }.joined())
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

/// The pusher of one WebSocket, on a real store, with a recording target
/// whose timers the test fires itself.
@Suite struct InboxPusherTests {
    /// Frames sent, and timers scheduled (fired by the test, not by time).
    final class Recorder: PushTarget {
        private struct State {
            var frames: [Int64] = []
            var sends: [Int] = []
            var timers: [@Sendable () -> Void] = []
            var waiters: [(frames: Int, timers: Int, continuation: CheckedContinuation<Void, Never>)] = []
        }
        private let state = Mutex(State())

        func send(_ frames: TextFrames) async throws {
            let events = try frames.jsons.map { try ConclaveJSON.decoder().decode(InboxEvent.self, from: Data($0.readableBytesView)) }
            update { state in
                state.frames += events.map(\.seq)
                state.sends.append(frames.bytes.readableBytes)
            }
        }
        func end(reason: String) async throws {}
        func abort() {}
        func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) { update { $0.timers.append(body) } }

        var frames: [Int64] { state.withLock { $0.frames } }
        /// The bytes of each send.
        var sends: [Int] { state.withLock { $0.sends } }

        /// Fires the timers scheduled so far.
        func fireTimers() {
            let timers = state.withLock { state in
                defer { state.timers = [] }
                return state.timers
            }
            for timer in timers { timer() }
        }

        /// Returns once at least `frames` frames were sent and `timers`
        /// timers are waiting, or when the waiting task is cancelled.
        func wait(frames: Int, timers: Int = 0) async {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let met = state.withLock { state in
                        guard !Task.isCancelled, state.frames.count < frames || state.timers.count < timers else { return true }
                        state.waiters.append((frames, timers, continuation))
                        return false
                    }
                    if met { continuation.resume() }
                }
            } onCancel: {
                let waiting = state.withLock { state in
                    defer { state.waiters = [] }
                    return state.waiters.map(\.continuation)
                }
                for continuation in waiting { continuation.resume() }
            }
        }

        private func update(_ change: (inout State) -> Void) {
            let ready = state.withLock { state in
                change(&state)
                let (met, waiting) = (
                    state.waiters.filter { state.frames.count >= $0.frames && state.timers.count >= $0.timers },
                    state.waiters.filter { state.frames.count < $0.frames || state.timers.count < $0.timers }
                )
                state.waiters = waiting
                return met.map(\.continuation)
            }
            for continuation in ready { continuation.resume() }
        }
    }

    /// A store in `folder` where one device has `count` messages of `bytes` bytes in its inbox.
    static func inbox(in folder: URL, count: Int, bytes: Int) async throws -> (ConclaveStore, DeviceID, [InboxEvent]) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let store = ConclaveStore(
            database: try await SQLiteDatabase.open(
                path: folder.appendingPathComponent("conclave.sqlite").path, logger: Logger(label: "pusher-test")))
        try await store.migrate()
        let alice = try await store.addUser("alice")
        let bob = try await store.addUser("bob")
        let sender = MemberDevice(device: try await store.addDevice(alice), user: alice)
        let recipient = try await store.addDevice(bob)
        let room = try await store.addRoom(sender).id
        try await store.commit(room, from: 0, devices: [sender, MemberDevice(device: recipient, user: bob)], added: [bob])
        for index in 1...count {
            let delivery = Delivery(
                kind: .application, data: randomBytes(bytes), messageID: "m\(index)", senderDevice: sender.device, sentAt: testNow(),
                recipients: [recipient])
            _ = try await store.appendApplication(room, epoch: 1, delivery: delivery)
        }
        let stored = try await store.inbox(device: recipient, after: 0, limit: count, now: testNow())
        #expect(stored.map(\.seq) == Array(1...Int64(count)))
        return (store, recipient, stored)
    }

    @Test("Events handed over out of order leave in order; after a gap that is never filled, the store is read once the grace ends")
    func gapsWaitThenDrain() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-pusher-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (store, recipient, stored) = try await Self.inbox(in: folder, count: 6, bytes: 64)
        func handed(_ seq: Int64) throws -> PushedEvent {
            let event = try #require(stored.first { $0.seq == seq })
            return PushedEvent(seq: seq, event: try #require(EncodedEvent(event)))
        }

        let recorder = Recorder()
        let pusher = InboxPusher(
            device: recipient, after: 0, store: store, pageBytes: 1 << 20, clock: .system, target: recorder, stillValid: { true })
        pusher.hand(try handed(2))
        pusher.hand(try handed(1))
        await recorder.wait(frames: 2)
        #expect(recorder.frames == [1, 2])

        // 3 is never handed over: 4 waits for it, and nothing is sent until the grace period ends.
        pusher.hand(try handed(4))
        await recorder.wait(frames: 2, timers: 1)
        #expect(recorder.frames == [1, 2])
        recorder.fireTimers()
        await recorder.wait(frames: 6)
        #expect(recorder.frames == [1, 2, 3, 4, 5, 6])  // from the store, each once
        pusher.stop()

        // A wake-up reads the store page after page until a page holds the rest: here each page is cut by its bytes.
        let reader = Recorder()
        let catchingUp = InboxPusher(
            device: recipient, after: 0, store: store, pageBytes: 100, clock: .system, target: reader, stillValid: { true })
        catchingUp.wake()
        try await withDeadline(.seconds(30), "every page read") { await reader.wait(frames: 6) }
        #expect(reader.frames == [1, 2, 3, 4, 5, 6])
        catchingUp.stop()
        try await store.close()
    }

    @Test("Many events go out in buffers of about 32 KiB, handed over or read from the store: each event once, in order")
    func largeHandOversAreSentInChunks() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-pusher-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (store, recipient, stored) = try await Self.inbox(in: folder, count: 120, bytes: 1000)
        let handed = Recorder()
        let pusher = InboxPusher(
            device: recipient, after: 0, store: store, pageBytes: 1 << 20, clock: .system, target: handed, stillValid: { true })
        for event in stored.reversed() { pusher.hand(PushedEvent(seq: event.seq, event: try #require(EncodedEvent(event)))) }
        try await withDeadline(.seconds(30), "every event handed over") { await handed.wait(frames: 120) }
        let read = Recorder()
        let reader = InboxPusher(
            device: recipient, after: 0, store: store, pageBytes: 1 << 20, clock: .system, target: read, stillValid: { true })
        reader.wake()
        try await withDeadline(.seconds(30), "every event read") { await read.wait(frames: 120) }
        for recorder in [handed, read] {
            #expect(recorder.frames == Array(1...120))
            // 120 frames of about 1.4 KB: at least four buffers, none much beyond the limit.
            #expect(recorder.sends.count >= 4 && recorder.sends.allSatisfy { $0 < InboxPusher.chunkBytes + 2048 }, "\(recorder.sends)")
        }
        pusher.stop()
        reader.stop()
        try await store.close()
    }
}

/// What a client sends on the WebSocket, read by the quick reader where it
/// can and by `JSONDecoder` otherwise: both read every message the same.
@Suite struct EventStreamFrameTests {
    static let conversation = ConversationID.random()

    /// What a request reads as, in words the test compares.
    static func summary(_ request: EventStreamRequest?) -> String {
        guard let request else { return "nothing" }
        var text = "ack \(request.ack.map(String.init) ?? "-")"
        switch request.send {
        case .none: break
        case .valid(let send)?:
            text += " send \(send.ref) \(send.conversation) \(send.send.messageId) \(send.send.message.bytes) \(send.send.files ?? [])"
        case .refused(let answer)?: text += " refused \(String(buffer: answer.frame.jsons.first ?? ByteBuffer()))"
        }
        return text
    }

    static func bySlowReader(_ text: String) -> String { summary(EventStreamRequest.decode(ByteBuffer(string: text))) }

    static let frames: [String] = [
        #"{"ack":42}"#, #" { "ack" : -0 } "#, #"{"ack":0042}"#, #"{"ack":4.2}"#, #"{"ack":9223372036854775808}"#, #"{"ack":"7"}"#,
        #"{"conversation":"\#(conversation)","ref":"r-1","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"send":{"message_id":"m1","message":"AAEC"},"ref":"r","conversation":"\#(conversation)","ack":3}"#,
        "{\n\t\"ref\":\"r\",\"conversation\":\"\(conversation)\",\"send\":{\"message\":\"AAEC\",\"message_id\":\"m1\"}\r\n}",
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAE","message_id":"m1"}}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AA\u0045C","message_id":"m1"}}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1","files":[]}}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC","messageId":"m1"}}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC"}}"#,
        #"{"ref":"r","ref":"s","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"ref":"","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"ref":"\#(String(repeating: "r", count: 65))","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"ref":"r","conversation":"zz","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}x"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"},}"#,
        #"{"ref":"r","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}"#,
        #"{"ref":"é","conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"ref":7,"conversation":"\#(conversation)","send":{"message":"AAEC","message_id":"m1"}}"#,
        #"{"hello":"there"}"#, #"{}"#, #"[]"#, #""ack""#, "",
        // A message of some length: its base64 is read eight bytes at a time.
        #"{"ref":"long","conversation":"\#(conversation)","send":{"message":"\#(Base64Text.encode((0..<200).map { UInt8($0) }))","message_id":"m2"}}"#,
    ]

    @Test("Eight bytes are read as plain string bytes exactly when each is printable ASCII other than a quote and a backslash")
    func plainWords() {
        func isPlain(_ byte: UInt8) -> Bool { (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") }
        func word(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
        let base = Array("aZ09+/=~".utf8)
        #expect(QuickRequestReader.plain(word(base)))
        for position in 0..<8 {
            for byte in UInt8.min...UInt8.max {
                var bytes = base
                bytes[position] = byte
                #expect(QuickRequestReader.plain(word(bytes)) == isPlain(byte), "byte \(byte) at \(position)")
                // And beside a byte that is refused, or one next to every boundary.
                for other in [0x1F, 0x20, 0x21, 0x22, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xFF] as [UInt8] {
                    bytes[(position + 3) % 8] = other
                    #expect(QuickRequestReader.plain(word(bytes)) == bytes.allSatisfy(isPlain), "\(bytes)")
                }
            }
        }
    }

    @Test("Each sample reads the same by the quick reader as by JSONDecoder")
    func samples() {
        for text in Self.frames {
            guard let quick = EventStreamRequest.quick(ByteBuffer(string: text)) else { continue }
            #expect(Self.summary(quick) == Self.bySlowReader(text), "\(text)")
        }
        // A send's body takes the messages route's properties only, none null, as over HTTP.
        let conversation = Self.conversation
        for body in [#"{"message":"AAEC","messageId":"m1"}"#, #"{"message":"AAEC","message_id":"m1","files":null}"#] {
            let text = #"{"ref":"r","conversation":"\#(conversation)","send":\#(body)}"#
            #expect(Self.bySlowReader(text).contains("bad_request"), "\(text)")
        }
        // The quick reader takes the plain shapes itself.
        for plain in Self.frames[0...1] + Self.frames[6...8] {
            #expect(EventStreamRequest.quick(ByteBuffer(string: plain)) != nil, "\(plain)")
        }
    }

    @Test("Every sample with a byte changed, removed or repeated that the quick reader takes reads the same by JSONDecoder")
    func mutations() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,\ -0123456789.eEabcdefmnrstu"#.utf8) + [0x00, 0x0A, 0x7F, 0xC3, 0xA9]
        for _ in 0..<20_000 {
            var bytes = Array(Self.frames.randomElement(using: &generator)?.utf8 ?? "".utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = alphabet.randomElement(using: &generator) ?? 0
                case 1: bytes.remove(at: index)
                default: bytes.insert(bytes[index], at: index)
                }
            }
            guard let quick = EventStreamRequest.quick(ByteBuffer(bytes: bytes)) else { continue }
            let slow = Self.summary(EventStreamRequest.decode(ByteBuffer(bytes: bytes)))
            #expect(Self.summary(quick) == slow, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test("An accepted send's answer is written as the encoder writes it", arguments: [nil, Date(millis: 1_767_225_600_123)])
    func answerText(_ expiresAt: Date?) throws {
        for (ref, created) in [("r-1_Z", true), ("7", false), ("needs \"escaping\"", true)] {
            let answer = EventStreamAnswer(
                ref: ref, accepted: MessageAccepted(messageId: "m-1", sentAt: Date(millis: 1_767_225_599_007), expiresAt: expiresAt),
                created: created)
            let expected = String(decoding: try ConclaveJSON.encoder().encode(answer), as: UTF8.self)
            #expect(answer.frame.jsons.map { String(buffer: $0) } == [expected])
        }
    }

    @Test("Answers added before the event loop takes them go in one buffer, in order; the event loop is asked once per take")
    func answersAreTakenTogether() {
        let answers = (1...4).map { index in
            let accepted = MessageAccepted(messageId: "m-\(index)", sentAt: Date(millis: 1_767_225_599_007), expiresAt: nil)
            return EventStreamAnswer(ref: "r\(index)", accepted: accepted, created: true)
        }
        let queue = AnswerQueue()
        #expect(answers.prefix(3).map(queue.add) == [true, false, false])
        let taken = queue.take()
        #expect(taken.count == 3)
        #expect(taken.jsons == answers.prefix(3).flatMap(\.frame.jsons))
        #expect(queue.add(answers[3]))
        #expect(queue.take().jsons == answers[3].frame.jsons)
        #expect(queue.take().isEmpty)
    }

    @Test("Text frames are the bytes NIO's encoder writes for their JSON, at every size of header, one after another")
    func textFrames() throws {
        let counts = [0, 1, 125, 126, 127, 4096, 65_535, 65_536, 70_000]
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        var all = TextFrames()
        var allEncoded = ByteBuffer()
        for count in counts {
            let json = ByteBuffer(bytes: (0..<count).map { _ in UInt8.random(in: 0...255) })
            try channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: json)).wait()
            var encoded = ByteBuffer()
            while var part = try channel.readOutbound(as: ByteBuffer.self) { encoded.writeBuffer(&part) }
            // Written whole, and by parts of a size the frame did not know.
            var whole = TextFrames()
            whole.append(json: json.readableBytesView)
            var parts = TextFrames()
            parts.append(capacity: 10) { buffer in
                for start in stride(from: 0, to: count, by: 1000) {
                    buffer.writeImmutableBuffer(json.getSlice(at: start, length: min(1000, count - start)) ?? ByteBuffer())
                }
            }
            #expect(whole.bytes == encoded && parts.bytes == encoded, "\(count)")
            #expect(whole.jsons == [json] && parts.jsons == [json] && whole.count == 1, "\(count)")
            all.append(json: json.readableBytesView)
            allEncoded.writeImmutableBuffer(encoded)
        }
        #expect(all.bytes == allEncoded && all.count == counts.count)
        #expect(all.jsons.map(\.readableBytes) == counts)
        _ = try channel.finish()
    }

    @Test("A frame's payload is unmasked as NIO unmasks it, after what the message already holds, at every length and offset")
    func unmasking() {
        for length in 0..<40 {
            for held in [0, 1, 3, 8] {
                let key = WebSocketMaskingKey.random()
                let payload = ByteBuffer(bytes: (0..<length).map { _ in UInt8.random(in: 0...255) })
                var message = ByteBuffer(bytes: Array(repeating: 7, count: held))
                message.moveReaderIndex(forwardBy: held / 2)  // a message buffer need not start at its storage's start
                let before = Array(message.readableBytesView)
                message.writeUnmasked(payload, key: key)
                let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: payload)
                #expect(Array(message.readableBytesView) == before + Array(frame.unmaskedData.readableBytesView), "\(length) \(held)")
            }
        }
    }
}

extension TextFrames {
    /// Each frame's JSON, in order.
    var jsons: [ByteBuffer] {
        var rest = bytes
        var jsons: [ByteBuffer] = []
        while let second = rest.getInteger(at: rest.readerIndex + 1, as: UInt8.self) {
            let (header, length): (Int, Int?) =
                switch second {
                case ..<126: (2, Int(second))
                case 126: (4, rest.getInteger(at: rest.readerIndex + 2, as: UInt16.self).map(Int.init))
                default: (10, rest.getInteger(at: rest.readerIndex + 2, as: UInt64.self).flatMap { Int(exactly: $0) })
                }
            guard let length, rest.readableBytes >= header + length else { break }
            rest.moveReaderIndex(forwardBy: header)
            jsons.append(rest.readSlice(length: length) ?? ByteBuffer())
        }
        return jsons
    }
}
