import ConclaveProtocol
import Foundation
import NIOCore
import Synchronization

/// The live WebSocket connections, by device. A message that was just
/// stored is handed to its recipients' connections with its encoding (one
/// per message, shared by all of them); anything else that grows an inbox
/// only wakes them, and they read the inbox from the store. The store stays
/// the only source of truth: a connection that finds a gap in the sequence
/// numbers it was handed (events dropped because it fell behind, or two
/// messages that overtook each other) reads the store from its cursor, so a
/// lost hand-over never loses a message.
///
/// The hub is a lock, not an actor: handing a message over costs no task
/// switch, only the connections' own (short-lived) pushing tasks run.
final class InboxHub: Sendable {
    private let listeners = Mutex<[DeviceID: [ObjectIdentifier: InboxPusher]]>([:])

    /// Adds a connection of the device and has it read its inbox from its
    /// cursor; false when the device already holds `limit` connections (D24).
    func subscribe(_ pusher: InboxPusher, limit: Int) -> Bool {
        let added = listeners.withLock { listeners in
            guard (listeners[pusher.device]?.count ?? 0) < limit else { return false }
            listeners[pusher.device, default: [:]][ObjectIdentifier(pusher)] = pusher
            return true
        }
        if added { pusher.wake() }
        return added
    }

    func unsubscribe(_ pusher: InboxPusher) {
        listeners.withLock { listeners in
            listeners[pusher.device]?[ObjectIdentifier(pusher)] = nil
            if listeners[pusher.device]?.isEmpty == true { listeners[pusher.device] = nil }
        }
    }

    /// Whether no connection is open.
    var isEmpty: Bool { listeners.withLock { $0.isEmpty } }

    /// Wakes the connections of these devices: their inboxes grew.
    func notify(_ devices: Set<DeviceID>) {
        for pusher in pushers(of: devices) { pusher.wake() }
    }

    /// Wakes every connection (after signals from other server processes
    /// may have been missed).
    func notifyAll() {
        for pusher in listeners.withLock({ $0.values.flatMap(\.values) }) { pusher.wake() }
    }

    /// Hands a stored message to its recipients' connections, each with its
    /// own sequence number.
    func push(_ event: EncodedEvent, sequences: [DeviceID: Int64]) {
        let targets = listeners.withLock { listeners in
            var targets: [(InboxPusher, Int64)] = []
            targets.reserveCapacity(sequences.count)
            for (device, seq) in sequences {
                for pusher in listeners[device]?.values ?? [:].values { targets.append((pusher, seq)) }
            }
            return targets
        }
        for (pusher, seq) in targets { pusher.hand(PushedEvent(seq: seq, event: event)) }
    }

    /// Ends every connection of these devices at once.
    func disconnect(_ devices: [DeviceID]) {
        let ended = listeners.withLock { listeners in
            devices.flatMap { device in listeners.removeValue(forKey: device).map { Array($0.values) } ?? [] }
        }
        for pusher in ended { pusher.cutOff() }
    }

    private func pushers(of devices: Set<DeviceID>) -> [InboxPusher] {
        listeners.withLock { listeners in devices.flatMap { listeners[$0].map { Array($0.values) } ?? [] } }
    }
}

/// An inbox event encoded once for all its recipients: its JSON up to the
/// sequence number, which comes last (keys are sorted, as
/// ``ConclaveJSON/encoder()`` writes them, and the same bytes), in the
/// parts its ``Draft`` wrote and the lifetime between them, joined once per
/// recipient with its sequence number into the frame that recipient gets.
struct EncodedEvent: Sendable {
    private let draft: Draft
    /// The lifetime's member, `"expires_at":"…",`, or nothing.
    private let expiry: ByteBuffer?

    /// An application message, written directly: every field is base64,
    /// hex, a timestamp or a message id of `A-Z a-z 0-9 - _` (D17), none of
    /// which JSON escapes. Nil for anything else: connections then read the
    /// event from the store.
    init?(_ event: InboxEvent) {
        guard let draft = Draft(event) else { return nil }
        self = draft.event(expiresAt: event.expiresAt)
    }

    private init(draft: Draft, expiry: ByteBuffer?) {
        self.draft = draft
        self.expiry = expiry
    }

