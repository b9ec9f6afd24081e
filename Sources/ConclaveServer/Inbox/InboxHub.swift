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
            sequences.flatMap { device, seq in (listeners[device]?.values).map { $0.map { ($0, seq) } } ?? [] }
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
/// ``ConclaveJSON/encoder()`` writes them, and the same bytes).
struct EncodedEvent: Sendable {
    private let prefix: ByteBuffer

    /// An application message, written directly: every field is base64,
    /// hex, a timestamp or a message id of `A-Z a-z 0-9 - _` (D17), none of
    /// which JSON escapes. Nil for anything else: connections then read the
    /// event from the store.
    init?(_ event: InboxEvent) {
        guard let draft = Draft(event) else { return nil }
        self = draft.event(expiresAt: event.expiresAt)
    }

    private init(prefix: ByteBuffer) { self.prefix = prefix }

    /// An event written before it is stored, but for its lifetime, which
    /// the conversation decides as it is stored: the sender's task writes
    /// the message's base64, and the batch that stores it (one task for
    /// all its messages) only joins the parts.
    struct Draft: Sendable {
        /// `{"conversation":"…",`
        private let head: ByteBuffer
        /// `"kind":"application",…,"seq":`
        private let tail: ByteBuffer

        /// The event without its `expires_at` (which is left out); nil as
        /// for ``EncodedEvent/init(_:)``.
        init?(_ event: InboxEvent) {
            guard event.kind == .application, event.conversationKind == nil, event.name == nil,
                event.messageId.map({ $0.utf8.allSatisfy(\.isASCIIIdentifier) }) ?? true
            else { return nil }
            var head = ByteBuffer()
            head.reserveCapacity(56)
            head.writeStaticString(#"{"conversation":""#)
            head.writeString(event.conversation.description)
            head.writeStaticString(#"","#)
            let message = Data(event.message.bytes).base64EncodedString()
            var tail = ByteBuffer()
            tail.reserveCapacity(message.utf8.count + (event.messageId?.utf8.count ?? 0) + 96)
            tail.writeStaticString(#""kind":"application","message":""#)
            tail.writeString(message)
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
            var prefix = ByteBuffer()
            prefix.reserveCapacity(head.readableBytes + tail.readableBytes + 40)
            prefix.writeImmutableBuffer(head)
            if let expiresAt {
                prefix.writeStaticString(#""expires_at":""#)
                prefix.writeString(ConclaveJSON.formatTimestamp(expiresAt))
                prefix.writeStaticString(#"","#)
            }
            prefix.writeImmutableBuffer(tail)
            return EncodedEvent(prefix: prefix)
        }
    }

    /// The event's JSON with this sequence number.
    func json(seq: Int64) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(prefix.readableBytes + 21)
        buffer.writeImmutableBuffer(prefix)
        buffer.writeString(String(seq))
        buffer.writeStaticString("}")
        return buffer
    }
}

/// One recipient's copy of a pushed event.
struct PushedEvent: Sendable {
    let seq: Int64
    let event: EncodedEvent
}
