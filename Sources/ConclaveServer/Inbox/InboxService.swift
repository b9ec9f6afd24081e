import ConclaveProtocol
import ConclaveStorage
import Foundation
import HummingbirdWebSocket
import NIOCore

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
    /// The connection's task only reads acknowledgements; pushing is the
    /// ``InboxPusher``'s, in a task that lives only while there is something
    /// to send. Before it sends anything, the pusher checks that its session
    /// is still valid (`stillValid`, from memory while nothing changed): a
    /// device cut off by another server process on a shared database stops
    /// receiving even if that process's signal to end the connection is lost.
    func stream(
        session: Session, after: Int64, stillValid: @escaping @Sendable () async -> Bool, inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter, channel: any Channel
    ) async throws {
        let pusher = InboxPusher(
            device: session.device.id, after: after, store: store, pageBytes: limits.inboxPageBytes, clock: clock,
            target: WebSocketPushTarget(outbound: outbound, channel: channel), stillValid: stillValid)
        guard hub.subscribe(pusher, limit: limits.webSocketsPerDevice) else {
            try await outbound.close(.policyViolation, reason: "too many connections of this device")
            return
        }
        metrics.webSocketOpened()
        defer {
            pusher.stop()
            hub.unsubscribe(pusher)
            metrics.webSocketClosed()
        }
        try await takeAcknowledgements(session.device.id, inbound: inbound)
    }

    /// Acknowledgements are written from a task of their own that ends with
    /// the write, so that the connection's task, which lives as long as the
    /// connection, does not keep the memory of the store's call stack.
    private func takeAcknowledgements(_ device: DeviceID, inbound: WebSocketInboundStream) async throws {
        for try await message in inbound.messages(maxSize: 4096) {
            guard case .text(let text) = message, let ack = try? ConclaveJSON.decoder().decode(WebSocketAck.self, from: Data(text.utf8))
            else { continue }
            let store = store
            metrics.delivered(try await Task { try await store.acknowledge(device: device, upTo: ack.ack) }.value)
        }
    }
}

/// A client's acknowledgement over the WebSocket.
struct WebSocketAck: Decodable {
    let ack: Int64
}
