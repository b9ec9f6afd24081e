import ConclaveProtocol
import Foundation

/// The live WebSocket connections, by device. A message that was just
/// stored is handed to its recipients' connections with its encoding (one
/// per message, shared by all of them); anything else that grows an inbox
/// only wakes them, and they read the inbox from the store. The store stays
/// the only source of truth: a connection that finds a gap in the sequence
/// numbers it was handed (a signal dropped because it fell behind, or two
/// messages that overtook each other) reads the store from its cursor, so a
/// lost signal never loses a message.
actor InboxHub {
    private var listeners: [DeviceID: [UUID: AsyncStream<[PushedEvent]>.Continuation]] = [:]

    /// Signals a connection holds before it drops the oldest (it then reads
    /// the store to fill the gap).
    static let buffered = 64

    /// How many connections a device holds.
    func connections(of device: DeviceID) -> Int { listeners[device]?.count ?? 0 }

    /// A stream of signals for the device's connection: events to send as
    /// they are, or an empty array when the inbox may have grown otherwise.
    /// It finishes when the device is cut off (suspended, deleted, reset);
    /// nil when the device already holds `limit` connections (D24).
    func subscribe(_ device: DeviceID, limit: Int) -> (id: UUID, signals: AsyncStream<[PushedEvent]>)? {
        guard connections(of: device) < limit else { return nil }
        let id = UUID()
        let (stream, continuation) = AsyncStream<[PushedEvent]>.makeStream(bufferingPolicy: .bufferingNewest(Self.buffered))
        listeners[device, default: [:]][id] = continuation
        continuation.yield([])
        return (id, stream)
    }

    func unsubscribe(_ device: DeviceID, id: UUID) {
        listeners[device]?[id]?.finish()
        listeners[device]?[id] = nil
        if listeners[device]?.isEmpty == true { listeners[device] = nil }
    }

    /// Wakes the connections of these devices: their inboxes grew.
    func notify(_ devices: Set<DeviceID>) {
        for device in devices {
            for continuation in listeners[device]?.values ?? [:].values { continuation.yield([]) }
        }
    }

    /// Wakes every connection (after signals from other server processes
    /// may have been missed).
    func notifyAll() {
        for continuation in listeners.values.flatMap(\.values) { continuation.yield([]) }
    }

    /// Hands a stored message to its recipients' connections, each with its
    /// own sequence number.
    func push(_ event: EncodedEvent, sequences: [DeviceID: Int64]) {
        for (device, seq) in sequences {
            for continuation in listeners[device]?.values ?? [:].values {
                continuation.yield([PushedEvent(seq: seq, event: event)])
            }
        }
    }

    /// Ends every connection of these devices at once.
    func disconnect(_ devices: [DeviceID]) {
        for device in devices {
            for continuation in listeners[device]?.values ?? [:].values { continuation.finish() }
            listeners[device] = nil
        }
    }
}

/// An inbox event encoded once for all its recipients: its JSON up to the
/// sequence number, which comes last (keys are sorted, as
/// ``ConclaveJSON/encoder()`` writes them, and the same bytes).
struct EncodedEvent: Sendable {
    private let prefix: String

    /// An application message, written directly: every field is base64,
    /// hex, a timestamp or a message id of `A-Z a-z 0-9 - _` (D17), none of
    /// which JSON escapes. Nil for anything else: connections then read the
    /// event from the store.
    init?(_ event: InboxEvent) {
        guard event.kind == .application, event.conversationKind == nil, event.name == nil,
            event.messageId.map({ $0.utf8.allSatisfy(\.isASCIIIdentifier) }) ?? true
        else { return nil }
        var text = "{\"conversation\":\"\(event.conversation)\","
        if let expiresAt = event.expiresAt { text += "\"expires_at\":\"\(ConclaveJSON.formatTimestamp(expiresAt))\"," }
        text += "\"kind\":\"application\",\"message\":\"\(Data(event.message.bytes).base64EncodedString())\","
        if let messageId = event.messageId { text += "\"message_id\":\"\(messageId)\"," }
        text += "\"sent_at\":\"\(ConclaveJSON.formatTimestamp(event.sentAt))\",\"seq\":"
        prefix = text
    }

    /// The event's JSON with this sequence number.
    func text(seq: Int64) -> String { prefix + String(seq) + "}" }
}

/// One recipient's copy of a pushed event.
struct PushedEvent: Sendable {
    let seq: Int64
    let event: EncodedEvent
}
