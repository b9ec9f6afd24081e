import ConclaveProtocol
import ConclaveStorage
import Foundation
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

    /// A `/v1/events` WebSocket of this session from `after` (served by
    /// ``EventStreamHandler``): the device's inbox as JSON text frames, one
    /// event each, and `{"ack": seq}` frames back, until either side closes
    /// or the device is cut off. A device already holding its limit of
    /// WebSockets (D24) has the new one closed at once, with close code 1008
    /// and the reason `too many connections of this device`. Before it sends
    /// anything, the pusher checks that its session is still valid
    /// (`stillValid`, from memory while nothing changed): a device cut off by
    /// another server process on a shared database stops receiving even if
    /// that process's signal to end the connection is lost.
    ///
    /// The device may also send application messages on it
    /// (``EventStreamSend``): `send` runs each as the HTTP route would.
    func eventStream(
        session: Session, after: Int64, stillValid: @escaping @Sendable () async -> Bool, send: @escaping EventStream.Sender,
        channel: any Channel
    ) -> EventStream {
        let pusher = InboxPusher(
            device: session.device.id, after: after, store: store, pageBytes: limits.inboxPageBytes, clock: clock,
            target: EventStreamTarget(channel: channel), stillValid: stillValid)
        return EventStream(
            pusher: pusher, settings: streamSettings, hub: hub, store: store, metrics: metrics, limit: limits.webSocketsPerDevice,
            sender: send)
    }

    /// The WebSocket's settings under this server's limits.
    var streamSettings: EventStreamHandler.Settings {
        var settings = EventStreamHandler.Settings(maxMessageBytes: limits.maxMessageBytes)
        settings.pingInterval = TimeAmount(seconds: limits.webSocketPingSeconds)
        return settings
    }
}
