import ConclaveProtocol
import ConclaveStorage
import Foundation
import HummingbirdWebSocket

/// The inbox (DESIGN.md §4): a device reads its own queue over HTTP, or
/// has it pushed over one WebSocket; it acknowledges what it processed.
final class InboxService: Sendable {
    private let store: ConclaveStore
    private let hub: InboxHub
    private let clock: ServerClock
    private let limits: ServerLimits
    private let metrics: ServerMetrics

    init(store: ConclaveStore, hub: InboxHub, clock: ServerClock, limits: ServerLimits, metrics: ServerMetrics) {
        self.store = store
        self.hub = hub
        self.clock = clock
        self.limits = limits
        self.metrics = metrics
    }

    /// D23: a page holds at most `limit` events and `inboxPageBytes` of messages.
    func page(of session: Session, after: Int64, limit: Int) async throws -> InboxPage {
        InboxPage(
            events: try await store.inbox(
                device: session.device.id, after: after, limit: limit, maxBytes: limits.inboxPageBytes, now: clock.now))
    }

    func acknowledge(_ ack: InboxAck, session: Session) async throws -> AckResult {
        let removed = try await store.acknowledge(device: session.device.id, upTo: ack.upTo)
        metrics.delivered(removed)
        return AckResult(removed: removed)
    }

    /// Pushes the device's inbox as JSON text frames, one event each, and
    /// takes `{"ack": seq}` frames back, until either side closes or the
    /// device is cut off. A device already holding its limit of WebSockets
    /// (D24) has the new one closed at once, with close code 1008 and the
    /// reason `too many connections of this device`.
    ///
    /// Before it sends anything, the connection checks that its session is
    /// still valid (`stillValid`, from memory while nothing changed): a
    /// device cut off by another server process on a shared database stops
    /// receiving even if that process's signal to end the connection is lost.
    func stream(
        session: Session, after: Int64, stillValid: @escaping @Sendable () async -> Bool, inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter
    ) async throws {
        let device = session.device.id
        guard let (id, signals) = await hub.subscribe(device, limit: limits.webSocketsPerDevice) else {
            try await outbound.close(.policyViolation, reason: "too many connections of this device")
            return
        }
        metrics.webSocketOpened()
        defer { metrics.webSocketClosed() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await self.push(device, after: after, signals: signals, stillValid: stillValid, outbound: outbound)
                }
                group.addTask { try await self.takeAcknowledgements(device, inbound: inbound) }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            await hub.unsubscribe(device, id: id)
            throw error
        }
        await hub.unsubscribe(device, id: id)
    }

    /// Sends what the hub hands over as it is while it follows the cursor
    /// without a gap; otherwise (a wake-up, a gap) reads the store from the
    /// cursor until it is drained.
    private func push(
        _ device: DeviceID, after: Int64, signals: AsyncStream<[PushedEvent]>, stillValid: @Sendable () async -> Bool,
        outbound: WebSocketOutboundWriter
    ) async throws {
        let encoder = ConclaveJSON.encoder()
        var cursor = after
        for await pushed in signals {
            guard await stillValid() else { break }
            var drain = pushed.isEmpty
            for event in pushed where event.seq > cursor {
                guard event.seq == cursor + 1 else {
                    drain = true
                    break
                }
                try await outbound.write(.text(event.event.text(seq: event.seq)))
                cursor = event.seq
            }
            while drain {
                let events = try await store.inbox(
                    device: device, after: cursor, limit: 200, maxBytes: limits.inboxPageBytes, now: clock.now)
                for event in events {
                    try await outbound.write(.text(String(decoding: try encoder.encode(event), as: UTF8.self)))
                    cursor = event.seq
                }
                drain = !events.isEmpty
            }
        }
        // The device was cut off (suspended, deleted, reset, signed out).
        try await outbound.close(.policyViolation, reason: "session ended")
    }

    private func takeAcknowledgements(_ device: DeviceID, inbound: WebSocketInboundStream) async throws {
        for try await message in inbound.messages(maxSize: 4096) {
            guard case .text(let text) = message, let ack = try? ConclaveJSON.decoder().decode(WebSocketAck.self, from: Data(text.utf8))
            else { continue }
            metrics.delivered(try await store.acknowledge(device: device, upTo: ack.ack))
        }
    }
}

/// A client's acknowledgement over the WebSocket.
struct WebSocketAck: Decodable {
    let ack: Int64
}