    /// An event written before it is stored, but for its lifetime, which
    /// the conversation decides as it is stored: the sender writes the
    /// message's base64, and the batch that stores it (one task for all its
    /// messages) adds the lifetime.
    struct Draft: Sendable {
        /// `{"conversation":"…",`
        fileprivate let head: ByteBuffer
        /// `"kind":"application",…,"seq":`
        fileprivate let tail: ByteBuffer

        /// The event without its `expires_at` (which is left out); nil as
        /// for ``EncodedEvent/init(_:)``.
        init?(_ event: InboxEvent) {
            guard event.kind == .application, event.conversationKind == nil, event.name == nil,
                event.messageId.map({ $0.utf8.allSatisfy(\.isASCIIIdentifier) }) ?? true
            else { return nil }
            let conversation = event.conversation.bytes
            var head = ByteBufferAllocator().buffer(capacity: 20 + 2 * conversation.count)
            head.writeStaticString(#"{"conversation":""#)
            head.writeHex(conversation)
            head.writeStaticString(#"","#)
            var tail = ByteBufferAllocator().buffer(
                capacity: Base64Text.encodedCount(event.message.bytes.count) + (event.messageId?.utf8.count ?? 0) + 96)
            tail.writeStaticString(#""kind":"application","message":""#)
            tail.writeBase64(event.message.bytes)
            tail.writeStaticString(#"","#)
            if let messageId = event.messageId {
                tail.writeStaticString(#""message_id":""#)
                tail.writeString(messageId)
                tail.writeStaticString(#"","#)
            }
            tail.writeStaticString(#""sent_at":""#)
            tail.writeString(ConclaveJSON.formatTimestamp(event.sentAt))
            tail.writeStaticString(#"","seq":"#)
            (self.head, self.tail) = (head, tail)
        }

        /// The event with this lifetime.
        func event(expiresAt: Date?) -> EncodedEvent {
            EncodedEvent(
                draft: self,
                expiry: expiresAt.map { expiresAt in
                    var expiry = ByteBufferAllocator().buffer(capacity: 40)
                    expiry.writeStaticString(#""expires_at":""#)
                    expiry.writeString(ConclaveJSON.formatTimestamp(expiresAt))
                    expiry.writeStaticString(#"","#)
                    return expiry
                })
        }
    }

    /// The event's JSON at most (with the longest sequence number).
    var jsonBytes: Int { draft.head.readableBytes + (expiry?.readableBytes ?? 0) + draft.tail.readableBytes + 21 }

    /// Appends the event with this sequence number as a text frame.
    func append(seq: Int64, to frames: inout TextFrames) {
        frames.append(capacity: jsonBytes) { buffer in
            buffer.writeImmutableBuffer(draft.head)
            if let expiry { buffer.writeImmutableBuffer(expiry) }
            buffer.writeImmutableBuffer(draft.tail)
            buffer.writeDecimal(seq)
            buffer.writeStaticString("}")
        }
    }
}

extension ByteBuffer {
    /// Appends the standard base64 of `bytes` (``Base64Text``).
    mutating func writeBase64(_ bytes: [UInt8]) {
        let count = Base64Text.encodedCount(bytes.count)
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            bytes.withUnsafeBytes { Base64Text.encode($0, into: out) }
            return count
        }
    }

    /// Appends the lowercase hex of `bytes`.
    mutating func writeHex(_ bytes: [UInt8]) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: 2 * bytes.count) { out in
            bytes.withUnsafeBytes { Hex.encode($0, into: out) }
            return 2 * bytes.count
        }
    }

    /// Appends `value` in decimal, as JSON writes an integer.
    mutating func writeDecimal(_ value: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in  // Int64.min: a sign and 19 digits
            var (rest, index) = (value.magnitude, digits.count)
            repeat {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            if value < 0 {
                index -= 1
                digits[index] = UInt8(ascii: "-")
            }
            writeBytes(UnsafeBufferPointer(rebasing: digits[index...]))
        }
    }
}

/// One recipient's copy of a pushed event.
struct PushedEvent: Sendable {
    let seq: Int64
    let event: EncodedEvent
}
